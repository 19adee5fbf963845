"""The TFF execution context, and the lifetime of the C++ worker process behind it.

TFF's own local context starts ``worker_binary`` with the parent's stdout and only stops it in
``__del__``, so the worker outlives the Python process (and ``python -m fedlab | tee`` never
returns). Here fedlab starts the same binary itself: its output goes to a log file, it is asked
to die with its parent (``PR_SET_PDEATHSIG``, so even SIGKILL of Python takes it down), and the
context manager stops it on every exit path.
"""

import contextlib
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import portpicker
import tensorflow_federated as tff
from tensorflow_federated.python.core.backends.native import compiler as native_compiler
from tensorflow_federated.python.core.backends.test import compiler as test_compiler
from tensorflow_federated.python.core.environments.tensorflow_frontend import (
    tensorflow_computation,
)
from tensorflow_federated.python.core.impl.context_stack import runtime_error_context
from tensorflow_federated.python.core.impl.execution_contexts import (
    async_execution_context,
    sync_execution_context,
)
from tensorflow_federated.python.core.impl.executor_stacks import python_executor_stacks
from tensorflow_federated.python.core.impl.executors import (
    remote_executor,
    remote_executor_grpc_stub,
)

from fedlab.errors import ConfigError, WorkerError

# Turns a computation into the form the worker runs.
Compiler = Callable[[tff.framework.ConcreteComputation], tff.framework.ConcreteComputation]
_GRPC_OPTIONS = [
    ("grpc.max_message_length", 2_000_000_000),
    ("grpc.max_receive_message_length", 2_000_000_000),
    ("grpc.max_send_message_length", 2_000_000_000),
]
_PR_SET_PDEATHSIG = 1
WORKER_START_TIMEOUT_SECONDS = 60.0
# The worker keeps no state; a gRPC server draining open channels can take long to exit.
WORKER_STOP_GRACE_SECONDS = 2.0
# glibc gives each thread that allocates its own malloc arena (up to 8 per core); the worker's
# thread pools then scatter freed tensors over many arenas and its resident memory creeps up
# round after round (+34 % over 240 simple_cnn/compression rounds here). Two arenas kept it
# flat (206 -> 205 MiB) at the same round time; see benchmarks/README.md.
WORKER_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}


def worker_environment() -> dict[str, str]:
    """The environment for the worker: ours plus its allocator settings (unless already set)."""
    return {**WORKER_MALLOC_ENV, **os.environ}


def worker_binary_path() -> Path:
    """The C++ executor service shipped inside the tensorflow-federated wheel."""
    return Path(tff.__file__).parent / "data" / "worker_binary"


# Run by a fresh interpreter that then becomes the worker: ask the kernel to kill it when this
# process dies (PR_SET_PDEATHSIG survives exec), give up if this process is already gone, exec.
# (Not a ``preexec_fn``: Python code between fork and exec in a process whose gRPC threads hold
# locks aborted the forked child here, intermittently.)
_EXEC_DYING_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL('libc.so.6', use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _dying_with_this_process(command: list[str]) -> list[str]:
    """``command`` launched so that the kernel kills it when this process dies."""
    return [sys.executable, "-I", "-S", "-c", _EXEC_DYING_WITH_PARENT, str(os.getpid()),
            *command]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0))


def worker_concurrency(concurrent_calls: int) -> int:
    """The worker's ``--max_concurrent_computation_calls``: 0 means one per usable core.

    Values below -1 are refused where they enter (``run`` for the config, the worker's CLI).
    """
    return usable_cores() if concurrent_calls == 0 else concurrent_calls


@contextlib.contextmanager
def local_worker(
    log_path: Path, concurrent_calls: int = 0, environment: dict[str, str] | None = None,
    wait: bool = True,
) -> Iterator[str]:
    """Run TFF's ``worker_binary`` on a free loopback port; yields its ``host:port`` target.

    The worker runs at most ``concurrent_calls`` computations at once (0: one per usable core,
    which beat TFF's unlimited default here because ten clients training at once on two cores
    thrash each other's caches; -1: no limit). Its output goes to ``log_path``. It is stopped
    when the block exits, however it exits, and killed by the kernel if this process dies first.
    ``environment`` defaults to :func:`worker_environment`. With ``wait`` the block starts once
    the worker answers (else :class:`WorkerError` after ``WORKER_START_TIMEOUT_SECONDS``);
    without, at once, and the first connection waits (see :func:`local_execution`).
    """
    concurrency = worker_concurrency(concurrent_calls)
    port = portpicker.pick_unused_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            _dying_with_this_process(
                [str(worker_binary_path()), f"--port={port}",
                 f"--max_concurrent_computation_calls={concurrency}"]),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=worker_environment() if environment is None else environment,
        )
    target = f"localhost:{port}"
    try:
        if wait:
            with grpc.insecure_channel(target) as channel:
                _await_ready(channel, WORKER_START_TIMEOUT_SECONDS,
                             _unanswered_local_worker(log_path))
        yield target
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=WORKER_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _unanswered_local_worker(log_path: Path) -> str:
    return (f"the local TFF worker did not answer within {WORKER_START_TIMEOUT_SECONDS:.0f} s "
            f"(its output: {log_path}); rounds up to the last checkpoint are kept: re-run the "
            "same command to resume")


def compile_for_worker(computation):
    """TFF's native compilation; secure-sum intrinsics run as plain sums in simulation."""
    computation = test_compiler.replace_secure_intrinsics_with_bodies(computation)
    return native_compiler.desugar_and_transform_to_native(computation)


def _await_ready(channel: grpc.Channel, timeout_seconds: float, failure: str) -> None:
    """Wait for ``channel`` to connect, else raise :class:`WorkerError` saying ``failure``."""
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_seconds)
    except grpc.FutureTimeoutError:
        raise WorkerError(failure) from None


def _executor_factory(
    target: str, timeout_seconds: float = 30.0, unanswered: str | None = None
) -> python_executor_stacks.ResourceManagingExecutorFactory:
    """Executors that run every computation on the TFF worker at ``target``.

    TFF retries a computation on an unavailable worker forever; the executor is rebuilt before
    each retry, and that is where an unanswering worker becomes a :class:`WorkerError` saying
    ``unanswered`` (default: how to resume with a restarted remote worker).
    """
    channel = grpc.insecure_channel(target, _GRPC_OPTIONS)
    stub = remote_executor_grpc_stub.RemoteExecutorGrpcStub(channel)
    unanswered = unanswered or (
        f"TFF worker {target} stopped answering; rounds up to the last checkpoint are "
        "kept: start the worker again and re-run the same command to resume")

    def executor_stack(cardinalities):
        _await_ready(channel, timeout_seconds, unanswered)
        cardinalities.setdefault(tff.CLIENTS, 0)  # as TFF's local context: 0 when not inferable
        executor = remote_executor.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    return python_executor_stacks.ResourceManagingExecutorFactory(executor_stack)


def remote_execution_context(
    target: str, timeout_seconds: float = 30.0, unanswered: str | None = None,
    compiler: Compiler = compile_for_worker,
) -> sync_execution_context.SyncExecutionContext:
    """A synchronous TFF context that executes every computation on the worker at ``target``.

    ``compiler`` turns each computation into the worker's form (default
    :func:`compile_for_worker`; a cache can wrap it, see :mod:`fedlab.computation_cache`).
    """
    return sync_execution_context.SyncExecutionContext(
        executor_fn=_executor_factory(target, timeout_seconds, unanswered),
        compiler_fn=compiler,
        transform_args=tensorflow_computation.transform_args,
        transform_result=tensorflow_computation.transform_result,
    )


def _async_remote_context(
    target: str, timeout_seconds: float, unanswered: str | None, compiler: Compiler,
) -> async_execution_context.AsyncExecutionContext:
    return async_execution_context.AsyncExecutionContext(
        executor_fn=_executor_factory(target, timeout_seconds, unanswered),
        compiler_fn=compiler,
        transform_args=tensorflow_computation.transform_args,
        transform_result=tensorflow_computation.transform_result,
    )


def subrounds(cohort_size: int, clients_per_subround: int) -> int:
    """How many sequential subrounds a cohort is split into (``clients_per_subround`` 0: one)."""
    if clients_per_subround < 0:
        raise ConfigError(
            f"executor.clients_per_subround must be 0 (all clients at once) or a positive "
            f"count, got {clients_per_subround}")
    return math.ceil(cohort_size / clients_per_subround) if clients_per_subround else 1


def execution_context(targets: Sequence[str], timeout_seconds: float = 30.0,
                      num_subrounds: int = 1, unanswered: str | None = None,
                      compiler: Compiler = compile_for_worker):
    """A context running computations on the workers at ``targets``, in ``num_subrounds``.

    One target and one subround: TFF's plain synchronous context. Otherwise TFF's mergeable
    computation context splits each round's clients into ``max(num_subrounds, len(targets))``
    parts, run in turn on the targets (each part aggregated on its worker, the parts merged):
    a worker then holds only one part's client values at a time.
    """
    if len(targets) == 1 and num_subrounds <= 1:
        return remote_execution_context(targets[0], timeout_seconds, unanswered, compiler)
    return tff.backends.native.create_mergeable_comp_execution_context(
        [_async_remote_context(t, timeout_seconds, unanswered, compiler) for t in targets],
        num_subrounds=max(num_subrounds, len(targets)))


@contextlib.contextmanager
def local_execution(log_path: Path, concurrent_calls: int = 0, num_subrounds: int = 1,
                    compiler: Compiler = compile_for_worker) -> Iterator[None]:
    """Within the block, TFF computations run on a private local worker owned by this block.

    The block starts as soon as the worker process is launched, so the caller's own start-up
    work (tracing) overlaps the worker's; the first computation waits for it to answer.
    """
    with local_worker(log_path, concurrent_calls, wait=False) as target:
        with tff.framework.get_context_stack().install(execution_context(
                [target], WORKER_START_TIMEOUT_SECONDS, num_subrounds,
                _unanswered_local_worker(log_path), compiler)):
            yield


def check_reachable(targets: Sequence[str], timeout_seconds: float) -> None:
    """Raise :class:`WorkerError` naming the first target that does not answer in time."""
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            _await_ready(
                channel, timeout_seconds,
                f"TFF worker {target} did not answer within {timeout_seconds:.0f} s "
                "(is `python -m fedlab.worker --port ...` running there?)",
            )


@contextlib.contextmanager
def remote_execution(targets: Sequence[str], timeout_seconds: float = 30.0,
                     num_subrounds: int = 1, compiler: Compiler = compile_for_worker
                     ) -> Iterator[None]:
    """Within the block, TFF computations run on already running workers at ``targets``.

    One target runs everything; several targets split each round's clients between them with
    TFF's mergeable-computation context (each worker aggregates its share, the shares are
    merged here); see :func:`execution_context` for ``num_subrounds``.
    """
    if not targets:
        raise WorkerError("executor=remote needs executor.targets=[host:port,...]")
    check_reachable(targets, timeout_seconds)
    with tff.framework.get_context_stack().install(
            execution_context(targets, timeout_seconds, num_subrounds, compiler=compiler)):
        yield


WORKER_LOG = "worker.log"


@dataclass(frozen=True)
class LocalExecution:
    """``executor=local``: a private TFF worker per run, logging to the run's worker.log.

    ``concurrent_calls``: computations the worker runs at once; 0 = one per usable CPU core,
    -1 = no limit (TFF's default). ``client_datasets_in_worker``: the worker builds the clients'
    datasets from their ids (:mod:`fedlab.client_datasets`) rather than receiving them.
    ``clients_per_subround``: 0 runs a round's clients at once; N > 0 runs them in sequential
    subrounds of at most N (see :func:`execution_context`), bounding the worker's memory by N
    clients' values instead of the whole cohort's. The aggregate is then summed in parts: the
    same up to float rounding.
    """

    concurrent_calls: int = 0
    client_datasets_in_worker: bool = True
    clients_per_subround: int = 0

    def __post_init__(self):
        """Reject an impossible concurrency before anything starts."""
        if self.concurrent_calls < -1:
            raise ConfigError(
                "executor.concurrent_calls must be -1 (no limit), 0 (one per CPU core) or a "
                f"positive count, got {self.concurrent_calls}")
        subrounds(1, self.clients_per_subround)

    def context(self, run_dir: Path, cohort_size: int = 1,
                compiler: Compiler = compile_for_worker):
        """The execution block for a run writing into ``run_dir``, of ``cohort_size`` clients."""
        return local_execution(run_dir / WORKER_LOG, self.concurrent_calls,
                               subrounds(cohort_size, self.clients_per_subround), compiler)


@dataclass(frozen=True)
class RemoteExecution:
    """``executor=remote``: already running workers (``python -m fedlab.worker --port P``)."""

    targets: Sequence[str] = ()
    connect_timeout_seconds: float = 30.0
    client_datasets_in_worker: bool = True
    clients_per_subround: int = 0

    def __post_init__(self):
        """Reject an impossible subround size before anything starts."""
        subrounds(1, self.clients_per_subround)

    def context(self, run_dir: Path, cohort_size: int = 1,
                compiler: Compiler = compile_for_worker):
        """The execution block for ``cohort_size`` clients (the workers log where they run)."""
        del run_dir
        return remote_execution(list(self.targets), self.connect_timeout_seconds,
                                subrounds(cohort_size, self.clients_per_subround), compiler)


def drop_default_context() -> None:
    """Replace TFF's import-time default context, which fedlab never uses.

    Importing TFF installs a local C++ context whose service manager would start its own
    worker if ever invoked and whose ``__del__`` fails noisily at interpreter shutdown.
    fedlab installs its own context around every run, so the default is replaced by TFF's
    "no context" placeholder, which makes any computation invoked outside a run fail loudly.
    """
    tff.framework.get_context_stack().set_default_context(
        runtime_error_context.RuntimeErrorContext()
    )


def worker_processes_alive(parent: int | None = None) -> list[int]:
    """PIDs of TFF worker processes whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [p for p in pids if "worker_binary" in Path(f"/proc/{p}/cmdline").read_text()]
