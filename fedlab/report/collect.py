"""Find run folders, load each into one row of figures, and tell which config values vary.

A run folder holds ``.hydra/config.yaml``, ``metrics.csv`` and ``summary.json``. Every figure of
a run (final, last-k, best on validation, rounds and time to target) is computed by
:mod:`fedlab.runs.figures`; this module only reads the files and lays the figures out as the
report's tables (``runs.csv``, ``rounds.csv``). Kept free of matplotlib and TensorFlow.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fedlab.runs import figures
from fedlab.runs.figures import LAST_K
from fedlab.runs.files import HYDRA_CONFIG_FILE, METRICS_FILE, SUMMARY_FILE

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
           "final_personalized_accuracy_p10", "dp_epsilon", "empirical_epsilon",
           "sim_seconds_to_target", "sim_seconds_total")
# summary.json provenance entries copied into runs.csv.
FINGERPRINTS = ("test_set_sha256", "partition_sha256", "git_commit")
# Values a key a later fedlab added takes where it changes nothing.
NEUTRAL_VALUES = {"None", "0", "0.0", "False", "none", "nan", ""}
NOT_CONFIG = {"run", "status", "note", "rounds_completed", "bits_up_total", "bits_down_total",
              *FIGURES, *FINGERPRINTS}


class ReportError(Exception):
    """The report cannot be made (no runs, missing folder, an unknown option value)."""


def find_runs(folders: Sequence[Path]) -> list[Path]:
    """Every run folder at or below ``folders``.

    Args:
      folders: run or multirun folders.

    Returns:
      The run folders (those holding ``.hydra/config.yaml``), sorted.

    Raises:
      ReportError: a folder does not exist, or none holds a run.
    """
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
    """One row of figures for ``run_dir`` and its metrics table.

    The figures (:func:`fedlab.runs.figures.run_figures`) are filled in for completed and
    failed runs, and for incomplete runs whose metrics table has every required column.
    ``final_eval_accuracy_se`` is the binomial standard error of the final accuracy over the
    ``held_out_predictions`` of summary.json (for text an underestimate: characters of one
    sequence are not independent).

    Args:
      run_dir: the run folder.
      target_accuracy: the accuracy whose first reaching round is ``rounds_to_target``.
      last_k: how many last evaluations ``*_last_k`` averages.

    Returns:
      ``(row, metrics)``: the run's status, note, config values, fingerprints and figures;
      its ``metrics.csv`` (``None`` when missing or unreadable).
    """
    metrics_path = run_dir / METRICS_FILE
    try:
        metrics = figures.read_table(metrics_path) if metrics_path.exists() else None
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
    row["empirical_epsilon"] = summary.get("empirical_epsilon", np.nan)  # with canaries
    if status != "incomplete" or (metrics is not None and set(REQUIRED_COLUMNS) <= set(metrics)):
        if metrics is not None and not metrics.empty:
            row.update(figures.run_figures(metrics, target_accuracy, last_k,
                                           provenance.get("held_out_predictions")))
    return row, metrics


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

    Args:
      runs: one row per run, as :func:`load_run` gives them (or ``runs.csv``).

    Returns:
      The varying config columns, group choices (no dot) first, each part sorted.
    """
    candidates = [c for c in runs.columns if c not in NOT_CONFIG
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


def split_columns(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The varying config columns of ``runs``: ``(group_columns, seed_columns)``.

    Args:
      runs: one row per run.

    Returns:
      The columns runs are grouped by (every varying one but the seed), and the varying seeds.
    """
    group_columns = [c for c in varying_columns(runs) if c not in SEED_KEYS]
    seed_columns = [c for c in SEED_KEYS if c in runs and runs[c].astype(str).nunique() > 1]
    return group_columns, seed_columns


def _layout(runs: pd.DataFrame, group_columns: list[str], seed_columns: list[str]
            ) -> pd.DataFrame:
    columns = ["run", "status", *group_columns, *seed_columns, "rounds_completed", *FIGURES,
               "bits_up_total", "bits_down_total", *FINGERPRINTS, "note"]
    return runs.reindex(columns=columns)


def collect_runs(folders: Sequence[Path], target_accuracy: float = 0.9, last_k: int = LAST_K):
    """Every run below ``folders``: the runs table, their metrics, group and seed columns.

    Args:
      folders: run or multirun folders.
      target_accuracy: the target of ``rounds_to_target``.
      last_k: how many last evaluations ``*_last_k`` averages.

    Returns:
      ``(runs, metrics, group_columns, seed_columns)``: one row per run (``runs.csv``), each
      run's metrics table by run folder, the varying config columns runs are grouped by, and
      the varying seed columns.

    Raises:
      ReportError: see :func:`find_runs`.
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
    group_columns, seed_columns = split_columns(runs)
    return _layout(runs, group_columns, seed_columns), metrics, group_columns, seed_columns


def read_runs_csv(path: Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """A ``runs.csv`` the report wrote, for tables made without the run folders.

    Args:
      path: the ``runs.csv``.

    Returns:
      ``(runs, group_columns, seed_columns)`` as :func:`collect_runs` gives them.

    Raises:
      ReportError: the file is missing or is not a report's runs table.
    """
    if not path.is_file():
        raise ReportError(f"{path} is not a file")
    runs = figures.read_table(path)
    missing = [c for c in ("run", "status") if c not in runs]
    if missing:
        raise ReportError(f"{path} lacks {', '.join(missing)}: not a runs.csv of the report")
    if "note" in runs:
        runs["note"] = runs["note"].fillna("")  # written empty, as a run folder gives it
    for figure in FIGURES:
        if figure not in runs:
            runs[figure] = np.nan
    group_columns, seed_columns = split_columns(runs)
    return _layout(runs, group_columns, seed_columns), group_columns, seed_columns


def read_rounds_csv(path: Path, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each run's metrics table, rebuilt from a ``rounds.csv`` the report wrote.

    :func:`rounds_table` writes ``run, status``, the config columns, then a run's metrics.csv
    columns from ``round`` on; those are read back per run, without the columns the run's
    metrics.csv did not have (all empty in the long table; the required ones are kept).

    Args:
      path: the ``rounds.csv``.
      runs: the runs table it belongs to (``runs.csv``).

    Returns:
      Each run's metrics table, by run as ``runs`` names it.

    Raises:
      ReportError: the file is missing, is not a report's rounds table, or lacks the rounds of
        a completed run of ``runs``.
    """
    if not path.is_file():
        raise ReportError(f"{path} is not a file")
    rounds = figures.read_table(path)
    missing = [c for c in ("run", "round") if c not in rounds]
    if missing:
        raise ReportError(f"{path} lacks {', '.join(missing)}: not a rounds.csv of the report")
    columns = list(rounds.columns[list(rounds.columns).index("round"):])
    metrics = {}
    for run, rows in rounds.groupby("run", sort=False):
        table = rows[columns].reset_index(drop=True)
        empty = [c for c in columns if c not in REQUIRED_COLUMNS and table[c].isna().all()]
        metrics[str(run)] = table.drop(columns=empty)
    lacking = [run for run in runs.loc[runs["status"] == "completed", "run"]
               if run not in metrics]
    if lacking:
        raise ReportError(f"{path} has no rounds of {len(lacking)} completed runs of the runs "
                          f"table (first: {lacking[0]}): not the rounds.csv of these runs")
    return metrics


def rounds_table(runs: pd.DataFrame, metrics: dict[str, pd.DataFrame],
                 config_columns: list[str]) -> pd.DataFrame:
    """Every run's metrics rows in one long table, with its status and ``config_columns``.

    Args:
      runs: one row per run.
      metrics: each run's metrics table, by run folder.
      config_columns: the config columns to repeat on every row.

    Returns:
      ``run, status``, the config columns, ``round``, then every metrics column.
    """
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

        from fedlab.report import load_runs
        rounds = load_runs("multirun/seed_study")
        rounds[rounds.status == "completed"].groupby(["aggregator", "round"]).eval_accuracy.mean()

    Args:
      folders: one or more run or multirun folders.
      target_accuracy: the target of ``rounds_to_target`` (decides nothing in this table).
      last_k: how many last evaluations ``*_last_k`` averages (idem).

    Returns:
      The long per-round table.

    Raises:
      ReportError: see :func:`find_runs`.
    """
    if isinstance(folders, str | Path):
        folders = [folders]
    runs, metrics, group_columns, seed_columns = collect_runs(
        [Path(f) for f in folders], target_accuracy, last_k)
    return rounds_table(runs, metrics, group_columns + seed_columns)


def groups_of(runs: pd.DataFrame, group_columns: list[str]):
    """``(key, members)`` of each group of ``runs`` (one group without group columns).

    Args:
      runs: one row per run.
      group_columns: the columns that define a group.

    Returns:
      An iterable of ``(key, members)``.
    """
    return runs.groupby(group_columns, dropna=False) if group_columns else [("all runs", runs)]


def label(row: pd.Series, group_columns: list[str]) -> str:
    """``model=simple_cnn, aggregator=mean``: every group column of ``row``.

    Args:
      row: a run of the group.
      group_columns: the columns that define a group.

    Returns:
      The label (``all runs`` without group columns).
    """
    return ", ".join(f"{c}={row[c]}" for c in group_columns) or "all runs"


def held_out_warnings(runs: pd.DataFrame, group_columns: list[str]) -> list[str]:
    """One line for each group whose completed runs were evaluated on different held-out sets.

    Args:
      runs: one row per run.
      group_columns: the columns that define a group.

    Returns:
      The warnings, without a trailing period.
    """
    completed = runs[runs["status"] == "completed"]
    warnings = []
    for _, members in groups_of(completed, group_columns):
        sets = members["test_set_sha256"].dropna().nunique()
        unknown = members["test_set_sha256"].isna().sum()
        if sets > 1:
            warnings.append(f"{label(members.iloc[0], group_columns)}: its {len(members)} runs "
                            f"were evaluated on {sets} different held-out sets")
        elif unknown and sets:
            warnings.append(f"{label(members.iloc[0], group_columns)}: {unknown} of its runs "
                            "record no held-out set fingerprint")
    return warnings
