"""DP-FedAvg's Gaussian noise drawn from the run's seed, so DP runs reproduce.

tensorflow_privacy's ``GaussianSumQuery`` draws its noise with unseeded random ops, so two runs
with the same seed differ. :class:`SeededGaussianSumQuery` is the same query with the noise drawn
by ``tf.random.stateless_normal`` from a seed kept in the query's state: ``[seed, round]``, one
draw per tensor (folded in by position), the round counter advanced after each aggregation.
The state is part of the server state, so a resumed run draws what the uninterrupted one would
have. The adaptive-clipping query uses it for both of its noisy sums (the updates and the count
of clipped clients). The factories below build exactly what TFF's
``DifferentiallyPrivateFactory.gaussian_adaptive`` / ``gaussian_fixed`` build, with these queries.

The noise is pseudo-random: whoever knows the seed can recompute it. That is what a
reproducible simulation needs; a deployment needs a secret seed.
"""

import collections

import dp_accounting
import tensorflow as tf
import tensorflow_federated as tff
import tensorflow_privacy as tfp
from tensorflow_federated.python.aggregators import differential_privacy


class SeededGaussianSumQuery(tfp.GaussianSumQuery):
    """``GaussianSumQuery`` whose noise comes from ``[seed, round]`` in its global state."""

    _GlobalState = collections.namedtuple("_GlobalState", ["l2_norm_clip", "stddev", "seed"])

    def __init__(self, l2_norm_clip, stddev, seed: int):
        """Clip to ``l2_norm_clip``, add noise of ``stddev`` drawn from ``seed``."""
        super().__init__(l2_norm_clip, stddev)
        self._seed = seed

    def make_global_state(self, l2_norm_clip, stddev, seed=None):
        """The global state; ``seed`` defaults to ``[seed, 0]`` (the first round)."""
        if seed is None:
            seed = tf.constant([self._seed, 0], tf.int64)
        return self._GlobalState(tf.cast(l2_norm_clip, tf.float32), tf.cast(stddev, tf.float32),
                                 seed)

    def initial_global_state(self):
        """Implements ``DPQuery.initial_global_state``."""
        return self.make_global_state(self._l2_norm_clip, self._stddev)

    def get_noised_result(self, sample_state, global_state):
        """The noised sum, the state with the round counter advanced, and the DP event."""
        flat = tf.nest.flatten(sample_state)
        noised = [
            value + tf.cast(tf.random.stateless_normal(
                tf.shape(value), seed=tf.random.experimental.stateless_fold_in(
                    global_state.seed, index), stddev=global_state.stddev), value.dtype)
            for index, value in enumerate(flat)
        ]
        new_state = global_state._replace(
            seed=global_state.seed + tf.constant([0, 1], tf.int64))
        event = dp_accounting.GaussianDpEvent(global_state.stddev / global_state.l2_norm_clip)
        return tf.nest.pack_sequence_as(sample_state, noised), new_state, event


class SeededQuantileAdaptiveClipSumQuery(tfp.QuantileAdaptiveClipSumQuery):
    """``QuantileAdaptiveClipSumQuery`` with both noisy sums seeded (updates, clipped count)."""

    def __init__(self, initial_l2_norm_clip, noise_multiplier, target_unclipped_quantile,
                 learning_rate, clipped_count_stddev, expected_num_records, seed: int,
                 geometric_update=True):
        """As the parent; the count's noise uses stream ``seed + 1``."""
        super().__init__(initial_l2_norm_clip, noise_multiplier, target_unclipped_quantile,
                         learning_rate, clipped_count_stddev, expected_num_records,
                         geometric_update)
        self._sum_query = SeededGaussianSumQuery(
            initial_l2_norm_clip, noise_multiplier * initial_l2_norm_clip, seed)
        # The parent's estimator counts records below the estimate shifted by -0.5 (norm 0.5).
        self._quantile_estimator_query._below_estimate_query = tfp.NormalizedQuery(  # noqa: SLF001
            SeededGaussianSumQuery(0.5, clipped_count_stddev, seed + 1),
            denominator=expected_num_records)

    def get_noised_result(self, sample_state, global_state):
        """The parent's result, keeping the advanced seed of the update noise."""
        result, new_state, event = super().get_noised_result(sample_state, global_state)
        # The parent rebuilds the sum state from the new clip alone: carry the seed over.
        seed = global_state.sum_state.seed + tf.constant([0, 1], tf.int64)
        return result, new_state._replace(sum_state=new_state.sum_state._replace(seed=seed)), event


def gaussian_adaptive(noise_multiplier: float, clients_per_round: float, seed: int,
                      initial_l2_norm_clip: float = 0.1, target_unclipped_quantile: float = 0.5,
                      learning_rate: float = 0.2, clipped_count_stddev: float | None = None,
                      ) -> tff.aggregators.UnweightedAggregationFactory:
    """``DifferentiallyPrivateFactory.gaussian_adaptive`` with noise drawn from ``seed``.

    Raises:
      ValueError: TFF's own checks (e.g. a count noise too low for the noise multiplier).
    """
    value_noise_multiplier, clipped_count_stddev = differential_privacy.adaptive_clip_noise_params(
        noise_multiplier, float(clients_per_round), clipped_count_stddev)
    query = SeededQuantileAdaptiveClipSumQuery(
        initial_l2_norm_clip, value_noise_multiplier, target_unclipped_quantile, learning_rate,
        clipped_count_stddev, float(clients_per_round), seed)
    return tff.aggregators.DifferentiallyPrivateFactory(
        tfp.NormalizedQuery(query, denominator=float(clients_per_round)))


def gaussian_fixed(noise_multiplier: float, clients_per_round: float, clip: float,
                   seed: int) -> tff.aggregators.UnweightedAggregationFactory:
    """``DifferentiallyPrivateFactory.gaussian_fixed`` with noise drawn from ``seed``."""
    query = SeededGaussianSumQuery(clip, clip * noise_multiplier, seed)
    return tff.aggregators.DifferentiallyPrivateFactory(
        tfp.NormalizedQuery(query, denominator=float(clients_per_round)))
