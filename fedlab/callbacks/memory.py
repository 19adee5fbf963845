"""Give the heap glibc keeps after a round back to the operating system."""

import ctypes
import ctypes.util
import logging

from fedlab.callbacks.base import Callback, TrainingContext

log = logging.getLogger("fedlab")


class ReleaseFreedMemory(Callback):
    """After every ``every`` rounds, ``malloc_trim(0)``: free heap pages go back to the system.

    A round allocates and frees model-sized buffers in this process (the state and the clients'
    work serialised for the worker, results deserialised); glibc keeps the freed pages for
    reuse, so the resident size stays near the largest round's. Trimming returns them (the
    worker is a separate program and keeps its own). Without glibc this does nothing.
    """

    def __init__(self, every: int = 1):
        """Trim after rounds ``every``, ``2 * every``, ..."""
        self.every = every
        self._trim = None

    def on_train_start(self, context: TrainingContext) -> None:
        """Find glibc's ``malloc_trim``."""
        try:
            self._trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            log.debug("no malloc_trim in this C library: freed memory stays with the process")

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Trim after every ``every``-th round."""
        if self._trim is not None and round_num % self.every == 0:
            self._trim(0)
