"""The federated training loop. It knows nothing about Hydra: it takes built objects."""

import asyncio
import collections
import csv
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab import task
from fedlab.checkpoints import Checkpointer
from fedlab.comms import RoundCommunication
from fedlab.errors import CheckpointError, DivergenceError
from fedlab.evaluation import CentralEvaluator
from fedlab.schedule import Schedule

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"


@dataclass(frozen=True)
class TrainingOutcome:
    """What a call of :func:`train` leaves behind."""

    state: Any
    rounds_trained: int
    checkpoint_seconds: list[float]


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
        clients_per_round: int,
        seed: int,
    ):
        """``preprocess(dataset, shuffle_seed)`` turns a raw client dataset into batches."""
        self._client_data = client_data
        self._preprocess = preprocess
        self._clients_per_round = clients_per_round
        self._seed = seed
        self._sampler = tff.simulation.build_uniform_sampling_fn(
            client_data.client_ids, replace=False, random_seed=seed
        )

    def client_ids(self, round_num: int) -> list[str]:
        """The clients that train in ``round_num``."""
        return list(self._sampler(round_num, self._clients_per_round))

    def __call__(self, round_num: int) -> list[tf.data.Dataset]:
        """The datasets of ``round_num``'s clients, each shuffled with its own derived seed."""
        return [
            self._preprocess(
                self._client_data.create_tf_dataset_for_client(client_id),
                int(np.random.SeedSequence([self._seed, round_num, index]).generate_state(1)[0]),
            )
            for index, client_id in enumerate(self.client_ids(round_num))
        ]


class MetricsSink:
    """Releases one row per round to ``metrics.csv`` and TensorBoard via TFF release managers.

    :meth:`start` first rewinds the run folder to a round: rows after it are dropped from
    ``metrics.csv``, and the TensorBoard event files are written anew from the rows kept, so a
    resumed run shows every round once in both.
    """

    def __init__(self, run_dir: Path, tensorboard: bool):
        """Write into ``run_dir``'s metrics file (and event files when ``tensorboard``)."""
        self._run_dir = run_dir
        self._tensorboard = tensorboard
        self._managers: list = []

    def start(self, after_round: int) -> list[dict[str, str]]:
        """Drop every row after ``after_round`` and open the release managers.

        Returns:
          The rows kept (rounds 1..``after_round``), as the strings metrics.csv holds.
        """
        path = self._run_dir / METRICS_FILE
        kept: list[dict[str, str]] = []
        if path.exists():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                fieldnames = reader.fieldnames or []
                kept = [row for row in reader if int(row["round"]) <= after_round]
            with path.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(kept)
        self._managers = [
            tff.program.CSVFileReleaseManager(str(path), key_fieldname="round")
        ]
        if self._tensorboard:
            for events in self._run_dir.glob("events.out.tfevents.*"):
                events.unlink()
            board = tff.program.TensorBoardReleaseManager(str(self._run_dir))
            self._managers.append(board)
            _release_all([
                board.release(_finite({k: float(v) for k, v in row.items() if k != "round" and v}),
                              key=int(row["round"]))
                for row in kept
            ])
        return kept

    def release(self, row: dict[str, float], round_num: int) -> None:
        """Write ``row`` as round ``round_num`` everywhere."""
        csv_manager, *boards = self._managers
        _release_all([csv_manager.release(row, key=round_num)]
                     + [board.release(_finite(row), key=round_num) for board in boards])


def _finite(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if math.isfinite(v)}


def _release_all(releases: list) -> None:
    async def release_all():
        await asyncio.gather(*releases)

    asyncio.run(release_all())


def _progress_line(row: dict[str, float], round_num: int, rounds: int, seconds_left: float) -> str:
    evaluated = math.isfinite(row["eval_accuracy"])
    return (
        f"round {round_num:>{len(str(rounds))}}/{rounds} | "
        f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
        + f"up {row['bits_up_per_client'] / 8e6:.2f} MB/client | {row['round_seconds']:.2f} s | "
        + (f"eval acc {row['eval_accuracy']:.4f} ({row['eval_seconds']:.2f} s) | "
           if evaluated else "")
        + f"ETA {seconds_left:.0f} s"
    )


def train(
    process: tff.learning.templates.LearningProcess,
    initial_weights: tff.learning.models.ModelWeights,
    round_clients: Callable[[int], Sequence[tf.data.Dataset]],
    schedule: Schedule,
    evaluator: CentralEvaluator,
    communication: RoundCommunication,
    checkpointer: Checkpointer,
    sink: MetricsSink,
) -> "TrainingOutcome":
    """Run FedAvg rounds from the last checkpoint (or from ``initial_weights``) to the end.

    Each round releases one row: train loss/accuracy, examples, batches, ``round_seconds``
    (building the clients' datasets plus ``process.next``), the bits sent down and up (per
    client, in total and cumulative), and — every ``eval_every`` rounds and after the last —
    ``eval_loss``/``eval_accuracy`` on held-out data and the ``eval_seconds`` that took. The server
    state is checkpointed every ``checkpoint_every`` rounds and after the last round.

    Returns:
      The final server state, the rounds this call trained, and how long each checkpoint took.

    Raises:
      DivergenceError: a round's training loss is NaN or infinite; finished rows and the last
        checkpoint are kept.
    """
    initial_state = process.initialize()
    loaded = checkpointer.load_latest(initial_state)
    if loaded is None:
        state, start_round = process.set_model_weights(initial_state, initial_weights), 1
    else:
        state, last_round = loaded
        start_round = last_round + 1
        log.info("resuming from the checkpoint of round %d", last_round)
    last_checkpoint = start_round - 1
    kept_rows = sink.start(after_round=last_checkpoint)
    if len(kept_rows) != last_checkpoint:
        raise CheckpointError(
            f"metrics.csv holds {len(kept_rows)} rows but the checkpoint is of round "
            f"{last_checkpoint}: the cumulative columns cannot be continued; start a new run folder"
        )
    bits = communication.totals(schedule.clients_per_round)
    cumulative = {key: sum(int(float(row[key])) for row in kept_rows)
                  for key in ("bits_down", "bits_up")}
    round_times: list[float] = []
    checkpoint_times: list[float] = []
    for round_num in range(start_round, schedule.rounds + 1):
        started = time.perf_counter()
        result = process.next(state, round_clients(round_num))
        train_metrics = result.metrics["client_work"]["train"]
        loss = float(train_metrics["loss"])
        # TFF drops a non-finite aggregate update and reports it instead of applying it.
        update_non_finite = int(result.metrics["finalizer"].get("update_non_finite", 0))
        if not math.isfinite(loss) or update_non_finite:
            kept = (f"rows of rounds 1-{round_num - 1} and the checkpoint of round "
                    f"{last_checkpoint} are kept" if last_checkpoint else "no round had finished")
            raise DivergenceError(
                f"training diverged in round {round_num} (train loss {loss}, "
                f"{'non-finite' if update_non_finite else 'finite'} model update); {kept}; "
                "try a smaller learning rate"
            )
        state = result.state
        for key in cumulative:  # running sums of the per-round rows
            cumulative[key] += bits[key]
        row = collections.OrderedDict({
            "train_loss": loss,
            "train_accuracy": float(train_metrics[task.ACCURACY]),
            "examples": int(train_metrics["num_examples"]),
            "batches": int(train_metrics["num_batches"]),
            **bits,
            **{f"{key}_cumulative": cumulative[key] for key in cumulative},
            "round_seconds": time.perf_counter() - started,
            "eval_loss": math.nan,
            "eval_accuracy": math.nan,
            "eval_seconds": math.nan,
        })
        if round_num % schedule.eval_every == 0 or round_num == schedule.rounds:
            evaluating_started = time.perf_counter()
            row.update(evaluator.evaluate(process.get_model_weights(state)))
            row["eval_seconds"] = time.perf_counter() - evaluating_started
        round_times.append(time.perf_counter() - started)
        sink.release(row, round_num)
        if round_num % schedule.checkpoint_every == 0 or round_num == schedule.rounds:
            saving_started = time.perf_counter()
            checkpointer.save(state, round_num)
            last_checkpoint = round_num
            log.debug("checkpoint of round %d saved in %.3f s", round_num,
                      time.perf_counter() - saving_started)
            checkpoint_times.append(time.perf_counter() - saving_started)
        log.info(_progress_line(row, round_num, schedule.rounds,
                                float(np.median(round_times)) * (schedule.rounds - round_num)))
    return TrainingOutcome(state, max(0, schedule.rounds - start_round + 1), checkpoint_times)
