"""Every figure read from a run's ``metrics.csv``, computed here and nowhere else.

The run's ``summary.json`` (:mod:`fedlab.runs.summary`), the report's ``runs.csv``
(:mod:`fedlab.report`), ``fedlab.select`` and the sweeper's objective all call these functions,
so a figure means the same everywhere:

- **final**: the value in the last round where the column was evaluated (NaN rows skipped);
- **last-k**: the mean of the last ``k`` evaluated values (default :data:`LAST_K`);
- **best on validation**: the round with the highest ``val_accuracy`` and the test accuracy
  there (reported, never chosen on); without a validation set, the best test accuracy;
- **rounds to target**: the first round whose value is >= the target. A run that never reaches
  it has no such round: NaN ("not reached") in every table and in ``summary.json``; a ranking
  (``fedlab.select``) puts it after every run that reached it, and the sweeper's objective,
  which must be a number to minimise, counts it as ``schedule.rounds + 1`` (:func:`censored`);
- **time to target**: the simulated seconds (``sim_seconds_cumulative``) at that round.

Kept free of TensorFlow: a sweep re-run returns the objective of jobs that already completed
without importing it.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fedlab.config.choices import Objective
from fedlab.runs.files import METRICS_FILE, SUMMARY_FILE

LAST_K = 3
SIM_TIME = "sim_seconds_cumulative"
BITS_PER_MIB = 8 * 2**20
CLIENT_COLUMNS = ("client_accuracy_mean", "client_accuracy_p10")
PERSONALIZED_COLUMNS = ("personalized_accuracy_mean", "personalized_accuracy_p10")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV table fedlab wrote (``metrics.csv``, ``runs.csv``...), every number as written.

    (pandas' default parser may return a float one unit in the last place off.)
    """
    return pd.read_csv(path, float_precision="round_trip")


def evaluated(metrics: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rounds in which ``column`` was evaluated (an empty table if it never was)."""
    if column not in metrics:
        return metrics.iloc[0:0]
    return metrics.dropna(subset=[column])


def final(metrics: pd.DataFrame, column: str) -> float:
    """``column`` in the last round that evaluated it (NaN: never evaluated)."""
    rows = evaluated(metrics, column)
    return float(rows[column].iloc[-1]) if len(rows) else math.nan


def last_k_mean(metrics: pd.DataFrame, column: str, k: int = LAST_K) -> float:
    """The mean of ``column``'s last ``k`` evaluated values (NaN: never evaluated)."""
    rows = evaluated(metrics, column)
    return float(rows[column].tail(k).mean()) if len(rows) else math.nan


def best_row(metrics: pd.DataFrame, column: str) -> pd.Series | None:
    """The round with the highest ``column`` (the first such round), or ``None``."""
    rows = evaluated(metrics, column)
    return rows.loc[rows[column].idxmax()] if len(rows) else None


def rounds_to_target(metrics: pd.DataFrame, column: str, target: float) -> float:
    """The first round whose ``column`` is >= ``target`` (NaN: not reached)."""
    rows = evaluated(metrics, column)
    reached = rows.loc[rows[column] >= target, "round"]
    return float(reached.iloc[0]) if len(reached) else math.nan


def time_to_target(metrics: pd.DataFrame, column: str, target: float) -> float:
    """Simulated seconds until the round in which ``column`` first reached ``target``."""
    if SIM_TIME not in metrics:
        return math.nan
    rows = evaluated(metrics, column)
    reached = rows.loc[rows[column] >= target, SIM_TIME]
    return float(reached.iloc[0]) if len(reached) else math.nan


def censored(rounds: float, scheduled_rounds: int) -> float:
    """Rounds to a target as a number to minimise: ``scheduled_rounds + 1`` when not reached."""
    return float(scheduled_rounds + 1) if math.isnan(rounds) else float(rounds)


def binomial_standard_error(accuracy: float, predictions: int | None) -> float:
    """sqrt(p (1 - p) / n): the sampling error of an accuracy over n independent predictions."""
    if not predictions or accuracy is None or np.isnan(accuracy):
        return math.nan
    return float(np.sqrt(accuracy * (1 - accuracy) / predictions))


def selection_column(metrics: pd.DataFrame) -> str:
    """The accuracy column selection reads: validation where the run has it, else the test's."""
    return "val_accuracy" if "val_accuracy" in metrics else "eval_accuracy"


def best_figures(metrics: pd.DataFrame) -> dict:
    """Best-on-validation figures (with a validation set), else the best test accuracy."""
    if "val_accuracy" in metrics:
        best = best_row(metrics, "val_accuracy")
        if best is None:
            return {}
        return {"best_val_accuracy": float(best["val_accuracy"]),
                "best_val_round": int(best["round"]),
                "eval_accuracy_at_best_val": float(best.get("eval_accuracy", math.nan))}
    if "eval_accuracy" in metrics:
        best = best_row(metrics, "eval_accuracy")
        return {"best_eval_accuracy": math.nan if best is None else float(best["eval_accuracy"])}
    return {}


def run_figures(metrics: pd.DataFrame, target_accuracy: float, last_k: int = LAST_K,
                held_out_predictions: int | None = None) -> dict:
    """The figures the report's ``runs.csv`` holds for one run (see the module docstring).

    Args:
      metrics: the run's ``metrics.csv``.
      target_accuracy: the target of ``rounds_to_target`` (test) and ``val_rounds_to_target``.
      last_k: how many last evaluations ``*_last_k`` averages.
      held_out_predictions: predictions the test set scores (``final_eval_accuracy_se``).

    Returns:
      A dict of figures; NaN where the run has no such figure.
    """
    figures = {
        "rounds_completed": int(metrics["round"].max()),
        "final_eval_accuracy": final(metrics, "eval_accuracy"),
        "final_eval_accuracy_last_k": last_k_mean(metrics, "eval_accuracy", last_k),
        "best_eval_accuracy": math.nan,
        "final_eval_loss": final(metrics, "eval_loss"),
        "rounds_to_target": rounds_to_target(metrics, "eval_accuracy", target_accuracy),
        "bits_up_total": int(metrics["bits_up_cumulative"].iloc[-1]),
        "bits_down_total": int(metrics.get("bits_down_cumulative", pd.Series([0])).iloc[-1]),
        "uploaded_MiB": metrics["bits_up_cumulative"].iloc[-1] / BITS_PER_MIB,
        "training_seconds": float(metrics.get("round_seconds", pd.Series([np.nan])).sum()),
    }
    figures["final_eval_accuracy_se"] = binomial_standard_error(
        figures["final_eval_accuracy"], held_out_predictions)
    figures.update(best_figures(metrics))
    figures.pop("best_val_round", None)
    if "val_accuracy" in metrics and len(evaluated(metrics, "val_accuracy")):
        figures.update(
            final_val_accuracy=final(metrics, "val_accuracy"),
            final_val_accuracy_last_k=last_k_mean(metrics, "val_accuracy", last_k),
            val_rounds_to_target=rounds_to_target(metrics, "val_accuracy", target_accuracy))
    if SIM_TIME in metrics:
        figures.update(sim_seconds_total=float(metrics[SIM_TIME].iloc[-1]),
                       sim_seconds_to_target=time_to_target(metrics, "eval_accuracy",
                                                            target_accuracy))
    for columns in (CLIENT_COLUMNS, PERSONALIZED_COLUMNS):
        if set(columns) <= set(metrics):
            scored = metrics.dropna(subset=list(columns))
            if len(scored):
                figures.update({f"final_{c}": scored[c].iloc[-1] for c in columns})
    return figures


def objective_value(run_dir: Path, objective: Objective | str, target_accuracy: float,
                    rounds: int) -> float:
    """``objective`` of the run in ``run_dir`` (NaN when it has no such figure).

    ``rounds_to_target`` is :func:`rounds_to_target`, :func:`censored` at ``rounds + 1`` when
    not reached (never better than any run that got there). A run with a validation set
    (``dataset.validation_fraction``) is scored on it, never on the test set:
    ``final_val_accuracy``, ``best_val_accuracy`` and the ``val_accuracy`` column stand in
    for the ``eval`` ones.
    """
    objective = Objective(objective)
    summary_path = run_dir / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if objective is not Objective.rounds_to_target:
        key = objective.value
        if "final_val_accuracy" in summary:
            key = key.replace("eval", "val")
        value = summary.get(key)
        return math.nan if value is None else float(value)
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.exists():
        return math.nan
    metrics = read_table(metrics_path)
    column = selection_column(metrics)
    if column not in metrics:
        return math.nan
    return censored(rounds_to_target(metrics, column, target_accuracy), rounds)
