"""The empirical privacy audit: canary uploads, the one-shot estimate, a run with canaries."""

import dataclasses
import json
import math

import dp_accounting
import numpy as np
import pandas as pd
import pytest
import tensorflow_federated as tff
from conftest import small_config
from dp_accounting.pld import pld_privacy_accountant
from linear_reference import (
    CLIENT_SGD,
    SERVER_SGD,
    clients,
    flat,
    linear_model_fn,
    one_round,
)
from scipy import integrate, stats

from fedlab.algorithms.fedavg import FedAvg
from fedlab.algorithms.scaffold import Scaffold
from fedlab.attacks.process import algorithm_process_with_uploads
from fedlab.data.synthetic import load_synthetic
from fedlab.errors import ConfigError
from fedlab.executors import contexts
from fedlab.privacy.audit import (
    PrivacyAudit,
    canary_direction,
    direction_cosines,
    empirical_epsilon,
    gaussian_pair_delta,
    gaussians_epsilon,
    without_canaries,
)
from fedlab.run import run

DATA = clients(count=3, examples=6, seed=4)


@pytest.mark.parametrize("mu", [0.5, 1.0, 3.0])
def test_equal_variances_give_the_gaussian_mechanisms_epsilon(mu):
    """N(0, 1) against N(mu, 1) is the Gaussian mechanism of noise multiplier 1/mu."""
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(dp_accounting.GaussianDpEvent(1 / mu))
    np.testing.assert_allclose(gaussians_epsilon((0.0, 1.0), (mu, 1.0), 1e-5),
                               accountant.get_epsilon(1e-5), rtol=1e-6)


@pytest.mark.parametrize("epsilon, p, q", [
    (1.0, (0.3, 0.02), (0.0, 0.01)), (2.5, (0.0, 0.01), (0.3, 0.02)),
    (0.5, (1.0, 1.0), (0.0, 1.5)), (4.0, (2.0, 0.7), (0.0, 1.0)),
])
def test_the_delta_of_two_gaussians_is_the_integral_of_their_excess(epsilon, p, q):
    """delta(epsilon) = integral of max(0, p(x) - e^eps q(x)), integrated numerically."""
    def excess(x):
        return max(0.0, stats.norm.pdf(x, *p) - math.exp(epsilon) * stats.norm.pdf(x, *q))

    low = min(p[0] - 12 * p[1], q[0] - 12 * q[1])
    high = max(p[0] + 12 * p[1], q[0] + 12 * q[1])
    expected, _ = integrate.quad(excess, low, high, points=[p[0], q[0]], limit=500,
                                 epsabs=1e-13)
    np.testing.assert_allclose(gaussian_pair_delta(epsilon, p, q), expected, rtol=1e-6,
                               atol=1e-12)


def test_a_canary_uploads_its_direction_and_others_their_update(tmp_path):
    """Flag 0 gives TFF's round bit for bit; flag k + 1 uploads canary_norm x direction k."""
    audit = PrivacyAudit(canaries=2, canary_norm=0.7, seed=3)
    aggregator = tff.aggregators.MeanFactory()
    honest = FedAvg().build(linear_model_fn, aggregator, CLIENT_SGD, SERVER_SGD)
    audited = algorithm_process_with_uploads(FedAvg(), honest, linear_model_fn, aggregator,
                                             CLIENT_SGD, SERVER_SGD, audit.upload,
                                             "privacy_audit.canaries")

    def after(process, sampled, flags=None):
        return one_round(process, DATA, sampled, flags)

    with contexts.local_execution(tmp_path / "worker.log"):
        start = flat(honest.get_model_weights(honest.initialize()))
        np.testing.assert_array_equal(after(audited, [0, 1, 2], [0.0, 0.0, 0.0]),
                                      after(honest, [0, 1, 2]))
        updates = [start - after(honest, [i]) for i in range(3)]
        audited_after = after(audited, [0, 1, 2], [0.0, 2.0, 0.0])
        direction = canary_direction(1, 3, start.size).numpy()
    np.testing.assert_allclose(np.linalg.norm(direction), 1.0, rtol=1e-6)
    uploads = [updates[0], 0.7 * direction, updates[2]]
    examples = np.array([len(y) for _, y in DATA], np.float64)
    np.testing.assert_allclose(audited_after, start - np.average(uploads, axis=0,
                                                                 weights=examples),
                               rtol=1e-5, atol=1e-6)


def test_the_estimate_tells_inserted_directions_from_held_back_ones():
    """A change made of the inserted directions is far from private; pure noise is not."""
    audit = PrivacyAudit(canaries=20, seed=7)
    size = 5000
    inserted = sum(canary_direction(k, 7, size).numpy() for k in range(20))
    noise = np.random.default_rng(0).normal(size=size)
    leaky = audit.estimate(inserted + 0.02 * noise, 1e-5)
    private = audit.estimate(noise, 1e-5)
    cosines = direction_cosines(inserted, 7, 40)
    assert cosines[:20].min() > 0.15 and abs(cosines[20:]).max() < 0.1
    assert leaky["canary_cosine_mean"] > 0.1 > abs(leaky["held_back_cosine_mean"])
    assert leaky["empirical_epsilon"] > 10 * private["empirical_epsilon"]
    assert (leaky["empirical_epsilon_analytic_null"]
            > 10 * private["empirical_epsilon_analytic_null"])
    # The held-back cosines follow the closed-form null N(0, 1/d) (their spread within 30 %).
    assert abs(private["held_back_cosine_std"] * size ** 0.5 - 1) < 0.3
    assert empirical_epsilon(np.zeros(4), np.zeros(4), 1e-5) == 0.0


def test_canaries_leave_the_client_tables(tmp_path):
    data = load_synthetic(num_clients=6)
    ids = list(data.train.client_ids)
    data = dataclasses.replace(data, client_test={c: (np.zeros((1, 8, 8, 1)), np.zeros(1))
                                                  for c in ids})
    pd.DataFrame({"client": ids, "train_examples": 24}).to_csv(tmp_path / "client_sizes.csv",
                                                              index=False)
    canaries = PrivacyAudit(canaries=2, seed=1).canary_clients(ids)
    assert canaries == PrivacyAudit(canaries=2, seed=1).canary_clients(ids)  # reproduces
    kept = without_canaries(data, canaries, tmp_path)
    assert set(kept.client_test) == set(ids) - set(canaries)
    assert set(pd.read_csv(tmp_path / "client_sizes.csv").client) == set(ids) - set(canaries)
    assert pd.read_csv(tmp_path / "canary_clients.csv").client.tolist() == canaries


def test_a_run_with_canaries_reports_a_finite_empirical_epsilon(tmp_path):
    run(small_config(tmp_path, "dataset.num_clients=12", "schedule.clients_per_round=6",
                     "privacy_audit.canaries=4", "privacy_audit.every=1"))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    summary = json.loads((tmp_path / "summary.json").read_text())
    canaries = pd.read_csv(tmp_path / "canary_clients.csv").client.tolist()
    assert len(canaries) == 4
    assert np.isfinite(metrics.empirical_epsilon).all() and len(metrics) == 2
    # the same figure (the CSV's text round trip may move its last bit)
    assert summary["empirical_epsilon"] == pytest.approx(metrics.empirical_epsilon.iloc[-1],
                                                         rel=1e-12)
    assert summary["canary_cosine_mean"] > summary["held_back_cosine_mean"]
    assert metrics.canary_clients.between(0, 4).all() and metrics.canary_clients.sum() > 0
    assert summary["audit_round"] == 2
    assert (tmp_path / "audit_start_weights.npy").is_file()


@pytest.mark.slow
def test_without_dp_the_estimate_is_far_above_a_dp_runs(tmp_path):
    """Same seed, same canaries: the mean aggregator leaks them, DP-FedAvg hides them."""
    common = ["dataset.num_clients=60", "schedule.clients_per_round=20", "schedule.rounds=3",
              "privacy_audit.canaries=20", "privacy_audit.canary_norm=0.5", "schedule.seed=1"]
    estimates = {}
    for name, aggregator in {
        "mean": ["aggregator=mean"],
        "dp": ["aggregator=dp", "aggregator.noise_multiplier=1.0", "aggregator.clipping=fixed",
               "aggregator.clip=0.5"],
    }.items():
        run(small_config(tmp_path / name, *common, *aggregator))
        estimates[name] = json.loads((tmp_path / name / "summary.json").read_text())
    assert estimates["dp"]["empirical_epsilon"] < estimates["dp"]["dp_epsilon"]
    assert estimates["mean"]["empirical_epsilon"] > 10 * estimates["dp"]["empirical_epsilon"]


@pytest.mark.parametrize("build, message", [
    (lambda: PrivacyAudit(canaries=8).canary_clients([f"c{i}" for i in range(8)]),
     "privacy_audit.canaries=8 must be fewer than the 8 clients that are not malicious"),
    (lambda: PrivacyAudit(canaries=1), "privacy_audit.canaries must be 0"),
    (lambda: PrivacyAudit(canaries=4, canary_norm=0), "privacy_audit.canary_norm must be"),
    (lambda: PrivacyAudit(canaries=4, delta=1.0), r"privacy_audit.delta must be in \(0, 1\)"),
    (lambda: algorithm_process_with_uploads(
        Scaffold(), None, linear_model_fn, tff.aggregators.MeanFactory(), CLIENT_SGD,
        SERVER_SGD, PrivacyAudit(canaries=2).upload, "privacy_audit.canaries"),
     "privacy_audit.canaries changes uploads.*algorithm 'scaffold' runs its own"),
])
def test_bad_audits_are_one_line(build, message):
    with pytest.raises(ConfigError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_canaries_with_central_training_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="needs a trainer that inserts canaries") as error:
        run(small_config(tmp_path, "privacy_audit.canaries=2", "trainer=central"))
    assert "\n" not in str(error.value)


def test_canaries_and_model_poisoning_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="both replace uploads") as error:
        run(small_config(tmp_path, "privacy_audit.canaries=2", "clients.attack=sign_flip",
                         "clients.attack_fraction=0.25"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "malicious_clients.csv").exists()


def test_canaries_are_drawn_among_the_clients_that_are_not_malicious(tmp_path):
    """7 of 10 clients flip labels; a draw of 2 among all 10 would take a malicious one."""
    run(small_config(tmp_path, "dataset.num_clients=10", "clients.attack=label_flip",
                     "clients.attack_fraction=0.7", "privacy_audit.canaries=2",
                     "schedule.rounds=1"))
    malicious = set(pd.read_csv(tmp_path / "malicious_clients.csv", dtype=str)["client"])
    canaries = set(pd.read_csv(tmp_path / "canary_clients.csv", dtype=str)["client"])
    everyone = [f"client_{i:04d}" for i in range(10)]  # the synthetic set's ids
    assert len(malicious) == 7 and len(canaries) == 2 and {*malicious, *canaries} <= {*everyone}
    assert canaries.isdisjoint(malicious)
    assert set(PrivacyAudit(canaries=2).canary_clients(everyone)) & malicious


def test_a_round_that_stops_training_early_gets_its_estimate(tmp_path):
    """A target stop after round 1 of 3: round 1's metrics row holds empirical_epsilon."""
    run(small_config(tmp_path, "privacy_audit.canaries=2", "schedule.rounds=3",
                     "callbacks.target_stop.accuracy=0.0",
                     "callbacks.target_stop.columns=[eval_accuracy]"))
    rows = pd.read_csv(tmp_path / "metrics.csv")
    assert rows["round"].tolist() == [1]
    assert np.isfinite(rows["empirical_epsilon"].iloc[-1])


@pytest.mark.slow
def test_a_resumed_audit_measures_from_the_same_start(tmp_path):
    """Round 1, then resumed to round 2: the same estimate as 2 rounds at once."""
    settings = ["dataset.num_clients=12", "schedule.clients_per_round=6",
                "privacy_audit.canaries=4", "schedule.checkpoint_every=1"]
    run(small_config(tmp_path / "whole", *settings))
    run(small_config(tmp_path / "resumed", *settings, "schedule.rounds=1"))
    run(small_config(tmp_path / "resumed", *settings))
    whole, resumed = (json.loads((tmp_path / name / "summary.json").read_text())
                      for name in ("whole", "resumed"))
    assert resumed["rounds_completed"] == 2 and resumed["rounds_trained_this_invocation"] == 1
    for key in ("empirical_epsilon", "canary_cosine_mean", "held_back_cosine_std"):
        assert resumed[key] == whole[key], key


def test_a_budget_stop_is_estimated_on_its_last_row(tmp_path):
    """Epsilon 4.09, 5.97, 7.47 after rounds 1-3: a budget of 6.5 stops after round 2."""
    run(small_config(tmp_path, "dataset.num_clients=12", "schedule.clients_per_round=6",
                     "schedule.rounds=3", "aggregator=dp", "aggregator.noise_multiplier=1.0",
                     "aggregator.target_epsilon=6.5", "privacy_audit.canaries=4"))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(metrics) == 2 and "privacy budget" in summary["stopped_early"]
    assert summary["audit_round"] == 2
    assert metrics.empirical_epsilon.isna().tolist() == [True, False]
    # the same figure (the CSV's text round trip may move its last bit)
    assert summary["empirical_epsilon"] == pytest.approx(metrics.empirical_epsilon.iloc[-1],
                                                         rel=1e-12)
