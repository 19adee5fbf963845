"""TFF pieces shared by algorithms that write their own round (SCAFFOLD, FedDyn).

:func:`round_parts` builds, for a model function, the types, the broadcast distributor, the
aggregation process of the configured aggregator, the server optimizer's finalizer and the
metrics aggregation; :meth:`RoundParts.initialize` the server state with an algorithm-specific
model-shaped slot (``client_work``: SCAFFOLD's control variate, FedDyn's ``h``), zero at first.
"""

import collections
import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.algorithms.base import Aggregator, ModelFn, Optimizer, is_unweighted


@dataclasses.dataclass(frozen=True)
class RoundParts:
    """The pieces of a round written with TFF's templates (see :func:`round_parts`).

    Attributes:
      weights_type: the model weights' TFF type.
      data_type: a client's dataset type.
      trainable_type: a tuple of the trainable weights' tensor types (per-client state, the
        server's model-shaped slot).
      trainable_shapes: ``(shape, dtype)`` of each trainable weight.
      distributor: TFF's broadcast of the model.
      aggregation: the configured aggregator's process over the trainable weights' update.
      weighted: whether ``aggregation.next`` takes the clients' weights.
      finalizer: the server optimizer applied to the aggregate.
      aggregate_metrics: the clients' training metrics summed, then finalized.
      initialize: the server state (model, distributor, zero slot, aggregator, finalizer).
    """

    weights_type: Any
    data_type: Any
    trainable_type: Any
    trainable_shapes: list
    distributor: Any
    aggregation: Any
    weighted: bool
    finalizer: Any
    aggregate_metrics: Any
    initialize: Any

    def aggregate(self, state, updates, weights):
        """The aggregation process's output for the clients' ``updates`` (and ``weights``)."""
        if self.weighted:
            return self.aggregation.next(state, updates, weights)
        return self.aggregation.next(state, updates)

    def initial_client_state(self) -> list[np.ndarray]:
        """A model-shaped zero state (a client's before its first round)."""
        return [np.zeros(shape, dtype) for shape, dtype in self.trainable_shapes]

    def metrics(self, distributed, outputs, aggregated, finalized):
        """The round's metrics, structured as TFF's composed learning processes report them."""
        return tff.federated_zip(collections.OrderedDict(
            distributor=distributed.measurements,
            client_work=tff.federated_zip(collections.OrderedDict(
                train=self.aggregate_metrics(outputs))),
            aggregator=aggregated.measurements,
            finalizer=finalized.measurements))


def round_parts(model_fn: ModelFn, aggregator: Aggregator,
                server_optimizer: Optimizer) -> RoundParts:
    """The shared pieces for ``model_fn`` with ``aggregator`` and ``server_optimizer``.

    Args:
      model_fn: a no-argument ``VariableModel`` function.
      aggregator: the configured TFF aggregation factory (weighted or unweighted).
      server_optimizer: the server's optimizer.

    Returns:
      The pieces, their types, and the initial server state's computation.
    """
    with tf.Graph().as_default():
        probe = model_fn()
        element_type = tff.types.tensorflow_to_type(probe.input_spec)
        metric_finalizers = probe.metric_finalizers()
        trainable_shapes = [(v.shape.as_list(), v.dtype.as_numpy_dtype)
                            for v in probe.trainable_variables]
    weights_type = tff.learning.models.weights_type_from_model(model_fn)
    trainable_type = tff.StructWithPythonType(
        [tff.TensorType(dtype, shape) for shape, dtype in trainable_shapes], tuple)
    weighted = not is_unweighted(aggregator)
    aggregation = (aggregator.create(weights_type.trainable, tff.TensorType(np.float32))
                   if weighted else aggregator.create(weights_type.trainable))
    distributor = tff.learning.templates.build_broadcast_process(weights_type)
    finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
        server_optimizer, weights_type)

    @tff.tensorflow.computation
    def initial_weights():
        return tff.learning.models.ModelWeights.from_model(model_fn())

    @tff.tensorflow.computation
    def zero_slot():
        return tuple(tf.zeros(shape, dtype) for shape, dtype in trainable_shapes)

    @tff.federated_computation
    def initialize():
        return tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
            tff.federated_eval(initial_weights, tff.SERVER), distributor.initialize(),
            tff.federated_eval(zero_slot, tff.SERVER), aggregation.initialize(),
            finalizer.initialize()))

    return RoundParts(weights_type, tff.SequenceType(element_type), trainable_type,
                      trainable_shapes, distributor, aggregation, weighted, finalizer,
                      tff.learning.metrics.sum_then_finalize(metric_finalizers), initialize)
