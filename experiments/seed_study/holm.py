"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/seed_study/holm.py` reads `results/runs.csv` and, for each row of the
README's paired table (final held-out accuracy, a - b within one stratum, pairs by
`schedule.seed`; "either model" counts as its two strata), computes the paired t-test
(two-sided, n - 1 degrees of freedom) on the per-seed differences; a comparison whose pairs are
all identical gets p = 1. The 6 p-values form one family; Holm's step-down adjustment controls
its family-wise error rate at 0.05. Writes `holm.csv` beside this script, in the README's order.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

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


def paired_test(runs: pd.DataFrame, factor: str, a: str, b: str) -> dict:
    by_seed = runs.pivot_table(index=PAIR_ON, columns=factor, values=METRIC)
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
