"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/asynchronous/holm.py` reads `results/runs.csv`, pairs FedAvg's and
FedBuff's runs by `schedule.seed`, and for each figure of the README's paired table (4) computes
the paired t-test (two-sided, n - 1 degrees of freedom) on the per-seed differences
FedAvg - FedBuff. The 4 p-values form one family; Holm's step-down adjustment controls its
family-wise error rate at 0.05. Writes `holm.csv` beside this script, in the README's row order.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "runs.csv"
FACTOR, PAIR_ON, ALPHA = "algorithm", "schedule.seed", 0.05
NAMES = {"fedavg": "FedAvg", "fedbuff": "FedBuff"}
COMPARISONS = [("fedavg", "fedbuff")]
METRICS = {"sim_seconds_to_target": "simulated seconds to 0.85",
           "final_eval_accuracy": "final held-out accuracy",
           "final_eval_accuracy_last_k": "last-3 mean accuracy",
           "rounds_to_target": "rounds / updates to 0.85"}


def paired_test(runs: pd.DataFrame, a: str, b: str, metric: str) -> dict:
    by_seed = runs.pivot_table(index=PAIR_ON, columns=FACTOR, values=metric)
    diff = (by_seed[a] - by_seed[b]).dropna().to_numpy()
    n = len(diff)
    mean, sd = diff.mean(), diff.std(ddof=1)
    se = sd / np.sqrt(n)
    t = mean / se if se > 0 else (0.0 if mean == 0 else np.inf)
    p = 2 * stats.t.sf(abs(t), n - 1) if np.isfinite(t) else 0.0
    return {"n": n, "mean_diff": mean, "sd_diff": sd,
            "half_width_95": stats.t.ppf(0.975, n - 1) * se, "t": t, "p": p}


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values: running max of (m - rank) * p over the sorted p."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def main() -> None:
    runs = pd.read_csv(RUNS)
    runs = runs[runs["status"] == "completed"]
    rows = [{"a": NAMES[a], "b": NAMES[b], "metric": metric, "figure": label,
             **paired_test(runs, a, b, metric)}
            for a, b in COMPARISONS for metric, label in METRICS.items()]
    table = pd.DataFrame(rows)
    table["holm_p"] = holm(table["p"].to_numpy())
    table["survives_holm_0.05"] = table["holm_p"] < ALPHA
    table["family_size"] = len(table)
    table.to_csv(HERE / "holm.csv", index=False, float_format="%.6g")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
