"""The federated loop: sample clients, run a round, hand it to the callbacks. Nothing else.

Evaluation, checkpoints, metrics files, the progress line and the divergence stop are callbacks
(``fedlab.callbacks``); the loop knows nothing about Hydra and takes built objects.
"""

import logging
import math
import time
from collections.abc import Callable, Sequence

from fedlab.callbacks import Callback, TrainingContext
from fedlab.clients.sampling import Cohort
from fedlab.tasks import ACCURACY

log = logging.getLogger("fedlab")


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
