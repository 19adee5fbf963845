"""Stop a run once it has reached a target accuracy: rounds to a target without the rest."""

import logging
import math
from collections.abc import Sequence

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.errors import ConfigError

log = logging.getLogger(__name__)


class TargetStop(Callback):
    """Stop after the round by which every column in ``columns`` has reached ``accuracy``.

    Each column counts from the first evaluated round at or above the target (it need not stay
    there), so the rounds to the target of every named split can be read from ``metrics.csv``.
    Inactive while ``accuracy`` is None. ``columns`` defaults to the validation accuracy, which
    selection may read; naming ``eval_accuracy`` too lets a run end once the test set's figure
    has been recorded (stopping then selects nothing: the run is only cut short). A resumed run
    counts the rounds it keeps.
    """

    def __init__(self, accuracy: float | None, columns: Sequence[str]):
        """Stop once each of ``columns`` has been >= ``accuracy`` (None: never).

        Args:
          accuracy: the target accuracy (null: the callback does nothing).
          columns: the ``metrics.csv`` columns that must each have reached ``accuracy``
            (``val_accuracy``; add ``eval_accuracy`` to record the test set's rounds too).
        """
        self.accuracy, self.columns = accuracy, list(columns)
        self._reached: dict[str, int] = {}

    def on_train_start(self, context: TrainingContext) -> None:
        """Refuse a validation column without a validation set; count a resumed run's rows."""
        if self.accuracy is None:
            return
        if not self.columns:
            raise ConfigError("callbacks.target_stop.columns: name at least one accuracy column")
        if any(c.startswith("val_") for c in self.columns) and context.data.validation_x is None:
            raise ConfigError(
                f"callbacks.target_stop.columns={self.columns} reads validation, but the data "
                "set has none: set dataset.validation_fraction > 0 or name eval_accuracy")
        self._reached = {}
        for row in context.history:
            self._record(int(row["round"]), {c: _number(row.get(c)) for c in self.columns})

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> bool:
        """Record the columns that reached the target; stop when all have."""
        if self.accuracy is None:
            return False
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise ConfigError(
                f"callbacks.target_stop.columns: {', '.join(missing)} not in the round's "
                f"columns ({', '.join(sorted(row))}); is its evaluation switched on?")
        self._record(round_num, {c: row[c] for c in self.columns})
        if len(self._reached) < len(self.columns):
            return False
        context.summary["stopped_early"] = (
            f"target accuracy {self.accuracy} reached: " + ", ".join(
                f"{c} in round {r}" for c, r in self._reached.items()))
        log.info("stopping after round %d: %s", round_num, context.summary["stopped_early"])
        return True

    def _record(self, round_num: int, values: dict[str, float]) -> None:
        for column, value in values.items():
            if column not in self._reached and not math.isnan(value) and value >= self.accuracy:
                self._reached[column] = round_num


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
