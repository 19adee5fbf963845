"""What is learned: a task is a kind (loss, metrics, scoring) plus a model on the data's shapes.

Kinds, one module each: :mod:`fedlab.tasks.image_classification` and
:mod:`fedlab.tasks.next_token` (TFF's Shakespeare baseline: its loss, masked accuracy and
models). A data set declares its kind (``FederatedData.task``); a model builder lists the kinds
it takes (``task_kinds``; image classification when it says nothing). Training, held-out and
client-level evaluation and ``trainer=central`` all take the loss and metrics from the task:
the loop never knows which task it trains.

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

from fedlab.errors import ConfigError
from fedlab.tasks.image_classification import IMAGE_CLASSIFICATION
from fedlab.tasks.kind import ACCURACY, TaskKind
from fedlab.tasks.next_token import NEXT_TOKEN

KINDS = {kind.name: kind for kind in (IMAGE_CLASSIFICATION, NEXT_TOKEN)}
# Layers that compute the same in training and inference and hold only trainable weights: a
# model of these alone runs as TFF's variable-free FunctionalModel (see Task.tff_model).
FUNCTIONAL_LAYERS = (tf.keras.layers.InputLayer, tf.keras.layers.Conv2D,
                     tf.keras.layers.MaxPooling2D, tf.keras.layers.AveragePooling2D,
                     tf.keras.layers.Flatten, tf.keras.layers.Reshape, tf.keras.layers.Dense,
                     tf.keras.layers.Activation, tf.keras.layers.ReLU)
ModelBuilder = Callable[[Sequence[int], int], tf.keras.Model]


def accepted_kinds(model_builder: ModelBuilder) -> tuple[str, ...]:
    """The task kinds a model builder takes (its ``task_kinds``; else image classification)."""
    function = getattr(model_builder, "func", model_builder)  # a functools.partial from Hydra
    return tuple(getattr(function, "task_kinds", (IMAGE_CLASSIFICATION.name,)))


def builder_name(model_builder: ModelBuilder) -> str:
    """``module.function`` of a model builder."""
    function = getattr(model_builder, "func", model_builder)
    return f"{function.__module__}.{function.__qualname__}"


class BatchWeightedLoss(tf.keras.metrics.Mean):
    """The training loss as TFF reports it for Keras models: batch losses weighted by batch size.

    (A per-example mean would be the same number up to float rounding; this is the same bits.)
    """

    def __init__(self, loss: tf.keras.losses.Loss, name: str = "loss", dtype=tf.float32):
        """A mean of ``loss`` over batches, named ``name``."""
        super().__init__(name, dtype)
        self._loss = loss

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's loss, weighted by its size (``sample_weight`` is not used)."""
        del sample_weight
        return super().update_state(self._loss(y_true, y_pred), tf.shape(y_pred)[0])


@dataclass(frozen=True)
class Task:
    """A model builder bound to the data's input shape and class count, with its task kind."""

    model_builder: ModelBuilder
    input_shape: tuple[int, ...]
    num_classes: int
    kind: TaskKind = IMAGE_CLASSIFICATION

    @classmethod
    def for_data(cls, model_builder: ModelBuilder, input_shape: tuple[int, ...],
                 num_classes: int, kind_name: str, data_name: str) -> "Task":
        """The task of a data set's kind, if the model takes it.

        Raises:
          ConfigError: the model does not take the data set's kind (one line naming both).
        """
        kind = KINDS[kind_name]
        if kind.name not in accepted_kinds(model_builder):
            takes = " or ".join(KINDS[k].what for k in accepted_kinds(model_builder))
            raise ConfigError(
                f"model {builder_name(model_builder)} cannot take dataset {data_name}: the "
                f"model is for {takes}, the data set for {kind.what}")
        return cls(model_builder, tuple(input_shape), num_classes, kind)

    def loss(self, reduction: str = "sum_over_batch_size") -> tf.keras.losses.Loss:
        """The kind's loss on logits."""
        return self.kind.loss(reduction)

    def metrics(self) -> list[tf.keras.metrics.Metric]:
        """The kind's metrics (the first keyed ``ACCURACY``)."""
        return self.kind.metrics()

    def training_metrics(self) -> collections.OrderedDict:
        """The client training metrics TFF adds for Keras models, for a FunctionalModel."""
        return collections.OrderedDict(
            [(m.name, m) for m in (*self.metrics(), BatchWeightedLoss(self.loss()),
                                   tff.learning.metrics.NumExamplesCounter(),
                                   tff.learning.metrics.NumBatchesCounter())])

    def keras_model(self, seed: int | None = None) -> tf.keras.Model:
        """A fresh Keras model; with ``seed``, its initial weights are drawn from that seed."""
        if seed is not None:
            tf.keras.utils.set_random_seed(seed)
        return self.model_builder(self.input_shape, self.num_classes)

    def compiled_keras_model(self) -> tf.keras.Model:
        """A fresh Keras model compiled with the task's loss and metrics, for evaluation."""
        model = self.keras_model()
        model.compile(loss=self.loss(), metrics=self.metrics())
        return model

    def tff_model_fn(self, input_spec) -> Callable[[], tff.learning.models.VariableModel]:
        """The no-argument model function TFF's learning algorithms take."""

        def model_fn() -> tff.learning.models.VariableModel:
            return tff.learning.models.from_keras_model(
                self.keras_model(), input_spec=input_spec, loss=self.loss(),
                metrics=self.metrics())

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
        weights and metrics as the Keras-model path, bit for bit). Other models (recurrent
        layers, dropout, batch norm, regularisers) get TFF's Keras-model path,
        :meth:`tff_model_fn`.
        """
        model = self.keras_model()
        if self.runs_functionally(model):
            return tff.learning.models.functional_model_from_keras(
                model, self.loss(), input_spec, metrics_constructor=self.training_metrics)
        return self.tff_model_fn(input_spec)


__all__ = ["ACCURACY", "KINDS", "Task", "TaskKind", "accepted_kinds"]
