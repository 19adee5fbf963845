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


class Algorithm:
    """A TFF learning algorithm: its weighted and unweighted builders and their arguments."""

    name = ""
    # Whether a client dataset may be reshuffled each time it is iterated. TFF's worker does
    # not reproduce the reshuffle of a second iteration of a seeded dataset, so algorithms that
    # iterate a client's data twice per round keep one seeded order (see MimeLite).
    reshuffle_each_iteration = True
    # Whether clients keep state between rounds: ``build`` then returns a
    # ``fedlab.client_states.StatefulClientsProcess`` (see SCAFFOLD).
    client_state = False
    # Whether clients train asynchronously on simulated time (FedBuff): ``build`` then returns
    # a ``fedlab.algorithms.fedbuff.BufferedProcess``.
    asynchronous = False
    # TFF's builders for example-weighted and uniformly weighted aggregators (None: none).
    weighted_builder: Callable | None = None
    unweighted_builder: Callable | None = None

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """The builder's keyword arguments besides the model, aggregator and client loop."""
        return {"client_optimizer_fn": client_optimizer, "server_optimizer_fn": server_optimizer}

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP, num_clients: int = 0,
              ) -> tff.learning.templates.LearningProcess:
        """The learning process with TFF's builder for this kind of aggregator.

        ``num_clients``, the federation's size, is for algorithms that need it (SCAFFOLD).

        Raises:
          IncompatibleAggregator: TFF has no builder of this algorithm for this aggregator.
        """
        del num_clients
        unweighted = is_unweighted(aggregator)
        builder = self.unweighted_builder if unweighted else self.weighted_builder
        if builder is None:
            kind = "uniformly weighted" if unweighted else "example-weighted"
            raise IncompatibleAggregator(f"TFF has no {self.name} builder for a {kind} aggregator")
        return builder(model_fn, model_aggregator=aggregator, loop_implementation=loop,
                       **self.arguments(client_optimizer, server_optimizer))


class FedAvg(Algorithm):
    """Federated averaging (McMahan et al. 2017)."""

    name = "fedavg"
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_fed_avg)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_fed_avg)


class FedProx(Algorithm):
    """FedProx (Li et al. 2020): FedAvg with a proximal term ``proximal_strength/2 ||w - w_0||²``.

    With ``proximal_strength=0`` it computes what FedAvg does.
    """

    name = "fedprox"
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_fed_prox)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_fed_prox)

    def __init__(self, proximal_strength: float = 0.01):
        """``proximal_strength``: the weight mu of the proximal term (>= 0).

        Raises:
          ConfigError: a negative strength.
        """
        if proximal_strength < 0:
            raise ConfigError(
                f"algorithm.proximal_strength must be >= 0, got {proximal_strength}")
        self.proximal_strength = proximal_strength

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """FedAvg's arguments and the proximal strength."""
        return {**super().arguments(client_optimizer, server_optimizer),
                "proximal_strength": self.proximal_strength}


class FedSgd(Algorithm):
    """Federated SGD: each client sends the gradient of its whole local data, the server steps.

    The client optimizer is unused (clients take no local steps); TFF's ``build_fed_sgd`` takes
    only example-weighted aggregators.
    """

    name = "fedsgd"
    weighted_builder = staticmethod(tff.learning.algorithms.build_fed_sgd)

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """The server optimizer alone."""
        return {"server_optimizer_fn": server_optimizer}


class MimeLite(Algorithm):
    """Mime Lite (Karimireddy et al. 2021): clients step with the server optimizer's state.

    The client optimizer of the ``optimizer`` group is Mime's base optimizer. Each round a
    client iterates its data twice (the full-batch gradient, then local training), both passes
    in the same seeded order, so runs reproduce; with ``schedule.local_epochs > 1`` every local
    epoch also uses that order.
    """

    name = "mime_lite"
    reshuffle_each_iteration = False
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_mime_lite)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_mime_lite)

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """Mime's base optimizer and server optimizer."""
        return {"base_optimizer": client_optimizer, "server_optimizer": server_optimizer}


def model_weights_accessors(server_state_type) -> tuple:
    """``get_model_weights`` and ``set_model_weights`` of a ``LearningAlgorithmState`` state.

    As TFF's composed learning processes define them, for ``server_state_type``.
    """

    @tff.tensorflow.computation(server_state_type)
    def get_model_weights(state):
        return state.global_model_weights

    @tff.tensorflow.computation(server_state_type, server_state_type.global_model_weights)
    def set_model_weights(state, weights):
        return tff.learning.templates.LearningAlgorithmState(
            weights, state.distributor, state.client_work, state.aggregator, state.finalizer)

    return get_model_weights, set_model_weights

