"""Centered clipping (``aggregator=centered_clipping``; Karimireddy, He, Jaggi, ICML 2021).

"Learning from History for Byzantine Robust Optimization", Algorithm 2: starting from the
previous round's aggregate ``v``, each of ``iterations`` steps sets
``v = v + (1/n) sum_i (x_i - v) min(1, clip_radius / ||x_i - v||)``: an update far from where
the aggregate was moves it by at most ``clip_radius / n``. Clients weigh equally. The paper's
clients send momentum; here they send whatever the algorithm uploads (the model update).
"""

import functools

import tensorflow as tf

from fedlab.aggregators.stacked import StackedFactory
from fedlab.errors import ConfigError


def centered_clip(updates: tf.Tensor, weights: tf.Tensor, previous: tf.Tensor,
                  clip_radius: float, iterations: int) -> tf.Tensor:
    """``iterations`` centered-clipping steps from ``previous``.

    Args:
      updates: the clients' updates, ``n x d``.
      weights: the clients' weights (unused: clients weigh equally).
      previous: the previous round's aggregate, the first center.
      clip_radius: tau.
      iterations: clipping steps.
    """
    del weights
    center = previous
    for _ in range(iterations):
        offsets = updates - center[tf.newaxis, :]
        norms = tf.norm(offsets, axis=1)
        scales = tf.minimum(1.0, tf.math.divide_no_nan(clip_radius, norms))
        scales = tf.where(norms > 0, scales, 1.0)
        center = center + tf.reduce_mean(scales[:, tf.newaxis] * offsets, axis=0)
    return center


def centered_clipping_aggregator(clip_radius: float = 1.0, iterations: int = 1,
                                 quantization_bits: int | None = None,
                                 seed: int = 0) -> StackedFactory:
    """Centered clipping of the clients' updates around the previous aggregate.

    Args:
      clip_radius: tau, the largest distance from the center a client's update counts at.
      iterations: clipping steps per round (the paper: 1 with momentum).
      quantization_bits: null or 8 (8-bit stochastic quantization of each update).
      seed: the seed of the quantization's rounding noise.

    Raises:
      ConfigError: a radius not positive, or fewer than one iteration.
    """
    if not clip_radius > 0:
        raise ConfigError(f"aggregator.clip_radius must be positive, got {clip_radius}")
    if iterations < 1:
        raise ConfigError(f"aggregator.iterations must be >= 1, got {iterations}")
    return StackedFactory(functools.partial(centered_clip, clip_radius=clip_radius,
                                            iterations=iterations), quantization_bits, seed)
