"""The NIID-Bench FMNIST reproduction's tables, from the report's ``summary.csv`` and ``runs.csv``.

``uv run python experiments/reproductions/niid_bench_fmnist/analyze.py [FOLDER]`` reads
``results/test/summary.csv``, ``runs.csv`` and ``paired.csv`` (or FOLDER's; written by
``python -m fedlab.report``, see the README) and writes beside it:

- ``table.csv``: per partition and method, over the seeds: the final-round, last-3 and best-round
  test accuracy (mean and standard deviation, in %), the best round's mean minus the final
  round's (in points and in final-round stds), the mean test-set standard error, and the
  reference cells beside them: the paper's where one was found, and Flower's re-implementation
  (best round over 50, its own mean ± std), labelled as such;
- ``gaps.csv``: every cell with a reference, ours minus theirs in points, largest first (the
  README's "3 cells that differ most" are the top of this file), with the gap in units of our
  seeds' std plus theirs beside it. Against the paper, ours is the final round; against Flower,
  ours is the best round, as Flower reports;
- ``comparisons.csv``: every other method against the baseline (FedAvg) in each partition:
  final-round test accuracy, method minus baseline in points, paired by seed, with the paired
  t-test and Holm's correction over this family (``fedlab.report.stats``). As in the report, a
  comparison whose differences are all equal has no p-value and is not a member of the family.
  Beside it, ``report_p_holm``: the report's own Holm-adjusted p from ``paired.csv``, corrected
  over every pair and figure that table holds.

With the #C=1 diagnostic's report in ``results/c1_diagnostic`` (README, *The #C=1 diagnostic*;
that folder whatever FOLDER is), it also writes ``results/c1_diagnostic/diagnostic.csv``: per
method, the diagnostic's rate minus the method's tuned rate (read from FOLDER's runs), in
points, paired by seed, Holm over the methods, and the diagnostic report's own Holm-adjusted p
(``report_p_holm``, from its ``paired.csv``).

It prints the README's tables: final round with the paper's cell, last 3 rounds, best round with
Flower's beside, the cells whose best round exceeds the final one, the comparisons, the largest
gaps and the diagnostic.
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


def cells(summary: pd.DataFrame) -> pd.DataFrame:
    """Per partition and method: the seeds' mean and std of each statistic, in %.

    Args:
      summary: the report's ``summary.csv`` (its groups are the partition and method cells).

    Returns:
      ``table.csv``'s rows, in the README's order of partitions and methods.
    """
    table = summary[["partition", "algorithm", "n"]].copy()
    for name, column in STATISTICS.items():
        table[f"{name}_mean"] = summary[f"{column}_mean"] * 100
        table[f"{name}_std"] = summary[f"{column}_std"] * 100
    table["best_minus_final"] = table["best_mean"] - table["final_mean"]
    table["best_minus_final_in_stds"] = table["best_minus_final"] / table["final_std"]
    table["test_se_mean"] = summary["final_eval_accuracy_se_mean"] * 100
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
    """Ours minus each reference, where there is one, largest first.

    Args:
      table: :func:`cells`' table.

    Returns:
      ``gaps.csv``'s rows.
    """
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


def _holm_over_varying(rows: list[dict]) -> pd.DataFrame:
    """``rows`` (paired t-tests) with Holm over those whose differences vary (as the report)."""
    for row in rows:
        if row["sd_diff"] == 0:
            row["p"] = np.nan  # not a member of the family
    table = holm_family(rows, ALPHA)
    for column in ("mean_diff", "sd_diff", "half_width_95"):
        table[column] *= 100  # points
    return table


def comparisons(runs: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Every other method minus the baseline per partition, paired by seed, Holm over them.

    Args:
      runs: the report's ``runs.csv``.
      paired: the report's ``paired.csv`` (for its own Holm-adjusted p).

    Returns:
      ``comparisons.csv``'s rows, in points.
    """
    runs = runs[runs["status"] == "completed"]
    rows = [{"partition": partition, "a": method, "b": BASELINE, "metric": METRIC,
             **seed_paired_test(runs[runs["partition"] == partition], "algorithm", method,
                                BASELINE, METRIC)}
            for partition in PARTITIONS for method in METHODS if method != BASELINE]
    table = _holm_over_varying(rows)
    final = paired[paired["metric"] == METRIC]
    table["report_p_holm"] = [
        final.loc[final["within"].str.startswith(f"partition={partition},")
                  & final["a"].isin([BASELINE, method]) & final["b"].isin([BASELINE, method]),
                  "p_holm"].squeeze()
        for partition, method in zip(table["partition"], table["a"], strict=True)]
    return table


def diagnostic(runs: pd.DataFrame, summary: pd.DataFrame, tuned_rates: dict[str, float],
               source: Path) -> pd.DataFrame:
    """Per method: the diagnostic's rate minus its tuned rate, paired by seed, Holm over them.

    Args:
      runs: the diagnostic report's ``runs.csv`` (each method at its tuned rate and one other).
      summary: the diagnostic report's ``summary.csv`` (method and rate groups).
      tuned_rates: each method's rate in the test runs.
      source: ``runs``' file, named when a method lacks exactly one other rate.

    Returns:
      ``diagnostic.csv``'s rows: means and stds at both rates, the paired test, all in points.
    """
    runs = runs[runs["status"] == "completed"]
    rows = []
    for method, method_runs in runs.groupby("algorithm"):
        tuned = tuned_rates[method]
        others = sorted(set(method_runs[RATE]) - {tuned})
        if len(others) != 1 or tuned not in set(method_runs[RATE]):
            raise SystemExit(f"{source}: {method} ran at {sorted(set(method_runs[RATE]))}; the "
                             f"diagnostic needs its tuned rate {tuned} and one other")
        [other] = others
        groups = summary[summary["algorithm"] == method].set_index(RATE)
        statistics = {f"{name}_{label}_{part}": groups.loc[rate, f"{column}_{part}"] * 100
                      for label, rate in (("other", other), ("tuned", tuned))
                      for name, column in STATISTICS.items() for part in ("mean", "std")}
        rows.append({"algorithm": method, "other_rate": other, "tuned_rate": tuned,
                     "metric": METRIC, **statistics,
                     **seed_paired_test(method_runs, RATE, other, tuned, METRIC)})
    return _holm_over_varying(rows)


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}" if not np.isnan(std) else f"{mean:.1f}"


def _difference(mean: float, half_width: float) -> str:
    signed = [f"{value:+.1f}".replace("-0.0", "+0.0") for value in
              (mean, mean - half_width, mean + half_width)]
    return f"{signed[0]} [{signed[1]}, {signed[2]}]"


def cells_markdown(table: pd.DataFrame, statistic: str, reference: str | None = None) -> str:
    """A README table: one statistic's mean ± std per cell (%), a reference's cell beside.

    Args:
      table: :func:`cells`' table.
      statistic: ``final``, ``last3`` or ``best``.
      reference: ``paper`` or ``flower`` (None: no reference beside).

    Returns:
      The markdown table, partitions down, methods across.
    """
    def text(cell) -> str:
        ours = _mean_std(cell[f"{statistic}_mean"], cell[f"{statistic}_std"])
        if reference is None or np.isnan(cell[f"{reference}_mean"]):
            return ours
        return (f"{ours} ({reference.capitalize()}: "
                f"{_mean_std(cell[f'{reference}_mean'], cell[f'{reference}_std'])})")
    shown = table.assign(text=table.apply(text, axis=1)).pivot(
        index="partition", columns="algorithm", values="text")
    shown = shown.loc[list(PARTITIONS), list(METHODS)].rename(index=PARTITIONS, columns=METHODS)
    return shown.rename_axis(index="FMNIST", columns=None).to_markdown()


def best_round_markdown(table: pd.DataFrame) -> str:
    """The cells whose best round's mean exceeds the final round's by 0.8 final-round stds or more.

    Args:
      table: :func:`cells`' table.

    Returns:
      A markdown table, largest ratio first.
    """
    shown = table[~(table["best_minus_final_in_stds"] < 0.8)].sort_values(
        "best_minus_final_in_stds", ascending=False)
    return shown[["partition", "algorithm", "final_mean", "final_std", "best_mean",
                  "best_minus_final", "best_minus_final_in_stds"]].to_markdown(
        index=False, floatfmt=".2f")


def comparisons_markdown(family: pd.DataFrame) -> str:
    """The README's comparisons: difference in points, 95 % t interval, both Holm p-values.

    Args:
      family: :func:`comparisons`' table.

    Returns:
      The markdown table, partitions down, methods across.
    """
    def text(test) -> str:
        if np.isnan(test["p"]):
            return f"{_difference(test['mean_diff'], test['half_width_95'])}, all seeds equal"
        bold = "**" if test[f"survives_holm_{ALPHA:g}"] else ""
        return (f"{_difference(test['mean_diff'], test['half_width_95'])}, "
                f"{bold}p_Holm {test['holm_p']:.2g}{bold} (report: {test['report_p_holm']:.2g})")
    shown = family.assign(text=family.apply(text, axis=1)).pivot(
        index="partition", columns="a", values="text")
    others = [method for method in METHODS if method != BASELINE]
    shown = shown.loc[list(PARTITIONS), others].rename(
        index=PARTITIONS, columns={m: f"{METHODS[m]} − {METHODS[BASELINE]}" for m in others})
    return shown.rename_axis(index="FMNIST", columns=None).to_markdown()


def diagnostic_markdown(tests: pd.DataFrame) -> str:
    """The diagnostic's README table: both rates' statistics, the paired test, Flower's cell.

    Args:
      tests: :func:`diagnostic`' table.

    Returns:
      The markdown table, methods across.
    """
    rows = {}
    for _, test in tests.set_index("algorithm", drop=False).loc[
            [m for m in METHODS if m in set(tests["algorithm"])]].iterrows():
        other, tuned = f"{test['other_rate']:g}", f"{test['tuned_rate']:g}"
        flower = FLOWER.get(("niid_c1", test["algorithm"]), (np.nan, np.nan))
        rows[METHODS[test["algorithm"]]] = {
            f"final round, at {other}": _mean_std(test["final_other_mean"],
                                                  test["final_other_std"]),
            f"last 3 rounds, at {other}": _mean_std(test["last3_other_mean"],
                                                    test["last3_other_std"]),
            f"best round, at {other}": _mean_std(test["best_other_mean"], test["best_other_std"]),
            f"final round, at the tuned {tuned}": _mean_std(test["final_tuned_mean"],
                                                            test["final_tuned_std"]),
            f"{other} − {tuned}, final round, paired by seed, 95 % t interval":
                _difference(test["mean_diff"], test["half_width_95"]),
            f"Holm's p over these {test['family_size']}": f"{test['holm_p']:.2g}",
            "Holm's p in the report's paired.csv": f"{test['report_p_holm']:.2g}",
            "Flower's best round (10 local epochs, 0.01)": _mean_std(*flower),
        }
    return pd.DataFrame(rows).rename_axis("#C=1").to_markdown()


def main() -> None:
    """Write table.csv, gaps.csv, comparisons.csv (and diagnostic.csv); print the tables."""
    runs = pd.read_csv(RESULTS / "runs.csv")
    table = cells(pd.read_csv(RESULTS / "summary.csv"))
    table.to_csv(RESULTS / "table.csv", index=False)
    differences = gaps(table)
    differences.to_csv(RESULTS / "gaps.csv", index=False)
    family = comparisons(runs, pd.read_csv(RESULTS / "paired.csv"))
    family.to_csv(RESULTS / "comparisons.csv", index=False)
    print(cells_markdown(table, "final", "paper"), cells_markdown(table, "last3"),
          cells_markdown(table, "best", "flower"), best_round_markdown(table),
          comparisons_markdown(family), differences.head(6).to_markdown(index=False),
          sep="\n\n")
    if (DIAGNOSTIC / "runs.csv").is_file():
        rates = runs[runs["status"] == "completed"].groupby("algorithm")[RATE].unique()
        if (rates.map(len) != 1).any():
            raise SystemExit(f"{RESULTS / 'runs.csv'}: a method ran at several rates "
                             f"({dict(rates)}); the test runs have one per method")
        tuned_rates = rates.map(lambda values: values[0]).to_dict()
        tests = diagnostic(pd.read_csv(DIAGNOSTIC / "runs.csv"),
                           pd.read_csv(DIAGNOSTIC / "summary.csv"), tuned_rates,
                           DIAGNOSTIC / "runs.csv")
        paired = pd.read_csv(DIAGNOSTIC / "paired.csv")
        by_rate = paired[(paired["factor"] == RATE) & (paired["metric"] == METRIC)]
        tests["report_p_holm"] = [
            by_rate.loc[by_rate["within"] == f"algorithm={method}", "p_holm"].squeeze()
            for method in tests["algorithm"]]
        tests.to_csv(DIAGNOSTIC / "diagnostic.csv", index=False)
        print("", diagnostic_markdown(tests), sep="\n")


if __name__ == "__main__":
    main()
