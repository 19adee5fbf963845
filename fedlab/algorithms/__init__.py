"""Federated algorithms: each option of the ``algorithm`` group builds a TFF learning process.

An algorithm object takes the pieces every algorithm shares — a TFF model function, the
aggregator, the client and server optimizers — and returns a
``tff.learning.templates.LearningProcess``. Weighted aggregators get TFF's example-weighted
variant, unweighted ones (DP-FedAvg) the uniformly weighted one where TFF has it; a combination
TFF cannot build raises :class:`IncompatibleAggregator` before training.

The client loop is ``DATASET_ITERATOR``: on TFF's C++ worker it computes exactly what TFF's
default ``DATASET_REDUCE`` does (same batches in the same order, bit-identical weights) with
less per-client overhead (``benchmarks/round_overhead.py`` measures both).
"""

from collections.abc import Callable

import tensorflow_federated as tff

from fedlab.errors import ConfigError

ModelFn = Callable[[], tff.learning.models.VariableModel]
Aggregator = (tff.aggregators.WeightedAggregationFactory
              | tff.aggregators.UnweightedAggregationFactory)
Optimizer = tff.learning.optimizers.Optimizer
DEFAULT_LOOP = tff.learning.LoopImplementation.DATASET_ITERATOR


class IncompatibleAggregator(ConfigError):
    """TFF cannot build this algorithm with this aggregator."""


def is_unweighted(aggregator: Aggregator) -> bool:
    """Whether ``aggregator`` weights clients uniformly (it cannot take example weights)."""
    return isinstance(aggregator, tff.aggregators.UnweightedAggregationFactory)


class FedAvg:
    """Federated averaging (McMahan et al. 2017): ``build_weighted_fed_avg``."""

    name = "fedavg"

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP,
              ) -> tff.learning.templates.LearningProcess:
        """The learning process; unweighted aggregators get ``build_unweighted_fed_avg``."""
        builder = (tff.learning.algorithms.build_unweighted_fed_avg if is_unweighted(aggregator)
                   else tff.learning.algorithms.build_weighted_fed_avg)
        return builder(model_fn, client_optimizer_fn=client_optimizer,
                       server_optimizer_fn=server_optimizer, model_aggregator=aggregator,
                       loop_implementation=loop)


class FedProx:
    """FedProx (Li et al. 2020): FedAvg with a proximal term ``proximal_strength/2 ||w - w_0||²``.

    With ``proximal_strength=0`` it computes what FedAvg does.
    """

    name = "fedprox"

    def __init__(self, proximal_strength: float = 0.01):
        """``proximal_strength``: the weight mu of the proximal term (>= 0).

        Raises:
          ConfigError: a negative strength.
        """
        if proximal_strength < 0:
            raise ConfigError(
                f"algorithm.proximal_strength must be >= 0, got {proximal_strength}")
        self.proximal_strength = proximal_strength

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP,
              ) -> tff.learning.templates.LearningProcess:
        """``build_weighted_fed_prox`` (``build_unweighted_fed_prox`` for unweighted ones)."""
        builder = (tff.learning.algorithms.build_unweighted_fed_prox if is_unweighted(aggregator)
                   else tff.learning.algorithms.build_weighted_fed_prox)
        return builder(model_fn, proximal_strength=self.proximal_strength,
                       client_optimizer_fn=client_optimizer, server_optimizer_fn=server_optimizer,
                       model_aggregator=aggregator, loop_implementation=loop)


class FedSgd:
    """Federated SGD: each client sends the gradient of its whole local data, the server steps.

    The client optimizer is unused (clients take no local steps).
    """

    name = "fedsgd"

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP,
              ) -> tff.learning.templates.LearningProcess:
        """``build_fed_sgd``; TFF has no unweighted variant.

        Raises:
          IncompatibleAggregator: an unweighted aggregator.
        """
        del client_optimizer
        if is_unweighted(aggregator):
            raise IncompatibleAggregator(
                "TFF's build_fed_sgd takes only weighted aggregators, and this one weights "
                "clients uniformly")
        return tff.learning.algorithms.build_fed_sgd(
            model_fn, server_optimizer_fn=server_optimizer, model_aggregator=aggregator,
            loop_implementation=loop)


class MimeLite:
    """Mime Lite (Karimireddy et al. 2021): clients step with the server optimizer's state.

    The client optimizer of the ``optimizer`` group is Mime's base optimizer.
    """

    name = "mime_lite"

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP,
              ) -> tff.learning.templates.LearningProcess:
        """``build_weighted_mime_lite`` (``build_unweighted_mime_lite`` for unweighted ones)."""
        builder = (tff.learning.algorithms.build_unweighted_mime_lite if is_unweighted(aggregator)
                   else tff.learning.algorithms.build_weighted_mime_lite)
        return builder(model_fn, base_optimizer=client_optimizer,
                       server_optimizer=server_optimizer, model_aggregator=aggregator,
                       loop_implementation=loop)
