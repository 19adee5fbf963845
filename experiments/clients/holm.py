"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/clients/holm.py` reads `results/runs.csv` and, for each comparison
the README's "Paired by seed" section discusses (compression - mean at dropout 0; dropout 0 -
0.3 and 0 - 0.6 with the mean aggregator) and each of its figures (simulated seconds to 0.8,
rounds to 0.8, final held-out accuracy), computes the paired t-test (two-sided, n - 1 degrees of
freedom) on the per-seed differences a - b; a comparison whose pairs are all identical gets p =
1. The 9 p-values form one family; Holm's step-down adjustment controls its family-wise error
rate at 0.05 (both from `fedlab.report.stats`, as the report computes them). Writes `holm.csv`
beside this script, in the README's order.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "runs.csv"
PAIR_ON, ALPHA = "schedule.seed", 0.05
# (factor, a, b, the other factor, its level)
COMPARISONS = [("aggregator", "compression", "mean", "clients.dropout", 0.0),
               ("clients.dropout", 0.0, 0.3, "aggregator", "mean"),
               ("clients.dropout", 0.0, 0.6, "aggregator", "mean")]
METRICS = {"sim_seconds_to_target": "sim s to 0.8", "rounds_to_target": "rounds to 0.8",
           "final_eval_accuracy": "final held-out acc"}


def main() -> None:
    """Write ``holm.csv`` beside this script and print it."""
    runs = pd.read_csv(RUNS)
    runs = runs[runs["status"] == "completed"]
    rows = [{"factor": factor, "a": a, "b": b, "within": f"{other}={level}", "metric": metric,
             "figure": label, **seed_paired_test(runs[runs[other] == level], factor, a, b,
                                 metric, PAIR_ON)}
            for factor, a, b, other, level in COMPARISONS for metric, label in METRICS.items()]
    table = holm_family(rows, ALPHA)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
