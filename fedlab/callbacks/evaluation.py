"""Evaluation of the global model: on the pooled held-out set, and on each client's own share."""

import time

import numpy as np
import pandas as pd
import tensorflow as tf

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.runs.files import CLIENT_EVAL_FILE
from fedlab.tasks import ACCURACY

EVAL_CHUNK = 1000  # examples predicted and scored at once by the client-level evaluation


def evaluation_due(every: int, round_num: int, context: TrainingContext) -> bool:
    """Whether round ``round_num`` evaluates: every ``every`` rounds, and after the last."""
    return round_num % every == 0 or round_num == context.rounds


def spread_columns(prefix: str, accuracy: np.ndarray, seconds: float) -> dict[str, float]:
    """``<prefix>_mean`` (unweighted over clients), ``_p10``, ``_min`` and the seconds taken."""
    return {f"{prefix}_mean": float(accuracy.mean()),
            f"{prefix}_p10": float(np.percentile(accuracy, 10)),
            f"{prefix}_min": float(accuracy.min()),
            f"{prefix.removesuffix('_accuracy')}_eval_seconds": seconds}


class HeldOutEvaluation(Callback):
    """``eval_loss``, ``eval_accuracy`` (and ``eval_seconds``) on every held-out example.

    Runs every ``every`` rounds and after the schedule's last round, centrally with Keras: the
    exact figures over the whole test set, without client sampling noise. With
    ``split="validation"`` the same on the data set's validation set (``val_loss``,
    ``val_accuracy``, ``val_seconds``), and nothing when it has none.
    """

    PREFIXES = {"test": "eval", "validation": "val"}

    def __init__(self, every: int, split: str = "test"):
        """Evaluate every ``every`` rounds on ``split`` (``test`` or ``validation``).

        Args:
          every: evaluate every this many rounds, and after the last round.
          split: ``test`` (the held-out set: ``eval_*`` columns) or ``validation`` (``val_*``
            columns; nothing when the data set has no validation set).
        """
        if split not in self.PREFIXES:
            raise ValueError(f"split must be one of {', '.join(self.PREFIXES)}, got {split!r}")
        self.every, self.split, self.prefix = every, split, self.PREFIXES[split]
        self._model: tf.keras.Model | None = None
        self._examples: tf.data.Dataset | None = None

    def on_train_start(self, context: TrainingContext) -> None:
        """Compile the evaluation model and cache the examples."""
        data = context.data
        x, y = ((data.test_x, data.test_y) if self.split == "test"
                else (data.validation_x, data.validation_y))
        if x is None:
            return
        self._model = context.task.compiled_keras_model()
        self._examples = tf.data.Dataset.from_tensor_slices((x, y)).batch(500).cache()

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add the figures (NaN on rounds without evaluation)."""
        if self._examples is None:
            return
        names = [f"{self.prefix}_{n}" for n in ("loss", "accuracy", "seconds")]
        row.update(dict.fromkeys(names, np.nan))
        if not evaluation_due(self.every, round_num, context):
            return
        started = time.perf_counter()
        context.model_weights().assign_weights_to(self._model)
        result = self._model.evaluate(self._examples, verbose=0, return_dict=True)
        row.update(zip(names, (float(result["loss"]), float(result[ACCURACY]),
                               time.perf_counter() - started), strict=True))


class ClientEvaluation(Callback):
    """The global model on each client's own held-out examples: how the worst clients fare.

    Active when the data set keeps per-client test examples (``dataset.client_test_fraction >
    0``, or EMNIST's own per-writer test data). Every ``every`` rounds and after the last, all
    clients' examples are predicted in one batched pass and grouped by client; the row gets
    ``client_accuracy_mean`` (unweighted over clients), ``client_accuracy_p10`` (10th percentile,
    linear interpolation), ``client_accuracy_min`` and ``client_eval_seconds``. Clients whose
    share rounds to no example are left out of these figures. At the end, ``client_eval.csv``
    holds one row per client of the final model: ``client, examples, loss, accuracy``.
    """

    def __init__(self, every: int):
        """Evaluate every ``every`` rounds.

        Args:
          every: evaluate every this many rounds, and after the last round.
        """
        self.every = every
        self._active = False
        self._client_ids: list[str] = []
        self._last: tuple | None = None  # (weights object, per-client table) last evaluated

    def on_train_start(self, context: TrainingContext) -> None:
        """Stack every client's test examples with the index of their client."""
        clients = context.data.client_test
        self._active = bool(clients)
        if not self._active:
            return
        self._client_ids = sorted(clients)
        xs = [clients[c][0] for c in self._client_ids]
        ys = [clients[c][1] for c in self._client_ids]
        self._owner = np.repeat(np.arange(len(xs)), [len(y) for y in ys])
        self._counts = np.bincount(self._owner, minlength=len(xs))
        self._x, self._y = np.concatenate(xs), np.concatenate(ys)
        self._model = context.task.keras_model()
        self._scores = context.task.kind.example_scores

    def evaluate(self, context: TrainingContext) -> pd.DataFrame:
        """Per-client ``examples``, ``loss`` (mean over its examples) and ``accuracy``.

        The table of the last evaluated state is kept, so the end of training reuses the last
        round's evaluation instead of repeating it.
        """
        weights = context.model_weights()
        if self._last is not None and self._last[0] is weights:
            return self._last[1]
        weights.assign_weights_to(self._model)
        # Scored chunk by chunk: a text model's logits for every client's sequences at once
        # would take gigabytes (14,646 x 80 x 90 floats for Shakespeare, and their softmax).
        chunks = [self._scores(self._y[start:start + EVAL_CHUNK], self._model.predict(
                      self._x[start:start + EVAL_CHUNK], batch_size=EVAL_CHUNK, verbose=0))
                  for start in range(0, len(self._y), EVAL_CHUNK)]
        losses, correct, counted = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
        clients = len(self._counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            table = pd.DataFrame({
                "client": self._client_ids,
                "examples": self._counts,
                "loss": np.bincount(self._owner, losses, clients) / self._counts,
                # Right predictions over predictions that count (a label; non-pad tokens).
                "accuracy": (np.bincount(self._owner, correct, clients)
                             / np.bincount(self._owner, counted, clients)),
            })
        self._last = (weights, table)
        return table

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add the client-level accuracy columns (NaN on rounds without evaluation)."""
        if not self._active:
            return
        row.update(client_accuracy_mean=np.nan, client_accuracy_p10=np.nan,
                   client_accuracy_min=np.nan, client_eval_seconds=np.nan)
        if not evaluation_due(self.every, round_num, context):
            return
        started = time.perf_counter()
        accuracy = self.evaluate(context)["accuracy"].dropna().to_numpy()
        row.update(spread_columns("client_accuracy", accuracy, time.perf_counter() - started))

    def on_train_end(self, context: TrainingContext, last_round: int) -> None:
        """Write ``client_eval.csv`` for the final model."""
        if self._active:
            self.evaluate(context).to_csv(context.run_dir / CLIENT_EVAL_FILE, index=False)
