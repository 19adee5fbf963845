"""Where a run's TFF computations execute: the options of the ``executor`` group.

``executor=local`` (default): a private TFF worker per run, launched by this process;
``executor=remote``: workers already running (``python -m fedlab.worker --port P``). These
objects do not import TensorFlow: ``python -m fedlab`` builds the executor and launches the
local worker first, so the worker starts while TensorFlow and TFF are imported. The TFF
contexts themselves are :mod:`fedlab.executors.contexts`'s (imported when a context is entered).
"""

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from fedlab.errors import ConfigError
from fedlab.executors.credentials import TlsFiles
from fedlab.executors.worker import LaunchedWorker, launched_worker
from fedlab.runs.files import CLIENT_ARRAYS_FILE, WORKER_LOG

# The clients' arrays, written into the run folder for the local worker to read during the run.
# The local worker's resident memory during a round: a base (TensorFlow's runtime, the
# computations' sessions) plus, for every client whose values are held at once, about this many
# model-sized tensors (the trained weights, the update, its weighted copy, ...). Rounded up from
# fedavg_cnn's worker peaks with 20 and 200 clients at once (about 540 MiB and 3.25 copies;
# benchmarks/README.md, "Memory at 200 clients").
WORKER_BASE_BYTES = 600 * 2**20
MODEL_COPIES_PER_CLIENT = 3.5
# The share of the machine's available memory a run's worker is advised to stay within (the
# Python process holds about 1 GiB besides).
WORKER_MEMORY_SHARE = 0.5


def subrounds(cohort_size: int, clients_per_subround: int) -> int:
    """How many sequential subrounds a cohort is split into (``clients_per_subround`` 0: one)."""
    if clients_per_subround < 0:
        raise ConfigError(
            f"executor.clients_per_subround must be 0 (all clients at once) or a positive "
            f"count, got {clients_per_subround}")
    return math.ceil(cohort_size / clients_per_subround) if clients_per_subround else 1


def worker_memory_bytes(model_bytes: int, clients_at_once: int) -> float:
    """About how much resident memory the local worker needs for a round's clients."""
    return WORKER_BASE_BYTES + MODEL_COPIES_PER_CLIENT * model_bytes * clients_at_once


def available_memory_bytes() -> int | None:
    """The kernel's estimate of memory available to new work (MemAvailable); None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_warning(model_bytes: int, cohort_size: int, clients_per_subround: int,
                   available_bytes: int | None) -> str | None:
    """One line when a round's clients at once would not fit the available memory, else None.

    The worker's need is :func:`worker_memory_bytes` for the clients one subround holds; the
    line suggests the largest ``executor.clients_per_subround`` whose need fits in
    ``WORKER_MEMORY_SHARE`` of ``available_bytes``.
    """
    if available_bytes is None:
        return None
    at_once = math.ceil(cohort_size / subrounds(cohort_size, clients_per_subround))
    needed = worker_memory_bytes(model_bytes, at_once)
    if needed <= available_bytes:
        return None
    budget = WORKER_MEMORY_SHARE * available_bytes - WORKER_BASE_BYTES
    fitting = int(budget // (MODEL_COPIES_PER_CLIENT * model_bytes)) if budget > 0 else 0
    gib = 2**30
    advice = (f"executor.clients_per_subround={fitting} keeps it near "
              f"{worker_memory_bytes(model_bytes, fitting) / gib:.1f} GiB" if fitting >= 1 else
              "even one client at a time may not fit: use a machine with more memory or "
              "executor=remote")
    return (f"{at_once} clients at once need about {needed / gib:.1f} GiB in the TFF worker "
            f"({model_bytes / 1e6:.2f} MB per model copy, about {MODEL_COPIES_PER_CLIENT:g} "
            f"copies per client), more than the {available_bytes / gib:.1f} GiB available: "
            f"{advice}")


class LocalExecution:
    """``executor=local``: a private TFF worker per run, logging to the run's worker.log.

    ``concurrent_calls``: computations the worker runs at once; 0 = one per usable CPU core,
    -1 = no limit (TFF's default). ``client_datasets_in_worker``: the worker builds the clients'
    datasets from their ids (:mod:`fedlab.clients.datasets`) rather than receiving them.
    ``client_arrays_from_file``: it then reads in-memory data sets' arrays from a file in the
    run folder (``client_arrays.records``, removed after the run) rather than receiving them
    inside every round's computation (see :class:`fedlab.data.ArrayClientData`).
    ``clients_per_subround``: 0 runs a round's clients at once; N > 0 runs them in sequential
    subrounds of at most N (see :func:`fedlab.executors.contexts.execution_context`), bounding the
    worker's memory by N clients' values instead of the whole cohort's. The aggregate is then
    summed in parts: the same up to float rounding.

    (A plain class, not a dataclass: Hydra would take a dataclass passed to ``instantiate`` for
    a config node.)
    """

    def __init__(self, concurrent_calls: int = 0, client_datasets_in_worker: bool = True,
                 clients_per_subround: int = 0, client_arrays_from_file: bool = True):
        """The settings; an impossible concurrency or subround size raises ConfigError.

        Args:
          concurrent_calls: computations the worker runs at once: 0 = one per usable CPU core,
            -1 = no limit (TFF's default), N > 0 = N.
          client_datasets_in_worker: the worker builds each client's dataset from its id, seed
            and batch count; false: the datasets are sent from Python.
          clients_per_subround: 0 runs a round's clients at once; N > 0 runs them in
            sequential subrounds of at most N (bounds the worker's memory by N clients).
          client_arrays_from_file: the worker reads an in-memory data set's client arrays from
            ``client_arrays.records`` in the run folder (written at the start, removed at the
            end); false: the arrays travel inside every round's computation.
        """
        if concurrent_calls < -1:
            raise ConfigError(
                "executor.concurrent_calls must be -1 (no limit), 0 (one per CPU core) or a "
                f"positive count, got {concurrent_calls}")
        subrounds(1, clients_per_subround)
        self.concurrent_calls = concurrent_calls
        self.client_datasets_in_worker = client_datasets_in_worker
        self.clients_per_subround = clients_per_subround
        self.client_arrays_from_file = client_arrays_from_file
        # The worker launched for a run folder, while it runs.
        self._launched: tuple[Path, LaunchedWorker] | None = None

    @contextlib.contextmanager
    def launched(self, run_dir: Path) -> Iterator[str]:
        """Launch the run's worker now (stopped with the block); :meth:`context` then uses it.

        ``python -m fedlab`` does this before importing TensorFlow, so the worker comes up
        meanwhile. Raises OSError when ``run_dir`` cannot take the worker's log.
        """
        with launched_worker(run_dir / WORKER_LOG, self.concurrent_calls) as worker:
            self._launched = (run_dir, worker)
            try:
                yield worker.target
            finally:
                self._launched = None

    def memory_warning(self, model_bytes: int, cohort_size: int) -> str | None:
        """:func:`memory_warning` for this machine's available memory and these subrounds."""
        return memory_warning(model_bytes, cohort_size, self.clients_per_subround,
                              available_memory_bytes())

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
        ``compiler`` prepares computations for it (default ``contexts.compile_for_worker``).
        """
        from fedlab.executors import contexts  # imports TFF

        worker = self._launched[1] if self._launched and self._launched[0] == run_dir else None
        return contexts.local_execution(
            run_dir / WORKER_LOG, self.concurrent_calls,
            subrounds(cohort_size, self.clients_per_subround),
            compiler or contexts.compile_for_worker, worker)


class RemoteExecution:
    """``executor=remote``: already running workers (``python -m fedlab.worker --port P``).

    ``tls``: the driver's credentials (``ca``, ``cert``, ``key`` file names, each else from
    ``FEDLAB_TLS_*``; ``server_name``: the name in the workers' certificate when it is not the
    targets' host), read when the run starts.
    """

    def __init__(self, targets: Sequence[str] = (), connect_timeout_seconds: float = 30.0,
                 client_datasets_in_worker: bool = True, clients_per_subround: int = 0,
                 tls: Mapping[str, str | None] | None = None):
        """The settings; an impossible subround size raises ConfigError.

        Args:
          targets: the workers' ``host:port`` addresses; one runs everything, several split each
            round's clients (TFF's mergeable-computation context).
          connect_timeout_seconds: a worker that does not answer within this many seconds ends
            the run with one line naming it.
          client_datasets_in_worker: the worker builds each client's dataset from its id, seed
            and batch count; false: the datasets are sent from Python.
          clients_per_subround: 0 runs each worker's share of a round at once; N > 0 runs it N
            clients at a time.
          tls: the driver's mutual-TLS credentials: ``ca``, ``cert``, ``key`` (PEM file names;
            null: ``FEDLAB_TLS_CA``, ``FEDLAB_TLS_CERT``, ``FEDLAB_TLS_KEY``) and
            ``server_name`` (the name in the workers' certificate, when the targets dial them by
            another; null: the target's host).
        """
        subrounds(1, clients_per_subround)
        self.targets, self.connect_timeout_seconds = targets, connect_timeout_seconds
        self.tls = dict(tls or {})
        self.client_datasets_in_worker = client_datasets_in_worker
        self.clients_per_subround = clients_per_subround

    def memory_warning(self, model_bytes: int, cohort_size: int) -> None:
        """None: the workers' memory is on their own machines."""
        del model_bytes, cohort_size
        return None

    def client_arrays_file(self, run_dir: Path) -> None:
        """None: the clients' arrays travel inside the computations (not a shared file)."""
        del run_dir
        return None

    def context(self, run_dir: Path, cohort_size: int = 1, compiler: Callable | None = None):
        """The execution block for ``cohort_size`` clients (the workers log where they run)."""
        from fedlab.executors import contexts  # imports TFF

        del run_dir
        files = TlsFiles.find(self.tls.get("ca"), self.tls.get("cert"), self.tls.get("key"),
                              "executor.tls.ca/cert/key or FEDLAB_TLS_CA/FEDLAB_TLS_CERT/"
                              "FEDLAB_TLS_KEY")
        connect = functools.partial(contexts.open_channel,
                                    credentials=files.channel_credentials(),
                                    server_name=self.tls.get("server_name"))
        return contexts.remote_execution(
            list(self.targets), self.connect_timeout_seconds,
            subrounds(cohort_size, self.clients_per_subround),
            compiler or contexts.compile_for_worker, connect)
