"""TFF's compression aggregator with seeded quantization noise (``aggregator=compression``).

``tff.learning.compression_aggregator`` quantizes with ``tf.random.uniform`` and no seed, so two
runs with the same seed differ in their stochastic rounding. ``compression_aggregator`` below is
the same aggregator — TFF's ``EncodedSumFactory`` over the same flatten / 8-bit uniform
quantization / bit-packing encoder, inside the same mean and adaptive clipping and zeroing — with
one change: the rounding noise is drawn with ``tf.random.stateless_uniform`` from a seed made of
the run's seed and a fingerprint of the tensor being encoded. Each client's update in each round
therefore gets its own noise, and the same run reproduces it exactly.
"""

import collections
import logging

import tensorflow as tf
import tensorflow_federated as tff
from tensorflow_federated.python.learning import model_update_aggregator
from tensorflow_model_optimization.python.core.internal import tensor_encoding as te
from tensorflow_model_optimization.python.core.internal.tensor_encoding.stages import stages_impl

from fedlab.errors import ConfigError

log = logging.getLogger("fedlab")


class SeededUniformQuantizationStage(stages_impl.UniformQuantizationEncodingStage):
    """tfmot's uniform quantization with stochastic rounding drawn from an explicit seed."""

    def __init__(self, bits: int, seed: int):
        """Quantize to ``bits`` bits; ``seed`` is mixed into every rounding draw."""
        super().__init__(bits=bits, stochastic=True)
        self._seed = seed

    def encode(self, x, encode_params, name=None):
        """Scale to [0, 2**bits - 1] and round up with probability equal to the residual."""
        del name  # tfmot's name-scope argument
        x = tf.convert_to_tensor(x)
        fingerprint = tf.bitcast(tf.reduce_sum(x) + tf.reduce_sum(tf.abs(x)), tf.int32)
        seed = tf.stack([tf.constant(self._seed, tf.int32), fingerprint])
        min_x, max_x = tf.reduce_min(x), tf.reduce_max(x)
        max_value = tf.cast(encode_params[self.MAX_INT_VALUE_PARAMS_KEY], x.dtype)
        scaled = tf.compat.v1.div_no_nan(x - min_x, max_x - min_x) * max_value
        floored = tf.floor(scaled)
        draws = tf.random.stateless_uniform(tf.shape(scaled), seed=seed, dtype=x.dtype)
        quantized = floored + tf.cast(draws < scaled - floored, x.dtype)
        return collections.OrderedDict(
            [
                (self.ENCODED_VALUES_KEY, quantized),
                (self.MIN_MAX_VALUES_KEY, tf.stack([min_x, max_x])),
            ]
        )


def seeded_quantization_sum(
    quantization_bits: int = 8, threshold: int = 20000, seed: int = 0
) -> tff.aggregators.EncodedSumFactory:
    """``EncodedSumFactory.quantize_above_threshold`` with seeded stochastic rounding."""
    if not 1 <= quantization_bits <= 16:
        raise ConfigError(f"aggregator.quantization_bits must be 1..16, got {quantization_bits}")
    if threshold < 0:
        raise ConfigError(f"aggregator.threshold must be >= 0, got {threshold}")

    def encoder_fn(value_spec):
        if value_spec.shape.num_elements() > threshold:
            encoder = (
                te.core.EncoderComposer(stages_impl.BitpackingEncodingStage(quantization_bits))
                .add_parent(SeededUniformQuantizationStage(quantization_bits, seed),
                            stages_impl.UniformQuantizationEncodingStage.ENCODED_VALUES_KEY)
                .add_parent(stages_impl.FlattenEncodingStage(),
                            stages_impl.FlattenEncodingStage.ENCODED_VALUES_KEY)
                .make()
            )
        else:
            encoder = te.encoders.identity()
        return te.encoders.as_gather_encoder(encoder, value_spec)

    return tff.aggregators.EncodedSumFactory(encoder_fn)


def compression_aggregator(
    zeroing: bool = True,
    clipping: bool = True,
    quantization_bits: int = 8,
    threshold: int = 20000,
    seed: int = 0,
) -> tff.aggregators.WeightedAggregationFactory:
    """``tff.learning.compression_aggregator``, with reproducible quantization noise.

    Args:
      zeroing: zero out a client's update whose norm is far above the others' (TFF's adaptive
        zeroing).
      clipping: clip each client's update to an adaptive norm (TFF's adaptive clipping).
      quantization_bits: bits per value of the stochastic uniform quantization.
      threshold: tensors of more elements than this are quantized; smaller ones are sent as
        float32.
      seed: the seed of the quantization's rounding noise, so runs reproduce.
    """
    factory = tff.aggregators.MeanFactory(
        seeded_quantization_sum(quantization_bits, threshold, seed)
    )
    if clipping:
        factory = model_update_aggregator._default_clipping(factory)  # noqa: SLF001 - TFF's own
    if zeroing:
        factory = model_update_aggregator._default_zeroing(factory)  # noqa: SLF001
    return factory
