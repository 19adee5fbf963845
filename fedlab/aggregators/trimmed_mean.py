"""Coordinate-wise trimmed mean (``aggregator=trimmed_mean``; Yin et al. 2018).

In each coordinate the ``k = floor(trim_fraction * n)`` largest and ``k`` smallest of the ``n``
clients' values are dropped and the rest averaged, as ``scipy.stats.trim_mean(updates,
trim_fraction, axis=0)`` does. Clients weigh equally.
"""

import functools

import tensorflow as tf

from fedlab.aggregators.stacked import StackedFactory
from fedlab.errors import ConfigError


def trimmed_mean(updates: tf.Tensor, weights: tf.Tensor, previous: tf.Tensor,
                 trim_fraction: float) -> tf.Tensor:
    """The mean of each column of ``updates`` without its ``floor(trim_fraction n)`` extremes.

    Args:
      updates: the clients' updates, ``n x d``.
      weights: the clients' weights (unused: clients weigh equally).
      previous: the previous aggregate (unused).
      trim_fraction: beta; ``floor(beta n)`` values are cut at each end of every column.
    """
    del weights, previous
    count = tf.shape(updates)[0]
    cut = tf.cast(tf.floor(trim_fraction * tf.cast(count, tf.float64)), tf.int32)
    ordered = tf.sort(updates, axis=0)
    return tf.reduce_mean(ordered[cut:count - cut], axis=0)


def trimmed_mean_aggregator(trim_fraction: float = 0.1, quantization_bits: int | None = None,
                            seed: int = 0) -> StackedFactory:
    """The coordinate-wise trimmed mean of the clients' updates.

    Args:
      trim_fraction: the fraction of clients cut at each end of every coordinate, in [0, 0.5).
      quantization_bits: null or 8 (8-bit stochastic quantization of each update).
      seed: the seed of the quantization's rounding noise.

    Raises:
      ConfigError: a trim fraction outside [0, 0.5).
    """
    if not 0 <= trim_fraction < 0.5:
        raise ConfigError(f"aggregator.trim_fraction must be in [0, 0.5) (both ends are cut), "
                          f"got {trim_fraction}")
    return StackedFactory(functools.partial(trimmed_mean, trim_fraction=trim_fraction),
                          quantization_bits, seed)
