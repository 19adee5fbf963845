"""FedBuff (Nguyen et al. 2022): asynchronous clients, a buffer of updates, stale updates weighted.

On the ``clients`` group's simulated time: ``concurrency`` clients train at once; each downloads
the model version current when it starts and trains on it; a finished client's update enters
the buffer and a newly sampled client takes its slot; every ``buffer_size`` arrivals the server
aggregates the buffer and applies it (one row of ``metrics.csv`` per server update). An update
downloaded at version ``v`` and applied when the server is at version ``t`` has staleness
``s = t - v`` and enters the weighted mean with weight ``examples x w(s)``: ``w = 1``
(``staleness=none``) or ``w = (1 + s)^-exponent`` (``polynomial``, the paper's choice, exponent
0.5).

The pieces are TFF's: FedAvg's client work (``build_functional_model_delta_client_work`` or
``build_model_delta_client_work``), the configured aggregator and the apply-optimizer
finalizer, composed into one computation per server update that takes each buffered client's
own starting weights. The schedule (who starts when, on which version, who arrives when) is a
function of the seed and the device profiles alone, so a run reproduces, and a resumed run
recomputes it; the model versions still in use by clients in flight are kept in the
checkpoint. With ``buffer_size == concurrency`` and equally fast clients every client of a
"round" starts together and arrives together: FedAvg's rounds, the same clients and example
orders, and the same weights (tested).
"""

import collections
import dataclasses
import heapq
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.algorithms.base import (
    DEFAULT_LOOP,
    Aggregator,
    Algorithm,
    Composed,
    IncompatibleAggregator,
    ModelFn,
    Optimizer,
    is_unweighted,
    model_weights_accessors,
)
from fedlab.clients.communication import RoundCommunication, type_bits
from fedlab.clients.conditions import SPEEDS, ClientConditions
from fedlab.clients.datasets import ClientWork
from fedlab.clients.sampling import Cohort
from fedlab.clients.states import ClientStateStore
from fedlab.config.choices import Sampling, Staleness
from fedlab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class BufferedProcess:
    """FedBuff's computations: ``next(state, client_data, client_weights, scales)``.

    Each client trains from its own ``client_weights`` (the version it downloaded); ``scales``
    multiply the clients' example weights (staleness weighting). ``download_type`` is what a
    client downloads when it starts (the model), which ``next`` takes as a client input rather
    than broadcasting.
    """

    initialize: Any
    next: Any
    get_model_weights: Any
    set_model_weights: Any
    download_type: Any

    def with_next(self, next_fn) -> "BufferedProcess":
        """The same process with another ``next`` (e.g. one that builds the clients' data)."""
        return dataclasses.replace(self, next=next_fn)


class FedBuff(Algorithm):
    """FedBuff: buffered asynchronous aggregation with staleness weighting (needs simulated time).

    ``concurrency`` clients train at once; the server applies an update every ``buffer_size``
    arrivals; ``staleness`` ``none`` or ``polynomial`` (``(1 + s)^-staleness_exponent``).
    """

    name = "fedbuff"

    def __init__(self, concurrency: int = 10, buffer_size: int = 10,
                 staleness: Staleness = Staleness.polynomial, staleness_exponent: float = 0.5):
        """Check the settings.

        Args:
          concurrency: clients training at once (each on the model version current when it
            started).
          buffer_size: arrivals per server update: the server aggregates the buffer and applies
            it every ``buffer_size`` finished clients.
          staleness: how an update's weight falls with its staleness s: ``none`` (w = 1) or
            ``polynomial`` (w = (1 + s)^-``staleness_exponent``).
          staleness_exponent: the exponent of ``polynomial`` staleness weighting (0.5: the
            paper's choice).

        Raises:
          ConfigError: a non-positive concurrency, buffer size or a negative exponent.
        """
        for name, value in (("concurrency", concurrency), ("buffer_size", buffer_size)):
            if value < 1:
                raise ConfigError(f"algorithm.{name} must be a positive integer, got {value}")
        if staleness_exponent < 0:
            raise ConfigError(
                f"algorithm.staleness_exponent must be >= 0, got {staleness_exponent}")
        self.concurrency, self.buffer_size = concurrency, buffer_size
        self.staleness, self.staleness_exponent = Staleness(staleness), staleness_exponent

    def staleness_weight(self, staleness: int) -> float:
        """The factor an update of this staleness gets (1 for a fresh one)."""
        if self.staleness is Staleness.none or staleness == 0:
            return 1.0
        return float((1.0 + staleness) ** -self.staleness_exponent)

    def communication(self, process, measured: RoundCommunication) -> RoundCommunication:
        """Each client also downloads the model when it starts (a client input of ``next``)."""
        return RoundCommunication(
            measured.broadcast_bits_per_client + type_bits(process.download_type),
            measured.upload_bits_per_client)

    def cohorts(self, data, schedule, datasets, clients: ClientConditions,
                communication: RoundCommunication) -> "BufferedRoundClients":
        """Each server update's buffered arrivals on the clients' simulated time.

        Raises:
          ConfigError: a sampling other than ``uniform`` (FedBuff samples a client whenever a
            slot frees up).
        """
        sampling = Sampling(schedule.sampling)
        if sampling is not Sampling.uniform:
            raise ConfigError(f"algorithm=fedbuff samples a client whenever one finishes; "
                              f"schedule.sampling={sampling.value} needs rounds "
                              "(use uniform)")
        return BufferedRoundClients(data.train, datasets, self, schedule.seed, clients,
                                    schedule.local_epochs, communication)

    def compose(self, process, cohorts: "BufferedRoundClients") -> Composed:
        """The process handing each client the model version it downloaded (kept as state)."""
        versioned = VersionedProcess(process, cohorts.schedule)
        return Composed(versioned, cohorts, versioned.versions)

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP, num_clients: int = 0,
              ) -> BufferedProcess:
        """FedAvg's client work, aggregator and finalizer in one computation per server update.

        Raises:
          IncompatibleAggregator: a uniformly weighted (DP) aggregator.
        """
        del num_clients
        if is_unweighted(aggregator):
            raise IncompatibleAggregator(
                "its updates are weighted by examples and staleness; a uniformly weighted (DP) "
                "aggregator's accounting assumes one synchronous round of sampled clients")
        functional = isinstance(model_fn, tff.learning.models.FunctionalModel)
        if functional:
            @tff.tensorflow.computation
            def initial_weights():
                trainable, non_trainable = model_fn.initial_weights
                return tff.learning.models.ModelWeights(
                    tuple(tf.convert_to_tensor(w) for w in trainable),
                    tuple(tf.convert_to_tensor(w) for w in non_trainable))

            weights_type = initial_weights.type_signature.result
            update_type = weights_type[0]
            client_work = tff.learning.templates.build_functional_model_delta_client_work(
                model=model_fn, optimizer=client_optimizer,
                client_weighting=tff.learning.ClientWeighting.NUM_EXAMPLES,
                loop_implementation=loop)
        else:
            @tff.tensorflow.computation
            def initial_weights():
                return tff.learning.models.ModelWeights.from_model(model_fn())

            weights_type = initial_weights.type_signature.result
            update_type = weights_type.trainable
            client_work = tff.learning.templates.build_model_delta_client_work(
                model_fn=model_fn, optimizer=client_optimizer,
                client_weighting=tff.learning.ClientWeighting.NUM_EXAMPLES,
                loop_implementation=loop)
        distributor = tff.learning.templates.build_broadcast_process(weights_type)
        aggregation = aggregator.create(update_type, tff.TensorType(np.float32))
        finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
            server_optimizer, weights_type)
        data_type = client_work.next.type_signature.parameter[2]

        @tff.tensorflow.computation(tff.TensorType(np.float32), tff.TensorType(np.float32))
        def scaled(weight, scale):
            return weight * scale

        @tff.federated_computation
        def initialize():
            return tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
                tff.federated_eval(initial_weights, tff.SERVER), distributor.initialize(),
                client_work.initialize(), aggregation.initialize(), finalizer.initialize()))

        state_type = initialize.type_signature.result

        @tff.federated_computation(state_type, data_type,
                                   tff.FederatedType(weights_type, tff.CLIENTS),
                                   tff.FederatedType(np.float32, tff.CLIENTS))
        def next_fn(state, client_data, client_weights, scales):
            trained = client_work.next(state.client_work, client_weights, client_data)
            weights = tff.federated_map(scaled, (trained.result.update_weight, scales))
            aggregated = aggregation.next(state.aggregator, trained.result.update, weights)
            finalized = finalizer.next(state.finalizer, state.global_model_weights,
                                       aggregated.result)
            new_state = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
                finalized.result, state.distributor, trained.state, aggregated.state,
                finalized.state))
            metrics = tff.federated_zip(collections.OrderedDict(
                distributor=tff.federated_value((), tff.SERVER),
                client_work=trained.measurements, aggregator=aggregated.measurements,
                finalizer=finalized.measurements))
            return tff.learning.templates.LearningProcessOutput(new_state, metrics)

        get_model_weights, set_model_weights = model_weights_accessors(state_type.member)

        return BufferedProcess(initialize, next_fn, get_model_weights, set_model_weights,
                               weights_type)


# ---- the asynchronous schedule on simulated time


@dataclasses.dataclass(frozen=True)
class Arrival:
    """A client's finished update: who, from which start wave and version, when it arrived."""

    client_id: str
    wave: int  # the batch of clients started together (its shuffle seed derives from it)
    index: int  # its place in that wave
    version: int  # the model version it downloaded
    finished: float  # simulated time of its upload's end


@dataclasses.dataclass(frozen=True)
class ServerUpdate:
    """One server update: the buffered arrivals, when it happened, and clients started since."""

    arrivals: list[Arrival]
    seconds: float  # simulated time of the update
    started: int  # clients that started (downloaded) since the previous update
    in_flight_versions: frozenset[int]  # versions clients still train on after it


class BufferedSchedule:
    """The FedBuff timeline from the seed, the device profiles and each client's work.

    Clients start in waves: all slots freed at one simulated instant are refilled together,
    sampled with TFF's seeded uniform sampler for the wave's number (clients still in flight
    skipped), so with equally fast clients and ``buffer_size == concurrency`` wave ``r`` holds
    exactly FedAvg's round-``r`` sample. Arrivals at one instant enter the buffer in start order;
    the server updates as soon as it holds ``buffer_size`` of them.
    """

    def __init__(self, client_ids: list[str], durations: dict[str, float], concurrency: int,
                 buffer_size: int, seed: int, sampler=None):
        """``durations[client]``: its simulated download + training + upload time.

        ``sampler(wave, size)`` (default: TFF's seeded uniform sampler over ``client_ids``)
        gives a wave's candidates in order.

        Raises:
          ConfigError: more concurrent clients than the federation has.
        """
        if concurrency > len(client_ids):
            raise ConfigError(f"algorithm.concurrency={concurrency} exceeds the "
                              f"{len(client_ids)} clients of the dataset")
        self._sampler = sampler or tff.simulation.build_uniform_sampling_fn(
            client_ids, replace=False, random_seed=seed)
        self.durations, self.concurrency, self.buffer_size = durations, concurrency, buffer_size
        self._updates: list[ServerUpdate] = []
        self._heap: list[tuple[float, int, Arrival]] = []
        self._order, self._wave, self._version, self._started = 0, 0, 0, 0
        self._pending: list[Arrival] = []
        self._start(0.0)

    def _start(self, now: float) -> None:
        free = self.concurrency - len(self._heap)
        if free <= 0:
            return
        self._wave += 1
        busy = {arrival.client_id for _, _, arrival in self._heap}
        sample = [c for c in self._sampler(self._wave, free + len(busy)) if c not in busy][:free]
        for index, client_id in enumerate(sample):
            arrival = Arrival(client_id, self._wave, index, self._version,
                              now + self.durations[client_id])
            heapq.heappush(self._heap, (arrival.finished, self._order, arrival))
            self._order += 1
        self._started += len(sample)

    def update(self, number: int) -> ServerUpdate:
        """The ``number``-th server update (1-based), simulating up to it if needed."""
        while len(self._updates) < number:
            now = self._heap[0][0]
            while self._heap and self._heap[0][0] == now:
                self._pending.append(heapq.heappop(self._heap)[2])
                if len(self._pending) == self.buffer_size:
                    in_flight = frozenset(a.version for _, _, a in self._heap)
                    self._updates.append(ServerUpdate(self._pending, now, self._started,
                                                      in_flight))
                    self._pending, self._started = [], 0
                    self._version += 1
            self._start(now)
        return self._updates[number - 1]


class BufferedRoundClients:
    """Each server update's cohort: the buffered clients' inputs, staleness and time columns.

    A cohort input is ``(client input, version downloaded, staleness weight, update number)``
    (:class:`VersionedProcess` reads it); columns: ``clients_sampled`` (clients started since
    the previous update: each downloaded the model), ``clients_reported`` (the buffer),
    ``staleness_mean``, ``staleness_max``, ``sim_round_seconds`` (time since the previous
    update).
    """

    def __init__(self, client_data, datasets, algorithm: FedBuff, seed: int,
                 conditions: ClientConditions, local_epochs: int,
                 communication: RoundCommunication):
        """Draw the device profiles and plan every client's simulated time.

        Raises:
          ConfigError: no simulated time, dropouts/deadlines/over-selection (not modelled
            here), or more concurrent clients than clients.
        """
        if not conditions.simulates_time:
            raise ConfigError("algorithm=fedbuff needs simulated time: use clients=heterogeneous "
                              "(with clients=ideal every client would arrive at once)")
        if (conditions.dropout or conditions.over_selection
                or conditions.deadline_seconds is not None):
            raise ConfigError("algorithm=fedbuff takes device speeds and links only: set "
                              "clients.dropout=0, clients.over_selection=0 and "
                              "clients.deadline_seconds=null")
        self._datasets, self.algorithm = datasets, algorithm
        ids = list(client_data.client_ids)
        self.profiles = conditions.profiles(ids)
        self.profiles.insert(0, "train_examples", [
            int(client_data.create_tf_dataset_for_client(c).cardinality()) for c in ids])
        durations = {}
        for client_id in ids:
            speed, down, up = (self.profiles.at[client_id, name] for name in SPEEDS)
            durations[client_id] = (
                communication.broadcast_bits_per_client / (down * 1e6)
                + self.profiles.at[client_id, "train_examples"] * local_epochs / speed
                + communication.upload_bits_per_client / (up * 1e6))
        self.schedule = BufferedSchedule(ids, durations, algorithm.concurrency,
                                         algorithm.buffer_size, seed)
        self._seed = seed

    def work(self, arrival: Arrival) -> ClientWork:
        """The client's work, shuffled with the seed of (seed, wave, index) as FedAvg's rounds."""
        seed = int(np.random.SeedSequence([self._seed, arrival.wave, arrival.index])
                   .generate_state(1)[0])
        return ClientWork(arrival.client_id, seed)

    def __call__(self, update_number: int) -> Cohort:
        """The ``update_number``-th server update's buffered clients."""
        update = self.schedule.update(update_number)
        previous = self.schedule.update(update_number - 1).seconds if update_number > 1 else 0.0
        version = update_number - 1  # the server's version when the buffer is applied
        staleness = [version - a.version for a in update.arrivals]
        inputs = self._datasets([self.work(a) for a in update.arrivals])
        return Cohort(
            [(data, a.version, self.algorithm.staleness_weight(s), update_number)
             for data, a, s in zip(inputs, update.arrivals, staleness, strict=True)],
            {"clients_sampled": update.started, "clients_reported": len(update.arrivals),
             "clients_dropped": 0, "clients_partial": 0,
             "staleness_mean": float(np.mean(staleness)), "staleness_max": int(max(staleness)),
             "sim_round_seconds": update.seconds - previous},
            [a.client_id for a in update.arrivals])


class VersionedProcess:
    """A :class:`BufferedProcess` as the loop sees a ``LearningProcess``.

    Keeps the model versions clients in flight still train on (in ``versions``, a store saved
    with every checkpoint) and hands each buffered client the version it downloaded.
    """

    def __init__(self, process: BufferedProcess, schedule: BufferedSchedule):
        """Run ``process`` on ``schedule``'s timeline."""
        self._process, self._schedule = process, schedule
        self.versions = ClientStateStore(lambda: [])
        self.initialize = process.initialize
        self.get_model_weights = process.get_model_weights
        self.set_model_weights = process.set_model_weights

    def next(self, state, inputs):
        """One server update from the buffered clients' ``(input, version, scale, update)``."""
        update_number = inputs[0][3]
        current = self._process.get_model_weights(state)
        self.versions.put([str(update_number - 1)], [_flatten(current)])
        weights = [_unflatten(self.versions.get([str(version)])[0], current)
                   for _, version, _, _ in inputs]
        output = self._process.next(state, [data for data, *_ in inputs], weights,
                                    [np.float32(scale) for _, _, scale, _ in inputs])
        keep = {str(v) for v in self._schedule.update(update_number).in_flight_versions}
        self.versions.keep(keep)
        return output


def _flatten(weights: tff.learning.models.ModelWeights) -> list[np.ndarray]:
    return [np.asarray(w) for w in (*weights.trainable, *weights.non_trainable)]


def _unflatten(arrays: list[np.ndarray], like: tff.learning.models.ModelWeights):
    trainable = len(like.trainable)
    return tff.learning.models.ModelWeights(
        trainable=list(arrays[:trainable]), non_trainable=list(arrays[trainable:]))
