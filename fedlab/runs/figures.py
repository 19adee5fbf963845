"""The value a run returns to a sweeper, read from its folder (``summary.json``, ``metrics.csv``).

Kept free of TensorFlow: a sweep re-run returns the objective of jobs that already completed
without importing it.
"""

import json
import math
from pathlib import Path

import pandas as pd

from fedlab.config.choices import Objective
from fedlab.runs.files import METRICS_FILE, SUMMARY_FILE


def objective_value(run_dir: Path, objective: Objective | str, target_accuracy: float,
                    rounds: int) -> float:
    """``objective`` of the run in ``run_dir`` (NaN when it has no such figure).

    ``rounds_to_target`` is the first round whose held-out accuracy reaches ``target_accuracy``;
    a run that never reaches it counts ``rounds + 1`` (censored: never better than any run
    that got there). A run with a validation set (``dataset.validation_fraction``) is scored
    on it, never on the test set: ``final_val_accuracy``, ``best_val_accuracy`` and the
    ``val_accuracy`` column stand in for the ``eval`` ones.
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
    metrics = pd.read_csv(metrics_path)
    column = "val_accuracy" if "val_accuracy" in metrics else "eval_accuracy"
    if column not in metrics:
        return math.nan
    reached = metrics.loc[metrics[column] >= target_accuracy, "round"]
    return float(reached.iloc[0]) if len(reached) else float(rounds + 1)
