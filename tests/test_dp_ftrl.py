"""DP-FTRL: its aggregator against NumPy without noise, its accounting against dp-accounting."""

import collections
import json

import dp_accounting
import numpy as np
import pandas as pd
import pytest
import tensorflow_federated as tff
from conftest import small_config

from fedlab.errors import ConfigError
from fedlab.executors import contexts
from fedlab.privacy import accounting
from fedlab.privacy.ftrl import DpFtrlAggregator
from fedlab.run import run

VALUE_TYPE = tff.to_type(collections.OrderedDict(w=tff.TensorType(np.float32, [3])))


def released(factory, rounds, tmp_path):
    """The factory's output for each round's client values."""
    process = factory.create(VALUE_TYPE)
    outputs = []
    with contexts.local_execution(tmp_path / "worker.log"):
        state = process.initialize()
        for values in rounds:
            output = process.next(state, [collections.OrderedDict(w=v) for v in values])
            state = output.state
            outputs.append(np.asarray(output.result["w"]))
    return outputs


def rounds_of_updates(count=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (4, 3)).astype(np.float32) for _ in range(count)]


def test_without_noise_each_round_releases_the_clipped_mean(tmp_path):
    factory, _ = DpFtrlAggregator(0.0, clients_per_round=4, clip=1.5).for_federation(
        8, 5, "epoch")
    rounds = rounds_of_updates()
    for ours, values in zip(released(factory, rounds, tmp_path), rounds, strict=True):
        norms = np.linalg.norm(values, axis=1, keepdims=True)
        clipped = values * np.minimum(1.0, 1.5 / norms)
        np.testing.assert_allclose(ours, clipped.sum(axis=0) / 4, rtol=1e-5, atol=1e-6)


def test_the_noise_is_seeded(tmp_path):
    rounds = rounds_of_updates(3)
    first, again, other = (released(DpFtrlAggregator(1.0, 4, 1.0, seed=s).for_federation(
        8, 3, "epoch")[0], rounds, tmp_path) for s in (7, 7, 8))
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))


@pytest.mark.parametrize("rounds", [1, 4, 9])
def test_epsilon_is_a_tree_per_epoch_in_dp_accounting(rounds):
    period = 4  # ceil(10 clients / 3 per round)
    direct = dp_accounting.rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_SPECIAL)
    for start in range(0, rounds, period):
        direct.compose(dp_accounting.SingleEpochTreeAggregationDpEvent(
            2.0, min(period, rounds - start)))
    ours = accounting.epsilon(rounds, 2.0, 10, 3, 1e-5, "epoch", "rdp", accounting.TREE)
    assert ours == pytest.approx(direct.get_epsilon(1e-5), rel=1e-12)


def test_dp_ftrl_without_epoch_sampling_is_one_line():
    with pytest.raises(ConfigError, match="needs schedule.sampling=epoch") as error:
        DpFtrlAggregator(1.0, 4, 1.0).for_federation(8, 5, "uniform")
    assert "\n" not in str(error.value)


def test_a_dp_ftrl_run_accounts_every_round(tmp_path):
    run(small_config(tmp_path, "aggregator=dp_ftrl", "schedule.sampling=epoch",
                     "aggregator.noise_multiplier=1.0", "schedule.rounds=6"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    summary = json.loads((tmp_path / "summary.json").read_text())
    expected = [accounting.epsilon(r, 1.0, 8, 2, 1e-5, "epoch", "rdp", accounting.TREE)
                for r in table["round"]]
    np.testing.assert_allclose(table["dp_epsilon"], expected, rtol=1e-12)
    assert table["dp_epsilon"].is_monotonic_increasing and np.isfinite(table["dp_epsilon"]).all()
    assert "REPLACE_SPECIAL" in summary["dp_accountant"] and summary["dp_sampling"] == "epoch"
