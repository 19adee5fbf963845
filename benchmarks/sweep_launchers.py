"""Wall time of one 4-job sweep with each launcher, and of re-running the finished sweep.

    uv run python benchmarks/sweep_launchers.py [--rounds 5] [--launchers basic parallel ray]

The sweep: model=fedavg_cnn,simple_cnn x aggregator=mean,compression on the embedded MNIST
digits, ``--rounds`` rounds each. ``basic`` runs the jobs one after another in one process;
``parallel`` (joblib, 2 processes) and ``ray`` (a local Ray instance, 1 CPU per job) two at a
time. Each launcher's sweep is then run again into the same folder: every job is skipped.
Prints figures; asserts nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["model=fedavg_cnn,simple_cnn", "aggregator=mean,compression"]


def sweep(launcher: str, folder: Path, rounds: int) -> float:
    """Seconds of ``python -m fedlab -m`` with ``launcher`` into ``folder``."""
    command = [sys.executable, "-m", "fedlab", "-m", *SWEEP, f"schedule.rounds={rounds}",
               f"hydra.sweep.dir={folder}"]
    if launcher != "basic":
        command.append(f"hydra/launcher={launcher}")
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"error: the {launcher} sweep failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    """Time each launcher's sweep and its re-run; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--launchers", nargs="+", default=["basic", "parallel", "ray"])
    args = parser.parse_args()
    print(f"4-job sweep ({' x '.join(SWEEP)}), {args.rounds} rounds each, "
          f"{os.cpu_count()} CPUs")
    print("| launcher | sweep s | sum of jobs' training s | re-run (all skipped) s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for launcher in args.launchers:
            folder = Path(scratch) / launcher
            first = sweep(launcher, folder, args.rounds)
            training = sum(json.loads((folder / str(job) / "summary.json").read_text())
                           ["training_seconds"] for job in range(4))
            again = sweep(launcher, folder, args.rounds)
            print(f"| {launcher} | {first:.1f} | {training:.1f} | {again:.1f} |", flush=True)


if __name__ == "__main__":
    main()
