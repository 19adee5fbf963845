"""The learning task: a model builder on the data's input shape and classes, one loss, one metric.

Models output logits and the loss is computed from them, exactly, by TFF's client training, the
held-out and client-level evaluations and ``trainer=central`` alike. (With a softmax output,
Keras' own ``evaluate`` silently takes the softmax's input as logits, while TFF's training clips
the probabilities to [1e-7, 1 - 1e-7]: the two losses of one model then disagree as soon as it is
confident and wrong, by orders of magnitude once it diverges.)
"""

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_federated as tff

ACCURACY = "accuracy"
# Layers that compute the same in training and inference and hold only trainable weights: a
# model of these alone runs as TFF's variable-free FunctionalModel (see Task.tff_model).
FUNCTIONAL_LAYERS = (tf.keras.layers.InputLayer, tf.keras.layers.Conv2D,
                     tf.keras.layers.MaxPooling2D, tf.keras.layers.AveragePooling2D,
                     tf.keras.layers.Flatten, tf.keras.layers.Reshape, tf.keras.layers.Dense,
                     tf.keras.layers.Activation, tf.keras.layers.ReLU)
ModelBuilder = Callable[[Sequence[int], int], tf.keras.Model]


def loss(reduction: str = "sum_over_batch_size") -> tf.keras.losses.Loss:
    """Sparse categorical cross-entropy on logits (``reduction="none"``: one value per example)."""
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def metrics() -> list[tf.keras.metrics.Metric]:
    """The metrics reported for training and held-out data, keyed ``ACCURACY``."""
    return [tf.keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)]


class BatchWeightedLoss(tf.keras.metrics.Mean):
    """The training loss as TFF reports it for Keras models: batch losses weighted by batch size.

    (A per-example mean would be the same number up to float rounding; this is the same bits.)
    """

    def __init__(self, name: str = "loss", dtype=tf.float32):
        """A mean of batch losses named ``name``."""
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's loss, weighted by its size (``sample_weight`` is not used)."""
        del sample_weight
        return super().update_state(loss()(y_true, y_pred), tf.shape(y_pred)[0])


def training_metrics() -> collections.OrderedDict:
    """The client training metrics TFF adds for Keras models, for a FunctionalModel."""
    return collections.OrderedDict(
        [(m.name, m) for m in (*metrics(), BatchWeightedLoss(),
                               tff.learning.metrics.NumExamplesCounter(),
                               tff.learning.metrics.NumBatchesCounter())])


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

    @staticmethod
    def runs_functionally(model: tf.keras.Model) -> bool:
        """Whether ``model`` is made of :data:`FUNCTIONAL_LAYERS` only, with no added losses."""
        return not model.losses and all(isinstance(layer, FUNCTIONAL_LAYERS)
                                        for layer in model.layers)

    def tff_model(self, input_spec):
        """The model in the form TFF's learning algorithms run fastest.

        A model that :meth:`runs_functionally` becomes a ``FunctionalModel``: clients train on
        weights passed in, with no variables to create and initialise per client (the same
        weights and metrics as the Keras-model path, bit for bit). Other models (dropout, batch
        norm, regularisers) get TFF's Keras-model path, :meth:`tff_model_fn`.
        """
        model = self.keras_model()
        if self.runs_functionally(model):
            return tff.learning.models.functional_model_from_keras(
                model, loss(), input_spec, metrics_constructor=training_metrics)
        return self.tff_model_fn(input_spec)
