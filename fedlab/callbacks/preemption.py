"""Stop at the end of the current round on SIGTERM (SLURM/submitit preemption, cancellation)."""

import logging
import signal
from collections.abc import Sequence

from fedlab.callbacks.base import Callback, TrainingContext

log = logging.getLogger("fedlab")


class Preemption(Callback):
    """On a signal (SIGTERM), finish the round and stop; the checkpoint callback saves it.

    The signal is recorded in ``context.summary['interrupted_signal']``.

    The handlers are installed while training runs; the previous ones come back at the end, so
    whoever catches the stop (``fedlab.run``) can end the process as the signal would have —
    or hand it to the handler that was there before (submitit's checkpoint and requeue).
    """

    def __init__(self, signals: Sequence[str]):
        """Watch ``signals`` (names of ``signal.Signals``).

        Args:
          signals: the signals that stop the run after the current round, e.g. ``[SIGTERM,
            SIGUSR2]``; after the round each is handed to the handler installed before.
        """
        self.signals = [signal.Signals[name] for name in signals]
        self._received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _handle(self, number, frame) -> None:
        if self._received is None:
            log.warning("%s received: stopping after the current round",
                        signal.Signals(number).name)
        self._received = signal.Signals(number)

    def on_restore(self, context: TrainingContext) -> None:
        """Install the handlers (before the checkpoint is loaded and the first round)."""
        self._received = None
        self._previous = {number: signal.signal(number, self._handle) for number in self.signals}

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> bool:
        """Ask the loop to stop once a signal came."""
        return self._received is not None

    def on_train_end(self, context: TrainingContext, last_round: int) -> None:
        """Give the previous handlers back; record the signal, if one came."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        if self._received is not None:
            context.summary["interrupted_signal"] = int(self._received)
            context.summary["stopped_early"] = (
                f"{self._received.name} after round {last_round} (checkpoint saved)")
