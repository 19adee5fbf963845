"""Image classification: images and class labels; cross-entropy on logits, accuracy."""

import numpy as np
import tensorflow as tf

from fedlab.tasks.kind import ACCURACY, TaskKind


def loss(reduction: str = "sum_over_batch_size") -> tf.keras.losses.Loss:
    """Sparse categorical cross-entropy on logits (``reduction="none"``: one value per example)."""
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def metrics() -> list[tf.keras.metrics.Metric]:
    """The accuracy, keyed ``ACCURACY``."""
    return [tf.keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)]


def example_scores(y: np.ndarray, logits: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example: its loss, whether it is classified right, and 1 (one prediction)."""
    losses = loss(reduction="none")(y, logits).numpy().astype(np.float64)
    correct = (logits.argmax(axis=1) == y).astype(np.float64)
    return losses, correct, np.ones_like(correct)


def predictions(y: np.ndarray) -> int:
    """One prediction per image."""
    return len(y)


IMAGE_CLASSIFICATION = TaskKind(
    name="image_classification",
    what="image classification (images and class labels)",
    loss=loss, metrics=metrics, example_scores=example_scores, predictions=predictions)
