"""The real entrypoint as a user runs it: outputs, sweeps, the worker's lifetime, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import (
    REPO,
    TOKEN_VARIABLE,
    reachable_listeners,
    run_cli,
    tagged_pids,
    wait_for,
)

SMOKE = ["dataset=synthetic", "schedule=smoke", "model=simple_cnn"]


def worker_pids(token: str) -> set[int]:
    """The TFF worker processes started by the test run tagged ``token`` (and no others)."""
    def is_worker(pid: int) -> bool:
        try:
            return b"worker_binary" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    return {pid for pid in tagged_pids(token) if is_worker(pid)}


def wait_gone(token: str, seconds: float = 30) -> set[int]:
    """The tagged run's workers still alive after waiting up to ``seconds``."""
    wait_for(lambda: not worker_pids(token), seconds)
    return worker_pids(token)


def single_run_dir(root: Path) -> Path:
    runs = [p.parent for p in root.glob("outputs/*/*/metrics.csv")]
    assert len(runs) == 1, runs
    return runs[0]


def test_piped_run_returns_writes_outputs_and_leaves_no_worker(tmp_path):
    token = "piped-" + tmp_path.name
    result = run_cli(*SMOKE, cwd=tmp_path, timeout=300, shell_suffix="| cat", token=token)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "round 2/2" in result.stdout
    run_dir = single_run_dir(tmp_path)
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert pd.read_csv(run_dir / "metrics.csv")["round"].tolist() == [1, 2]
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert not wait_gone(token)


def test_mnist_smoke_run_writes_every_round(tmp_path):
    result = run_cli("dataset=mnist", "schedule=smoke", "model=simple_cnn",
                     "dataset.num_clients=10", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(single_run_dir(tmp_path) / "metrics.csv")
    assert table["round"].tolist() == [1, 2]
    assert {"train_loss", "train_accuracy", "examples", "batches", "round_seconds",
            "eval_accuracy", "bits_up"} <= set(table.columns)
    assert (table["examples"] == 2 * 400).all()  # 4,000 training digits over 10 clients


@pytest.mark.slow
def test_two_by_two_sweep_gives_four_run_folders(tmp_path):
    result = run_cli("-m", *SMOKE, "model=fedavg_cnn,simple_cnn", "aggregator=mean,compression",
                     "schedule.rounds=1", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(tmp_path.glob("multirun/*/*/*/metrics.csv"))
    assert len(runs) == 4
    combined = pd.concat(pd.read_csv(p).assign(run=p.parent.name) for p in runs)
    assert combined["run"].nunique() == 4
    assert combined["bits_up"].nunique() == 4  # each model x aggregator uploads its own size


def _start_and_wait_for_rounds(tmp_path: Path, rounds: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), TOKEN_VARIABLE: token}
    process = subprocess.Popen(
        [sys.executable, "-m", "fedlab", *SMOKE, "schedule.rounds=200", "hydra.run.dir=run"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    metrics = tmp_path / "run" / "metrics.csv"
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) > rounds:
            return process
        time.sleep(0.5)
    process.kill()
    pytest.fail("the run did not reach its first rounds")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_leaves_no_worker(tmp_path, how):
    token = f"killed-{how.name}-{tmp_path.name}"
    process = _start_and_wait_for_rounds(tmp_path, rounds=1, token=token)
    assert worker_pids(token), "the run should have a worker while training"
    # While it trains, nothing in the run's process tree is reachable from another host.
    assert reachable_listeners(process.pid) == []
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700
    process.send_signal(how)
    process.wait(timeout=60)
    assert not wait_gone(token)


@pytest.mark.parametrize("args,message", [
    (["model=no_such_model"], "Could not find 'model/no_such_model'"),
    (["schedule.roundz=3"], "Key 'roundz' not in 'ScheduleSchema'"),
    (["schedule.rounds=many"], "could not be converted to Integer"),
    ([*SMOKE, "schedule.rounds=0"], "error: schedule.rounds must be a positive integer"),
    ([*SMOKE, "schedule.clients_per_round=9"], "error: schedule.clients_per_round=9 exceeds"),
    ([*SMOKE, "hydra.run.dir=/proc/fedlab/run"], "error: cannot write to the output folder"),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert len([line for line in output.splitlines() if message in line]) == 1
    assert "Traceback" not in output
    if message.startswith("error:"):  # fedlab's own: nothing else is called an error
        assert [line for line in output.splitlines() if "error" in line.lower()] == [
            line for line in output.splitlines() if message in line]
    assert not list(tmp_path.glob("outputs/*/*/metrics.csv"))


def test_cfg_flag_prints_the_composed_job(tmp_path):
    result = run_cli("--cfg", "job", "model=simple_cnn", cwd=tmp_path, timeout=120)
    assert result.returncode == 0
    assert "_target_: fedlab.models.images.simple_cnn" in result.stdout


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path):
    args = ["dataset=synthetic", "model=fedavg_cnn", "schedule=smoke", "schedule.rounds=30",
            "schedule.checkpoint_every=3", "dataset.image_size=28"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "fedlab", *args, "hydra.run.dir=killed"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill once round 4 is written: after checkpoint 3
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=60)
    killed_at = len(pd.read_csv(metrics))
    assert 4 <= killed_at < 30, "the kill should land mid-run"
    resumed = run_cli(*args, "hydra.run.dir=killed", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from the checkpoint of round" in resumed.stdout + resumed.stderr
    whole = run_cli(*args, "hydra.run.dir=whole", cwd=tmp_path, timeout=300)
    assert whole.returncode == 0
    timing = ["round_seconds", "eval_seconds"]
    resumed_table = pd.read_csv(metrics).drop(columns=timing)
    assert resumed_table["round"].tolist() == list(range(1, 31))
    pd.testing.assert_frame_equal(
        resumed_table, pd.read_csv(tmp_path / "whole" / "metrics.csv").drop(columns=timing),
        check_exact=True)


@pytest.mark.slow
def test_parallel_sweep_records_a_failing_job_and_finishes_the_other(tmp_path):
    result = run_cli("-m", "hydra/launcher=parallel", *SMOKE, "schedule.clients_per_round=2,99",
                     cwd=tmp_path, timeout=600)
    assert result.returncode != 0
    assert "exceeds the 8 clients" in result.stdout + result.stderr
    jobs = sorted(p for p in tmp_path.glob("multirun/*/*/*") if p.is_dir())
    statuses = {p.name: json.loads((p / "summary.json").read_text())["status"] for p in jobs}
    assert statuses == {"0": "completed", "1": "failed"}
    assert pd.read_csv(jobs[0] / "metrics.csv")["round"].tolist() == [1, 2]


@pytest.mark.slow
def test_submitit_local_executor_runs_a_two_job_sweep(tmp_path):
    result = run_cli("-m", "hydra/launcher=local_processes", *SMOKE, "schedule.seed=0,1",
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(tmp_path.glob("multirun/*/*/*/metrics.csv"))) == 2
