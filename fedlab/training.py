"""The federated loop: sample clients, run a round, hand it to the callbacks. Nothing else.

Evaluation, checkpoints, metrics files, the progress line and the divergence stop are callbacks
(``fedlab.callbacks``); the loop knows nothing about Hydra and takes built objects.
"""

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow_federated as tff

from fedlab.callbacks import Callback, TrainingContext
from fedlab.client_datasets import ALL_BATCHES, ClientWork
from fedlab.tasks import ACCURACY

log = logging.getLogger("fedlab")


@dataclass
class Cohort:
    """What ``process.next`` trains a round's aggregated clients on, and columns describing them.

    ``inputs`` is the client argument of ``next``: the clients' datasets, or the work items the
    worker builds them from (:mod:`fedlab.client_datasets`). Empty means no client reported:
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


def train(
    context: TrainingContext,
    round_clients: Callable[[int], Cohort],
    callbacks: Sequence[Callback],
) -> int:
    """Train rounds ``context.next_round`` .. ``context.rounds``; return the last round trained.

    Each round's row starts with the clients' training figures (``train_loss``,
    ``train_accuracy``, ``examples``, ``batches``), ``round_seconds`` (building the clients'
    datasets plus ``process.next``) and the cohort's columns; the callbacks, in order, add to
    it, record it, and may ask to stop after the round. A round whose cohort is empty (no
    client reported) does not call ``process.next``: the state stays, the training figures are
    NaN and 0, and callbacks get ``result=None``.

    Raises:
      FedlabError: from a callback (divergence, unusable checkpoints, unwritable files).
    """
    for callback in callbacks:
        callback.on_restore(context)
    context.resumed_from = context.next_round - 1
    for callback in callbacks:
        callback.on_train_start(context)
    last_round = context.next_round - 1
    for round_num in range(context.next_round, context.rounds + 1):
        started = time.perf_counter()
        cohort = round_clients(round_num)
        if cohort.inputs:
            result = context.process.next(context.state, cohort.inputs)
            train_metrics = result.metrics["client_work"]["train"]
            row = {
                "train_loss": float(train_metrics["loss"]),
                "train_accuracy": float(train_metrics[ACCURACY]),
                "examples": int(train_metrics["num_examples"]),
                "batches": int(train_metrics["num_batches"]),
            }
            context.state = result.state
        else:
            result = None
            row = {"train_loss": math.nan, "train_accuracy": math.nan, "examples": 0,
                   "batches": 0}
            log.warning("round %d: no client reported; the model is unchanged", round_num)
        row.update(round_seconds=time.perf_counter() - started, **cohort.columns)
        last_round = round_num
        stop = [bool(callback.on_round_end(context, round_num, result, row))
                for callback in callbacks]
        context.next_round = round_num + 1
        if any(stop):
            break
    for callback in callbacks:
        callback.on_train_end(context, last_round)
    return last_round
