"""Who trains in a round: the cohort ``process.next`` is given, and the uniform sampler.

:class:`RoundClients` samples each round's clients (TFF's seeded uniform sampler) and their
shuffle seeds; the simulated clients (:mod:`fedlab.clients.conditions`) and FedBuff's buffered
arrivals (:mod:`fedlab.algorithms.fedbuff`) build their cohorts on it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow_federated as tff

from fedlab.clients.datasets import ALL_BATCHES, ClientWork


@dataclass
class Cohort:
    """What ``process.next`` trains a round's aggregated clients on, and columns describing them.

    ``inputs`` is the client argument of ``next``: the clients' datasets, or the work items the
    worker builds them from (:mod:`fedlab.clients.datasets`). Empty means no client reported:
    the round leaves the model unchanged.
    """

    inputs: list
    columns: dict[str, float] = field(default_factory=dict)
    client_ids: list[str] = field(default_factory=list)  # whose inputs, in their order


class RoundClients:
    """Picks each round's clients and their work (shuffle seed, batches), from the round alone.

    Both the sample (TFF's seeded uniform sampler) and the shuffling seeds are functions of
    (seed, round), so a resumed run sees exactly the clients and example orders the
    uninterrupted run would have.
    """

    def __init__(
        self,
        client_ids: Sequence[str],
        datasets: Callable[[Sequence[ClientWork]], list],
        sample_size: int,
        seed: int,
    ):
        """``datasets(work)`` turns the round's work into ``process.next``'s client argument."""
        self._datasets = datasets
        self._sample_size = sample_size
        self._seed = seed
        self._sampler = tff.simulation.build_uniform_sampling_fn(
            client_ids, replace=False, random_seed=seed
        )

    def client_ids(self, round_num: int) -> list[str]:
        """The clients sampled in ``round_num``."""
        return list(self._sampler(round_num, self._sample_size))

    def work(self, round_num: int, index: int, client_id: str,
             batches: int = ALL_BATCHES) -> ClientWork:
        """The ``index``-th sampled client's work, shuffled with a seed of its own."""
        seed = int(np.random.SeedSequence([self._seed, round_num, index]).generate_state(1)[0])
        return ClientWork(client_id, seed, batches)

    def __call__(self, round_num: int) -> Cohort:
        """The inputs of ``round_num``'s clients (every sampled client trains)."""
        sampled = self.client_ids(round_num)
        return Cohort(self._datasets([self.work(round_num, index, client_id)
                                      for index, client_id in enumerate(sampled)]),
                      client_ids=sampled)
