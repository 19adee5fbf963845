"""Aggregators that see every client's update at once: the base of the robust statistics.

A robust statistic (a coordinate median, Krum, a geometric median...) needs the round's client
updates side by side, which TFF's sums and means never give the server. :class:`StackedFactory`
collects them with ``tff.federated_aggregate``: each client flattens its update to one vector
of ``d`` floats, the accumulator concatenates the vectors into an ``n x d`` matrix (type
``float32[?, d]``), and the server computes the statistic on the matrix and reshapes the
result back into the update's structure. The statistic is TensorFlow code on the server, so
the same aggregator runs with every algorithm that takes an aggregation factory. Each client
sends its weight in the same row as its update (one ``federated_aggregate``), so weights and
updates stay paired whatever order the rows arrive in. Non-finite updates never reach it: TFF's
client work sends a zero update with weight 0 instead.

With ``quantization_bits=8`` each client sends its vector quantized to 8 bits (stochastic
uniform rounding between its own minimum and maximum, seeded as ``aggregator=compression``
seeds it) plus the two float32 bounds, and the server dequantizes before the statistic: the
robust statistic composed with compression's quantizer. The bits columns count what is sent,
read from the computation as for every aggregator (``fedlab.clients.communication``): ``32 d``
bits per client without quantization, ``8 d + 64`` with it, plus 32 for the client's weight.

The server state is the previous round's aggregate (zero before the first round), which a
statistic may start from (centered clipping does); the others ignore it.
"""

import collections
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.errors import ConfigError

# statistic(updates [n, d], weights [n], previous aggregate [d]) -> aggregate [d]
Statistic = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
QUANTIZED_DTYPES = {8: np.uint8}


def stochastic_quantize(vector: tf.Tensor, bits: int, seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``vector`` rounded stochastically to ``2**bits`` levels between its min and max.

    The rounding noise is drawn from ``seed`` and a fingerprint of the vector, so each client's
    update in each round gets its own draw and a run reproduces it.

    Args:
      vector: a client's flattened update.
      bits: bits per level (8).
      seed: the run's quantization seed.

    Returns:
      The levels (unsigned integers) and ``[min, max]``.
    """
    fingerprint = tf.bitcast(tf.reduce_sum(vector) + tf.reduce_sum(tf.abs(vector)), tf.int32)
    low, high = tf.reduce_min(vector), tf.reduce_max(vector)
    scaled = tf.math.divide_no_nan(vector - low, high - low) * float(2**bits - 1)
    floored = tf.floor(scaled)
    draws = tf.random.stateless_uniform(tf.shape(scaled), seed=tf.stack(
        [tf.constant(seed, tf.int32), fingerprint]))
    levels = floored + tf.cast(draws < scaled - floored, tf.float32)
    return tf.cast(levels, QUANTIZED_DTYPES[bits]), tf.stack([low, high])


def dequantize(levels: tf.Tensor, bounds: tf.Tensor, bits: int) -> tf.Tensor:
    """The values that quantized rows stand for.

    Args:
      levels: ``n x d`` levels, one row per client (:func:`stochastic_quantize`).
      bounds: ``n x 2``, each row's ``[min, max]``.
      bits: the bits per level.
    """
    low, high = bounds[:, :1], bounds[:, 1:]
    return low + tf.cast(levels, tf.float32) / float(2**bits - 1) * (high - low)


class StackedFactory(tff.aggregators.WeightedAggregationFactory):
    """A robust statistic of the clients' updates, collected as an ``n x d`` matrix (module doc).

    It takes the clients' example weights, so every algorithm accepts it; only statistics
    that use weights (the geometric median) read them.
    """

    def __init__(self, statistic: Statistic, quantization_bits: int | None = None,
                 seed: int = 0):
        """The statistic, and the clients' optional quantization.

        Args:
          statistic: ``statistic(updates, weights, previous)`` -> the aggregate vector.
          quantization_bits: ``None`` (send float32) or 8 (send 8-bit levels and their bounds).
          seed: the seed of the quantization's rounding noise.

        Raises:
          ConfigError: quantization bits other than None or 8.
        """
        if quantization_bits is not None and quantization_bits not in QUANTIZED_DTYPES:
            raise ConfigError(f"aggregator.quantization_bits must be null or 8, got "
                              f"{quantization_bits}")
        self.statistic, self.quantization_bits, self.seed = statistic, quantization_bits, seed

    def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
        """The aggregation process for updates of ``value_type`` (float32 tensors).

        Args:
          value_type: the TFF type of a client's update (a structure of tensors).
          weight_type: the TFF type of a client's weight (a scalar).
        """
        structure = tff.types.type_to_tf_tensor_specs(value_type)
        specs = [(spec.shape.as_list(), spec.dtype) for spec in tf.nest.flatten(structure)]
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape, _ in specs]
        width = sum(sizes)
        vector_type = tff.TensorType(np.float32, [width])
        bits, seed, statistic = self.quantization_bits, self.seed, self.statistic

        @tff.tensorflow.computation(value_type, weight_type)
        def flatten(value, weight):
            flat = [tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tf.nest.flatten(value)]
            vector = tf.concat(flat, 0)
            sent = (vector,) if bits is None else stochastic_quantize(vector, bits, seed)
            return (*sent, tf.reshape(tf.cast(weight, tf.float32), [1]))

        upload_type = flatten.type_signature.result
        accumulator_type = tff.StructWithPythonType(
            [tff.TensorType(t.dtype, [None, *t.shape]) for t in tff.structure.flatten(upload_type)],
            tuple)

        @tff.tensorflow.computation
        def zero():
            return tuple(tf.zeros([0, *t.shape], t.dtype)
                         for t in tff.structure.flatten(upload_type))

        @tff.tensorflow.computation(accumulator_type, upload_type)
        def accumulate(stacked, upload):
            rows = tf.nest.flatten(upload)
            return tuple(tf.concat([s, r[tf.newaxis]], 0) for s, r in zip(stacked, rows,
                                                                            strict=True))

        @tff.tensorflow.computation(accumulator_type, accumulator_type)
        def merge(first, second):
            return tuple(tf.concat([a, b], 0) for a, b in zip(first, second, strict=True))

        @tff.tensorflow.computation(accumulator_type)
        def report(stacked):
            return stacked

        @tff.tensorflow.computation(accumulator_type, vector_type)
        def aggregate(stacked, previous):
            weights = tf.reshape(stacked[-1], [-1])
            updates = stacked[0] if bits is None else dequantize(stacked[0], stacked[1], bits)
            vector = statistic(updates, weights, previous)
            parts = tf.split(vector, sizes)
            tensors = [tf.cast(tf.reshape(p, shape), dtype)
                       for p, (shape, dtype) in zip(parts, specs, strict=True)]
            return tf.nest.pack_sequence_as(structure, tensors), vector

        @tff.tensorflow.computation
        def initial_previous():
            return tf.zeros([width], tf.float32)

        @tff.federated_computation
        def initialize():
            return tff.federated_eval(initial_previous, tff.SERVER)

        @tff.federated_computation(initialize.type_signature.result,
                                   tff.FederatedType(value_type, tff.CLIENTS),
                                   tff.FederatedType(weight_type, tff.CLIENTS))
        def next_fn(state, value, weight):
            stacked = tff.federated_aggregate(tff.federated_map(flatten, (value, weight)),
                                              zero(), accumulate, merge, report)
            result = tff.federated_map(aggregate, (stacked, state))
            return tff.templates.MeasuredProcessOutput(
                state=result[1], result=result[0],
                measurements=tff.federated_value(collections.OrderedDict(), tff.SERVER))

        return tff.templates.AggregationProcess(initialize, next_fn)
