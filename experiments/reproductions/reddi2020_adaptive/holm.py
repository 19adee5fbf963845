"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/reproductions/reddi2020_adaptive/holm.py` reads
`results/test/runs.csv`, pairs the runs of two methods by `schedule.seed`, and for each
comparison of the README's paired table (6 method pairs x 2 figures = 12) computes the paired
t-test (two-sided, n - 1 degrees of freedom) on the per-seed differences a - b. The 12 p-values
form one family; Holm's step-down adjustment controls its family-wise error rate at 0.05 (both
from `fedlab.report.stats`, as the report computes them). Writes `holm.csv` beside this script,
in the README's row order.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "test" / "runs.csv"
FACTOR, PAIR_ON, ALPHA = "optimizer", "schedule.seed", 0.05
NAMES = {"sgd": "FedAvg", "adagrad": "FedAdagrad", "adam": "FedAdam", "yogi": "FedYogi"}
COMPARISONS = [("adam", "sgd"), ("yogi", "sgd"), ("adagrad", "sgd"),
               ("adam", "yogi"), ("adam", "adagrad"), ("yogi", "adagrad")]
METRICS = {"final_eval_accuracy_last_k": "last-3 test acc",
           "rounds_to_target": "rounds to 0.90"}


def main() -> None:
    """Write ``holm.csv`` beside this script and print it."""
    runs = pd.read_csv(RUNS)
    runs = runs[runs["status"] == "completed"]
    rows = [{"a": NAMES[a], "b": NAMES[b], "metric": metric, "figure": label,
             **seed_paired_test(runs, FACTOR, a, b, metric, PAIR_ON)}
            for a, b in COMPARISONS for metric, label in METRICS.items()]
    table = holm_family(rows, ALPHA)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
