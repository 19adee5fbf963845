"""Where a run's TFF computations execute: the options of the ``executor`` group.

``executor=local`` (default): a private TFF worker per run, launched by this process;
``executor=remote``: workers already running (``python -m fedlab.worker --port P``). These
objects do not import TensorFlow: ``python -m fedlab`` builds the executor and launches the
local worker first, so the worker starts while TensorFlow and TFF are imported. The TFF
contexts themselves are :mod:`fedlab.runtime`'s (imported when a context is entered).
"""

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from fedlab.errors import ConfigError
from fedlab.worker import launched_worker

WORKER_LOG = "worker.log"
# The clients' arrays, written into the run folder for the local worker to read during the run.
CLIENT_ARRAYS_FILE = "client_arrays.records"


def subrounds(cohort_size: int, clients_per_subround: int) -> int:
    """How many sequential subrounds a cohort is split into (``clients_per_subround`` 0: one)."""
    if clients_per_subround < 0:
        raise ConfigError(
            f"executor.clients_per_subround must be 0 (all clients at once) or a positive "
            f"count, got {clients_per_subround}")
    return math.ceil(cohort_size / clients_per_subround) if clients_per_subround else 1


class LocalExecution:
    """``executor=local``: a private TFF worker per run, logging to the run's worker.log.

    ``concurrent_calls``: computations the worker runs at once; 0 = one per usable CPU core,
    -1 = no limit (TFF's default). ``client_datasets_in_worker``: the worker builds the clients'
    datasets from their ids (:mod:`fedlab.client_datasets`) rather than receiving them.
    ``client_arrays_from_file``: it then reads in-memory data sets' arrays from a file in the
    run folder (``client_arrays.records``, removed after the run) rather than receiving them
    inside every round's computation (see :class:`fedlab.data.ArrayClientData`).
    ``clients_per_subround``: 0 runs a round's clients at once; N > 0 runs them in sequential
    subrounds of at most N (see :func:`fedlab.runtime.execution_context`), bounding the
    worker's memory by N clients' values instead of the whole cohort's. The aggregate is then
    summed in parts: the same up to float rounding.

    (A plain class, not a dataclass: Hydra would take a dataclass passed to ``instantiate`` for
    a config node.)
    """

    def __init__(self, concurrent_calls: int = 0, client_datasets_in_worker: bool = True,
                 clients_per_subround: int = 0, client_arrays_from_file: bool = True):
        """The settings; an impossible concurrency or subround size raises ConfigError."""
        if concurrent_calls < -1:
            raise ConfigError(
                "executor.concurrent_calls must be -1 (no limit), 0 (one per CPU core) or a "
                f"positive count, got {concurrent_calls}")
        subrounds(1, clients_per_subround)
        self.concurrent_calls = concurrent_calls
        self.client_datasets_in_worker = client_datasets_in_worker
        self.clients_per_subround = clients_per_subround
        self.client_arrays_from_file = client_arrays_from_file
        # The worker launched for a run folder: (run_dir, host:port), while it runs.
        self._launched: tuple[Path, str] | None = None

    @contextlib.contextmanager
    def launched(self, run_dir: Path) -> Iterator[str]:
        """Launch the run's worker now (stopped with the block); :meth:`context` then uses it.

        ``python -m fedlab`` does this before importing TensorFlow, so the worker comes up
        meanwhile. Raises OSError when ``run_dir`` cannot take the worker's log.
        """
        with launched_worker(run_dir / WORKER_LOG, self.concurrent_calls) as target:
            self._launched = (run_dir, target)
            try:
                yield target
            finally:
                self._launched = None

    def client_arrays_file(self, run_dir: Path) -> tuple[Path, str] | None:
        """Where the run writes the clients' arrays, and the name the worker opens them by.

        (The worker runs in the run folder.) None: the arrays travel inside the computations.
        """
        if not self.client_arrays_from_file:
            return None
        return run_dir / CLIENT_ARRAYS_FILE, CLIENT_ARRAYS_FILE

    def context(self, run_dir: Path, cohort_size: int = 1, compiler: Callable | None = None):
        """The execution block for a run writing into ``run_dir``, of ``cohort_size`` clients.

        Runs on the worker :meth:`launched` for ``run_dir``, else on one launched with the block;
        ``compiler`` prepares computations for it (default ``runtime.compile_for_worker``).
        """
        from fedlab import runtime  # imports TFF

        target = self._launched[1] if self._launched and self._launched[0] == run_dir else None
        return runtime.local_execution(
            run_dir / WORKER_LOG, self.concurrent_calls,
            subrounds(cohort_size, self.clients_per_subround),
            compiler or runtime.compile_for_worker, target)


class RemoteExecution:
    """``executor=remote``: already running workers (``python -m fedlab.worker --port P``)."""

    def __init__(self, targets: Sequence[str] = (), connect_timeout_seconds: float = 30.0,
                 client_datasets_in_worker: bool = True, clients_per_subround: int = 0):
        """The settings; an impossible subround size raises ConfigError."""
        subrounds(1, clients_per_subround)
        self.targets, self.connect_timeout_seconds = targets, connect_timeout_seconds
        self.client_datasets_in_worker = client_datasets_in_worker
        self.clients_per_subround = clients_per_subround

    def client_arrays_file(self, run_dir: Path) -> None:
        """None: the clients' arrays travel inside the computations (not a shared file)."""
        del run_dir
        return None

    def context(self, run_dir: Path, cohort_size: int = 1, compiler: Callable | None = None):
        """The execution block for ``cohort_size`` clients (the workers log where they run)."""
        from fedlab import runtime  # imports TFF

        del run_dir
        return runtime.remote_execution(
            list(self.targets), self.connect_timeout_seconds,
            subrounds(cohort_size, self.clients_per_subround),
            compiler or runtime.compile_for_worker)
