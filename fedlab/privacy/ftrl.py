"""DP-FTRL's aggregator (``aggregator=dp_ftrl``): tree-aggregated noise, restarted each epoch.

Kairouz, McMahan, Song, Thakkar, Thakurta, Xu, "Practical and Private (Deep) Learning without
Sampling or Shuffling" (ICML 2021). Each client's update is clipped to ``clip``; the sum over
rounds is released through a binary tree of Gaussian noise (TFF's
``DifferentiallyPrivateFactory.tree_aggregation`` query, ``TreeResidualSumQuery``: each round
gets the noised prefix sum minus the previous one), normalized by ``clients_per_round``, and the
server's optimizer applies it: server SGD with momentum is the paper's DP-FTRLM. The tree
restarts after every epoch (``tensorflow_privacy``'s ``RestartQuery`` with a period of
``ceil(N / clients_per_round)`` rounds), as the paper does with multiple epochs.

It needs ``schedule.sampling=epoch``: DP-FTRL's guarantee assumes no sampling, each client in
one round per epoch. Each epoch is dp-accounting's ``SingleEpochTreeAggregationDpEvent`` over
the epoch's rounds, composed over the epochs begun, with the RDP accountant under the
``REPLACE_SPECIAL`` relation that event is defined for (a client's data replaced by a special
one contributing zero). The noise is drawn from the run's seed, so runs reproduce.
"""

import logging
import math

import tensorflow_federated as tff
import tensorflow_privacy as tfp
from tensorflow_privacy.privacy.dp_query import restart_query

from fedlab.config.choices import Accountant, Sampling
from fedlab.errors import ConfigError
from fedlab.privacy.accounting import DEFAULT_DELTA, TREE, DpGuarantee, calibrate_noise
from fedlab.privacy.aggregator import parse_noise_multiplier

log = logging.getLogger("fedlab")


class RestartedTreeFactory(tff.aggregators.UnweightedAggregationFactory):
    """TFF's tree-aggregation DP mean, its tree restarted every ``period`` rounds.

    The tree's record specs are the update's, known only when the process is built, so the
    query is made in :meth:`create`.
    """

    def __init__(self, noise_multiplier: float, clients_per_round: int, clip: float,
                 period: int, seed: int):
        """The mechanism's settings (see the module doc)."""
        self.noise_multiplier, self.clients_per_round = noise_multiplier, clients_per_round
        self.clip, self.period, self.seed = clip, period, seed

    def create(self, value_type) -> tff.templates.AggregationProcess:
        """The DP mean of updates of ``value_type``.

        Args:
          value_type: the TFF type of a client's update.
        """
        specs = tff.types.type_to_tf_tensor_specs(value_type)
        tree = tfp.TreeResidualSumQuery.build_l2_gaussian_query(
            self.clip, self.noise_multiplier, specs, noise_seed=self.seed, use_efficient=True)
        restarted = tfp.RestartQuery(tree, restart_query.PeriodicRoundRestartIndicator(
            self.period))
        mean = tfp.NormalizedQuery(restarted, denominator=float(self.clients_per_round))
        return tff.aggregators.DifferentiallyPrivateFactory(mean).create(value_type)


class DpFtrlAggregator:
    """DP-FTRL's aggregator and the guarantee it gives (module doc)."""

    def __init__(self, noise_multiplier: str | float = 1.0, clients_per_round: int = 10,
                 clip: float = 0.1, target_epsilon: float | None = None,
                 target_delta: float = DEFAULT_DELTA, seed: int = 0):
        """Check every value; ``noise_multiplier="auto"`` calibrates it to ``target_epsilon``.

        Args:
          noise_multiplier: the tree's noise per node over the clipping norm, or ``auto``: the
            smallest that keeps epsilon <= ``target_epsilon`` after ``schedule.rounds``.
          clients_per_round: the cohort size the sum is divided by (``schedule.clients_per_round``).
          clip: the clipping norm of each client's update.
          target_epsilon: the budget: training stops after the last round within it (null: none).
          target_delta: the delta at which epsilon is reported.
          seed: the seed of the tree's noise.

        Raises:
          ConfigError: a value out of range, or ``auto`` without a target.
        """
        self.noise_multiplier = parse_noise_multiplier(noise_multiplier)
        self.auto = self.noise_multiplier is None
        if self.auto and target_epsilon is None:
            raise ConfigError("aggregator.noise_multiplier=auto needs aggregator.target_epsilon")
        if clients_per_round < 1 or not clip > 0 or not 0 < target_delta < 1:
            raise ConfigError("aggregator.clients_per_round must be >= 1, aggregator.clip > 0 "
                              "and aggregator.target_delta in (0, 1)")
        self.clients_per_round, self.clip = clients_per_round, clip
        self.target_epsilon, self.target_delta, self.seed = target_epsilon, target_delta, seed

    def for_federation(self, num_clients: int, rounds: int, sampling: Sampling = Sampling.uniform):
        """The TFF aggregator and its guarantee over ``rounds`` rounds of ``num_clients``.

        Args:
          num_clients: the federation's size N.
          rounds: the rounds to train.
          sampling: must be ``epoch``.

        Raises:
          ConfigError: another sampling, or no noise multiplier meets the target.
        """
        if Sampling(sampling) is not Sampling.epoch:
            raise ConfigError(
                f"aggregator=dp_ftrl needs schedule.sampling=epoch (DP-FTRL's guarantee has "
                f"each client in one round per epoch), got {Sampling(sampling).value}")
        noise = self.noise_multiplier
        if self.auto:
            noise = calibrate_noise(self.target_epsilon, rounds, num_clients,
                                    self.clients_per_round, self.target_delta, Sampling.epoch,
                                    Accountant.rdp, TREE)
            log.info("noise multiplier %.4f: the smallest that keeps epsilon <= %s at delta %s "
                     "over %d rounds", noise, self.target_epsilon, self.target_delta, rounds)
        period = math.ceil(num_clients / self.clients_per_round)
        factory = RestartedTreeFactory(noise, self.clients_per_round, self.clip, period,
                                       self.seed)
        return factory, DpGuarantee(
            noise_multiplier=noise, num_clients=num_clients,
            clients_per_round=self.clients_per_round, delta=self.target_delta,
            target_epsilon=self.target_epsilon, clipping=f"fixed, norm {self.clip}",
            sampling=Sampling.epoch, accountant=Accountant.rdp, mechanism=TREE)
