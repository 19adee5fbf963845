"""Coordinate-wise median of the clients' updates (``aggregator=median``; Yin et al. 2018).

Each coordinate of the aggregate is the median of that coordinate over the round's clients (the
mean of the two middle values for an even cohort), as ``numpy.median(updates, axis=0)``
computes it, bit for bit. Clients weigh equally, whatever their number of examples.
"""

import tensorflow as tf

from fedlab.aggregators.stacked import StackedFactory


def coordinate_median(updates: tf.Tensor, weights: tf.Tensor, previous: tf.Tensor) -> tf.Tensor:
    """The median of each column of ``updates``.

    Args:
      updates: the clients' updates, ``n x d``.
      weights: the clients' weights (unused: clients weigh equally).
      previous: the previous aggregate (unused).
    """
    del weights, previous
    ordered = tf.sort(updates, axis=0)
    count = tf.shape(updates)[0]
    return (ordered[(count - 1) // 2] + ordered[count // 2]) / 2


def median_aggregator(quantization_bits: int | None = None, seed: int = 0) -> StackedFactory:
    """The coordinate-wise median of the clients' updates.

    Args:
      quantization_bits: null (clients send float32) or 8 (compression's 8-bit stochastic
        quantization of each client's update before the median).
      seed: the seed of the quantization's rounding noise.
    """
    return StackedFactory(coordinate_median, quantization_bits, seed)
