"""``python -m fedlab.worker --port P``: serve TFF computations for remote fedlab runs.

Replaces this process with TFF's own C++ executor service (``worker_binary``), listening on
``P``. Runs elsewhere point at it with ``executor=remote executor.targets=[host:P,...]``.
"""

import argparse
import importlib.util
import os
import sys
from pathlib import Path


def worker_binary_path() -> Path:
    """TFF's ``worker_binary``, found without importing TensorFlow (this process execs it)."""
    package = importlib.util.find_spec("tensorflow_federated").submodule_search_locations[0]
    return Path(package) / "data" / "worker_binary"


def main(argv: list[str] | None = None) -> None:
    """Parse the port and exec the worker binary in this process's place."""
    parser = argparse.ArgumentParser(prog="python -m fedlab.worker", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="TCP port to serve on")
    parser.add_argument("--max-concurrent-calls", type=int, default=0,
                        help="computations run at once (0: one per usable CPU core, -1: no limit)")
    args = parser.parse_args(argv)
    if args.max_concurrent_calls < -1:
        parser.error("--max-concurrent-calls must be -1, 0 or a positive count")
    concurrency = args.max_concurrent_calls or len(os.sched_getaffinity(0))
    binary = str(worker_binary_path())
    sys.stdout.flush()
    # Same allocator setting as fedlab's local worker (fedlab.runtime.WORKER_MALLOC_ENV): keeps
    # the worker's memory flat over many rounds. Not imported from there: that pulls in TF.
    environment = {"MALLOC_ARENA_MAX": "2", **os.environ}
    os.execve(binary, [binary, f"--port={args.port}",
                       f"--max_concurrent_computation_calls={concurrency}"], environment)


if __name__ == "__main__":
    main()
