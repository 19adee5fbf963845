"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/hparams_search/holm.py` reads `results/check/runs.csv` and, for each
of the README's 4 paired comparisons of final held-out accuracy (client lr 0.232 - 0.02 at each
server lr; server lr 1.603 - 1.0 at each client lr; pairs by `schedule.seed`), computes the
paired t-test (two-sided, n - 1 degrees of freedom) on the per-seed differences a - b. The 4
p-values form one family; Holm's step-down adjustment controls its family-wise error rate at
0.05 (both from `fedlab.report.stats`, as the report computes them). Writes `holm.csv` beside
this script, in the README's order.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "check" / "runs.csv"
PAIR_ON, METRIC, ALPHA = "schedule.seed", "final_eval_accuracy", 0.05
CLIENT, SERVER = "optimizer.client.learning_rate", "optimizer.server.learning_rate"
BEST_CLIENT, BEST_SERVER = 0.2321, 1.6026  # runs.csv's 0.23212864..., 1.60255116..., rounded
# (factor, a, b, the other factor, its level)
COMPARISONS = [(CLIENT, BEST_CLIENT, 0.02, SERVER, 1.0),
               (CLIENT, BEST_CLIENT, 0.02, SERVER, BEST_SERVER),
               (SERVER, BEST_SERVER, 1.0, CLIENT, BEST_CLIENT),
               (SERVER, BEST_SERVER, 1.0, CLIENT, 0.02)]


def main() -> None:
    """Write ``holm.csv`` beside this script and print it."""
    runs = pd.read_csv(RUNS)
    runs = runs[runs["status"] == "completed"].round({CLIENT: 4, SERVER: 4})
    rows = [{"factor": factor, "a": a, "b": b, "within": f"{other}={level}", "metric": METRIC,
             **seed_paired_test(runs[runs[other] == level], factor, a, b,
                                 METRIC, PAIR_ON)}
            for factor, a, b, other, level in COMPARISONS]
    table = holm_family(rows, ALPHA)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
