"""Personalized evaluation: fine-tune the global model per client, score it on that client."""

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config, metrics, small_config
from omegaconf import OmegaConf

from fedlab.errors import ConfigError
from fedlab.report import cli
from fedlab.run import run

CLIENT_DATA = ["dataset.num_clients=6", "dataset.client_test_fraction=0.3",
               "schedule.clients_per_round=3"]


def client_data_config(run_dir, *overrides):
    """MNIST digits on 6 clients that keep 30 % for client-level evaluation, simple_cnn."""
    return compose_config(["schedule=smoke", "model=simple_cnn", *CLIENT_DATA, *overrides],
                          run_dir)


def test_a_fine_tuning_rate_of_zero_gives_the_client_level_evaluation(tmp_path):
    run(client_data_config(tmp_path, "schedule.rounds=2", "personalization.epochs=2",
                     "personalization.learning_rate=0"))
    personalized = pd.read_csv(tmp_path / "personalized_eval.csv").set_index("client")
    client_level = pd.read_csv(tmp_path / "client_eval.csv").set_index("client")
    assert len(personalized) == 6
    pd.testing.assert_series_equal(personalized["personalized_accuracy"],
                                   client_level.loc[personalized.index, "accuracy"],
                                   check_names=False, check_exact=True)
    last = metrics(tmp_path).iloc[-1]
    assert last["personalized_accuracy_mean"] == last["client_accuracy_mean"]
    assert last["personalized_accuracy_min"] == last["client_accuracy_min"]
    assert last["personalized_accuracy_p10"] == last["client_accuracy_p10"]


@pytest.mark.slow
def test_fine_tuning_moves_the_clients_accuracy_and_every_sets_the_rounds(tmp_path):
    cfg = client_data_config(tmp_path, "schedule.rounds=3", "personalization.epochs=3",
                             "personalization.learning_rate=0.1", "personalization.every=2")
    run(cfg)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")  # as the command line saves it
    table = metrics(tmp_path)
    evaluated = table["personalized_accuracy_mean"].notna().tolist()
    assert evaluated == [False, True, True]  # round 2 (every 2) and the last round
    personalized = pd.read_csv(tmp_path / "personalized_eval.csv")
    assert not np.array_equal(personalized["personalized_accuracy"], personalized["accuracy"])
    accuracy = personalized["personalized_accuracy"].to_numpy()
    last = table.iloc[-1]
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "personalized_accuracy.png").stat().st_size > 0
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert runs["final_personalized_accuracy_mean"].item() == last["personalized_accuracy_mean"]
    assert last["personalized_accuracy_mean"] == pytest.approx(accuracy.mean())
    assert last["personalized_accuracy_p10"] == pytest.approx(np.percentile(accuracy, 10))
    assert last["personalized_accuracy_min"] == accuracy.min()


def test_off_by_default_and_without_client_test_data(tmp_path):
    run(client_data_config(tmp_path / "default"))
    assert "personalized_accuracy_mean" not in metrics(tmp_path / "default")
    run(small_config(tmp_path / "no_client_data", "personalization.epochs=1"))
    assert not (tmp_path / "no_client_data" / "personalized_eval.csv").exists()


def test_negative_epochs_fail_before_training_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="personalization.epochs"):
        run(small_config(tmp_path, "personalization.epochs=-1"))
    assert not (tmp_path / "metrics.csv").exists()
