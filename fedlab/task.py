"""The learning task: a model builder on the data's input shape and classes, one loss, one metric.

Models output logits and the loss is computed from them, exactly, by TFF's client training, the
held-out and client-level evaluations and ``trainer=central`` alike. (With a softmax output,
Keras' own ``evaluate`` silently takes the softmax's input as logits, while TFF's training clips
the probabilities to [1e-7, 1 - 1e-7]: the two losses of one model then disagree as soon as it is
confident and wrong, by orders of magnitude once it diverges.)
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_federated as tff

ACCURACY = "accuracy"
ModelBuilder = Callable[[Sequence[int], int], tf.keras.Model]


def loss(reduction: str = "sum_over_batch_size") -> tf.keras.losses.Loss:
    """Sparse categorical cross-entropy on logits (``reduction="none"``: one value per example)."""
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def metrics() -> list[tf.keras.metrics.Metric]:
    """The metrics reported for training and held-out data, keyed ``ACCURACY``."""
    return [tf.keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)]


@dataclass(frozen=True)
class Task:
    """A model builder bound to the data's input shape and class count, with loss and metrics."""

    model_builder: ModelBuilder
    input_shape: tuple[int, ...]
    num_classes: int

    def keras_model(self, seed: int | None = None) -> tf.keras.Model:
        """A fresh Keras model; with ``seed``, its initial weights are drawn from that seed."""
        if seed is not None:
            tf.keras.utils.set_random_seed(seed)
        return self.model_builder(self.input_shape, self.num_classes)

    def compiled_keras_model(self) -> tf.keras.Model:
        """A fresh Keras model compiled with the task's loss and metrics, for evaluation."""
        model = self.keras_model()
        model.compile(loss=loss(), metrics=metrics())
        return model

    def tff_model_fn(self, input_spec) -> Callable[[], tff.learning.models.VariableModel]:
        """The no-argument model function TFF's learning algorithms take."""

        def model_fn() -> tff.learning.models.VariableModel:
            return tff.learning.models.from_keras_model(
                self.keras_model(), input_spec=input_spec, loss=loss(), metrics=metrics())

        return model_fn
