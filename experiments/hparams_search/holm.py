"""Holm-Bonferroni correction over the paired comparisons the README shows.

`uv run python experiments/hparams_search/holm.py` reads `results/check/runs.csv` and, for each
of the README's 4 paired comparisons of final held-out accuracy (client lr 0.232 - 0.02 at each
server lr; server lr 1.603 - 1.0 at each client lr; pairs by `schedule.seed`), computes the
paired t-test (two-sided, n - 1 degrees of freedom) on the per-seed differences a - b. The 4
p-values form one family; Holm's step-down adjustment controls its family-wise error rate at
0.05. Writes `holm.csv` beside this script, in the README's order.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

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
