"""The loop's callbacks: client-level evaluation, a callback that stops training, config edits."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import compose_config, small_config

from fedlab.callbacks import Callback
from fedlab.data.federated_data import partitioned_federated_data
from fedlab.data.partition import Partition
from fedlab.errors import ConfigError
from fedlab.run import load_dataset, run

SKEWED_MNIST = ["dataset=mnist", "dataset.num_clients=20", "dataset.partition.method=dirichlet",
                "dataset.partition.alpha=0.1", "dataset.client_test_fraction=0.25",
                "model=mlp", "schedule=smoke"]


class StopAfter(Callback):
    """Asks the loop to stop after a given round (a stand-in for early stopping or a budget)."""

    def __init__(self, round_num: int):
        self.round_num = round_num

    def on_round_end(self, context, round_num, result, row):
        row["stop_requested"] = float(round_num >= self.round_num)
        return round_num >= self.round_num


def test_client_evaluation_is_exact_and_orders_min_p10_mean(tmp_path):
    cfg = compose_config(SKEWED_MNIST, tmp_path)
    run(cfg)
    table = pd.read_csv(tmp_path / "metrics.csv")
    last = table.iloc[-1]
    assert last["client_accuracy_min"] <= last["client_accuracy_p10"] <= last[
        "client_accuracy_mean"]
    per_client = pd.read_csv(tmp_path / "client_eval.csv")
    assert list(per_client.columns) == ["client", "examples", "loss", "accuracy"]
    assert len(per_client) == 20
    # Recompute each client's accuracy from the saved final model and its own test share.
    data = load_dataset(cfg.dataset)
    model = tf.keras.models.load_model(tmp_path / "model.keras")
    for _, row in per_client.iterrows():
        x, y = data.client_test[row["client"]]
        assert row["examples"] == len(y)
        if len(y):
            accuracy = (model.predict(x, verbose=0).argmax(axis=1) == y).mean()
            assert row["accuracy"] == pytest.approx(accuracy)
    scored = per_client["accuracy"].dropna()
    assert last["client_accuracy_mean"] == pytest.approx(scored.mean())
    assert last["client_accuracy_p10"] == pytest.approx(np.percentile(scored, 10))
    assert last["client_accuracy_min"] == pytest.approx(scored.min())
    # The held-out set is untouched; client shares come out of the clients' own examples.
    train = sum(len(list(data.train.create_tf_dataset_for_client(c)))
                for c in data.train.client_ids)
    assert train + per_client["examples"].sum() == 4000
    assert (table["examples"] > 0).all()


def test_without_client_test_data_no_client_columns_are_written(tmp_path):
    run(small_config(tmp_path))
    assert not any(c.startswith("client_") for c in pd.read_csv(tmp_path / "metrics.csv"))
    assert not (tmp_path / "client_eval.csv").exists()


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_client_test_fraction_outside_zero_one_fails_before_training(tmp_path, fraction):
    with pytest.raises(ConfigError, match=r"client_test_fraction must be in \[0, 1\)"):
        run(compose_config([*SKEWED_MNIST, f"dataset.client_test_fraction={fraction}"],
                           tmp_path))
    assert not (tmp_path / "metrics.csv").exists()


def test_a_client_test_share_that_empties_a_client_is_refused():
    labels = np.arange(6) % 3
    with pytest.raises(ConfigError, match="leaves client_0000 .* no training example"):
        partitioned_federated_data(
            np.zeros((6, 2, 2, 1), np.float32), labels, np.zeros((1, 2, 2, 1), np.float32),
            labels[:1], 3, Partition("shards", shards_per_client=1), np.random.default_rng(0),
            ["a", "b", "c"], client_test_fraction=0.8)


def test_a_callback_can_stop_training_and_the_last_round_is_checkpointed(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=5", "schedule.checkpoint_every=10",
                     "+callbacks.stop._target_=test_callbacks.StopAfter",
                     "+callbacks.stop.round_num=2"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["round"].tolist() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["round_2"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rounds_completed"] == 2 and summary["rounds_trained_this_invocation"] == 2


def test_a_dropped_callback_leaves_its_columns_out(tmp_path):
    run(small_config(tmp_path, "~callbacks.held_out_evaluation", "schedule.rounds=1"))
    assert "eval_accuracy" not in pd.read_csv(tmp_path / "metrics.csv")
