"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/asynchronous/holm.py` reads `results/runs.csv`, pairs FedAvg's and
FedBuff's runs by `schedule.seed`, and for each figure of the README's paired table (4) computes
the paired t-test (two-sided, n - 1 degrees of freedom) on the per-seed differences FedAvg -
FedBuff. The 4 p-values form one family; Holm's step-down adjustment controls its family-wise
error rate at 0.05 (both from `fedlab.report.stats`, as the report computes them). Writes
`holm.csv` beside this script, in the README's row order.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "runs.csv"
FACTOR, PAIR_ON, ALPHA = "algorithm", "schedule.seed", 0.05
NAMES = {"fedavg": "FedAvg", "fedbuff": "FedBuff"}
COMPARISONS = [("fedavg", "fedbuff")]
METRICS = {"sim_seconds_to_target": "simulated seconds to 0.85",
           "final_eval_accuracy": "final held-out accuracy",
           "final_eval_accuracy_last_k": "last-3 mean accuracy",
           "rounds_to_target": "rounds / updates to 0.85"}


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
