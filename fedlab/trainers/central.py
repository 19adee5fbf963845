"""``trainer=central``: the same data set and model trained with Keras ``fit`` on pooled data.

The centralized upper bound a federated run is compared with. Each epoch is released as one
``metrics.csv`` row with the federated columns (``round`` is the epoch; nothing is
communicated, so the bit columns are 0).
"""

import logging
import math
import time
from pathlib import Path

import tensorflow as tf

from fedlab.callbacks.metrics import MetricsSink
from fedlab.config.schedule import Schedule
from fedlab.data import FederatedData
from fedlab.executors.computation_cache import ProcessCache
from fedlab.runs.files import MODEL_FILE
from fedlab.tasks import ACCURACY, Task

log = logging.getLogger(__name__)

NO_COMMUNICATION = {
    "bits_down_per_client": 0, "bits_up_per_client": 0, "bits_down": 0, "bits_up": 0,
    "bits_down_cumulative": 0, "bits_up_cumulative": 0,
}


class _ReleaseEpochs(tf.keras.callbacks.Callback):
    """Release one metrics row per epoch through the run's MetricsSink."""

    def __init__(self, sink: MetricsSink, examples: int, batch_size: int, epochs: int):
        super().__init__()
        self._sink, self._examples, self._batch_size = sink, examples, batch_size
        self._epochs = epochs
        self._started = self._evaluating_started = self._eval_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_test_begin(self, logs=None):  # validation at the end of each epoch
        self._evaluating_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self._eval_seconds = time.perf_counter() - self._evaluating_started

    def on_epoch_end(self, epoch, logs=None):
        row = {
            "train_loss": float(logs["loss"]),
            "train_accuracy": float(logs[ACCURACY]),
            "examples": self._examples,
            "batches": math.ceil(self._examples / self._batch_size),
            **NO_COMMUNICATION,
            "eval_loss": float(logs["val_loss"]),
            "eval_accuracy": float(logs["val_" + ACCURACY]),
            "round_seconds": time.perf_counter() - self._started - self._eval_seconds,
            "eval_seconds": self._eval_seconds,
        }
        self._sink.release(row, epoch + 1)
        log.info(
            "epoch %*d/%d | train loss %.4f acc %.4f | %.2f s | eval loss %.4f acc %.4f (%.2f s)",
            len(str(self._epochs)), epoch + 1, self._epochs, row["train_loss"],
            row["train_accuracy"], row["round_seconds"], row["eval_loss"], row["eval_accuracy"],
            row["eval_seconds"],
        )


def train_central(
    task: Task,
    model: tf.keras.Model,
    data: FederatedData,
    optimizer: tf.keras.optimizers.Optimizer,
    epochs: int,
    batch_size: int,
    seed: int,
    sink: MetricsSink,
) -> tf.keras.Model:
    """Fit ``model`` on every client's examples pooled, validating on the held-out set.

    The loss and metrics are ``task``'s.
    """
    sink.start(after_round=0)  # central runs do not resume: every epoch is written anew
    train_x, train_y = data.pooled_train()
    model.compile(
        optimizer=optimizer,
        loss=task.loss(),
        metrics=task.metrics(),
    )
    tf.keras.utils.set_random_seed(seed)
    model.fit(
        train_x, train_y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
        validation_data=(data.test_x, data.test_y),
        callbacks=[_ReleaseEpochs(sink, len(train_y), batch_size, epochs)],
    )
    return model


class CentralTrainer:
    """The centralized baseline: Keras ``fit`` on every client's examples pooled.

    ``schedule.rounds`` is the number of epochs; client sampling settings do not apply.
    """

    def __init__(self, optimizer: tf.keras.optimizers.Optimizer, tensorboard: bool = True):
        """Fit with ``optimizer``; write TensorBoard events when ``tensorboard``.

        Args:
          optimizer: the Keras optimizer (``_target_`` and its arguments; Adam at 0.001).
          tensorboard: also write each epoch's row as TensorBoard scalars.
        """
        self.optimizer, self.tensorboard = optimizer, tensorboard

    def train(self, task: Task, data: FederatedData, schedule: Schedule, run_dir: Path,
              initial_model: tf.keras.Model, process_cache: ProcessCache | None = None) -> dict:
        """Fit ``schedule.rounds`` epochs, one metrics row per epoch; save the model.

        ``process_cache`` is not used: Keras traces its step in well under a second.
        """
        del process_cache
        model = train_central(
            task, initial_model, data, self.optimizer, epochs=schedule.rounds,
            batch_size=schedule.batch_size, seed=schedule.seed,
            sink=MetricsSink(run_dir, tensorboard=self.tensorboard))
        model.save(run_dir / MODEL_FILE)
        return {"rounds_trained_this_invocation": schedule.rounds,
                "checkpoint_seconds_mean": None}
