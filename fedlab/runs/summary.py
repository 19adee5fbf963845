"""``summary.json``: a run's status, final and best figures (:mod:`fedlab.runs.figures`), totals."""

import json
import math
from pathlib import Path

import pandas as pd

from fedlab.runs import figures
from fedlab.runs.files import METRICS_FILE, SUMMARY_FILE

# Columns evaluated together: the final figures of each group come from the last round that
# evaluated the group's last column.
EVALUATED_TOGETHER = (("eval_loss", "eval_accuracy"), ("val_loss", "val_accuracy"),
                      (*figures.CLIENT_COLUMNS, "client_accuracy_min"))
# summary.json's time totals: the sum of each column.
SECONDS = (("training", "round_seconds"), ("evaluation", "eval_seconds"),
           ("validation", "val_seconds"), ("client_evaluation", "client_eval_seconds"))


def write_summary(run_dir: Path, extra: dict) -> dict:
    """Summarise ``metrics.csv`` (final and best figures) plus ``extra`` into summary.json.

    Args:
      run_dir: the run folder.
      extra: entries written as they are (status, provenance, the trainer's figures).

    Returns:
      What was written.
    """
    summary = dict(extra)
    metrics_path = run_dir / METRICS_FILE
    metrics = figures.read_table(metrics_path) if metrics_path.exists() else pd.DataFrame()
    if len(metrics):
        summary.update(metrics_figures(metrics))
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def metrics_figures(metrics: pd.DataFrame) -> dict:
    """The figures summary.json records from a non-empty ``metrics.csv`` (NaN written null)."""
    last = metrics.iloc[-1]
    summary = {"rounds_completed": int(last["round"]),
               "final_train_loss": _number_or_none(last["train_loss"]),
               "final_train_accuracy": _number_or_none(last["train_accuracy"])}
    for columns in EVALUATED_TOGETHER:
        if set(columns) <= set(metrics):
            rows = figures.evaluated(metrics, columns[-1])
            summary.update({f"final_{c}": (float(rows[c].iloc[-1]) if len(rows) else None)
                            for c in columns})
    summary.update({key: _number_or_none(value)
                    for key, value in figures.best_figures(metrics).items()})
    for direction in ("up", "down"):
        if f"bits_{direction}_cumulative" in metrics:
            summary[f"bits_{direction}_total"] = int(last[f"bits_{direction}_cumulative"])
            summary[f"bits_{direction}_per_client_per_round"] = int(
                last[f"bits_{direction}_per_client"])
    if figures.SIM_TIME in metrics:
        summary["sim_seconds_total"] = float(last[figures.SIM_TIME])
    if "clients_reported" in metrics:
        summary["clients_reported_mean"] = float(metrics["clients_reported"].mean())
        summary["rounds_without_reports"] = int((metrics["clients_reported"] == 0).sum())
    summary.update({f"{name}_seconds": float(metrics[column].sum())
                    for name, column in SECONDS if column in metrics})
    return summary


def _number_or_none(value) -> float | int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return value if isinstance(value, int) else float(value)
