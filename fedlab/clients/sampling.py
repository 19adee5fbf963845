"""Who trains in a round: the cohort ``process.next`` is given, and the sampler.

:class:`RoundClients` samples each round's clients (``schedule.sampling``: TFF's seeded uniform
sampler, Poisson sampling, or epochs of shuffled cohorts) and their shuffle seeds; the simulated
clients (:mod:`fedlab.clients.conditions`) and FedBuff's buffered
arrivals (:mod:`fedlab.algorithms.fedbuff`) build their cohorts on it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow_federated as tff

from fedlab.clients.datasets import ALL_BATCHES, ClientWork
from fedlab.config.choices import Sampling

# Streams drawn from the seed for Poisson and epoch sampling, apart from fedlab's other seeds.
_POISSON_STREAM, _EPOCH_STREAM = 1401, 1402


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

    Both the sample and the shuffling seeds are functions of (seed, round), so a resumed run
    sees exactly the clients and example orders the uninterrupted run would have. ``uniform``
    is TFF's seeded uniform sampler (``sample_size`` without replacement); ``poisson`` keeps
    each client with probability ``sample_size / N`` (a draw per client per round, from the
    seed and the round); ``epoch`` shuffles the federation once per epoch (from the seed and
    the epoch) and gives round ``r`` the ``r``-th slice of ``sample_size``.
    """

    def __init__(
        self,
        client_ids: Sequence[str],
        datasets: Callable[[Sequence[ClientWork]], list],
        sample_size: int,
        seed: int,
        sampling: Sampling = Sampling.uniform,
    ):
        """How a round's clients are drawn and turned into ``process.next``'s argument.

        Args:
          client_ids: the federation.
          datasets: ``datasets(work)`` turns the round's work into ``process.next``'s client
            argument.
          sample_size: clients per round (``poisson``: expected).
          seed: the seed of the sample and the shuffles.
          sampling: ``uniform``, ``poisson`` or ``epoch`` (class doc).
        """
        self._datasets = datasets
        self._sample_size = sample_size
        self._seed = seed
        self._client_ids = list(client_ids)
        self.sampling = Sampling(sampling)
        self._sampler = tff.simulation.build_uniform_sampling_fn(
            client_ids, replace=False, random_seed=seed
        )

    @property
    def rounds_per_epoch(self) -> int:
        """``ceil(N / sample_size)``: the rounds of one epoch under ``epoch`` sampling."""
        return -(-len(self._client_ids) // self._sample_size)

    def client_ids(self, round_num: int) -> list[str]:
        """The clients sampled in ``round_num`` (in the federation's order for ``poisson``)."""
        if self.sampling is Sampling.poisson:
            joins = (np.random.default_rng([self._seed, _POISSON_STREAM, round_num])
                     .random(len(self._client_ids)) < self._sample_size / len(self._client_ids))
            return [c for c, joined in zip(self._client_ids, joins, strict=True) if joined]
        if self.sampling is Sampling.epoch:
            epoch, position = divmod(round_num - 1, self.rounds_per_epoch)
            order = np.random.default_rng([self._seed, _EPOCH_STREAM, epoch]).permutation(
                len(self._client_ids))
            chosen = order[position * self._sample_size:(position + 1) * self._sample_size]
            return [self._client_ids[i] for i in chosen]
        return list(self._sampler(round_num, self._sample_size))

    def work(self, round_num: int, index: int, client_id: str,
             batches: int = ALL_BATCHES) -> ClientWork:
        """The ``index``-th sampled client's work, shuffled with a seed of its own."""
        seed = int(np.random.SeedSequence([self._seed, round_num, index]).generate_state(1)[0])
        return ClientWork(client_id, seed, batches)

    def __call__(self, round_num: int) -> Cohort:
        """The inputs of ``round_num``'s clients (every sampled client trains)."""
        sampled = self.client_ids(round_num)
        columns = ({} if self.sampling is Sampling.uniform
                   else {"clients_sampled": len(sampled)})
        return Cohort(self._datasets([self.work(round_num, index, client_id)
                                      for index, client_id in enumerate(sampled)])
                      if sampled else [], columns, client_ids=sampled)
