"""Clients as they really are: dropouts, over-selection, device speeds, links and deadlines.

Options of the ``clients`` group. :class:`ClientConditions` holds the settings; it draws every
client's device profile once from the seed and plans each round: which sampled clients report,
how many local batches each finishes, and how long the round takes in simulated time, from the
exact bits the built process sends (``fedlab.clients.communication``).

A client's simulated time in a round is::

    download bits / downlink + examples trained / examples_per_second + upload bits / uplink

(a speed left unset costs no time). The round ends when ``clients_per_round`` clients have
reported (with ``over_selection`` the rest are discarded, as production systems do); when fewer
report, it ends at the deadline if one is set (the server cannot know that nobody else will
report), else at the last report (dropped clients are noticed at once). Every draw is a function
of (seed, client) or (seed, round), so a resumed run sees the same clients, profiles and
dropouts as an uninterrupted one.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import tensorflow as tf

from fedlab.attacks import Attack
from fedlab.clients.communication import RoundCommunication
from fedlab.clients.datasets import ALL_BATCHES
from fedlab.clients.sampling import Cohort, RoundClients
from fedlab.config.choices import AttackKind, Sampling
from fedlab.errors import ConfigError

SPEEDS = ("examples_per_second", "downlink_mbps", "uplink_mbps")
# Streams drawn from the seed, kept apart from each other and from fedlab's other seeds.
_PROFILE_STREAM, _DROPOUT_STREAM = 1201, 1202


@dataclass(frozen=True)
class ClientOutcome:
    """What one sampled client does in a round (``batches`` 0 when it is not aggregated)."""

    client_id: str
    index: int  # its place in the round's sample (its shuffle seed derives from it)
    status: str  # reported, partial, dropped_out, missed_deadline, not_needed
    batches: int
    examples: int
    seconds: float  # simulated time until its upload finished (or until it stopped)


@dataclass(frozen=True)
class RoundPlan:
    """The sampled clients' fates in one round and the round's simulated duration."""

    clients: list[ClientOutcome]
    seconds: float | None  # None when no speed is simulated
    columns: dict[str, float] = field(default_factory=dict)

    @property
    def reporting(self) -> list[ClientOutcome]:
        """The clients whose updates are aggregated, in sample order."""
        return [c for c in self.clients if c.status in ("reported", "partial")]


class ClientConditions:
    """How sampled clients behave: availability, device speed, links and a round deadline.

    The default (every argument at its default) is ``clients=ideal``: every sampled client
    reports its full work at once, and training is exactly what it is without this class.
    Malicious clients (``attack``) are described by :attr:`attack` (:mod:`fedlab.attacks`).
    """

    def __init__(self, dropout: float = 0.0, over_selection: float = 0.0,
                 examples_per_second: float | None = None, uplink_mbps: float | None = None,
                 downlink_mbps: float | None = None, spread: float = 0.0,
                 deadline_seconds: float | None = None, partial_work: bool = False,
                 seed: int = 0, attack: AttackKind = AttackKind.none,
                 attack_fraction: float = 0.0, attack_scale: float = 1.0,
                 backdoor_target: int = 0):
        """Check the settings.

        Args:
          dropout: probability that a sampled client does not report, drawn per round.
          over_selection: sample ceil(K (1 + over_selection)) clients, aggregate the first K.
          examples_per_second: median training speed of the per-client log-normal profiles
            (``None``: instant).
          uplink_mbps: median upload bandwidth, Mbit/s (``None``: instant).
          downlink_mbps: median download bandwidth, Mbit/s (``None``: instant).
          spread: standard deviation of the profiles' logarithms (0: every client the median).
          deadline_seconds: a client whose simulated time exceeds it does not report, or with
            ``partial_work`` sends the local batches it finished by then.
          partial_work: see ``deadline_seconds``.
          seed: the seed of the profiles, dropouts and malicious clients.
          attack: what malicious clients do: ``none``, ``sign_flip``, ``gaussian``,
            ``label_flip`` or ``backdoor`` (:mod:`fedlab.attacks`).
          attack_fraction: the fraction of the federation that is malicious, in [0, 1).
          attack_scale: ``sign_flip``'s and ``gaussian``'s factor, ``backdoor``'s boost (> 0).
          backdoor_target: the class ``backdoor`` relabels triggered images to.

        Raises:
          ConfigError: a value outside its range, named with the range.
        """
        self.attack = Attack(attack, attack_fraction, attack_scale, backdoor_target, seed)
        if not 0 <= dropout < 1:
            raise ConfigError(f"clients.dropout must be in [0, 1), got {dropout}")
        if over_selection < 0:
            raise ConfigError(f"clients.over_selection must be >= 0, got {over_selection}")
        if spread < 0:
            raise ConfigError(f"clients.spread must be >= 0, got {spread}")
        medians = {"examples_per_second": examples_per_second, "uplink_mbps": uplink_mbps,
                   "downlink_mbps": downlink_mbps, "deadline_seconds": deadline_seconds}
        for name, value in medians.items():
            if value is not None and not value > 0:
                raise ConfigError(f"clients.{name} must be positive (or null), got {value}")
        self.dropout, self.over_selection, self.spread = dropout, over_selection, spread
        self.medians = {name: medians[name] for name in SPEEDS}
        self.deadline_seconds, self.partial_work, self.seed = deadline_seconds, partial_work, seed
        if deadline_seconds is not None and not self.simulates_time:
            raise ConfigError("clients.deadline_seconds needs a simulated speed "
                              "(examples_per_second, uplink_mbps or downlink_mbps)")
        if partial_work and deadline_seconds is None:
            raise ConfigError("clients.partial_work needs clients.deadline_seconds")

    @property
    def simulates_time(self) -> bool:
        """Whether any device speed or link is simulated."""
        return any(value is not None for value in self.medians.values())

    @property
    def ideal(self) -> bool:
        """Every sampled client reports its full work instantly (today's plain simulation)."""
        return (self.dropout == 0 and self.over_selection == 0 and not self.simulates_time)

    def sample_size(self, clients_per_round: int) -> int:
        """How many clients a round samples to aggregate ``clients_per_round``."""
        return math.ceil(round(clients_per_round * (1 + self.over_selection), 9))

    def profiles(self, client_ids: list[str]) -> pd.DataFrame:
        """Every client's device profile, indexed by client id, drawn once from the seed.

        Each simulated speed is ``median * exp(spread * N(0, 1))``, independently per client and
        per speed; unsimulated speeds are infinite.
        """
        rng = np.random.default_rng([self.seed, _PROFILE_STREAM])
        normal = rng.standard_normal((len(client_ids), len(SPEEDS)))
        columns = {
            name: (np.full(len(client_ids), np.inf) if median is None
                   else median * np.exp(self.spread * normal[:, column]))
            for column, (name, median) in enumerate(self.medians.items())}
        return pd.DataFrame(columns, index=pd.Index(client_ids, name="client"))

    def plan_round(self, round_num: int, sampled: list[str], examples: list[int],
                   batch_size: int, clients_per_round: int, profiles: pd.DataFrame,
                   bits_down: int, bits_up: int) -> RoundPlan:
        """Decide the fate of ``round_num``'s ``sampled`` clients.

        Args:
          round_num: the round (dropouts are drawn from the seed and the round).
          sampled: the sampled client ids, in sample order.
          examples: the examples each sampled client trains on with full local work (its
            examples times local epochs).
          batch_size: examples per local batch (partial work sends whole batches).
          clients_per_round: how many reports the round aggregates at most.
          profiles: the device profiles (:meth:`profiles`).
          bits_down: what one client receives in a round.
          bits_up: what one client sends in a round.
        """
        drops = (np.random.default_rng([self.seed, _DROPOUT_STREAM, round_num])
                 .random(len(sampled)) < self.dropout)
        candidates = []
        fates = zip(sampled, examples, drops, strict=True)
        for index, (client_id, full, dropped) in enumerate(fates):
            speed, down, up = (profiles.at[client_id, name] for name in SPEEDS)
            transfer = bits_down / (down * 1e6) + bits_up / (up * 1e6)
            batches, trained = math.ceil(full / batch_size), full
            seconds = transfer + trained / speed
            status = "reported"
            if dropped:
                status = "dropped_out"
            elif self.deadline_seconds is not None and seconds > self.deadline_seconds:
                status, batches, trained = "missed_deadline", 0, 0
                if self.partial_work:
                    affordable = (self.deadline_seconds - transfer) * speed
                    batches = max(0, int(affordable // batch_size))
                    trained = min(batches * batch_size, full)
                    if batches:
                        status = "partial"
                seconds = (transfer + trained / speed if batches
                           else self.deadline_seconds)
            candidates.append(ClientOutcome(client_id, index, status, batches, trained, seconds))
        finished = sorted((c for c in candidates if c.status in ("reported", "partial")),
                          key=lambda c: (c.seconds, c.index))
        kept = {c.index for c in finished[:clients_per_round]}
        clients = [c if c.status in ("dropped_out", "missed_deadline") or c.index in kept
                   else ClientOutcome(c.client_id, c.index, "not_needed", 0, 0, c.seconds)
                   for c in candidates]
        reporting = [c for c in clients if c.index in kept]
        seconds = None
        if self.simulates_time:
            if len(reporting) < clients_per_round and self.deadline_seconds is not None:
                seconds = self.deadline_seconds
            else:
                seconds = max((c.seconds for c in reporting), default=0.0)
        columns = {
            "clients_sampled": len(sampled),
            "clients_reported": len(reporting),
            "clients_dropped": len(sampled) - len(reporting),
            "clients_partial": sum(c.status == "partial" for c in reporting),
        }
        if seconds is not None:
            columns["sim_round_seconds"] = seconds
        return RoundPlan(clients, seconds, columns)


class SimulatedRoundClients(RoundClients):
    """Each round's cohort under :class:`ClientConditions`: only reporting clients train.

    Samples ``conditions.sample_size(clients_per_round)`` clients, plans the round, and builds
    the datasets of the clients that report — a client with partial work gets only the local
    batches it finished. The cohort's columns are the plan's (``clients_sampled``,
    ``clients_reported``, ``clients_dropped``, ``clients_partial``, ``sim_round_seconds``).
    """

    def __init__(self, client_data, datasets, clients_per_round: int, seed: int,
                 conditions: ClientConditions, local_epochs: int, batch_size: int,
                 communication: RoundCommunication, sampling: Sampling = Sampling.uniform):
        """Draw the device profiles and count every client's examples.

        ``datasets(work)`` turns the reporting clients' work into ``process.next``'s input;
        ``sampling`` draws each round's sample (:class:`~fedlab.clients.sampling.RoundClients`).

        Raises:
          ConfigError: over-selection samples more clients than there are.
        """
        sample_size = conditions.sample_size(clients_per_round)
        if sample_size > len(client_data.client_ids):
            raise ConfigError(
                f"clients.over_selection={conditions.over_selection} samples {sample_size} "
                f"clients per round but the dataset has {len(client_data.client_ids)}")
        super().__init__(client_data.client_ids, datasets, sample_size, seed, sampling)
        self.conditions, self.clients_per_round = conditions, clients_per_round
        self.local_epochs, self.batch_size = local_epochs, batch_size
        self.communication = communication
        self.profiles = conditions.profiles(list(client_data.client_ids))
        self.profiles.insert(0, "train_examples", [
            _count(client_data.create_tf_dataset_for_client(c)) for c in self.profiles.index])

    def plan(self, round_num: int) -> RoundPlan:
        """The fates of ``round_num``'s sampled clients."""
        sampled = self.client_ids(round_num)
        return self.conditions.plan_round(
            round_num, sampled,
            [int(self.profiles.at[c, "train_examples"]) * self.local_epochs for c in sampled],
            self.batch_size, self.clients_per_round, self.profiles,
            self.communication.broadcast_bits_per_client,
            self.communication.upload_bits_per_client)

    def __call__(self, round_num: int) -> Cohort:
        """The reporting clients' inputs and the round's client columns."""
        plan = self.plan(round_num)
        return Cohort(self._datasets([
            self.work(round_num, client.index, client.client_id,
                      client.batches if client.status == "partial" else ALL_BATCHES)
            for client in plan.reporting]), plan.columns,
            [client.client_id for client in plan.reporting])


def _count(dataset: tf.data.Dataset) -> int:
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(0, lambda count, _: count + 1))
