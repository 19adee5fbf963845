"""The TFF execution contexts fedlab runs computations in, on its own workers.

The worker processes themselves are :mod:`fedlab.executors.worker`'s; the config-facing executors
(``executor=local|remote``) are :mod:`fedlab.executors.execution`'.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
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

from fedlab.errors import WorkerError
from fedlab.executors.worker import LaunchedWorker, launched_worker

# Turns a computation into the form the worker runs.
Compiler = Callable[[tff.framework.ConcreteComputation], tff.framework.ConcreteComputation]
# None while a worker runs, else a line saying how it ended (for workers this process launched).
WorkerGone = Callable[[], str | None]
_GRPC_OPTIONS = [
    ("grpc.max_message_length", 2_000_000_000),
    ("grpc.max_receive_message_length", 2_000_000_000),
    ("grpc.max_send_message_length", 2_000_000_000),
]
WORKER_START_TIMEOUT_SECONDS = 60.0
# Opens a gRPC channel to a worker's target.
Connect = Callable[[str], grpc.Channel]


def open_channel(target: str, credentials: grpc.ChannelCredentials | None = None,
                 server_name: str | None = None) -> grpc.Channel:
    """A channel to ``target``: plain to this user's local workers (``unix:`` sockets).

    With ``credentials``: TLS, for remote workers, whose certificate is checked for
    ``server_name`` (default: the target's host).
    """
    if credentials is None:
        return grpc.insecure_channel(target, _GRPC_OPTIONS)
    options = [*_GRPC_OPTIONS, *([("grpc.ssl_target_name_override", server_name)]
                                 if server_name else [])]
    return grpc.secure_channel(target, credentials, options)


@contextlib.contextmanager
def local_worker(
    log_path: Path, concurrent_calls: int = 0, environment: dict[str, str] | None = None,
) -> Iterator[str]:
    """A launched local worker; the block starts once it answers; yields its target.

    (Else :class:`WorkerError` after ``WORKER_START_TIMEOUT_SECONDS``.) :func:`local_execution`
    starts its block at once instead, and its first connection waits.
    """
    with launched_worker(log_path, concurrent_calls, environment) as worker:
        with open_channel(worker.target) as channel:
            _await_ready(channel, WORKER_START_TIMEOUT_SECONDS, _unanswered_local_worker(log_path))
        yield worker.target


def _unanswered_local_worker(log_path: Path) -> str:
    return (f"the local TFF worker did not answer within {WORKER_START_TIMEOUT_SECONDS:.0f} s "
            f"(its output: {log_path}); rounds up to the last checkpoint are kept: re-run the "
            "same command to resume")


def _local_worker_gone(worker: LaunchedWorker, log_path: Path) -> WorkerGone:
    def gone() -> str | None:
        ended = worker.exit_description()
        return None if ended is None else (
            f"the local TFF worker {ended} (its output: {log_path}); rounds up to the last "
            "checkpoint are kept: re-run the same command to resume")
    return gone


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
    target: str, timeout_seconds: float = 30.0, unanswered: str | None = None,
    gone: WorkerGone | None = None, connect: Connect = open_channel,
) -> python_executor_stacks.ResourceManagingExecutorFactory:
    """Executors that run every computation on the TFF worker at ``target``.

    TFF retries a computation on an unavailable worker forever; the executor is rebuilt before
    each retry, and that is where an unanswering worker becomes a :class:`WorkerError` saying
    ``unanswered`` (default: how to resume with a restarted remote worker) — at once, saying
    ``gone()``, when ``gone`` tells that the worker process has ended.
    """
    channel = connect(target)
    stub = remote_executor_grpc_stub.RemoteExecutorGrpcStub(channel)
    unanswered = unanswered or (
        f"TFF worker {target} stopped answering; rounds up to the last checkpoint are "
        "kept: start the worker again and re-run the same command to resume")

    def executor_stack(cardinalities):
        if gone is not None and (ended := gone()) is not None:
            raise WorkerError(ended)
        _await_ready(channel, timeout_seconds, unanswered)
        cardinalities.setdefault(tff.CLIENTS, 0)  # as TFF's local context: 0 when not inferable
        executor = remote_executor.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    return python_executor_stacks.ResourceManagingExecutorFactory(executor_stack)


def remote_execution_context(
    target: str, timeout_seconds: float = 30.0, unanswered: str | None = None,
    compiler: Compiler = compile_for_worker, gone: WorkerGone | None = None,
    connect: Connect = open_channel,
) -> sync_execution_context.SyncExecutionContext:
    """A synchronous TFF context that executes every computation on the worker at ``target``.

    ``compiler`` turns each computation into the worker's form (default
    :func:`compile_for_worker`; a cache can wrap it, see :mod:`fedlab.executors.computation_cache`).
    """
    return sync_execution_context.SyncExecutionContext(
        executor_fn=_executor_factory(target, timeout_seconds, unanswered, gone, connect),
        compiler_fn=compiler,
        transform_args=tensorflow_computation.transform_args,
        transform_result=tensorflow_computation.transform_result,
    )


def _async_remote_context(
    target: str, timeout_seconds: float, unanswered: str | None, compiler: Compiler,
    gone: WorkerGone | None = None, connect: Connect = open_channel,
) -> async_execution_context.AsyncExecutionContext:
    return async_execution_context.AsyncExecutionContext(
        executor_fn=_executor_factory(target, timeout_seconds, unanswered, gone, connect),
        compiler_fn=compiler,
        transform_args=tensorflow_computation.transform_args,
        transform_result=tensorflow_computation.transform_result,
    )


def execution_context(targets: Sequence[str], timeout_seconds: float = 30.0,
                      num_subrounds: int = 1, unanswered: str | None = None,
                      compiler: Compiler = compile_for_worker, gone: WorkerGone | None = None,
                      connect: Connect = open_channel):
    """A context running computations on the workers at ``targets``, in ``num_subrounds``.

    One target and one subround: TFF's plain synchronous context. Otherwise TFF's mergeable
    computation context splits each round's clients into ``max(num_subrounds, len(targets))``
    parts, run in turn on the targets (each part aggregated on its worker, the parts merged):
    a worker then holds only one part's client values at a time.
    """
    if len(targets) == 1 and num_subrounds <= 1:
        return remote_execution_context(targets[0], timeout_seconds, unanswered, compiler,
                                        gone, connect)
    return tff.backends.native.create_mergeable_comp_execution_context(
        [_async_remote_context(t, timeout_seconds, unanswered, compiler, gone, connect)
         for t in targets],
        num_subrounds=max(num_subrounds, len(targets)))


@contextlib.contextmanager
def local_execution(log_path: Path, concurrent_calls: int = 0, num_subrounds: int = 1,
                    compiler: Compiler = compile_for_worker,
                    worker: LaunchedWorker | None = None) -> Iterator[None]:
    """Within the block, TFF computations run on a private local worker.

    The worker logging to ``log_path`` is launched with the block (and stopped with it), unless
    ``worker`` is one this process already launched. The block starts without waiting for the
    worker, so the caller's own start-up work (tracing) overlaps the worker's; the first
    computation waits for it to answer. A worker that dies during the block (killed, crashed)
    ends the next computation with one line saying how, without waiting for it to answer.
    """
    with contextlib.ExitStack() as stack:
        if worker is None:
            worker = stack.enter_context(launched_worker(log_path, concurrent_calls))
        stack.enter_context(tff.framework.get_context_stack().install(execution_context(
            [worker.target], WORKER_START_TIMEOUT_SECONDS, num_subrounds,
            _unanswered_local_worker(log_path), compiler,
            _local_worker_gone(worker, log_path))))
        yield


def check_reachable(targets: Sequence[str], timeout_seconds: float,
                    connect: Connect = open_channel) -> None:
    """Raise :class:`WorkerError` naming the first target that does not answer in time.

    (Over TLS, a worker whose certificate the CA did not sign, or not for its host name, never
    becomes ready: it is named the same way.)
    """
    for target in targets:
        with connect(target) as channel:
            _await_ready(
                channel, timeout_seconds,
                f"TFF worker {target} did not answer within {timeout_seconds:.0f} s "
                "(is `python -m fedlab.worker --port ...` running there, with a certificate "
                "of the same CA for that host name?)",
            )


@contextlib.contextmanager
def remote_execution(targets: Sequence[str], timeout_seconds: float = 30.0,
                     num_subrounds: int = 1, compiler: Compiler = compile_for_worker,
                     connect: Connect = open_channel) -> Iterator[None]:
    """Within the block, TFF computations run on already running workers at ``targets``.

    One target runs everything; several targets split each round's clients between them with
    TFF's mergeable-computation context (each worker aggregates its share, the shares are
    merged here); see :func:`execution_context` for ``num_subrounds``.
    """
    if not targets:
        raise WorkerError("executor=remote needs executor.targets=[host:port,...]")
    check_reachable(targets, timeout_seconds, connect)
    with tff.framework.get_context_stack().install(
            execution_context(targets, timeout_seconds, num_subrounds, compiler=compiler,
                              connect=connect)):
        yield


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
