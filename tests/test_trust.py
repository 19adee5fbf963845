"""Results that survive a second look: resume guard, running sums, TensorBoard after a resume,
failure records, checkpoint I/O errors, provenance, central mode."""

import errno
import logging
import shutil
import subprocess

import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import REPO, folder_snapshot, metrics, run_cli, small_config, summary
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fedlab.errors import CheckpointError, ConfigError, RunFolderConflict
from fedlab.run import run

SMOKE = ["dataset=synthetic", "schedule=smoke", "model=simple_cnn"]


def test_cumulative_columns_are_running_sums_of_the_rows(tmp_path):
    run_dir = tmp_path / "run"
    run(small_config(run_dir, "schedule.rounds=2", "schedule.checkpoint_every=2"))
    table = metrics(run_dir)
    # A first round that sent less (as with a different aggregator or fewer clients).
    table.loc[0, ["bits_up", "bits_up_cumulative"]] = 1000
    table.loc[1, "bits_up_cumulative"] = 1000 + table.loc[1, "bits_up"]
    table.to_csv(run_dir / "metrics.csv", index=False)
    run(small_config(run_dir, "schedule.rounds=4", "schedule.checkpoint_every=2"))
    resumed = metrics(run_dir)
    assert resumed["bits_up_cumulative"].tolist() == resumed["bits_up"].cumsum().tolist()
    assert resumed["bits_down_cumulative"].tolist() == resumed["bits_down"].cumsum().tolist()
    assert resumed["bits_up_cumulative"].iloc[-1] == 1000 + 3 * resumed["bits_up"].iloc[-1]
    assert summary(run_dir)["bits_up_total"] == resumed["bits_up_cumulative"].iloc[-1]


@pytest.mark.slow
def test_tensorboard_shows_each_round_once_after_a_resume(tmp_path):
    run_dir = tmp_path / "run"
    run(small_config(run_dir, "schedule.rounds=3", "schedule.checkpoint_every=2"))
    shutil.rmtree(run_dir / "checkpoints" / "round_3")  # killed before round 3's checkpoint
    run(small_config(run_dir, "schedule.rounds=4", "schedule.checkpoint_every=2"))
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0}).Reload()
    for tag in ("train_loss", "eval_accuracy", "bits_up_cumulative"):
        steps = [event.step for event in events.Tensors(tag)]
        assert steps == [1, 2, 3, 4], (tag, steps)
    board = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("train_loss")}
    assert board == pytest.approx(dict(zip(metrics(run_dir)["round"],
                                           metrics(run_dir)["train_loss"], strict=True)))


def test_resume_with_another_config_is_refused_and_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run(small_config(run_dir, "schedule.rounds=2"))
    before = folder_snapshot(run_dir)
    with pytest.raises(RunFolderConflict, match=r"aggregator\._target_: .*MeanFactory.* -> "
                                                r".*compression_aggregator"):
        run(small_config(run_dir, "schedule.rounds=3", "aggregator=compression"))
    with pytest.raises(RunFolderConflict, match=r"schedule\.seed: 0 -> 5"):
        run(small_config(run_dir, "schedule.seed=5"))
    with pytest.raises(RunFolderConflict, match="schedule.rounds=1 is below the 2 rounds"):
        run(small_config(run_dir, "schedule.rounds=1"))
    assert folder_snapshot(run_dir) == before
    # Where it runs is not part of the result: another executor setting resumes.
    run(small_config(run_dir, "schedule.rounds=3", "executor.concurrent_calls=1"))
    assert metrics(run_dir)["round"].tolist() == [1, 2, 3]


def test_a_folder_with_no_finished_round_may_start_with_another_config(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError):
        run(small_config(run_dir, "schedule.clients_per_round=99"))
    run(small_config(run_dir, "schedule.clients_per_round=2"))
    assert summary(run_dir)["status"] == "completed"


@pytest.mark.slow
def test_cli_refuses_a_changed_config_before_hydra_rewrites_the_folder(tmp_path):
    first = run_cli(*SMOKE, "hydra.run.dir=run", cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    before = folder_snapshot(tmp_path / "run")
    second = run_cli(*SMOKE, "model=mlp", "hydra.run.dir=run", cwd=tmp_path, timeout=300)
    assert second.returncode == 1
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    expected = ("error: the run folder run was started with another configuration "
                "(model._target_: 'fedlab.models.images.simple_cnn' -> 'fedlab.models.images.mlp')")
    assert len(lines) == 1 and lines[0].startswith(expected), second.stderr
    assert folder_snapshot(tmp_path / "run") == before  # .hydra/ included


@pytest.mark.parametrize("override,message", [
    ("schedule.rounds=0", "schedule.rounds must be a positive integer"),
    ("schedule.clients_per_round=99", "exceeds the 8 clients"),
])
def test_failures_before_training_leave_a_failed_summary(tmp_path, override, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError):
        run(small_config(run_dir, override))
    record = summary(run_dir)
    assert record["status"] == "failed" and message in record["error"]
    assert record["provenance"]["command"] and record["provenance"]["ended_at"]


def test_a_transient_read_error_deletes_no_checkpoint(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run(small_config(run_dir, "schedule.rounds=2", "schedule.checkpoint_every=1"))
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())

    async def denied(self, version, structure):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tff.program.FileProgramStateManager, "load", denied)
    with pytest.raises(CheckpointError, match="PermissionError.*nothing was deleted"):
        run(small_config(run_dir, "schedule.rounds=3", "schedule.checkpoint_every=1"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == kept
    assert metrics(run_dir)["round"].tolist() == [1, 2]


def test_a_full_disk_while_saving_stops_with_one_line(tmp_path, monkeypatch):
    async def full(self, program_state, version):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tff.program.FileProgramStateManager, "save", full)
    run_dir = tmp_path / "run"
    with pytest.raises(CheckpointError,
                       match="cannot write the checkpoint of round 2 .*No space") as error:
        run(small_config(run_dir, "schedule.rounds=2", "schedule.checkpoint_every=2"))
    assert "\n" not in str(error.value)
    assert metrics(run_dir)["round"].tolist() == [1, 2]
    assert summary(run_dir)["status"] == "failed"


def test_provenance_fingerprints_data_code_and_environment(tmp_path):
    run(small_config(tmp_path / "a", "schedule.seed=1"))
    run(small_config(tmp_path / "b", "schedule.seed=2"))
    a, b = summary(tmp_path / "a")["provenance"], summary(tmp_path / "b")["provenance"]
    assert a["test_set_sha256"] == b["test_set_sha256"]  # same held-out set for every seed
    assert a["partition_sha256"] != b["partition_sha256"]  # the partition follows the seed
    assert len(a["test_set_sha256"]) == 64
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert a["git_commit"] == head and isinstance(a["git_dirty"], bool)
    assert a["tensorflow_federated"] == "0.87.0" and a["packages"]["tensorflow"] == "2.14.1"
    assert a["python"].startswith("3.11") and a["host"]
    assert a["started_at"] <= a["ended_at"]


def test_central_mode_logs_each_epoch_and_ignores_client_sampling(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fedlab")
    run(small_config(tmp_path / "run", "trainer=central", "schedule.rounds=2",
                     "schedule.clients_per_round=99"))
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch")]
    assert [line.split(" |")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert "eval loss" in epochs[-1]
    assert summary(tmp_path / "run")["status"] == "completed"


def test_an_unexpected_exception_still_leaves_a_failed_summary(tmp_path, monkeypatch):
    from fedlab.trainers import federated

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(federated.FederatedTrainer, "train", broken)
    with pytest.raises(RuntimeError, match="boom"):
        run(small_config(tmp_path / "run"))
    record = summary(tmp_path / "run")
    assert record["status"] == "failed" and record["error"] == "RuntimeError: boom"
