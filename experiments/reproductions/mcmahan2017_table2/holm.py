"""Paired tests of the table's FedSGD - FedAvg rounds, Holm-Bonferroni corrected.

`uv run python experiments/reproductions/mcmahan2017_table2/holm.py` reads the test runs'
`results/test_0.92/runs.csv` (IID rows, target 0.92) and `results/test_0.88/runs.csv` (non-IID
rows, target 0.88), as `table.py` does, and for each FedAvg row and partition of `table.md` (4
rows x 2 partitions = 8) computes the paired t-test (two-sided, n - 1 degrees of freedom) on the
per-seed differences FedSGD rounds - FedAvg rounds to the target. The 8 p-values form one
family; Holm's step-down adjustment controls its family-wise error rate at 0.05 (both from
`fedlab.report.stats`, as the report computes them). Writes `holm.csv` beside this script.
"""
from pathlib import Path

import pandas as pd

from fedlab.report.stats import holm_family, paired_t_test

HERE = Path(__file__).resolve().parent
REPORTS = {0.92: HERE / "results" / "test_0.92" / "runs.csv",
           0.88: HERE / "results" / "test_0.88" / "runs.csv"}
PAIR_ON, METRIC, ALPHA = "schedule.seed", "rounds_to_target", 0.05
ROW = ["schedule.local_epochs", "schedule.batch_size"]


def main() -> None:
    """Write ``holm.csv`` beside this script and print it."""
    runs = pd.concat([pd.read_csv(path).query("`callbacks.target_stop.accuracy` == @target")
                      for target, path in REPORTS.items()], ignore_index=True)
    runs = runs[runs["status"] == "completed"]
    rows = []
    for partition, runs_p in runs.groupby("dataset.partition.method"):
        sgd = runs_p[runs_p["algorithm"] == "fedsgd"].set_index(PAIR_ON)[METRIC]
        for (epochs, batch), row in runs_p[runs_p["algorithm"] == "fedavg"].groupby(ROW):
            diff = (sgd - row.set_index(PAIR_ON)[METRIC]).dropna().to_numpy()
            rows.append({"partition": partition,
                         "target": row["callbacks.target_stop.accuracy"].iloc[0],
                         "E": epochs, "B": "inf" if batch >= 1000 else batch,
                         "fedsgd_minus_fedavg_per_seed": " / ".join(f"{d:g}" for d in diff),
                         **paired_t_test(diff).columns()})
    table = holm_family(rows, ALPHA)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
