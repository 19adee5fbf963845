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

from fedlab.report.stats import holm, paired_t_test

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


def paired_test(runs: pd.DataFrame, factor: str, a, b) -> dict:
    """The paired t-test of a - b over the seeds both ran (``fedlab.report.stats``)."""
    by_seed = runs.pivot_table(index=PAIR_ON, columns=factor, values=METRIC)
    diff = (by_seed[a] - by_seed[b]).dropna().to_numpy()
    return paired_t_test(diff).columns()


def main() -> None:
    """Write ``holm.csv`` beside this script and print it."""
    runs = pd.read_csv(RUNS)
    runs = runs[runs["status"] == "completed"].round({CLIENT: 4, SERVER: 4})
    rows = [{"factor": factor, "a": a, "b": b, "within": f"{other}={level}", "metric": METRIC,
             **paired_test(runs[runs[other] == level], factor, a, b)}
            for factor, a, b, other, level in COMPARISONS]
    table = pd.DataFrame(rows)
    table["holm_p"] = holm(table["p"].to_numpy())
    table["survives_holm_0.05"] = table["holm_p"] < ALPHA
    table["family_size"] = len(table)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
