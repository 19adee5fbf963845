"""Training on TFF workers started with `python -m fedlab.worker`, over loopback."""

import os
import subprocess
import sys
import threading

import pandas as pd
import portpicker
import pytest
from conftest import REPO, small_config

from fedlab.errors import WorkerError
from fedlab.run import run
from fedlab.runtime import check_reachable

ROUNDS = ["schedule.rounds=3", "schedule.clients_per_round=4"]


@pytest.fixture
def workers():
    ports = [portpicker.pick_unused_port() for _ in range(2)]
    processes = [
        subprocess.Popen([sys.executable, "-m", "fedlab.worker", f"--port={port}"], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports
    ]
    targets = [f"localhost:{port}" for port in ports]
    check_reachable(targets, timeout_seconds=60)
    yield targets, processes
    for process in processes:
        process.kill()
        process.wait()


def test_two_workers_give_the_metrics_of_a_local_run(tmp_path, workers):
    targets, _ = workers
    run(small_config(tmp_path / "local", *ROUNDS))
    run(small_config(tmp_path / "remote", *ROUNDS, "executor=remote",
                     f"executor.targets=[{','.join(targets)}]"))
    timing = ["round_seconds", "eval_seconds"]
    local = pd.read_csv(tmp_path / "local" / "metrics.csv").drop(columns=timing)
    remote = pd.read_csv(tmp_path / "remote" / "metrics.csv").drop(columns=timing)
    pd.testing.assert_frame_equal(local, remote, rtol=1e-5)


def test_worker_command_runs_one_computation_per_core_with_two_arenas(workers):
    _, processes = workers
    pid = processes[0].pid  # python -m fedlab.worker execs the binary in its own place
    arguments = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
    environment = open(f"/proc/{pid}/environ", "rb").read().decode().split("\0")
    assert arguments[0].endswith("worker_binary")
    assert f"--max_concurrent_computation_calls={len(os.sched_getaffinity(0))}" in arguments
    assert "MALLOC_ARENA_MAX=2" in environment


def test_unreachable_worker_is_named(tmp_path):
    target = f"localhost:{portpicker.pick_unused_port()}"
    with pytest.raises(WorkerError, match=f"TFF worker {target} did not answer"):
        run(small_config(tmp_path, "executor=remote", f"executor.targets=[{target}]",
                         "executor.connect_timeout_seconds=2"))


def test_worker_dying_mid_run_is_named_and_the_run_resumes(tmp_path, workers):
    targets, processes = workers
    remote = ["executor=remote", f"executor.targets=[{targets[0]}]",
              "executor.connect_timeout_seconds=3", "schedule.checkpoint_every=1"]
    first = small_config(tmp_path, *remote, "schedule.rounds=400")
    metrics = tmp_path / "metrics.csv"

    def kill_after_two_rounds():
        while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2):
            threading.Event().wait(0.1)
        processes[0].kill()

    killer = threading.Thread(target=kill_after_two_rounds, daemon=True)
    killer.start()
    with pytest.raises(WorkerError, match=f"TFF worker {targets[0]} stopped answering"):
        run(first)
    done = len(pd.read_csv(metrics))
    assert 2 <= done < 400
    # The second worker stands in; the run resumes from its last checkpoint.
    resumed = ["executor=remote", f"executor.targets=[{targets[1]}]",
               "schedule.checkpoint_every=1", f"schedule.rounds={done + 2}"]
    run(small_config(tmp_path, *resumed))
    assert pd.read_csv(metrics)["round"].tolist() == list(range(1, done + 3))
