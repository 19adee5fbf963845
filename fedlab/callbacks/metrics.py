"""Metrics rows to ``metrics.csv`` and TensorBoard, through TFF's release managers."""

import asyncio
import csv
import math
from collections.abc import Mapping
from pathlib import Path

import tensorflow as tf
import tensorflow_federated as tff

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.errors import CheckpointError, ConfigError
from fedlab.runs.files import METRICS_FILE


class MetricsSink:
    """Releases one row per round to ``metrics.csv`` and TensorBoard via TFF release managers.

    :meth:`start` first rewinds the run folder to a round: rows after it are dropped from
    ``metrics.csv``, and the TensorBoard event files are written anew from the rows kept, so a
    resumed run shows every round once in both.
    """

    def __init__(self, run_dir: Path, tensorboard: bool):
        """Write into ``run_dir``'s metrics file (and event files when ``tensorboard``)."""
        self._run_dir = run_dir
        self._tensorboard = tensorboard
        self._managers: list = []

    def start(self, after_round: int) -> list[dict[str, str]]:
        """Drop every row after ``after_round`` and open the release managers.

        Returns:
          The rows kept (rounds 1..``after_round``), as the strings metrics.csv holds.
        """
        path = self._run_dir / METRICS_FILE
        kept: list[dict[str, str]] = []
        if path.exists():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                fieldnames = reader.fieldnames or []
                kept = [row for row in reader if int(row["round"]) <= after_round]
            with path.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(kept)
        self._managers = [tff.program.CSVFileReleaseManager(str(path), key_fieldname="round")]
        if self._tensorboard:
            for events in self._run_dir.glob("events.out.tfevents.*"):
                events.unlink()
            board = tff.program.TensorBoardReleaseManager(str(self._run_dir))
            self._managers.append(board)
            _release_all([
                board.release(_finite({k: float(v) for k, v in row.items() if k != "round" and v}),
                              key=int(row["round"]))
                for row in kept
            ])
        return kept

    def release(self, row: dict[str, float], round_num: int) -> None:
        """Write ``row`` as round ``round_num`` everywhere."""
        csv_manager, *boards = self._managers
        _release_all([csv_manager.release(row, key=round_num)]
                     + [board.release(_finite(row), key=round_num) for board in boards])


def _finite(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if math.isfinite(v)}


def _release_all(releases: list) -> None:
    async def release_all():
        await asyncio.gather(*releases)

    asyncio.run(release_all())


CUMULATIVE = {"bits_down": "bits_down_cumulative", "bits_up": "bits_up_cumulative",
              "sim_round_seconds": "sim_seconds_cumulative"}


class MetricsRelease(Callback):
    """Write each round's row, adding running sums of the ``cumulative`` columns."""

    def __init__(self, tensorboard: bool, cumulative: Mapping[str, str] | None = None):
        """Also write TensorBoard events when ``tensorboard``.

        Args:
          tensorboard: also write each row as TensorBoard scalars.
          cumulative: maps a column to the column of its running sum (default: the bits and the
            simulated round time, ``CUMULATIVE``).
        """
        self.tensorboard = tensorboard
        self.cumulative = dict(CUMULATIVE if cumulative is None else cumulative)
        self._totals: dict[str, float] = {}
        self._sink: MetricsSink | None = None

    def on_train_start(self, context: TrainingContext) -> None:
        """Rewind the run folder to the restored round and continue its running sums.

        Raises:
          CheckpointError: metrics.csv lacks rows of rounds the checkpoint covers.
        """
        self._sink = MetricsSink(context.run_dir, self.tensorboard)
        context.history = self._sink.start(after_round=context.next_round - 1)
        if len(context.history) != context.next_round - 1:
            raise CheckpointError(
                f"metrics.csv holds {len(context.history)} rows but the checkpoint is of round "
                f"{context.next_round - 1}: the cumulative columns cannot be continued; start a "
                "new run folder"
            )
        self._totals = {key: sum(float(row[key]) for row in context.history if row.get(key))
                        for key in self.cumulative}

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add the running sums and release the row.

        Raises:
          ConfigError: the run folder does not take the row (one line); the rounds released
            before stay, and the newest checkpoint is of a round they cover.
        """
        for key, total in self.cumulative.items():
            if key in row:
                self._totals[key] += row[key]
                row[total] = _as_int_if_whole(self._totals[key])
        try:
            self._sink.release(row, round_num)
        except (OSError, tf.errors.OpError) as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise ConfigError(
                f"cannot write round {round_num} to {METRICS_FILE}"
                f"{' or the TensorBoard events' if self.tensorboard else ''} in "
                f"{context.run_dir}: {reason} (set hydra.run.dir to a writable folder"
                f"{', or tensorboard=false' if self.tensorboard else ''})") from error


def _as_int_if_whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
