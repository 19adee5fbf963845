"""Differential privacy: accounting against dp-accounting, the budget stop, calibration,
research settings that build, bad input."""

import json

import dp_accounting
import pandas as pd
import pytest
from conftest import small_config
from dp_accounting import rdp

from fedlab.errors import ConfigError
from fedlab.privacy import accounting
from fedlab.run import run

# 20 synthetic clients, 10 per round: DP at research settings, in a few seconds.
DP = ["aggregator=dp", "dataset.num_clients=20", "schedule.clients_per_round=10"]


def direct_epsilon(rounds, noise, num_clients=20, clients_per_round=10, delta=1e-5):
    """dp-accounting called directly, as its documentation composes a sampled Gaussian."""
    accountant = rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    event = dp_accounting.SampledWithoutReplacementDpEvent(
        num_clients, clients_per_round, dp_accounting.GaussianDpEvent(noise))
    for _ in range(rounds):
        accountant.compose(event)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("rounds", [1, 10, pytest.param(100, marks=pytest.mark.slow)])
def test_epsilon_matches_dp_accounting(rounds):
    assert accounting.epsilon(rounds, 1.0, 50, 10, 1e-5) == pytest.approx(
        direct_epsilon(rounds, 1.0, 50, 10))


@pytest.mark.slow
def test_calibrated_noise_meets_the_target_and_one_percent_less_does_not():
    noise = accounting.calibrate_noise(8.0, 40, 50, 10, 1e-5)
    assert accounting.epsilon(40, noise, 50, 10, 1e-5) <= 8.0
    assert accounting.epsilon(40, 0.99 * noise, 50, 10, 1e-5) > 8.0


def test_a_budget_no_noise_multiplier_can_meet_is_refused():
    with pytest.raises(ConfigError, match="no noise multiplier up to 10000 keeps epsilon"):
        accounting.calibrate_noise(1e-3, 1000, 50, 10, 1e-5)


def test_noise_one_at_ten_clients_per_round_trains_and_reports_epsilon(tmp_path):
    run(small_config(tmp_path, *DP, "aggregator.noise_multiplier=1.0", "schedule.rounds=3"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["dp_epsilon"].tolist() == pytest.approx(
        [direct_epsilon(r, 1.0) for r in (1, 2, 3)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dp_epsilon"] == pytest.approx(direct_epsilon(3, 1.0))
    assert summary["dp_delta"] == 1e-5 and summary["dp_noise_multiplier"] == 1.0
    assert summary["dp_clipping"].startswith("adaptive")


def test_clipping_without_noise_reports_no_finite_epsilon(tmp_path):
    run(small_config(tmp_path, *DP, "aggregator.noise_multiplier=0", "schedule.rounds=2"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert (table["dp_epsilon"] == float("inf")).all()
    assert accounting.epsilon(5, 0.0, 50, 10, 1e-5) == float("inf")


def test_fixed_clipping_trains_with_the_same_accounting(tmp_path):
    run(small_config(tmp_path, *DP, "aggregator=dp_fixed", "aggregator.noise_multiplier=0.5",
                     "aggregator.clip=1.0", "schedule.rounds=2"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dp_clipping"] == "fixed, norm 1.0"
    assert summary["dp_epsilon"] == pytest.approx(direct_epsilon(2, 0.5))


@pytest.mark.slow
def test_a_budget_stops_training_before_the_round_that_would_exceed_it(tmp_path):
    target = (direct_epsilon(2, 1.0) + direct_epsilon(3, 1.0)) / 2
    run(small_config(tmp_path, *DP, "aggregator.noise_multiplier=1.0", "schedule.rounds=6",
                     "schedule.checkpoint_every=10", f"aggregator.target_epsilon={target}"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["round"].tolist() == [1, 2]
    assert table["dp_epsilon"].max() <= target
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped_early"].startswith("privacy budget: round 3 would take epsilon")
    assert (tmp_path / "checkpoints" / "round_2").exists() and (tmp_path / "model.keras").exists()


@pytest.mark.slow
def test_auto_noise_is_calibrated_to_the_target_over_the_rounds(tmp_path, caplog):
    caplog.set_level("INFO", logger="fedlab")
    run(small_config(tmp_path, *DP, "aggregator.noise_multiplier=auto",
                     "aggregator.target_epsilon=20", "schedule.rounds=3"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    noise = summary["dp_noise_multiplier"]
    assert noise == pytest.approx(accounting.calibrate_noise(20, 3, 20, 10, 1e-5))
    assert summary["dp_epsilon"] <= 20 and "stopped_early" not in summary
    assert "the smallest that keeps epsilon <= 20" in caplog.text


@pytest.mark.parametrize("overrides,message", [
    (["aggregator.target_epsilon=0"], "target_epsilon must be > 0"),
    (["aggregator.target_delta=1"], r"target_delta must be in \(0, 1\)"),
    (["aggregator.noise_multiplier=0", "aggregator.target_epsilon=5"],
     "cannot be met with noise_multiplier=0"),
    (["aggregator.noise_multiplier=auto"], "noise_multiplier=auto needs aggregator.target_epsilon"),
    (["aggregator.noise_multiplier=lots"], "must be a number or 'auto'"),
    (["aggregator.noise_multiplier=0.3", "aggregator.target_epsilon=0.5"],
     "one round already takes epsilon to"),
    (["aggregator.clients_per_round=5"], "differs from schedule.clients_per_round=10"),
])
def test_bad_privacy_settings_fail_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(small_config(tmp_path, *DP, *overrides))
    assert not (tmp_path / "metrics.csv").exists() or pd.read_csv(
        tmp_path / "metrics.csv").empty


@pytest.mark.slow
@pytest.mark.parametrize("aggregator", ["dp", "dp_fixed"])
def test_the_same_seed_gives_the_same_noise_and_another_seed_other_noise(tmp_path, aggregator):
    tables = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run(small_config(tmp_path / name, *DP, f"aggregator={aggregator}",
                         "aggregator.noise_multiplier=1.0", "schedule.rounds=3",
                         f"aggregator.seed={seed}"))
        tables[name] = pd.read_csv(tmp_path / name / "metrics.csv").drop(
            columns=["round_seconds", "eval_seconds"])
    pd.testing.assert_frame_equal(tables["a"], tables["b"], check_exact=True)
    assert not tables["a"]["eval_loss"].equals(tables["c"]["eval_loss"])


@pytest.mark.slow
def test_a_resumed_dp_run_draws_the_noise_of_an_uninterrupted_one(tmp_path):
    noisy = [*DP, "aggregator.noise_multiplier=1.0"]
    run(small_config(tmp_path / "whole", *noisy, "schedule.rounds=4"))
    run(small_config(tmp_path / "resumed", *noisy, "schedule.rounds=2"))
    run(small_config(tmp_path / "resumed", *noisy, "schedule.rounds=4"))
    timing = ["round_seconds", "eval_seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "resumed" / "metrics.csv").drop(columns=timing),
        pd.read_csv(tmp_path / "whole" / "metrics.csv").drop(columns=timing), check_exact=True)
