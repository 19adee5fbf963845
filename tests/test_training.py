"""In-process runs of run(cfg): outputs, reproducibility, resume, divergence, bad input."""

import json
import logging
import shutil

import pandas as pd
import pytest
import tensorflow as tf
from conftest import TIMING, assert_same_weights, metrics, small_config

from fedlab.errors import ConfigError, DivergenceError
from fedlab.run import load_dataset, run

COLUMNS = {"round", "train_loss", "train_accuracy", "examples", "batches", "round_seconds",
           "eval_loss", "eval_accuracy", "eval_seconds", "bits_down_per_client",
           "bits_up_per_client",
           "bits_down", "bits_up", "bits_down_cumulative", "bits_up_cumulative"}


def test_run_writes_metrics_summary_events_and_model(tmp_path):
    cfg = small_config(tmp_path / "run", "schedule.rounds=3", "schedule.eval_every=2")
    final_accuracy = run(cfg)
    run_dir = tmp_path / "run"
    table = metrics(run_dir)
    assert set(table.columns) == COLUMNS
    assert table["round"].tolist() == [1, 2, 3]
    assert table["eval_accuracy"].isna().tolist() == [True, False, False]
    # Evaluation is timed on its own, not inside the training round.
    assert table["eval_seconds"].isna().tolist() == [True, False, False]
    assert (table["round_seconds"] > 0).all() and (table["eval_seconds"].dropna() > 0).all()
    assert (table["examples"] == 2 * 24).all()
    assert (table["bits_up_cumulative"] == table["bits_up"] * table["round"]).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 3
    assert summary["final_eval_accuracy"] == pytest.approx(final_accuracy)
    assert summary["evaluation_seconds"] == pytest.approx(table["eval_seconds"].sum())
    assert list(run_dir.glob("events.out.tfevents.*"))
    # The saved Keras model reproduces the final held-out accuracy.
    data = load_dataset(cfg.dataset)
    model = tf.keras.models.load_model(run_dir / "model.keras")
    predictions = model.predict(data.test_x, verbose=0).argmax(axis=1)
    assert (predictions == data.test_y).mean() == pytest.approx(final_accuracy, abs=1e-6)


@pytest.mark.parametrize("aggregator", ["mean", "compression"])
def test_same_seed_gives_identical_metrics(tmp_path, aggregator):
    tables = []
    for name in ("a", "b"):
        # 12x12 images give simple_cnn a 36,864-weight dense kernel: above TFF's 20,000-element
        # threshold, so the compression run really quantizes (stochastically).
        run(small_config(tmp_path / name, f"aggregator={aggregator}", "schedule.rounds=3",
                         "dataset.image_size=12"))
        tables.append(metrics(tmp_path / name).drop(columns=TIMING))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert_same_weights(tmp_path / "a", tmp_path / "b")


def test_worker_concurrency_does_not_change_results(tmp_path):
    tables = []
    for calls in (1, -1):  # one client at a time vs every client of the round at once
        run(small_config(tmp_path / str(calls), "schedule.rounds=2",
                         f"executor.concurrent_calls={calls}"))
        tables.append(metrics(tmp_path / str(calls)).drop(columns=TIMING))
    pd.testing.assert_frame_equal(*tables, check_exact=True)


def test_other_seed_gives_other_metrics(tmp_path):
    run(small_config(tmp_path / "a", "schedule.seed=1"))
    run(small_config(tmp_path / "b", "schedule.seed=2"))
    assert not metrics(tmp_path / "a")["train_loss"].equals(metrics(tmp_path / "b")["train_loss"])


def test_resume_rewinds_rows_after_checkpoint_and_matches_uninterrupted_run(tmp_path):
    run(small_config(tmp_path / "whole", "schedule.rounds=4"))
    resumed = tmp_path / "resumed"
    run(small_config(resumed, "schedule.rounds=2", "schedule.checkpoint_every=2"))
    # As if killed after releasing round 3 but before its checkpoint: a stale row 3.
    stale = pd.concat([metrics(resumed), metrics(resumed).tail(1).assign(round=3)])
    stale.to_csv(resumed / "metrics.csv", index=False)
    run(small_config(resumed, "schedule.rounds=4", "schedule.checkpoint_every=2"))
    table = metrics(resumed)
    assert table["round"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(table.drop(columns=TIMING),
                                  metrics(tmp_path / "whole").drop(columns=TIMING),
                                  check_exact=True)
    assert_same_weights(resumed, tmp_path / "whole")


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    run_dir = tmp_path / "run"
    run(small_config(run_dir, "schedule.rounds=2"))
    for item in (run_dir / "checkpoints" / "round_2").iterdir():
        if item.is_file():
            item.write_bytes(b"garbage")
        else:
            shutil.rmtree(item)
    run(small_config(run_dir, "schedule.rounds=3"))
    assert "checkpoint round_2 is unusable" in caplog.text
    assert "resuming from the checkpoint of round 1" in caplog.text
    assert metrics(run_dir)["round"].tolist() == [1, 2, 3]


def test_divergence_stops_with_the_round_named(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(DivergenceError, match="diverged in round 1 .*no round had finished"):
        run(small_config(run_dir, "schedule.rounds=3", "optimizer.client.learning_rate=1e30"))
    assert metrics(run_dir).empty


@pytest.mark.parametrize("override,message", [
    ("schedule.rounds=0", "schedule.rounds must be a positive integer"),
    ("schedule.clients_per_round=-1", "schedule.clients_per_round must be a positive integer"),
    ("schedule.clients_per_round=99", "exceeds the 8 clients"),
    ("dataset.image_size=1", "cannot take inputs of shape"),
    ("executor.concurrent_calls=-2", "executor.concurrent_calls must be -1"),
    ("executor.clients_per_subround=-1", "executor.clients_per_subround must be 0"),
])
def test_bad_settings_fail_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run(small_config(tmp_path / "run", override))
    assert not (tmp_path / "run" / "metrics.csv").exists()
