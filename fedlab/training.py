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
import tensorflow as tf
import tensorflow_federated as tff

from fedlab import task
from fedlab.callbacks import Callback, TrainingContext

log = logging.getLogger("fedlab")


@dataclass
class Cohort:
    """The datasets of a round's aggregated clients, and columns describing the round's clients.

    An empty ``datasets`` means no client reported: the round leaves the model unchanged.
    """

    datasets: list[tf.data.Dataset]
    columns: dict[str, float] = field(default_factory=dict)


class RoundClients:
    """Picks each round's clients and builds their preprocessed datasets, from the round alone.

    Both the sample (TFF's seeded uniform sampler) and the shuffling seeds are functions of
    (seed, round), so a resumed run sees exactly the clients and example orders the
    uninterrupted run would have.
    """

    def __init__(
        self,
        client_data: tff.simulation.datasets.ClientData,
        preprocess: Callable[[tf.data.Dataset, int], tf.data.Dataset],
        sample_size: int,
        seed: int,
    ):
        """``preprocess(dataset, shuffle_seed)`` turns a raw client dataset into batches."""
        self._client_data = client_data
        self._preprocess = preprocess
        self._sample_size = sample_size
        self._seed = seed
        self._sampler = tff.simulation.build_uniform_sampling_fn(
            client_data.client_ids, replace=False, random_seed=seed
        )

    def client_ids(self, round_num: int) -> list[str]:
        """The clients sampled in ``round_num``."""
        return list(self._sampler(round_num, self._sample_size))

    def dataset(self, round_num: int, index: int, client_id: str) -> tf.data.Dataset:
        """The batches of the ``index``-th sampled client, shuffled with a seed of its own."""
        return self._preprocess(
            self._client_data.create_tf_dataset_for_client(client_id),
            int(np.random.SeedSequence([self._seed, round_num, index]).generate_state(1)[0]))

    def __call__(self, round_num: int) -> Cohort:
        """The datasets of ``round_num``'s clients (every sampled client trains)."""
        return Cohort([self.dataset(round_num, index, client_id)
                       for index, client_id in enumerate(self.client_ids(round_num))])


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
        if cohort.datasets:
            result = context.process.next(context.state, cohort.datasets)
            train_metrics = result.metrics["client_work"]["train"]
            row = {
                "train_loss": float(train_metrics["loss"]),
                "train_accuracy": float(train_metrics[task.ACCURACY]),
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
