"""TFF's C++ worker process: launched for a local run, or ``python -m fedlab.worker --port P``.

TFF's own local context starts ``worker_binary`` with the parent's stdout and only stops it in
``__del__``, so the worker outlives the Python process (and ``python -m fedlab | tee`` never
returns), and it listens on every network interface with no authentication. Here fedlab
starts the same binary itself, in network and user namespaces of its own where no other host
can reach it, served on a Unix socket in a private folder (:mod:`fedlab.executors.isolation`):
its output goes to a log file, it is asked to die with its parent (``PR_SET_PDEATHSIG``, so even
SIGKILL of Python takes it down), and the context manager stops it on every exit path. This
module does not import TensorFlow, so the entrypoint can launch the worker before importing it.

``python -m fedlab.worker --port P`` runs such a worker behind a mutual-TLS gateway on ``P``
(:mod:`fedlab.executors.gateway`, :mod:`fedlab.executors.credentials`): runs elsewhere point at
it with ``executor=remote executor.targets=[host:P,...]`` and the deployment's driver credentials.
"""

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedlab.errors import ConfigError
from fedlab.executors import gateway
from fedlab.executors.credentials import ENVIRONMENT, TlsFiles

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
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


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0))


def worker_concurrency(concurrent_calls: int) -> int:
    """The worker's ``--max_concurrent_computation_calls``: 0 means one per usable core.

    Values below -1 are refused where they enter (the executor config, the worker's CLI).
    """
    return usable_cores() if concurrent_calls == 0 else concurrent_calls


def worker_binary_path() -> Path:
    """TFF's ``worker_binary``, found without importing TensorFlow."""
    package = importlib.util.find_spec("tensorflow_federated").submodule_search_locations[0]
    return Path(package) / "data" / "worker_binary"


# The script that isolates the worker and forwards its Unix socket (standard library only).
ISOLATION_SCRIPT = Path(__file__).with_name("isolation.py")


@dataclass(frozen=True)
class LaunchedWorker:
    """A worker this process launched: its gRPC target, its process, and what it exposes.

    ``target`` is ``unix:<socket>`` in a folder private to this user. ``exposed_port`` is None
    when the worker is reachable only through it; else the TCP port it also listens on, on
    every interface (the namespaces were refused for ``exposed_reason``).
    """

    target: str
    process: subprocess.Popen
    exposed_port: int | None = None
    exposed_reason: str = ""

    @property
    def exposure(self) -> str | None:
        """None when isolated; else one line saying what the network can reach."""
        if self.exposed_port is None:
            return None
        return (f"the TFF worker could not be isolated from the network ({self.exposed_reason}):"
                f" it listens on port {self.exposed_port} of every interface with no "
                "authentication while it runs, and runs any TensorFlow computation sent to it")

    def exit_description(self) -> str | None:
        """None while the worker runs; else how it ended ("was killed by SIGKILL", ...)."""
        status = self.process.poll()
        if status is None:
            return None
        if status < 0:
            name = signal.Signals(-status).name
            if -status == signal.SIGKILL:
                return (f"was killed by {name} (what the kernel's out-of-memory killer sends "
                        "when memory runs out; executor.clients_per_subround bounds the "
                        "worker's memory)")
            return f"was killed by {name}"
        return f"exited with status {status}"


@contextlib.contextmanager
def launched_worker(log_path: Path | None, concurrent_calls: int = 0,
                    environment: dict[str, str] | None = None,
                    isolate: bool = True) -> Iterator[LaunchedWorker]:
    """Launch TFF's ``worker_binary`` where only this user can reach it; yields it.

    The worker runs in network and user namespaces of its own (:mod:`fedlab.executors.isolation`),
    served on a Unix socket in a private folder; where the kernel refuses the namespaces (or
    ``isolate`` is false) it also listens on every interface, and one warning says so. It runs
    at most ``concurrent_calls`` computations at once (0: one per usable core, which beat TFF's
    unlimited default here because ten clients training at once on two cores thrash each
    other's caches; -1: no limit). Its output goes to ``log_path`` (None: this process's). It
    is stopped when the block exits, however it exits, and killed by the kernel if this process
    dies first. ``environment`` defaults to :func:`worker_environment`. It runs in
    ``log_path``'s folder, where relative file names in computations (the clients' arrays
    file) resolve. The block starts at once: the worker answers a moment later
    (``fedlab.executors.contexts.local_worker`` can wait for it).
    """
    concurrency = worker_concurrency(concurrent_calls)
    private = Path(tempfile.mkdtemp(prefix="fedlab-worker-"))  # 0700
    socket_path = private / "worker.sock"
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    status_read, status_write = os.pipe()
    try:
        with contextlib.ExitStack() as files:
            output = None if log_path is None else files.enter_context(open(log_path, "ab"))
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(ISOLATION_SCRIPT), f"--parent={os.getpid()}",
                 f"--socket={socket_path}", f"--status-fd={status_write}",
                 *([] if isolate else ["--no-isolation"]), "--",
                 str(worker_binary_path()), f"--max_concurrent_computation_calls={concurrency}"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=None if output is None else subprocess.STDOUT,
                env=worker_environment() if environment is None else environment,
                cwd=None if log_path is None else log_path.parent,
                pass_fds=(status_write,),
            )
    except BaseException:
        os.close(status_read)
        shutil.rmtree(private, ignore_errors=True)
        raise
    finally:
        os.close(status_write)
    with os.fdopen(status_read) as status_pipe:
        status = status_pipe.readline().strip()  # "isolated" or "exposed <port> <reason>"
    launched = LaunchedWorker(f"unix:{socket_path}", process)
    if status.startswith("exposed "):
        _, port, reason = status.split(" ", 2)
        launched = LaunchedWorker(launched.target, process, int(port), reason)
        log.warning(launched.exposure)
    try:
        yield launched
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=WORKER_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(private, ignore_errors=True)


def worker_processes_alive(parent: int | None = None) -> list[int]:
    """PIDs of TFF worker processes whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [p for p in pids if "worker_binary" in Path(f"/proc/{p}/cmdline").read_text()]


def main(argv: list[str] | None = None) -> None:
    """Serve TFF computations on ``--port`` to drivers holding the deployment's credentials.

    The worker runs isolated (see :func:`launched_worker`); the TLS gateway
    (:mod:`fedlab.executors.gateway`) is its only door. SIGINT or SIGTERM stop both.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fedlab.worker",
        description="Serve TFF computations to fedlab drivers over mutual TLS.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to serve on")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default: every interface)")
    parser.add_argument("--max-concurrent-calls", type=int, default=0,
                        help="computations run at once (0: one per usable CPU core, -1: no limit)")
    for name, variable in ENVIRONMENT.items():
        parser.add_argument(f"--{name}", default=None,
                            help=f"PEM file (default: ${variable})")
    args = parser.parse_args(argv)
    if args.max_concurrent_calls < -1:
        parser.error("--max-concurrent-calls must be -1, 0 or a positive count")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    try:
        files = TlsFiles.find(args.ca, args.cert, args.key,
                              "--ca/--cert/--key or FEDLAB_TLS_CA/FEDLAB_TLS_CERT/FEDLAB_TLS_KEY")
        context = files.server_context()
    except (ConfigError, OSError, ssl.SSLError) as error:
        parser.exit(2, f"error: {error}\n")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with launched_worker(None, args.max_concurrent_calls) as worker:
            ended = asyncio.run(gateway.serve(
                args.host, args.port, context, worker.target.removeprefix("unix:"),
                worker.exit_description))
            log.error("the TFF worker %s", ended)
            sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
