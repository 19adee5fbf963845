"""The algorithm protocol: an option of the ``algorithm`` group builds and drives its round.

The federated trainer asks its algorithm, and never branches on what kind it is, for:

- ``model_fn(task, input_spec)``: the TFF model the process is built on;
- ``build(...)``: the learning process (TFF computations), from the model, the aggregator and
  the client and server optimizers; a combination TFF cannot build raises
  :class:`IncompatibleAggregator` before training;
- ``communication(process, measured)``: the bits a client sends and receives per round;
- ``cohorts(...)``: who trains in each round (sampled, simulated, buffered...);
- ``compose(process, cohorts)``: the process and cohorts as the loop runs them, with the
  client-held state a checkpoint must keep (:class:`Composed`).

A new algorithm is one module here (a subclass overriding what it does differently) and one
YAML file in ``conf/algorithm/``. Weighted aggregators get TFF's example-weighted builder,
unweighted ones (DP-FedAvg) the uniformly weighted one where TFF has it.

The client loop is ``DATASET_ITERATOR``: on TFF's C++ worker it computes exactly what TFF's
default ``DATASET_REDUCE`` does (same batches in the same order, bit-identical weights) with
less per-client overhead (``benchmarks/round_overhead.py`` measures both).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tensorflow_federated as tff

from fedlab.clients.communication import RoundCommunication
from fedlab.clients.conditions import ClientConditions, SimulatedRoundClients
from fedlab.clients.sampling import Cohort, RoundClients
from fedlab.clients.states import ClientStateStore, StoreBackedProcess, with_client_ids
from fedlab.config.schedule import Schedule
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


@dataclass
class Composed:
    """A built process as the loop runs it.

    Attributes:
      process: what the loop calls: ``initialize``, ``next(state, cohort inputs)``,
        ``get_model_weights``, ``set_model_weights`` (a TFF ``LearningProcess`` or alike).
      cohorts: ``cohorts(round)`` gives the round's :class:`~fedlab.clients.sampling.Cohort`.
      states: state kept between rounds outside the server state (clients' states, model
        versions in flight), saved with every checkpoint and restored on resume; ``None``.
      figures: figures for ``summary.json`` at the end of training.
    """

    process: Any
    cohorts: Callable[[int], Cohort]
    states: ClientStateStore | None = None
    figures: Callable[[], dict] = field(default=dict)


class Algorithm:
    """A federated algorithm: TFF builders and the hooks the trainer asks it (module doc)."""

    name = ""
    # Whether a client dataset may be reshuffled each time it is iterated. TFF's worker does
    # not reproduce the reshuffle of a second iteration of a seeded dataset, so algorithms that
    # iterate a client's data twice per round keep one seeded order (see MimeLite).
    reshuffle_each_iteration = True
    # Whether the built process may be kept in the computation cache (a TFF LearningProcess).
    cacheable = True
    # TFF's builders for example-weighted and uniformly weighted aggregators (None: none).
    weighted_builder: Callable | None = None
    unweighted_builder: Callable | None = None

    def model_fn(self, task, input_spec):
        """The TFF model ``build`` takes: the task's functional model (TFF's fast path).

        Args:
          task: the run's :class:`~fedlab.tasks.Task`.
          input_spec: the element spec of a preprocessed client dataset.
        """
        return task.tff_model(input_spec)

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """The builder's keyword arguments besides the model, aggregator and client loop."""
        return {"client_optimizer_fn": client_optimizer, "server_optimizer_fn": server_optimizer}

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP, num_clients: int = 0,
              ) -> tff.learning.templates.LearningProcess:
        """The learning process with TFF's builder for this kind of aggregator.

        Args:
          model_fn: what :meth:`model_fn` returned.
          aggregator: the TFF aggregation factory.
          client_optimizer: the clients' optimizer.
          server_optimizer: the server's optimizer.
          loop: TFF's client loop implementation.
          num_clients: the federation's size, for algorithms that need it (SCAFFOLD).

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

    def client_work(self, model_fn: ModelFn, client_optimizer: Optimizer, unweighted: bool,
                    loop: tff.learning.LoopImplementation = DEFAULT_LOOP):
        """The TFF client work ``build`` composes, for wrapping it (``None``: not TFF's).

        Args:
          model_fn: what :meth:`model_fn` returned.
          client_optimizer: the clients' optimizer.
          unweighted: whether clients weigh equally (an unweighted aggregator).
          loop: TFF's client loop implementation.
        """
        del model_fn, client_optimizer, unweighted, loop
        return None

    def communication(self, process, measured: RoundCommunication) -> RoundCommunication:
        """A client's bits per round: what the round's computation moves (``measured``)."""
        del process
        return measured

    def cohorts(self, data, schedule: Schedule, datasets, clients: ClientConditions,
                communication: RoundCommunication) -> RoundClients:
        """Each round's cohort: every sampled client (ideal clients) or the simulated ones.

        Args:
          data: the run's :class:`~fedlab.data.FederatedData`.
          schedule: the run's schedule.
          datasets: ``datasets(work)`` gives ``process.next`` its client argument.
          clients: how sampled clients behave.
          communication: a client's bits per round (simulated links take time).
        """
        if clients.ideal:
            return RoundClients(data.train.client_ids, datasets, schedule.clients_per_round,
                                seed=schedule.seed, sampling=schedule.sampling)
        return SimulatedRoundClients(
            data.train, datasets, schedule.clients_per_round, schedule.seed, clients,
            local_epochs=schedule.local_epochs, batch_size=schedule.batch_size,
            communication=communication, sampling=schedule.sampling)

    def compose(self, process, cohorts: Callable[[int], Cohort]) -> Composed:
        """The process and cohorts as the loop runs them (here: as they are)."""
        return Composed(process, cohorts)


class StatefulClientsAlgorithm(Algorithm):
    """An algorithm whose clients keep state between rounds (SCAFFOLD, FedDyn).

    ``build`` returns a :class:`~fedlab.clients.states.StatefulClientsProcess`; its clients'
    states live in a :class:`~fedlab.clients.states.ClientStateStore` saved with every
    checkpoint. Its client loop is written here on TFF's Keras-model path (a ``VariableModel``
    function) and its process is not a TFF ``LearningProcess``, so it is not cached.
    """

    cacheable = False

    def model_fn(self, task, input_spec):
        """The task's ``VariableModel`` function (the client loop is written here)."""
        return task.tff_model_fn(input_spec)

    def compose(self, process, cohorts: Callable[[int], Cohort]) -> Composed:
        """The process reading and writing its clients' states in a store, by client id."""
        store = ClientStateStore(process.initial_client_state)
        return Composed(
            StoreBackedProcess(process, store), with_client_ids(cohorts), store,
            figures=lambda: {"client_states_kept": len(store),
                             "client_states_MiB": store.nbytes / 2**20})


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

