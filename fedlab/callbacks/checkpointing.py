"""Server-state checkpoints: restored before training, written every few rounds and at the end.

:class:`Checkpointer` keeps them with TFF's ``FileProgramStateManager``, falling back to an
older checkpoint when the newest cannot be read; :class:`Checkpointing` is the loop's callback.
"""


import asyncio
import errno
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_federated as tff

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.errors import CheckpointError
from fedlab.runs.files import CHECKPOINTS_DIR, CLIENT_STATES_FILE

log = logging.getLogger(__name__)

PREFIX = "round_"
# Failures that say nothing about the checkpoint itself: it may be fine once they pass.
TRANSIENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS,
                    errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.EBUSY}
TRANSIENT_TF_ERRORS = (tf.errors.PermissionDeniedError, tf.errors.ResourceExhaustedError,
                       tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                       tf.errors.AbortedError)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is an I/O condition (permission, full disk...) rather than bad content."""
    if isinstance(error, TRANSIENT_TF_ERRORS):
        return True
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS


class Checkpointer:
    """Saves the server state every few rounds and loads the newest usable one."""

    def __init__(self, directory: Path, keep: int):
        """Checkpoints live in ``directory`` as ``round_<n>``; the newest ``keep`` are kept."""
        self._manager = tff.program.FileProgramStateManager(
            str(directory), prefix=PREFIX, keep_total=keep, keep_first=False
        )
        self._directory = directory

    def save(self, state: Any, round_num: int, client_states: Any = None) -> None:
        """Write ``state`` (and ``client_states``, a store) as the checkpoint of ``round_num``.

        Raises:
          CheckpointError: the checkpoint cannot be written (e.g. permission, full disk).
        """
        try:
            asyncio.run(self._manager.save(state, round_num))
            if client_states is not None:
                client_states.save(self._directory / f"{PREFIX}{round_num}" / CLIENT_STATES_FILE)
        except (OSError, tf.errors.OpError) as error:
            raise CheckpointError(
                f"cannot write the checkpoint of round {round_num} in {self._directory} "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); rows up to round "
                f"{round_num} are in metrics.csv, re-run the command once it can be written"
            ) from error

    def load_latest(self, structure: Any, client_states: Any = None
                    ) -> tuple[Any, int] | None:
        """The newest checkpoint that loads, with its round; ``None`` when there is none.

        With ``client_states`` (a store), the checkpoint's client states are loaded into it too;
        a checkpoint without them is unusable.

        A checkpoint that cannot be decoded (partly written, corrupted, or from another model) is
        skipped with a warning, and the one before it is tried; skipped ones are deleted
        once an older one loads, since the resumed run writes those rounds again. An I/O
        failure that says nothing about the content (:func:`is_transient`: permission, full
        disk...) stops at once and deletes nothing.

        Raises:
          CheckpointError: a transient I/O failure, or checkpoints exist but none of them loads.
        """
        try:
            versions = asyncio.run(self._manager.get_versions()) or []
        except Exception as error:  # noqa: BLE001 - reported as one line
            raise self._transient(error, "list the checkpoints") from error
        failures = []
        for version in reversed(versions):
            try:
                state = asyncio.run(self._manager.load(version, structure))
                if client_states is not None:
                    client_states.load(self._directory / f"{PREFIX}{version}" / CLIENT_STATES_FILE)
            except Exception as error:  # noqa: BLE001 - any other failure: undecodable
                if is_transient(error):
                    raise self._transient(error, f"read {PREFIX}{version}") from error
                failures.append(f"round_{version}: {type(error).__name__}: {error}"[:300])
                log.warning("checkpoint round_%d is unusable (%s); trying an older one",
                            version, type(error).__name__)
                continue
            for unusable in versions[versions.index(version) + 1:]:
                shutil.rmtree(self._directory / f"{PREFIX}{unusable}", ignore_errors=True)
            return state, version
        if failures:
            raise CheckpointError(
                f"none of the {len(failures)} checkpoints in {self._directory} is usable "
                f"(newest: {failures[0]}); delete the folder to start afresh"
            )
        return None

    def _transient(self, error: BaseException, action: str) -> CheckpointError:
        return CheckpointError(
            f"cannot {action} in {self._directory} ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200] if str(error) else error!r}); nothing was deleted, "
            "re-run the command once the folder is readable"
        )


class Checkpointing(Callback):
    """Resume from the newest usable checkpoint; save every ``every`` rounds and the last one.

    A checkpoint holds the server state and, for algorithms with stateful clients, every
    client's state.
    """

    def __init__(self, every: int, keep: int):
        """Checkpoint every ``every`` rounds, keeping the newest ``keep``.

        Args:
          every: save a checkpoint every this many rounds, and after the last round.
          keep: the number of newest checkpoints kept.
        """
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
