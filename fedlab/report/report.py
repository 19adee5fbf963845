"""``python -m fedlab.report <folder>...``: compare runs, with tables, plots and a markdown page.

Reads every run folder (one holding ``.hydra/config.yaml``) below the given folders and writes
into ``--out`` (default ``<first folder>/report``):

- ``runs.csv``: one row per run, the config choices that differ between runs as columns, and
  the fingerprints of the held-out set and partition each run used (``provenance``);
- ``rounds.csv``: one row per run and round (long format), with the same config columns;
- ``summary.csv``: runs grouped by everything but the seed, mean/std/n of each figure, whether
  the group is on the accuracy-vs-upload Pareto front, how many held-out sets it mixes;
- ``paired.csv``: for each varying factor and pair of its levels, the runs that agree on
  everything else (seed included) paired, and the mean difference with a 95 % t interval;
- ``eval_accuracy.png``, ``train_loss.png``, ``accuracy_vs_upload.png``: one line per group,
  a band of +-1 std over seeds;
- ``report.md``: all of it on one page.

``load_runs(folders)`` returns the per-round table as a pandas DataFrame, for notebooks.

``python -m fedlab.report --samples dataset=mnist`` instead draws the first 25 training images
of a data set with their class names (``samples.png``); for token sequences
(``dataset=shakespeare``) it writes them as text with their targets (``samples.txt``).
"""

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402

from fedlab.runs import figures  # noqa: E402
from fedlab.runs.figures import (  # noqa: E402
    BITS_PER_MIB,
    CLIENT_COLUMNS,
    LAST_K,
    SIM_TIME,
)
from fedlab.runs.files import HYDRA_CONFIG_FILE, METRICS_FILE, PERSONALIZED_FILE, SUMMARY_FILE

RUN_MARKER = Path(HYDRA_CONFIG_FILE)
REQUIRED_COLUMNS = ("round", "train_loss", "eval_accuracy", "eval_loss", "bits_up_cumulative")
SEED_KEYS = ("schedule.seed",)
FIGURES = ("final_eval_accuracy", "final_eval_accuracy_last_k", "final_eval_accuracy_se",
           "best_eval_accuracy", "final_val_accuracy", "final_val_accuracy_last_k",
           "best_val_accuracy",
           "eval_accuracy_at_best_val", "final_eval_loss", "rounds_to_target",
           "val_rounds_to_target",
           "uploaded_MiB", "training_seconds", "final_client_accuracy_mean",
           "final_client_accuracy_p10", "final_personalized_accuracy_mean",
           "final_personalized_accuracy_p10", "dp_epsilon", "sim_seconds_to_target",
           "sim_seconds_total")
# summary.json provenance entries copied into runs.csv.
FINGERPRINTS = ("test_set_sha256", "partition_sha256", "git_commit")
# Figures compared between paired runs.
PAIRED_FIGURES = ("final_eval_accuracy", "final_eval_accuracy_last_k", "rounds_to_target",
                  "uploaded_MiB", "final_client_accuracy_p10",
                  "final_personalized_accuracy_mean", "sim_seconds_to_target")
CONFIDENCE = 0.95


class ReportError(Exception):
    """The report cannot be made (no runs, missing folder)."""


def find_runs(folders: Sequence[Path]) -> list[Path]:
    """Every run folder at or below ``folders``."""
    runs = set()
    for folder in folders:
        if not folder.is_dir():
            raise ReportError(f"{folder} is not a folder")
        runs.update(marker.parent.parent for marker in folder.rglob(str(RUN_MARKER)))
    if not runs:
        raise ReportError(
            "no fedlab runs (folders holding .hydra/config.yaml) under "
            + ", ".join(str(f) for f in folders)
        )
    return sorted(runs)


def _read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def _run_config(run_dir: Path) -> dict:
    """Group choices plus every config value, flattened to dotted keys."""
    config = pd.json_normalize(_read_yaml(run_dir / RUN_MARKER), sep=".").iloc[0].to_dict()
    choices = _read_yaml(run_dir / ".hydra" / "hydra.yaml").get("hydra", {})
    choices = choices.get("runtime", {}).get("choices", {})
    config.update({g: o for g, o in choices.items() if not g.startswith("hydra/") and o})
    config.pop("run_dir", None)
    return config


def _status(metrics: pd.DataFrame | None, summary: dict) -> tuple[str, str]:
    if summary.get("status") == "failed":
        return "failed", summary.get("error", "")
    if metrics is None or metrics.empty:
        return "incomplete", "no finished round"
    missing = [c for c in REQUIRED_COLUMNS if c not in metrics.columns]
    if missing:
        return "incomplete", f"metrics.csv lacks {', '.join(missing)}"
    if summary.get("status") != "completed":
        return "incomplete", f"stopped after round {int(metrics['round'].max())}"
    return "completed", ""


def load_run(run_dir: Path, target_accuracy: float, last_k: int = LAST_K
             ) -> tuple[dict, pd.DataFrame | None]:
    """One row of figures for ``run_dir`` and its metrics table (``None`` if unreadable).

    The figures are filled in for completed and failed runs, and for incomplete runs whose
    metrics table has every required column. ``final_eval_accuracy_last_k`` is the mean of the
    last ``last_k`` evaluations' accuracy; ``final_eval_accuracy_se`` the binomial standard
    error of the final accuracy, sqrt(p (1 - p) / n), over the n predictions the held-out set
    scores (``held_out_predictions`` in summary.json; for text, characters of one sequence are
    not independent, so it understates the error there).
    """
    metrics_path = run_dir / METRICS_FILE
    try:
        metrics = pd.read_csv(metrics_path) if metrics_path.exists() else None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        metrics = None
    summary_path = run_dir / SUMMARY_FILE
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    except (ValueError, OSError):
        summary = {}
    status, note = _status(metrics, summary)
    row = {"run": str(run_dir), "status": status, "note": note, **_run_config(run_dir)}
    provenance = summary.get("provenance") or {}
    row.update({key: provenance.get(key) for key in FINGERPRINTS})
    row["dp_epsilon"] = summary.get("dp_epsilon", np.nan)  # final epsilon of a DP run
    if status != "incomplete" or (metrics is not None and set(REQUIRED_COLUMNS) <= set(metrics)):
        if metrics is not None and not metrics.empty:
            row.update(figures.run_figures(metrics, target_accuracy, last_k,
                                           provenance.get("held_out_predictions")))
    return row, metrics


NEUTRAL_VALUES = {"None", "0", "0.0", "False", "none", "nan", ""}


def _added_later(values: pd.Series, column: str) -> bool:
    """Whether ``column`` is a key older runs lack and newer ones hold at one neutral value."""
    present = values.dropna().astype(str)
    if present.size == values.size or present.nunique() > 1:
        return False
    return column.startswith("callbacks.") or set(present) <= NEUTRAL_VALUES


def varying_columns(runs: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between runs and is not implied by a group choice.

    Interpolations (``${aggregator._target_}``, as Hydra saves them) follow another column and
    are left out, also where some runs lack the key. A key that only some runs have because a
    later fedlab added it is not a factor when the runs that have it agree on a value that
    changes nothing (null, 0, false, "none") or it configures a callback.
    """
    figures = {"run", "status", "note", "rounds_completed", "bits_up_total", "bits_down_total",
               *FIGURES, *FINGERPRINTS}
    candidates = [c for c in runs.columns if c not in figures
                  and not runs[c].map(lambda v: isinstance(v, str) and v.startswith("${")).any()]
    varying = [c for c in candidates if runs[c].astype(str).nunique() > 1
               and not _added_later(runs[c], c)]
    groups = {c for c in varying if "." not in c}
    kept = []
    for column in varying:
        group = column.split(".", 1)[0]
        if column.endswith(("._target_", "._partial_")):
            continue
        if "." in column and group in groups:
            if runs.groupby(group)[column].apply(lambda s: s.astype(str).nunique()).max() <= 1:
                continue  # set by the group option itself
        kept.append(column)
    return sorted(kept, key=lambda c: ("." in c, c))


def summarize(runs: pd.DataFrame, group_columns: list[str]) -> pd.DataFrame:
    """Mean, std and count of every figure over the completed runs of each group."""
    completed = runs[runs["status"] == "completed"]
    if completed.empty:
        return pd.DataFrame()
    keys = group_columns or (lambda _: "all runs")
    grouped = completed.groupby(keys, dropna=False)
    table = grouped[list(FIGURES)].agg(["mean", "std", "count"])
    table.columns = [f"{figure}_{stat}" for figure, stat in table.columns]
    table = table.rename(columns={"final_eval_accuracy_count": "n"})
    table = table.drop(columns=[c for c in table.columns if c.endswith("_count")])
    table["held_out_sets"] = grouped["test_set_sha256"].nunique()
    table = table.reset_index().rename(columns={"index": "group"})
    table["pareto_front"] = pareto_front(table["uploaded_MiB_mean"],
                                         table["final_eval_accuracy_mean"])
    return table


def pareto_front(upload: pd.Series, accuracy: pd.Series) -> pd.Series:
    """Whether each (upload, accuracy) point is on the Pareto front.

    A point is on it when no other uploads at most as much and is at least as accurate while
    being strictly better in one of the two.
    """
    points = list(zip(upload, accuracy, strict=True))
    return pd.Series([
        not any(u2 <= u and a2 >= a and (u2 < u or a2 > a) for u2, a2 in points)
        for u, a in points
    ], index=upload.index)


def paired_comparisons(runs: pd.DataFrame, factors: list[str],
                       pairing_columns: list[str], pooled: bool = False) -> pd.DataFrame:
    """Mean paired differences ``a - b`` between the levels of each factor, with a t interval.

    For a factor (a config column that varies) and two of its levels a and b, runs are paired
    when they agree on every other column in ``pairing_columns`` (the seed included). Each
    figure of ``PAIRED_FIGURES`` gets the mean difference over the pairs where both runs have
    it, its 95 % confidence interval (t distribution, n - 1 degrees of freedom) and a verdict.
    A pair of levels with no run in common is listed with n = 0 and "unpaired". The comparison
    is made within each level of every other factor (``within`` = "model=simple_cnn"): the
    pairs of one comparison are then distinct runs, not the same runs counted again. Pairs
    pooled over the other factors' levels come only with ``pooled`` (``within`` = "pooled over
    model"); with a single factor the comparison is over all pairs (``within`` empty). A group's
    own settings belong to its level:
    ``algorithm.proximal_strength`` makes ``fedprox (proximal_strength=0.1)`` a level of the
    ``algorithm`` factor, not a factor of its own.
    """
    completed = runs[runs["status"] == "completed"].copy()
    factors = [f for f in factors if f.split(".", 1)[0] == f or f.split(".", 1)[0] not in factors]
    for factor in factors:
        completed[factor] = _level_labels(completed, factor, pairing_columns)
    pairing_columns = [c for c in pairing_columns if c in factors or "." not in c
                       or c.split(".", 1)[0] not in factors]
    tables = []
    if len(factors) == 1 or pooled:
        for factor in factors:
            others = [f for f in factors if f != factor]
            tables.append(_paired(completed, [factor], pairing_columns).assign(
                within=f"pooled over {', '.join(others)}" if others else ""))
    for stratum in factors:
        for level, members in completed.groupby(completed[stratum].astype(str)):
            others = [f for f in factors if f != stratum]
            tables.append(_paired(members, others, pairing_columns)
                          .assign(within=f"{stratum}={level}"))
    columns = ["factor", "within", "a", "b", "metric", "mean_diff", "ci_low", "ci_high", "n",
               "sd_diff", "verdict"]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True).reindex(columns=columns)


def _level_labels(runs: pd.DataFrame, factor: str, columns: list[str]) -> pd.Series:
    """``factor``'s value with its own varying settings: "fedprox (proximal_strength=0.1)"."""
    labels = runs[factor].astype(str)
    for column in (c for c in columns if c.startswith(factor + ".")):
        setting = column.split(".", 1)[1]
        labels = labels + runs[column].map(
            lambda value, setting=setting: "" if pd.isna(value) else f" ({setting}={value})")
    return labels


def _paired(completed: pd.DataFrame, factors: list[str],
            pairing_columns: list[str]) -> pd.DataFrame:
    rows = []
    for factor in factors:
        others = [c for c in pairing_columns if c != factor]
        levels = sorted(completed[factor].dropna().astype(str).unique())
        keyed = completed.assign(_level=completed[factor].astype(str),
                                 _key=completed[others].astype(str).agg("|".join, axis=1)
                                 if others else "")
        for a, b in itertools.combinations(levels, 2):
            pairs = keyed[keyed["_level"] == a].merge(keyed[keyed["_level"] == b], on="_key",
                                                      suffixes=("_a", "_b"))
            for figure in PAIRED_FIGURES:
                if completed[figure].isna().all():
                    continue  # e.g. client-level figures of runs without client test data
                differences = (pairs[f"{figure}_a"] - pairs[f"{figure}_b"]).dropna()
                rows.append({"factor": factor, "a": a, "b": b, "metric": figure,
                             **_interval(differences, a, b)})
    return pd.DataFrame(rows)


def _fmt(value: float, sign: str = "") -> str:
    """4 decimals (accuracies), 1 for large figures (MiB)."""
    return f"{value:{sign}.1f}" if abs(value) >= 100 else f"{value:{sign}.4f}"


def _interval(differences: pd.Series, a: str, b: str) -> dict:
    n = len(differences)
    if n == 0:
        return {"n": 0, "verdict": "unpaired: no runs agree on everything else"}
    mean = float(differences.mean())
    if n < 3:  # an interval from one or two pairs says nothing: show the differences
        listed = ", ".join(_fmt(float(d), "+") for d in differences)
        return {"mean_diff": mean, "n": n,
                "verdict": f"n={n}: difference{'s' if n > 1 else ''} {listed}, no interval "
                           "(fewer than 3 pairs)"}
    sd = float(differences.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / np.sqrt(n))
    low, high = mean - half, mean + half
    higher = a if mean > 0 else b
    if sd == 0:
        verdict = (f"identical in all {n} pairs" if mean == 0
                   else f"{higher} higher by {_fmt(abs(mean))} in all {n} pairs")
    elif low > 0 or high < 0:
        verdict = f"{higher} higher by {_fmt(abs(mean))} ± {_fmt(half)} (n={n})"
    else:
        verdict = f"no difference detected, n={n} ({_fmt(mean, '+')} ± {_fmt(half)})"
    return {"mean_diff": mean, "ci_low": low, "ci_high": high, "n": n, "sd_diff": sd,
            "verdict": verdict}


def _label(row: pd.Series, group_columns: list[str]) -> str:
    return ", ".join(f"{c}={row[c]}" for c in group_columns) or "all runs"


def plot_groups(runs: pd.DataFrame, metrics: dict[str, pd.DataFrame], group_columns: list[str],
                out: Path) -> list[str]:
    """Draw the three comparison plots; returns their file names."""
    completed = runs[runs["status"] == "completed"]
    groups = groups_of(completed, group_columns)
    specs = [
        ("eval_accuracy.png", "round", "eval_accuracy", "round", "held-out accuracy"),
        ("train_loss.png", "round", "train_loss", "round", "training loss (clients' mean)"),
        ("accuracy_vs_upload.png", "uploaded_MiB", "eval_accuracy",
         "cumulative upload, all clients (MiB)", "held-out accuracy"),
    ]
    figures = {name: plt.subplots(figsize=(8, 5)) for name, *_ in specs}
    styles = ["-", "--", ":", "-."]
    for index, (_, members) in enumerate(groups):
        label = _label(members.iloc[0], group_columns)
        tables = []
        for run in members["run"]:
            table = metrics[run].copy()
            table["uploaded_MiB"] = table["bits_up_cumulative"] / BITS_PER_MIB
            tables.append(table)
        stacked = pd.concat(tables)
        for name, x, y, _, _ in specs:
            series = stacked.dropna(subset=[y]).groupby("round").agg(
                x=(x, "mean"), mean=(y, "mean"), std=(y, "std"))
            axes = figures[name][1]
            if x == "uploaded_MiB" and not (series["x"] > 0).any():
                # Nothing uploaded (mode=central): a reference line at its final accuracy.
                axes.axhline(series["mean"].iloc[-1], color="gray",
                             linestyle=styles[index % len(styles)],
                             label=f"{label} (n={len(tables)}, no upload: final accuracy)")
                continue
            line, = axes.plot(series["x"], series["mean"], styles[index % len(styles)],
                              label=f"{label} (n={len(tables)})")
            if len(tables) > 1:
                axes.fill_between(series["x"], series["mean"] - series["std"].fillna(0),
                                  series["mean"] + series["std"].fillna(0),
                                  color=line.get_color(), alpha=0.2)
    for name, _, _, xlabel, ylabel in specs:
        fig, axes = figures[name]
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(f"{ylabel} (mean, band: ±1 std over seeds)")
        if name == "accuracy_vs_upload.png":
            axes.set_xscale("log")
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
    names = [name for name, *_ in specs]
    if any("dp_epsilon" in metrics[run] for run in completed["run"]):
        names.append(plot_accuracy_vs_epsilon(groups_of(completed, group_columns), metrics,
                                              group_columns, out))
    if any(SIM_TIME in metrics[run] for run in completed["run"]):
        names.append(plot_accuracy_vs_sim_time(groups_of(completed, group_columns), metrics,
                                               group_columns, out))
    if any(set(CLIENT_COLUMNS) <= set(metrics[run]) for run in completed["run"]):
        names.append(plot_client_accuracy(groups_of(completed, group_columns), metrics,
                                          group_columns, out))
    if any((Path(run) / PERSONALIZED_FILE).exists() for run in completed["run"]):
        names.append(plot_personalized(groups_of(completed, group_columns), group_columns,
                                       out))
    return names


def plot_personalized(groups, group_columns: list[str], out: Path) -> str:
    """Per client of the final model: global vs personalized accuracy, one panel per group.

    Every seed's clients are points; above the diagonal, fine-tuning helped.
    """
    groups = [(members, pd.concat([pd.read_csv(Path(run) / PERSONALIZED_FILE)
                                   for run in members["run"]
                                   if (Path(run) / PERSONALIZED_FILE).exists()]))
              for _, members in groups
              if any((Path(run) / PERSONALIZED_FILE).exists() for run in members["run"])]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4.5), squeeze=False,
                             sharex=True, sharey=True)
    for panel, (members, clients) in zip(axes[0], groups, strict=True):
        panel.scatter(clients["accuracy"], clients["personalized_accuracy"], s=8, alpha=0.5)
        panel.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
        helped = (clients["personalized_accuracy"] > clients["accuracy"]).mean()
        panel.set_title(f"{_label(members.iloc[0], group_columns)}\n"
                        f"{len(clients)} client-runs, {helped:.0%} above the diagonal",
                        fontsize=8)
        panel.set_xlabel("global model's accuracy on the client")
        panel.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("after fine-tuning on the client")
    fig.tight_layout()
    fig.savefig(out / "personalized_accuracy.png", dpi=120)
    plt.close(fig)
    return "personalized_accuracy.png"


def plot_accuracy_vs_epsilon(groups, metrics: dict[str, pd.DataFrame],
                             group_columns: list[str], out: Path) -> str:
    """Held-out accuracy against the privacy spent (epsilon at the run's delta), DP runs only."""
    fig, axes = plt.subplots(figsize=(8, 5))
    for _, members in groups:
        tables = [metrics[run] for run in members["run"] if "dp_epsilon" in metrics[run]]
        if not tables:
            continue
        stacked = pd.concat(tables).replace([np.inf, -np.inf], np.nan)  # no noise: no epsilon
        series = (stacked.dropna(subset=["eval_accuracy", "dp_epsilon"])
                  .groupby("round")[["dp_epsilon", "eval_accuracy"]].mean())
        if series.empty:
            continue
        axes.plot(series["dp_epsilon"], series["eval_accuracy"],
                  label=f"{_label(members.iloc[0], group_columns)} (n={len(tables)})")
    return _save_accuracy_plot(fig, axes, "epsilon spent (client level, RDP)",
                               "held-out accuracy vs privacy spent (mean over seeds)",
                               out / "accuracy_vs_epsilon.png")


def plot_accuracy_vs_sim_time(groups, metrics: dict[str, pd.DataFrame],
                              group_columns: list[str], out: Path) -> str:
    """Held-out accuracy against simulated wall-clock time, runs with simulated clients only.

    Each run is drawn on its own (rounds end at different simulated times in different seeds),
    one colour per group.
    """
    fig, axes = plt.subplots(figsize=(8, 5))
    for index, (_, members) in enumerate(groups):
        tables = [metrics[run] for run in members["run"] if SIM_TIME in metrics[run]]
        color = f"C{index % 10}"
        label = f"{_label(members.iloc[0], group_columns)} (n={len(tables)})"
        for table in tables:
            series = table.dropna(subset=["eval_accuracy"])
            axes.plot(series[SIM_TIME], series["eval_accuracy"], color=color, alpha=0.8,
                      label=label)
            label = None
    return _save_accuracy_plot(fig, axes,
                               "simulated time (s): slowest reporting client per round, summed",
                               "held-out accuracy vs simulated time (one line per run)",
                               out / "accuracy_vs_sim_time.png")


def _save_accuracy_plot(fig, axes, xlabel: str, title: str, path: Path) -> str:
    """Label a held-out-accuracy plot, save it as ``path`` and return its file name."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel("held-out accuracy")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def groups_of(runs: pd.DataFrame, group_columns: list[str]):
    """``(key, members)`` of each group of ``runs`` (one group without group columns)."""
    return runs.groupby(group_columns, dropna=False) if group_columns else [("all runs", runs)]


def plot_client_accuracy(groups, metrics: dict[str, pd.DataFrame], group_columns: list[str],
                         out: Path) -> str:
    """Client-level accuracy per round, mean over clients and 10th percentile, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for _, members in groups:
        tables = [metrics[run] for run in members["run"] if set(CLIENT_COLUMNS) <= set(
            metrics[run])]
        if not tables:
            continue
        stacked = pd.concat(tables).dropna(subset=list(CLIENT_COLUMNS))
        label = f"{_label(members.iloc[0], group_columns)} (n={len(tables)})"
        for panel, column in zip(axes, CLIENT_COLUMNS, strict=True):
            series = stacked.groupby("round")[column].agg(["mean", "std"])
            line, = panel.plot(series.index, series["mean"], label=label)
            panel.fill_between(series.index, series["mean"] - series["std"].fillna(0),
                               series["mean"] + series["std"].fillna(0),
                               color=line.get_color(), alpha=0.2)
    for panel, title in zip(axes, ("mean over clients", "10th percentile of clients"),
                            strict=True):
        panel.set_title(f"client-level accuracy: {title}")
        panel.set_xlabel("round")
        panel.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy on the clients' own held-out examples")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "client_accuracy.png", dpi=120)
    plt.close(fig)
    return "client_accuracy.png"


def _mean_std(summary: pd.DataFrame, figure: str, digits: int) -> pd.Series:
    mean, std = summary[f"{figure}_mean"], summary[f"{figure}_std"]
    return mean.map(lambda m: f"{m:.{digits}f}" if pd.notna(m) else "—") + std.map(
        lambda s: f" ± {s:.{digits}f}" if pd.notna(s) else "")


def readable_summary(summary: pd.DataFrame, group_columns: list[str]) -> pd.DataFrame:
    """The summary as 'mean ± std' strings, for printing and markdown."""
    table = summary[group_columns or ["group"]].copy()
    table["final eval acc"] = _mean_std(summary, "final_eval_accuracy", 4)
    table["last-k eval acc"] = _mean_std(summary, "final_eval_accuracy_last_k", 4)
    if summary["best_val_accuracy_mean"].notna().any():
        table["final val acc"] = _mean_std(summary, "final_val_accuracy", 4)
        table["eval acc at best val"] = _mean_std(summary, "eval_accuracy_at_best_val", 4)
    if summary["best_eval_accuracy_mean"].notna().any():
        table["best eval acc"] = _mean_std(summary, "best_eval_accuracy", 4)
    table["final eval loss"] = _mean_std(summary, "final_eval_loss", 4)
    table["uploaded MiB"] = _mean_std(summary, "uploaded_MiB", 1)
    table["rounds to target"] = _mean_std(summary, "rounds_to_target", 1)
    table["train s"] = _mean_std(summary, "training_seconds", 1)
    if summary["dp_epsilon_mean"].notna().any():
        table["epsilon"] = _mean_std(summary, "dp_epsilon", 2)
    if summary["sim_seconds_total_mean"].notna().any():
        table["sim s to target"] = _mean_std(summary, "sim_seconds_to_target", 0)
        table["sim s total"] = _mean_std(summary, "sim_seconds_total", 0)
    if summary["final_client_accuracy_p10_mean"].notna().any():
        table["client acc mean"] = _mean_std(summary, "final_client_accuracy_mean", 4)
        table["client acc p10"] = _mean_std(summary, "final_client_accuracy_p10", 4)
    table["n"] = summary["n"].astype(int)
    table["pareto front"] = summary["pareto_front"]
    return table


def collect_runs(folders: Sequence[Path], target_accuracy: float = 0.9, last_k: int = LAST_K):
    """Every run below ``folders``: the runs table, their metrics, group and seed columns.

    Returns:
      ``(runs, metrics, group_columns, seed_columns)``: one row per run (``runs.csv``), each
      run's metrics table by run folder, the varying config columns runs are grouped by, and
      the varying seed columns.
    """
    rows, metrics = [], {}
    for run_dir in find_runs(folders):
        row, table = load_run(run_dir, target_accuracy, last_k)
        rows.append(row)
        if table is not None:
            metrics[row["run"]] = table
    runs = pd.DataFrame(rows)
    for figure in FIGURES:
        if figure not in runs:
            runs[figure] = np.nan
    group_columns = [c for c in varying_columns(runs) if c not in SEED_KEYS]
    seed_columns = [c for c in SEED_KEYS if c in runs and runs[c].astype(str).nunique() > 1]
    columns = ["run", "status", *group_columns, *seed_columns, "rounds_completed", *FIGURES,
               "bits_up_total", "bits_down_total", *FINGERPRINTS, "note"]
    return runs.reindex(columns=columns), metrics, group_columns, seed_columns


def rounds_table(runs: pd.DataFrame, metrics: dict[str, pd.DataFrame],
                 config_columns: list[str]) -> pd.DataFrame:
    """Every run's metrics rows in one long table, with its status and ``config_columns``."""
    tables = [metrics[run].assign(run=run, **{c: row[c] for c in ["status", *config_columns]})
              for run, row in runs.set_index("run", drop=False).iterrows() if run in metrics]
    if not tables:
        return pd.DataFrame(columns=["run", "status", *config_columns, "round"])
    table = pd.concat(tables, ignore_index=True)
    first = ["run", "status", *config_columns, "round"]
    return table[first + [c for c in table.columns if c not in first]]


def load_runs(folders: Path | str | Sequence[Path | str],
              target_accuracy: float = 0.9, last_k: int = LAST_K) -> pd.DataFrame:
    """One row per run and round of every run below ``folders``, as ``rounds.csv`` holds it.

    The columns are ``run``, ``status``, the config columns that vary between the runs (as in
    ``runs.csv``), then the ``metrics.csv`` columns. For a notebook::

        from fedlab.report.report import load_runs
        rounds = load_runs("multirun/seed_study")
        rounds[rounds.status == "completed"].groupby(["aggregator", "round"]).eval_accuracy.mean()
    """
    if isinstance(folders, str | Path):
        folders = [folders]
    runs, metrics, group_columns, seed_columns = collect_runs(
        [Path(f) for f in folders], target_accuracy, last_k)
    return rounds_table(runs, metrics, group_columns + seed_columns)


def held_out_warnings(runs: pd.DataFrame, group_columns: list[str]) -> list[str]:
    """One line for each group whose completed runs were evaluated on different held-out sets."""
    completed = runs[runs["status"] == "completed"]
    groups = groups_of(completed, group_columns)
    warnings = []
    for _, members in groups:
        sets = members["test_set_sha256"].dropna().nunique()
        unknown = members["test_set_sha256"].isna().sum()
        if sets > 1:
            warnings.append(f"{_label(members.iloc[0], group_columns)}: its {len(members)} runs "
                            f"were evaluated on {sets} different held-out sets")
        elif unknown and sets:
            warnings.append(f"{_label(members.iloc[0], group_columns)}: {unknown} of its runs "
                            "record no held-out set fingerprint")
    return warnings


def make_report(folders: Sequence[Path], out: Path, target_accuracy: float,
                last_k: int = LAST_K, pooled: bool = False) -> pd.DataFrame:
    """Write every table, plot and report.md into ``out``; return the readable summary."""
    runs, metrics, group_columns, seed_columns = collect_runs(folders, target_accuracy, last_k)
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    rounds_table(runs, metrics, group_columns + seed_columns).to_csv(out / "rounds.csv",
                                                                       index=False)
    summary = summarize(runs, group_columns)
    summary.to_csv(out / "summary.csv", index=False)
    paired = paired_comparisons(runs, group_columns, group_columns + seed_columns, pooled)
    paired.to_csv(out / "paired.csv", index=False)
    warnings = held_out_warnings(runs, group_columns)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    completed = {run: table for run, table in metrics.items()
                 if run in set(runs.loc[runs["status"] == "completed", "run"])}
    plots = plot_groups(runs, completed, group_columns, out) if completed else []
    readable = readable_summary(summary, group_columns) if len(summary) else pd.DataFrame()
    _write_markdown(out, folders, runs, readable, plots, target_accuracy, group_columns,
                    paired, warnings, last_k)
    return readable


def _write_markdown(out: Path, folders, runs: pd.DataFrame, readable: pd.DataFrame,
                    plots: list[str], target_accuracy: float, group_columns: list[str],
                    paired: pd.DataFrame, warnings: list[str], last_k: int = LAST_K) -> None:
    lines = ["# fedlab report", "",
             f"Runs under: {', '.join(f'`{f}`' for f in folders)}. "
             f"{(runs['status'] == 'completed').sum()} completed of {len(runs)}. "
             f"Accuracy is measured on held-out data; 'rounds to target' is the first round "
             f"with eval accuracy >= {target_accuracy} ('sim s to target': the simulated time "
             "when it was reached, runs with simulated clients). Mean ± std over seeds. "
             f"'last {last_k}': the mean of a run's last {last_k} evaluations; 'se': the "
             "binomial standard error of its final accuracy on the held-out set. 'eval' "
             "figures are on the test set, 'val' figures on the validation set (runs with "
             "dataset.validation_fraction > 0, whose 'best' is chosen on validation: 'eval acc "
             "at best val' is the test accuracy at the best validation round).", ""]
    lines += [f"**Warning: {w}.**" for w in warnings] + ([""] if warnings else [])
    if len(readable):
        lines += ["## Summary", "", readable.to_markdown(index=False), ""]
        front = readable[readable["pareto front"]]
        lines += ["Accuracy-vs-upload Pareto front (no other group uploads less and is at "
                  "least as accurate): "
                  + "; ".join(_label(row, group_columns) for _, row in front.iterrows()), ""]
    if len(paired):
        lines += ["## Paired comparisons", "",
                  "Runs that agree on every other setting (seed included) are paired; the "
                  "difference is a - b, with a 95 % t confidence interval over the n pairs "
                  "('within': the pairs of one level of another factor only; 'pooled over': "
                  "pairs from every level of the others, on request). Fewer than 3 pairs "
                  "give the differences, not an interval.", "",
                  paired[["factor", "within", "a", "b", "metric", "n", "verdict"]]
                  .fillna("").to_markdown(index=False),
                  ""]
    lines += [f"![{p}]({p})" for p in plots] + [""]
    shown = ["run", "status", *group_columns, "final_eval_accuracy", "final_eval_accuracy_se",
             "final_eval_accuracy_last_k", "uploaded_MiB", "note"]
    shown = [c for c in shown if c in runs]
    lines += ["## Runs", "", runs[shown].to_markdown(index=False, floatfmt=".4f"), ""]
    (out / "report.md").write_text("\n".join(lines))


def _first_examples(data, count: int = 25) -> list[tuple[np.ndarray, np.ndarray]]:
    examples = []
    for client_id in data.train.client_ids:
        for element in data.train.create_tf_dataset_for_client(client_id):
            examples.append((element["x"].numpy(), element["y"].numpy()))
            if len(examples) == count:
                return examples
    return examples


def decode_tokens(ids: np.ndarray, names: Sequence[str]) -> str:
    """Token ids as text: padding dropped; characters joined as they are, words by spaces."""
    tokens = [names[i] for i in ids if i != 0]
    plain = [n for n in names[1:] if not (n.startswith("<") and n.endswith(">"))]
    return ("" if max(map(len, plain), default=1) == 1 else " ").join(tokens)


def draw_samples(overrides: Sequence[str], out: Path) -> Path:
    """The composed data set's first 25 training examples, as a picture or as text.

    Images are drawn with their class names (``samples.png``); token sequences are written as
    text with their next-token targets (``samples.txt``).
    """
    from hydra import compose, initialize_config_dir

    from fedlab.config.schemas import register_schemas
    from fedlab.run import load_dataset

    register_schemas()
    conf_dir = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    data = load_dataset(cfg.dataset)
    examples = _first_examples(data)
    out.mkdir(parents=True, exist_ok=True)
    if data.task != "image_classification":
        path = out / "samples.txt"
        lines = [f"first {len(examples)} training sequences: {cfg.dataset._target_}", ""]
        for index, (x, y) in enumerate(examples, 1):
            lines += [f"{index:2d} input : {decode_tokens(x, data.class_names)!r}",
                      f"   target: {decode_tokens(y, data.class_names)!r}"]
        path.write_text("\n".join(lines) + "\n")
        return path
    fig = plt.figure(figsize=(8, 8))
    for index, (image, label) in enumerate(examples):
        axes = fig.add_subplot(5, 5, index + 1)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        axes.set_xlabel(data.class_names[int(label)])
    fig.suptitle(f"first {len(examples)} training images: {cfg.dataset._target_}")
    fig.tight_layout()
    path = out / "samples.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m fedlab.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*",
                        help="run or multirun folders (or, with --samples, config overrides)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first>/report)")
    parser.add_argument("--target-accuracy", type=float, default=0.9,
                        help="accuracy whose first reaching round is reported (default 0.9)")
    parser.add_argument("--last-k", type=int, default=LAST_K,
                        help=f"final accuracy also as the mean of the last K evaluations "
                             f"(default {LAST_K})")
    parser.add_argument("--pooled", action="store_true",
                        help="also compare each factor's levels over all pairs, pooled over "
                             "the other factors' levels (labelled so)")
    parser.add_argument("--samples", action="store_true",
                        help="draw 25 training images (or write 25 text sequences) of the data set "
                             "named by the overrides")
    args = parser.parse_args(argv)
    try:
        if args.samples:
            path = draw_samples(args.items, args.out or Path("."))
            print(f"wrote {path}")
            return 0
        if not args.items:
            raise ReportError("name at least one run or multirun folder")
        folders = [Path(item) for item in args.items]
        out = args.out or folders[0] / "report"
        if args.last_k < 1:
            raise ReportError(f"--last-k must be at least 1, got {args.last_k}")
        readable = make_report(folders, out, args.target_accuracy, args.last_k, args.pooled)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if len(readable):
        print(readable.to_markdown(index=False))
    else:
        print("no completed runs to summarise")
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
