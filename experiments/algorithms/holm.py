"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/algorithms/holm.py` reads `results/runs.csv`, pairs the runs of two
methods by `schedule.seed` (each method at its own selected rates), and for each comparison of
the README's paired table (5 method pairs x 3 figures = 15) computes the paired t-test
(two-sided, n - 1 degrees of freedom) on the per-seed differences a - b. The 15 p-values form
one family; Holm's step-down adjustment controls its family-wise error rate at 0.05 (both from
`fedlab.report.stats`, as the report computes them). Writes `holm.csv` beside this script, in
the README's row order.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "runs.csv"
FACTOR, PAIR_ON, ALPHA = "algorithm", "schedule.seed", 0.05
NAMES = {"fedavg": "FedAvg", "fedprox": "FedProx", "mime_lite": "Mime Lite",
         "scaffold": "SCAFFOLD"}
COMPARISONS = [("fedavg", "scaffold"), ("fedprox", "scaffold"), ("fedavg", "fedprox"),
               ("mime_lite", "scaffold"), ("fedavg", "mime_lite")]
METRICS = {"final_eval_accuracy_last_k": "last-3 held-out acc",
           "final_client_accuracy_p10": "client p10",
           "final_personalized_accuracy_mean": "personalized mean"}


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
