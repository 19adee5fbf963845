"""Sweeps that survive: skipped finished jobs, the sweep guard, SIGTERM, HParams, Ray, Optuna."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import (
    REPO,
    TOKEN_VARIABLE,
    folder_snapshot,
    metrics,
    reachable_listeners,
    run_cli,
    small_config,
    summary,
    tagged_pids,
    wait_for,
)

from fedlab.run import run
from fedlab.runs.figures import objective_value

SMOKE = ["dataset=synthetic", "schedule=smoke", "model=simple_cnn"]
DETERMINISTIC = ["round", "train_loss", "train_accuracy", "examples", "eval_loss",
                 "eval_accuracy", "bits_up"]


def snapshot(folder):
    """The sweep's files but Hydra's records and logs, which every invocation rewrites."""
    return folder_snapshot(folder, skip=lambda p: ".hydra" in p.parts or p.name.endswith(".log")
                           or p.name == "multirun.yaml")


def test_objective_is_read_from_the_run_folder(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(
        {"final_eval_accuracy": 0.7, "best_eval_accuracy": 0.75}))
    pd.DataFrame({"round": [1, 2, 3], "eval_accuracy": [0.5, 0.75, 0.7]}).to_csv(
        tmp_path / "metrics.csv", index=False)
    assert objective_value(tmp_path, "final_eval_accuracy", 0.8, 3) == 0.7
    assert objective_value(tmp_path, "best_eval_accuracy", 0.8, 3) == 0.75
    assert objective_value(tmp_path, "rounds_to_target", 0.75, 3) == 2.0
    assert objective_value(tmp_path, "rounds_to_target", 0.9, 3) == 4.0  # never: rounds + 1
    assert pd.isna(objective_value(tmp_path / "missing", "final_eval_accuracy", 0.8, 3))


@pytest.mark.slow
def test_a_finished_sweep_run_again_skips_every_job_without_importing_tensorflow(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", *SMOKE, "schedule.seed=0,1", f"hydra.sweep.dir={sweep}"]
    first = run_cli(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(sweep)
    # summary.json 1 says interrupted, 0 failed: both run again, resuming from their last
    # checkpoints (nothing left to train), and finish.
    for job, status in (("1", "interrupted"), ("0", "failed")):
        record = summary(sweep / job)
        (sweep / job / "summary.json").write_text(json.dumps({**record, "status": status}))
    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    output = again.stdout + again.stderr
    assert output.count("skipped:") == 0
    assert output.count("resuming from the checkpoint") == 2
    for job in ("0", "1"):
        assert summary(sweep / job)["status"] == "completed"
        assert summary(sweep / job)["rounds_trained_this_invocation"] == 0
    for name in ("0/metrics.csv", "1/metrics.csv"):
        assert (sweep / name).read_bytes() == before[name]
    # Everything completed now: nothing is imported beyond the configuration (the entrypoint
    # ends the process itself, after running exit handlers: one reports what was imported).
    code = ("import atexit, runpy, sys; sys.argv = ['fedlab', *sys.argv[1:]]\n"
            "atexit.register(lambda: print('TENSORFLOW IMPORTED' if 'tensorflow' in sys.modules"
            " else 'NO TENSORFLOW', flush=True))\n"
            "runpy.run_module('fedlab', run_name='__main__')\n")
    started = time.perf_counter()
    third = subprocess.run([sys.executable, "-c", code, *command], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    print(f"finished 2-job sweep re-run: {time.perf_counter() - started:.1f} s")
    assert (third.stdout + third.stderr).count("skipped:") == 2, third.stderr[-2000:]
    assert "NO TENSORFLOW" in third.stdout


@pytest.mark.slow
def test_a_sweep_folder_of_another_sweep_is_refused_before_any_job(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_cli("-m", *SMOKE, "schedule.seed=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = folder_snapshot(sweep)
    other = run_cli("-m", *SMOKE, "schedule.seed=0,1", "schedule.local_epochs=2",
                    f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert other.returncode == 1
    lines = [line for line in other.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "was written by another sweep" in lines[0]
    assert "schedule.local_epochs: 1 -> 2" in lines[0]
    assert folder_snapshot(sweep) == before


def test_hparams_are_logged_for_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir = tmp_path / "run"
    run(small_config(run_dir, "optimizer.client.learning_rate=0.05"))
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert session.hparams["optimizer.client.learning_rate"].number_value == 0.05
    assert session.hparams["schedule.rounds"].number_value == 2
    assert session.hparams["model._target_"].string_value == "fedlab.models.images.simple_cnn"
    assert "eval_accuracy" in accumulator.Tags()["tensors"] + accumulator.Tags()["scalars"]


@pytest.mark.slow
def test_sigterm_finishes_the_round_checkpoints_and_resumes_as_if_uninterrupted(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "fedlab", *SMOKE, "schedule.rounds=300",
               "schedule.checkpoint_every=100", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (
            not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM, stderr[-2000:]
    record = summary(run_dir)
    stopped = record["rounds_completed"]
    assert record["status"] == "interrupted" and 2 <= stopped < 300
    assert f"SIGTERM after round {stopped}" in record["stopped_early"]
    assert (run_dir / "checkpoints" / f"round_{stopped}").exists()
    assert "stopped: SIGTERM" in stdout + stderr
    rounds = stopped + 2
    resumed = run_cli(*SMOKE, f"schedule.rounds={rounds}", "schedule.checkpoint_every=100",
                      f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert summary(run_dir)["status"] == "completed"
    run(small_config(tmp_path / "straight", f"schedule.rounds={rounds}"))
    pd.testing.assert_frame_equal(pd.read_csv(metrics)[DETERMINISTIC],
                                  pd.read_csv(tmp_path / "straight" / "metrics.csv")[DETERMINISTIC],
                                  check_exact=True)


@pytest.mark.slow
def test_ray_runs_each_job_in_its_own_process_exposes_nothing_and_leaves_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    token = "ray-" + tmp_path.name
    command = [sys.executable, "-m", "fedlab", "-m", "hydra/launcher=ray", *SMOKE,
               "schedule.seed=0,1", "schedule.rounds=30", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0", TOKEN_VARIABLE: token}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # While a job trains: Ray's processes and the job's TFF worker, none reachable from outside.
    assert wait_for(lambda: list(sweep.glob("*/metrics.csv")) or process.poll() is not None,
                    seconds=300)
    exposed = reachable_listeners(process.pid)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert exposed == []
    records = [summary(sweep / str(job)) for job in (0, 1)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    # The seeds ran apart (both may reach accuracy 1.0 on the synthetic data by round 30).
    assert not metrics(sweep / "0")["train_loss"].equals(metrics(sweep / "1")["train_loss"])
    pids = {line.split("pid=")[1].split(")")[0] for line in (stdout + stderr).splitlines()
            if "(_run_job pid=" in line}
    assert len(pids) == 2  # one Ray worker process per job (max_calls: 1)
    # Ray's processes, the jobs' processes and their TFF workers are all gone.
    assert wait_for(lambda: not tagged_pids(token), seconds=60), tagged_pids(token)


@pytest.mark.slow
def test_optuna_records_failed_trials_and_continues_the_study(tmp_path):
    sweep = tmp_path / "search"
    command = ["-m", "hparams_search=learning_rates", *SMOKE, f"hydra.sweep.dir={sweep}",
               "schedule.clients_per_round=choice(2,99)"]  # 99 clients fail before training
    first = run_cli(*command, "hydra.sweeper.n_trials=3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    with sqlite3.connect(sweep / "optuna.db") as db:
        trials = db.execute("select number, state from trials order by number").fetchall()
    assert len(trials) == 3 and {"COMPLETE", "FAIL"} <= {state for _, state in trials}
    # A sweep killed during its last completed trial: the study still has it running, its
    # folder an interrupted run (with the checkpoint of its last round).
    killed = max(number for number, state in trials if state == "COMPLETE")
    with sqlite3.connect(sweep / "optuna.db") as db:
        trial_id, = db.execute("select trial_id from trials where number = ?", (killed,)).fetchone()
        db.execute("update trials set state = 'RUNNING', datetime_complete = NULL "
                   "where trial_id = ?", (trial_id,))
        db.execute("delete from trial_values where trial_id = ?", (trial_id,))
    record = summary(sweep / str(killed))
    (sweep / str(killed) / "summary.json").write_text(
        json.dumps({**record, "status": "interrupted"}))
    second = run_cli(*command, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    with sqlite3.connect(sweep / "optuna.db") as db:
        values = db.execute("select trial_id, value from trial_values").fetchall()
        params = db.execute("select trial_id, param_name, param_value from trial_params "
                            "where param_name like 'optimizer%'").fetchall()
        trials = db.execute("select number, state from trials order by number").fetchall()
    assert len(trials) == 5 and dict(trials)[killed] == "COMPLETE"
    assert f"resuming trial {killed}" in second.stdout + second.stderr
    assert summary(sweep / str(killed))["status"] == "completed"
    assert dict(values)[trial_id] == record["final_eval_accuracy"]
    points = pd.DataFrame(params, columns=["trial", "name", "value"]).pivot(
        index="trial", columns="name", values="value")
    assert len(points.drop_duplicates()) == 5  # the continuation proposes new points
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(v for _, v in values)
    assert {p.name for p in sweep.iterdir() if p.is_dir()} == {str(n) for n in range(5)}
    best = max(summary(sweep / str(n)).get("final_eval_accuracy") or 0 for n in range(5))
    assert results["best_value"] == best


def test_a_search_space_over_an_unknown_key_is_one_clear_line(tmp_path):
    result = run_cli("-m", "hparams_search=learning_rates", *SMOKE, "hydra.sweeper.n_trials=1",
                     f"hydra.sweep.dir={tmp_path / 'search'}",
                     "optimizer.client.lr=interval(0.1,0.2)", cwd=tmp_path)
    assert result.returncode == 1
    said = [line for line in result.stderr.splitlines() if "the search space does not fit" in
            line]
    assert len(said) == 1 and ("the search space does not fit the configuration: Could not "
                               "override 'optimizer.client.lr'") in said[0]
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "search").glob("[0-9]*"))  # no trial was launched


@pytest.mark.parametrize(("address", "message"), [
    ("127.0.0.1:1", "error: cannot reach the Ray cluster at 127.0.0.1:1"),
    ("auto", "error: cannot connect to the Ray cluster at auto: Could not find any running Ray"),
])
def test_an_unreachable_ray_address_is_one_clear_line(tmp_path, address, message):
    started = time.perf_counter()
    result = run_cli("-m", "hydra/launcher=ray", *SMOKE,
                     f"hydra.launcher.ray.init.address={address}",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        line for line in result.stderr.splitlines() if line.startswith(message)]
    assert message in result.stderr
    assert not list((tmp_path / "sweep").glob("[0-9]*"))
    print(f"refused in {time.perf_counter() - started:.1f} s")
