"""Personalized evaluation: each client fine-tunes the global model on its own data, then is scored.

Active with ``personalization.epochs`` > 0 and per-client held-out examples.
"""

import time

import numpy as np
import pandas as pd
import tensorflow as tf

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.callbacks.evaluation import evaluation_due, spread_columns
from fedlab.runs.files import PERSONALIZED_FILE

COLUMNS = ("personalized_accuracy_mean", "personalized_accuracy_p10",
           "personalized_accuracy_min", "personalized_eval_seconds")


class PersonalizedEvaluation(Callback):
    """The global model fine-tuned per client, then scored on that client's held-out examples.

    Active when ``epochs`` > 0 and the data set keeps per-client test examples (as
    :class:`~fedlab.callbacks.ClientEvaluation`). Each such client starts from the global model,
    takes ``epochs`` passes of plain SGD at ``learning_rate`` over its own training examples
    (shuffled with a seed of (``seed``, client), in batches of ``batch_size``), and is scored on
    its held-out examples as the client-level evaluation scores the global model (so a
    ``learning_rate`` of 0 gives exactly the client-level accuracy). The row gets
    ``personalized_accuracy_mean`` (unweighted over clients), ``_p10``, ``_min`` and
    ``personalized_eval_seconds``: after the last round, and every ``every`` rounds if
    ``every`` > 0. At the end ``personalized_eval.csv`` holds one row per client: ``client,
    examples, accuracy`` (global model, as in ``client_eval.csv``) and
    ``personalized_accuracy``.

    Fine-tuning runs in Python with Keras, one client after another (TFF's
    ``build_personalization_eval_computation`` would run it in the worker, but reports a sample
    of clients, not every client's figure).
    """

    def __init__(self, epochs: int, learning_rate: float, every: int, batch_size: int,
                 seed: int):
        """Fine-tune ``epochs`` epochs at ``learning_rate`` (0 epochs: off).

        Args:
          epochs: epochs of plain SGD each client fine-tunes for (0: off).
          learning_rate: the fine-tuning learning rate.
          every: also evaluate every this many rounds (0: after the last round only).
          batch_size: the fine-tuning batch size.
          seed: the seed each client's shuffling derives from, with the client.

        Raises:
          ValueError: negative ``epochs``, ``every`` or ``learning_rate``, or ``batch_size`` < 1.
        """
        if epochs < 0 or every < 0 or learning_rate < 0 or batch_size < 1:
            raise ValueError(
                "personalization.epochs, .every and .learning_rate must be >= 0 and the batch "
                f"size >= 1, got {epochs}, {every}, {learning_rate}, {batch_size}")
        self.epochs, self.learning_rate, self.every = epochs, learning_rate, every
        self.batch_size, self.seed = batch_size, seed
        self._active = False
        self._last: tuple | None = None

    def on_train_start(self, context: TrainingContext) -> None:
        """Compile the fine-tuning model (clients' test data present and epochs > 0)."""
        self._active = self.epochs > 0 and bool(context.data.client_test)
        if not self._active:
            return
        task = context.task
        self._model = task.keras_model()
        self._scores = task.kind.example_scores
        self._client_ids = sorted(context.data.client_test)
        model, loss_fn, rate = self._model, task.loss(), self.learning_rate

        @tf.function
        def sgd_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            for variable, gradient in zip(model.trainable_variables,
                                          tape.gradient(loss, model.trainable_variables),
                                          strict=True):
                variable.assign_sub(rate * gradient)

        @tf.function
        def predict(x):
            return model(x, training=False)

        self._sgd_step, self._predict = sgd_step, predict

    def _accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        _, correct, counted = self._scores(y, self._predict(x).numpy())
        return float(np.sum(correct) / np.sum(counted)) if np.sum(counted) else np.nan

    def evaluate(self, context: TrainingContext) -> pd.DataFrame:
        """Per client: ``examples``, global ``accuracy`` and ``personalized_accuracy``."""
        weights = context.model_weights()
        if self._last is not None and self._last[0] is weights:
            return self._last[1]
        weights.assign_weights_to(self._model)
        global_weights = self._model.get_weights()
        rows = []
        for index, client_id in enumerate(self._client_ids):
            x, y = context.data.client_test[client_id]
            if not len(y):
                continue
            self._model.set_weights(global_weights)
            accuracy = self._accuracy(x, y)
            train = self._training_examples(context, client_id, index)
            if train is not None:
                for _ in range(self.epochs):
                    for x_batch, y_batch in train:
                        self._sgd_step(x_batch, y_batch)
            rows.append({"client": client_id, "examples": len(y), "accuracy": accuracy,
                         "personalized_accuracy": self._accuracy(x, y)})
        table = pd.DataFrame(rows, columns=["client", "examples", "accuracy",
                                            "personalized_accuracy"])
        self._last = (weights, table)
        return table

    def _training_examples(self, context: TrainingContext, client_id: str, index: int):
        if client_id not in context.data.train.client_ids:
            return None
        seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        dataset = context.data.train.create_tf_dataset_for_client(client_id)
        return (dataset.map(lambda e: (e["x"], e["y"]))
                .shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
                .batch(self.batch_size))  # reshuffled for each epoch

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add the personalized columns (NaN on rounds without this evaluation)."""
        if not self._active:
            return
        row.update(dict.fromkeys(COLUMNS, np.nan))
        due = round_num == context.rounds or (self.every and evaluation_due(self.every, round_num,
                                                                   context))
        if not due:
            return
        started = time.perf_counter()
        accuracy = self.evaluate(context)["personalized_accuracy"].dropna().to_numpy()
        row.update(spread_columns("personalized_accuracy", accuracy,
                                  time.perf_counter() - started))

    def on_train_end(self, context: TrainingContext, last_round: int) -> None:
        """Write ``personalized_eval.csv`` for the final model."""
        if self._active:
            self.evaluate(context).to_csv(context.run_dir / PERSONALIZED_FILE, index=False)
