"""Next-token prediction: token sequences and the next token at every position.

The loss, metric and models are TFF's Shakespeare and Stack Overflow baselines'
(``tff.simulation.baselines.shakespeare``, ``.stackoverflow``): cross-entropy on logits over
every position, and accuracy over the positions whose target is not padding (TFF's
``MaskedCategoricalAccuracy``, pad id 0; for Stack Overflow TFF's ``accuracy``, out-of-vocabulary
and end-of-sentence targets included), which is what ``eval_accuracy`` reports for text.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.tasks.kind import ACCURACY, TaskKind

PAD = 0  # TFF's Shakespeare pad id (its preprocessing reserves 0)
_baselines = tff.simulation.baselines


def loss(reduction: str = "sum_over_batch_size") -> tf.keras.losses.Loss:
    """TFF's baseline loss: sparse categorical cross-entropy on logits, every position."""
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def metrics() -> list[tf.keras.metrics.Metric]:
    """TFF's masked accuracy (pad excluded), keyed ``ACCURACY``."""
    return [_baselines.keras_metrics.MaskedCategoricalAccuracy(masked_tokens=[PAD],
                                                               name=ACCURACY)]


def example_scores(y: np.ndarray, logits: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sequence: its mean loss over positions, its right non-pad tokens, its non-pad tokens."""
    losses = loss(reduction="none")(y, logits).numpy().astype(np.float64)
    counted = (y != PAD)
    correct = ((logits.argmax(axis=-1) == y) & counted).sum(axis=1).astype(np.float64)
    return losses.mean(axis=1), correct, counted.sum(axis=1).astype(np.float64)


def predictions(y: np.ndarray) -> int:
    """One prediction per non-pad target token."""
    return int(np.count_nonzero(y != PAD))


NEXT_TOKEN = TaskKind(
    name="next_token",
    what="next-token prediction (token sequences)",
    loss=loss, metrics=metrics, example_scores=example_scores, predictions=predictions)


def char_lstm(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """TFF's Shakespeare model (McMahan et al. 2017): 8-dim embedding, two LSTM-256 layers.

    ``input_shape`` is ``(sequence_length,)``; ``num_classes`` the vocabulary size.
    """
    (sequence_length,) = input_shape
    return _baselines.shakespeare.char_prediction_models.create_recurrent_model(
        vocab_size=num_classes, sequence_length=sequence_length, mask_zero=True)


def char_lstm_small(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """The same shape of model, small and fast (one LSTM of 32 units), for tests and smoke runs."""
    (sequence_length,) = input_shape
    return tf.keras.Sequential([
        tf.keras.layers.Embedding(num_classes, 8, input_length=sequence_length, mask_zero=True),
        tf.keras.layers.LSTM(32, return_sequences=True),
        tf.keras.layers.Dense(num_classes),
    ], name="char_lstm_small")


def word_lstm(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """TFF's Stack Overflow word model (Reddi et al. 2020): embedding 96, LSTM 670, logits.

    ``num_classes`` is the whole vocabulary with its special tokens (pad, oov, bos, eos).
    """
    del input_shape  # the model takes sequences of any length
    return _baselines.stackoverflow.word_prediction_models.create_recurrent_model(
        vocab_size=num_classes)


char_lstm.task_kinds = char_lstm_small.task_kinds = word_lstm.task_kinds = (NEXT_TOKEN.name,)
