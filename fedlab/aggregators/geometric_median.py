"""Geometric median by smoothed Weiszfeld: RFA (``aggregator=geometric_median``).

Pillutla, Kakade, Harchaoui, "Robust Aggregation for Federated Learning" (IEEE TSP 2022),
Algorithm 2: starting from the weighted mean ``v``, each of ``iterations`` Weiszfeld steps sets
``beta_i = alpha_i / max(smoothing, ||v - x_i||)`` and ``v = sum_i beta_i x_i / sum_i beta_i``,
where ``alpha_i`` is client i's weight (its examples, as the paper weighs clients).
"""

import functools

import tensorflow as tf

from fedlab.aggregators.stacked import StackedFactory
from fedlab.errors import ConfigError


def smoothed_weiszfeld(updates: tf.Tensor, weights: tf.Tensor, previous: tf.Tensor,
                       iterations: int, smoothing: float) -> tf.Tensor:
    """The approximate weighted geometric median of the rows of ``updates``.

    Args:
      updates: the clients' updates, ``n x d``.
      weights: the clients' weights alpha_i (their examples), normalized here.
      previous: the previous aggregate (unused).
      iterations: Weiszfeld steps from the weighted mean.
      smoothing: nu, the smallest distance a weight is divided by.
    """
    del previous
    alphas = weights / tf.reduce_sum(weights)
    median = tf.reduce_sum(alphas[:, tf.newaxis] * updates, axis=0)
    for _ in range(iterations):
        distances = tf.norm(updates - median[tf.newaxis, :], axis=1)
        betas = alphas / tf.maximum(smoothing, distances)
        median = tf.reduce_sum(betas[:, tf.newaxis] * updates, axis=0) / tf.reduce_sum(betas)
    return median


def geometric_median_aggregator(iterations: int = 3, smoothing: float = 1e-6,
                                quantization_bits: int | None = None,
                                seed: int = 0) -> StackedFactory:
    """RFA's geometric median of the clients' updates, weighted by their examples.

    Args:
      iterations: Weiszfeld steps from the weighted mean (the paper finds 3 enough).
      smoothing: nu, the smallest distance a client's weight is divided by (> 0).
      quantization_bits: null or 8 (8-bit stochastic quantization of each update).
      seed: the seed of the quantization's rounding noise.

    Raises:
      ConfigError: fewer than one iteration, or a smoothing not positive.
    """
    if iterations < 1:
        raise ConfigError(f"aggregator.iterations must be >= 1, got {iterations}")
    if not smoothing > 0:
        raise ConfigError(f"aggregator.smoothing must be positive, got {smoothing}")
    return StackedFactory(functools.partial(smoothed_weiszfeld, iterations=iterations,
                                            smoothing=smoothing), quantization_bits, seed)
