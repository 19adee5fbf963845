"""TFF's C++ worker process: launched for a local run, or ``python -m fedlab.worker --port P``.

TFF's own local context starts ``worker_binary`` with the parent's stdout and only stops it in
``__del__``, so the worker outlives the Python process (and ``python -m fedlab | tee`` never
returns). Here fedlab starts the same binary itself: its output goes to a log file, it is asked
to die with its parent (``PR_SET_PDEATHSIG``, so even SIGKILL of Python takes it down), and the
context manager stops it on every exit path. This module does not import TensorFlow, so the
entrypoint can launch the worker before importing it.

``python -m fedlab.worker --port P`` replaces its own process with the worker, listening on
``P``: runs elsewhere point at it with ``executor=remote executor.targets=[host:P,...]``.
"""

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import portpicker

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

    Values below -1 are refused where they enter (the executor config, the worker's CLI).
    """
    return usable_cores() if concurrent_calls == 0 else concurrent_calls


def worker_binary_path() -> Path:
    """TFF's ``worker_binary``, found without importing TensorFlow."""
    package = importlib.util.find_spec("tensorflow_federated").submodule_search_locations[0]
    return Path(package) / "data" / "worker_binary"


@dataclass(frozen=True)
class LaunchedWorker:
    """A worker this process launched: its ``host:port`` target and its process."""

    target: str
    process: subprocess.Popen

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
def launched_worker(log_path: Path, concurrent_calls: int = 0,
                    environment: dict[str, str] | None = None) -> Iterator[LaunchedWorker]:
    """Launch TFF's ``worker_binary`` on a free loopback port; yields it (its target, process).

    The worker runs at most ``concurrent_calls`` computations at once (0: one per usable core,
    which beat TFF's unlimited default here because ten clients training at once on two cores
    thrash each other's caches; -1: no limit). Its output goes to ``log_path``. It is stopped
    when the block exits, however it exits, and killed by the kernel if this process dies first.
    ``environment`` defaults to :func:`worker_environment`. It runs in ``log_path``'s folder, where
    relative file names in computations (the clients' arrays file) resolve. The block starts at
    once: the worker answers a moment later (``fedlab.runtime.local_worker`` can wait for it).
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
            cwd=log_path.parent,
        )
    try:
        yield LaunchedWorker(f"localhost:{port}", process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=WORKER_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_processes_alive(parent: int | None = None) -> list[int]:
    """PIDs of TFF worker processes whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [p for p in pids if "worker_binary" in Path(f"/proc/{p}/cmdline").read_text()]


def main(argv: list[str] | None = None) -> None:
    """Parse the port and exec the worker binary in this process's place."""
    parser = argparse.ArgumentParser(prog="python -m fedlab.worker",
                                     description="Serve TFF computations for remote fedlab runs.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to serve on")
    parser.add_argument("--max-concurrent-calls", type=int, default=0,
                        help="computations run at once (0: one per usable CPU core, -1: no limit)")
    args = parser.parse_args(argv)
    if args.max_concurrent_calls < -1:
        parser.error("--max-concurrent-calls must be -1, 0 or a positive count")
    binary = str(worker_binary_path())
    sys.stdout.flush()
    os.execve(binary, [binary, f"--port={args.port}",
                       f"--max_concurrent_computation_calls="
                       f"{worker_concurrency(args.max_concurrent_calls)}"],
              worker_environment())


if __name__ == "__main__":
    main()
