"""dataset.validation_fraction: a validation set carved from training data, used for selection."""

import json

import numpy as np
import pytest
from conftest import metrics, small_config, summary

from fedlab.data import emnist
from fedlab.data.mnist import load_mnist
from fedlab.data.validation import with_validation
from fedlab.errors import ConfigError
from fedlab.run import run
from fedlab.runs import figures


def _rows(x, y) -> list[bytes]:
    return [a.tobytes() + b.tobytes() for a, b in zip(x, y, strict=True)]


def test_in_memory_clients_each_give_their_share_and_the_test_set_is_untouched():
    data = load_mnist(num_clients=10)
    carved = with_validation(data, 0.1, seed=0)
    before = sorted(_rows(*data.pooled_train()))
    after = sorted(_rows(*carved.pooled_train()) + _rows(carved.validation_x, carved.validation_y))
    assert after == before  # every training example is either still trained on or validation
    assert not set(_rows(carved.validation_x, carved.validation_y)) & set(
        _rows(data.test_x, data.test_y))  # validation never holds a test example
    assert carved.test_set_sha256 == data.test_set_sha256
    assert len(carved.validation_y) == sum(round(0.1 * len(data.train.arrays(c)[1]))
                                           for c in data.train.client_ids)
    assert carved.train.client_ids == data.train.client_ids  # no client lost
    assert carved.client_label_counts.sum() == len(before) - len(carved.validation_y)
    again = with_validation(load_mnist(num_clients=10), 0.1, seed=0)
    assert again.validation_set_sha256 == carved.validation_set_sha256
    assert with_validation(data, 0.1, seed=1).validation_set_sha256 != carved.validation_set_sha256
    assert with_validation(data, 0.0) is data


def test_database_clients_are_held_out_whole(tmp_path):
    from test_data import _write_emnist_database

    _write_emnist_database(tmp_path / emnist.DATABASE_NAME, clients_per_split=4)
    data = emnist.load_emnist(cache_dir=str(tmp_path))
    carved = with_validation(data, 0.25, seed=0)
    assert len(carved.train.client_ids) == 3
    (held,) = set(data.train.client_ids) - set(carved.train.client_ids)
    x, y = (np.concatenate(a) for a in zip(*[(e["x"].numpy()[None], e["y"].numpy()[None])
                                             for e in data.train.create_tf_dataset_for_client(
                                                 held)], strict=True))
    np.testing.assert_array_equal(carved.validation_x, x)
    np.testing.assert_array_equal(carved.validation_y, y)
    assert not set(_rows(carved.validation_x, carved.validation_y)) & set(
        _rows(data.test_x, data.test_y))


@pytest.mark.parametrize("fraction,message", [
    (1.0, r"validation_fraction must be in \[0, 1\)"), (-0.1, "must be in"),
])
def test_impossible_fractions_are_one_line(fraction, message):
    with pytest.raises(ConfigError, match=message) as raised:
        with_validation(load_mnist(num_clients=10), fraction)
    assert "\n" not in str(raised.value)


def test_a_run_with_validation_selects_on_it_and_reports_the_test_set(tmp_path):
    run(small_config(tmp_path, "dataset.validation_fraction=0.25", "schedule.rounds=3"))
    table = metrics(tmp_path)
    assert table["val_accuracy"].between(0, 1).all() and table["eval_accuracy"].notna().all()
    result = summary(tmp_path)
    best = table.loc[table["val_accuracy"].idxmax()]
    assert result["best_val_round"] == best["round"]
    assert result["eval_accuracy_at_best_val"] == best["eval_accuracy"]
    assert result["final_val_accuracy"] == table["val_accuracy"].iloc[-1]
    assert "best_eval_accuracy" not in result  # nothing is chosen on the test set
    assert result["provenance"]["validation_examples"] > 0
    assert result["provenance"]["validation_set_sha256"]


def test_a_run_without_validation_has_no_validation_columns(tmp_path):
    run(small_config(tmp_path))
    assert not any(c.startswith("val_") for c in metrics(tmp_path))
    assert "best_eval_accuracy" in summary(tmp_path)


def test_the_search_objective_reads_validation_when_there_is_one(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(
        {"final_eval_accuracy": 0.9, "final_val_accuracy": 0.6, "best_val_accuracy": 0.7}))
    (tmp_path / "metrics.csv").write_text(
        "round,eval_accuracy,val_accuracy\n1,0.9,0.5\n2,0.95,0.8\n")
    assert figures.objective_value(tmp_path, "final_eval_accuracy", 0.8, 2) == 0.6
    assert figures.objective_value(tmp_path, "best_eval_accuracy", 0.8, 2) == 0.7
    assert figures.objective_value(tmp_path, "rounds_to_target", 0.8, 2) == 2  # val, not test
