"""Server-state checkpoints: restored before training, written every few rounds and at the end."""

import logging
import time

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.callbacks.checkpointer import Checkpointer
from fedlab.runs.files import CHECKPOINTS_DIR

log = logging.getLogger("fedlab")


class Checkpointing(Callback):
    """Resume from the newest usable checkpoint; save every ``every`` rounds and the last one.

    A checkpoint holds the server state and, for algorithms with stateful clients, every
    client's state.
    """

    def __init__(self, every: int, keep: int):
        """Checkpoint every ``every`` rounds, keeping the newest ``keep``."""
        self.every, self.keep = every, keep
        self.seconds: list[float] = []
        self._checkpointer: Checkpointer | None = None

    def on_restore(self, context: TrainingContext) -> None:
        """Load the newest usable checkpoint of ``context.run_dir`` into the context."""
        self._checkpointer = Checkpointer(context.run_dir / CHECKPOINTS_DIR, keep=self.keep)
        loaded = self._checkpointer.load_latest(context.state, context.client_states)
        if loaded is not None:
            context.state, context.last_checkpoint = loaded
            context.next_round = context.last_checkpoint + 1
            log.info("resuming from the checkpoint of round %d", context.last_checkpoint)

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Save every ``every`` rounds and after the schedule's last round."""
        if round_num % self.every == 0 or round_num == context.rounds:
            self._save(context, round_num)

    def on_train_end(self, context: TrainingContext, last_round: int) -> None:
        """Save the round a callback stopped at, if it was not saved already."""
        if last_round > context.last_checkpoint:
            self._save(context, last_round)

    def _save(self, context: TrainingContext, round_num: int) -> None:
        started = time.perf_counter()
        self._checkpointer.save(context.state, round_num, context.client_states)
        context.last_checkpoint = round_num
        self.seconds.append(time.perf_counter() - started)
