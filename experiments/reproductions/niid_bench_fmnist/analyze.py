"""The NIID-Bench FMNIST reproduction's tables, from the report's ``runs.csv``.

``uv run python experiments/reproductions/niid_bench_fmnist/analyze.py [FOLDER]`` reads
``results/test/runs.csv`` (or FOLDER's; written by ``python -m fedlab.report``, see the README)
and writes beside it:

- ``table.csv``: per partition and method, over the seeds: the final-round, last-3 and best-round
  test accuracy (mean and standard deviation, in %), the mean test-set standard error, and the
  reference cells beside them: the paper's where one was found, and Flower's re-implementation
  (best round over 50, its own mean ± std), labelled as such;
- ``gaps.csv``: every cell with a reference, ours minus theirs in points, largest first (the
  README's "3 cells that differ most" are the top of this file), with the gap in units of our
  seeds' std plus theirs beside it. Against the paper, ours is the final round; against Flower,
  ours is the best round, as Flower reports;
- ``comparisons.csv``: FedProx, SCAFFOLD and FedNova each against FedAvg in each partition (21
  comparisons): final-round test accuracy, method minus FedAvg, paired by seed, with the paired
  t-test and Holm's correction over these 21 (``fedlab.report.stats``, as the report computes
  them). This is the family the README shows; the report's ``paired.csv`` corrects over every
  pair and figure it holds.

With the #C=1 diagnostic's report in ``results/c1_diagnostic`` (README, *The #C=1 diagnostic*), it
also writes ``results/c1_diagnostic/diagnostic.csv``: for FedAvg, FedProx and FedNova on #C=1,
the rate 0.01 minus the tuned 0.03, paired by seed, with Holm's correction over these 3.

It prints the README's tables: final round with the paper's cell, last 3 rounds, best round with
Flower's beside, and the comparisons.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fedlab.report.stats import ALPHA, holm_family, seed_paired_test

HERE = Path(__file__).resolve().parent
RESULTS = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "test"
DIAGNOSTIC = HERE / "results" / "c1_diagnostic"
RATE = "optimizer.client.learning_rate"
METHODS = {"fedavg": "FedAvg", "fedprox": "FedProx", "scaffold": "SCAFFOLD", "fednova": "FedNova"}
PARTITIONS = {"niid_c1": "#C=1", "niid_c2": "#C=2", "niid_c3": "#C=3", "niid_dir05": "Dir(0.5)",
              "niid_noise": "feature noise 0.1", "niid_quantity": "quantity skew Dir(0.5)",
              "niid_homo": "homogeneous"}
# The only cell of the paper's FMNIST rows found, second-hand (README, note 1): (mean, std) in %.
PAPER = {("niid_noise", "fedavg"): (89.1, 0.3)}
# Flower's baselines/niid_bench/README.md (commit 73ec95c8), FMNIST, best round of 50: (mean, std).
FLOWER = {
    ("niid_homo", "fedavg"): (89.23, 0.45), ("niid_homo", "scaffold"): (89.33, 0.27),
    ("niid_homo", "fedprox"): (89.42, 0.09), ("niid_homo", "fednova"): (89.36, 0.09),
    ("niid_dir05", "fedavg"): (88.09, 0.29), ("niid_dir05", "scaffold"): (88.44, 0.25),
    ("niid_dir05", "fedprox"): (88.15, 0.42), ("niid_dir05", "fednova"): (88.22, 0.12),
    ("niid_c1", "fedavg"): (28.39, 17.09), ("niid_c1", "scaffold"): (10.00, 0.00),
    ("niid_c1", "fedprox"): (32.65, 6.68), ("niid_c1", "fednova"): (16.86, 9.30),
    ("niid_c2", "fedavg"): (78.10, 2.51), ("niid_c2", "scaffold"): (33.80, 41.22),
    ("niid_c2", "fedprox"): (78.05, 0.99), ("niid_c2", "fednova"): (71.67, 2.34),
    ("niid_c3", "fedavg"): (82.43, 1.52), ("niid_c3", "scaffold"): (80.32, 5.03),
    ("niid_c3", "fedprox"): (82.99, 0.48), ("niid_c3", "fednova"): (81.97, 1.34),
}
BASELINE, METRIC = "fedavg", "final_eval_accuracy"
STATISTICS = {"final": "final_eval_accuracy", "last3": "final_eval_accuracy_last_k",
              "best": "best_eval_accuracy"}


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per partition and method: n, mean and std over seeds of each statistic, in %."""
    runs = runs[runs["status"] == "completed"]
    grouped = runs.groupby(["partition", "algorithm"])
    table = grouped.size().rename("n").to_frame()
    for name, column in STATISTICS.items():
        table[f"{name}_mean"] = grouped[column].mean() * 100
        table[f"{name}_std"] = grouped[column].std() * 100
    table["test_se_mean"] = grouped["final_eval_accuracy_se"].mean() * 100
    table = table.reset_index()
    for reference, values in (("paper", PAPER), ("flower", FLOWER)):
        for position, label in enumerate(("mean", "std")):
            table[f"{reference}_{label}"] = [
                values.get((p, a), (np.nan, np.nan))[position]
                for p, a in zip(table["partition"], table["algorithm"], strict=True)]
    order = {p: i for i, p in enumerate(PARTITIONS)}, {a: i for i, a in enumerate(METHODS)}
    table = table.sort_values(["partition", "algorithm"], key=lambda column: column.map(
        order[0] if column.name == "partition" else order[1]))
    return table.reset_index(drop=True)


def gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Ours minus each reference, where there is one, largest first."""
    rows = []
    for _, cell in table.iterrows():
        for reference, ours in (("paper", "final"), ("flower", "best")):
            theirs = cell[f"{reference}_mean"]
            if np.isnan(theirs):
                continue
            spread = np.nan_to_num(cell[f"{ours}_std"]) + cell[f"{reference}_std"]
            gap = cell[f"{ours}_mean"] - theirs
            rows.append({"partition": cell["partition"], "algorithm": cell["algorithm"],
                         "reference": reference, "ours": ours, "n": cell["n"],
                         "ours_mean": cell[f"{ours}_mean"], "ours_std": cell[f"{ours}_std"],
                         "theirs_mean": theirs, "theirs_std": cell[f"{reference}_std"],
                         "gap": gap, "gap_in_stds": abs(gap) / spread if spread else np.inf})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("gap", ascending=False, key=abs).reset_index(drop=True)


def comparisons(runs: pd.DataFrame) -> pd.DataFrame:
    """Every other method minus FedAvg per partition, paired by seed, Holm over the family."""
    runs = runs[runs["status"] == "completed"]
    rows = [{"partition": partition, "a": method, "b": BASELINE, "metric": METRIC,
             **seed_paired_test(runs[runs["partition"] == partition], "algorithm", method,
                                BASELINE, METRIC)}
            for partition in PARTITIONS for method in METHODS if method != BASELINE]
    return holm_family(rows, ALPHA)


def diagnostic(runs: pd.DataFrame) -> pd.DataFrame:
    """#C=1 at NIID-Bench's 0.01 minus the tuned 0.03, per method, paired by seed, Holm over 3."""
    runs = runs[runs["status"] == "completed"]
    rows = []
    for method, method_runs in runs.groupby("algorithm"):
        low, tuned = sorted(method_runs[RATE].unique())
        at = {rate: method_runs[method_runs[RATE] == rate] for rate in (low, tuned)}
        rows.append({"algorithm": method, "a": low, "b": tuned, "metric": METRIC,
                     **{f"{name}_{rate}": at[rate][column].mean() * 100
                        for rate in (low, tuned) for name, column in STATISTICS.items()},
                     **{f"{name}_{low}_std": at[low][column].std() * 100
                        for name, column in STATISTICS.items()},
                     **seed_paired_test(method_runs, RATE, low, tuned, METRIC)})
    return holm_family(rows, ALPHA)


def markdown(table: pd.DataFrame, statistic: str = "final", reference: str = "paper") -> str:
    """A README table: one statistic's mean ± std per cell (%), a reference's cell beside."""
    lines = ["| FMNIST | " + " | ".join(METHODS.values()) + " |",
             "|---|" + "---|" * len(METHODS)]
    for partition, label in PARTITIONS.items():
        row = []
        for algorithm in METHODS:
            cell = table[(table["partition"] == partition) & (table["algorithm"] == algorithm)]
            if cell.empty:
                row.append("")
                continue
            cell = cell.iloc[0]
            text = f"{cell[f'{statistic}_mean']:.1f} ± {cell[f'{statistic}_std']:.1f}"
            if not np.isnan(cell[f"{reference}_mean"]):
                text += (f" ({reference}: {cell[f'{reference}_mean']:.1f} ± "
                         f"{cell[f'{reference}_std']:.1f})")
            row.append(text)
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def comparisons_markdown(family: pd.DataFrame) -> str:
    """The README's comparisons: mean difference in points, 95 % t interval, Holm's p."""
    lines = ["| FMNIST | " + " | ".join(f"{METHODS[m]} − FedAvg" for m in METHODS
                                         if m != BASELINE) + " |",
             "|---|" + "---|" * (len(METHODS) - 1)]
    for partition, label in PARTITIONS.items():
        row = []
        for _, test in family[family["partition"] == partition].iterrows():
            mean, half = test["mean_diff"] * 100, test["half_width_95"] * 100
            mark = " **" if test[f"survives_holm_{ALPHA:g}"] else " "
            row.append(f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}],{mark}"
                       f"p_Holm {test['holm_p']:.2g}{mark.strip()}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    """Write table.csv, gaps.csv and comparisons.csv beside the report; print the tables."""
    runs = pd.read_csv(RESULTS / "runs.csv")
    table = cells(runs)
    table.to_csv(RESULTS / "table.csv", index=False)
    gaps(table).to_csv(RESULTS / "gaps.csv", index=False)
    family = comparisons(runs)
    family.to_csv(RESULTS / "comparisons.csv", index=False)
    print(markdown(table, "final", "paper"), markdown(table, "last3", "paper"),
          markdown(table, "best", "flower"), comparisons_markdown(family), sep="\n\n")
    print(gaps(table).head(6).to_string())
    if (DIAGNOSTIC / "runs.csv").is_file():
        low_rate = diagnostic(pd.read_csv(DIAGNOSTIC / "runs.csv"))
        low_rate.to_csv(DIAGNOSTIC / "diagnostic.csv", index=False)
        print(low_rate.T.to_string())


if __name__ == "__main__":
    main()
