"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/seed_study/holm.py` reads `results/runs.csv` and, for each row of the
README's paired table (final held-out accuracy, a - b within one stratum, pairs by
`schedule.seed`; "either model" counts as its two strata), computes the paired t-test
(two-sided, n - 1 degrees of freedom) on the per-seed differences; a comparison whose pairs are
all identical gets p = 1. The 6 p-values form one family; Holm's step-down adjustment controls
its family-wise error rate at 0.05 (both from `fedlab.report.stats`, as the report computes
them). Writes `holm.csv` beside this script, in the README's order.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "runs.csv"
PAIR_ON, METRIC, ALPHA = "schedule.seed", "final_eval_accuracy", 0.05
# (factor, a, b, the other factor, its level)
COMPARISONS = [("aggregator", "compression", "mean", "model", "fedavg_cnn"),
               ("aggregator", "compression", "mean", "model", "simple_cnn"),
               ("aggregator", "compression", "compression_only", "model", "fedavg_cnn"),
               ("aggregator", "compression", "compression_only", "model", "simple_cnn"),
               ("model", "fedavg_cnn", "simple_cnn", "aggregator", "mean"),
               ("model", "fedavg_cnn", "simple_cnn", "aggregator", "compression")]


def main() -> None:
    """Write ``holm.csv`` beside this script and print it."""
    runs = pd.read_csv(RUNS)
    runs = runs[runs["status"] == "completed"]
    rows = [{"factor": factor, "a": a, "b": b, "within": f"{other}={level}", "metric": METRIC,
             **seed_paired_test(runs[runs[other] == level], factor, a, b,
                                 METRIC, PAIR_ON)}
            for factor, a, b, other, level in COMPARISONS]
    table = holm_family(rows, ALPHA)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
