"""schedule.sampling: uniform as before, Poisson and epoch sampling, each one's DP accounting."""

import json
import math

import dp_accounting
import numpy as np
import pandas as pd
import pytest
import tensorflow_federated as tff
from conftest import small_config

from fedlab.clients.sampling import RoundClients
from fedlab.config.choices import Sampling
from fedlab.errors import ConfigError
from fedlab.privacy import accounting
from fedlab.run import run

IDS = [f"client_{i:02d}" for i in range(23)]


def sampler(sampling, size=5, seed=3, ids=IDS) -> RoundClients:
    """A sampler whose 'datasets' are the work items themselves."""
    return RoundClients(ids, lambda work: list(work), size, seed, sampling)


def test_uniform_sampling_is_tffs_sampler_as_before():
    tffs = tff.simulation.build_uniform_sampling_fn(IDS, replace=False, random_seed=3)
    ours = sampler("uniform")
    for round_num in range(1, 30):
        assert ours.client_ids(round_num) == list(tffs(round_num, 5))
        assert ours(round_num).columns == {}


def test_poisson_cohorts_vary_around_the_expected_size_and_reproduce():
    ours, again = sampler(Sampling.poisson, size=10, ids=IDS * 2 + IDS[:4]), None
    sizes = np.array([len(ours.client_ids(r)) for r in range(1, 2001)])
    assert abs(sizes.mean() - 10) < 0.35  # 5 standard errors of the mean (sd 2.83 / sqrt 2000)
    assert sizes.std() > 2
    again = sampler(Sampling.poisson, size=10, ids=IDS * 2 + IDS[:4])
    assert again.client_ids(1500) == ours.client_ids(1500)  # a function of (seed, round)
    assert sampler(Sampling.poisson, size=10, seed=4).client_ids(5) != sampler(
        Sampling.poisson, size=10, seed=3).client_ids(5)


def test_an_empty_poisson_cohort_has_no_inputs():
    ours = sampler("poisson", size=1, ids=IDS[:5])  # each round empty with probability 0.8^5
    cohorts = [ours(r) for r in range(1, 40)]
    empty = [c for c in cohorts if not c.client_ids]
    assert empty and all(c.inputs == [] and c.columns == {"clients_sampled": 0} for c in empty)


def test_epoch_sampling_trains_every_client_once_per_epoch():
    ours = sampler("epoch", size=5)
    assert ours.rounds_per_epoch == 5  # ceil(23 / 5)
    epochs = [[ours.client_ids(r) for r in range(1 + 5 * e, 6 + 5 * e)] for e in range(3)]
    for cohorts in epochs:
        assert sorted(c for cohort in cohorts for c in cohort) == IDS
        assert [len(c) for c in cohorts] == [5, 5, 5, 5, 3]
    assert epochs[0] != epochs[1]
    assert ours(7).columns == {"clients_sampled": 5}


RELATIONS = {"uniform": "REPLACE_ONE", "poisson": "ADD_OR_REMOVE_ONE", "epoch": "REPLACE_ONE"}


@pytest.mark.parametrize("sampling, expected_event", [
    ("uniform", lambda noise, rounds: dp_accounting.SelfComposedDpEvent(
        dp_accounting.SampledWithoutReplacementDpEvent(
            100, 10, dp_accounting.GaussianDpEvent(noise)), rounds)),
    ("poisson", lambda noise, rounds: dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(noise)), rounds)),
    ("epoch", lambda noise, rounds: dp_accounting.SelfComposedDpEvent(
        dp_accounting.GaussianDpEvent(noise), math.ceil(rounds / 10))),
])
def test_each_samplings_epsilon_is_dp_accountings(sampling, expected_event):
    for noise, rounds in ((1.0, 25), (2.5, 7)):
        direct = dp_accounting.rdp.RdpAccountant(
            neighboring_relation=dp_accounting.NeighboringRelation[RELATIONS[sampling]])
        direct.compose(expected_event(noise, rounds))
        assert accounting.epsilon(rounds, noise, 100, 10, 1e-5, sampling) == pytest.approx(
            direct.get_epsilon(1e-5), rel=1e-12)


def test_epoch_sampling_spends_per_epoch_not_per_round():
    per_round = [accounting.epsilon(r, 1.0, 100, 10, 1e-5, "epoch") for r in (1, 5, 10, 11)]
    assert per_round[0] == per_round[1] == per_round[2] < per_round[3]


def test_a_poisson_dp_run_records_its_sampling_and_cohort_sizes(tmp_path):
    run(small_config(tmp_path, "schedule.sampling=poisson", "aggregator=dp",
                     "aggregator.noise_multiplier=1.0", "aggregator.clients_per_round=2",
                     "schedule.rounds=3"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dp_sampling"] == "poisson"
    assert table["clients_sampled"].ge(0).all()
    expected = [accounting.epsilon(r, 1.0, 8, 2, summary["dp_delta"], "poisson")
                for r in table["round"]]
    np.testing.assert_allclose(table["dp_epsilon"], expected, rtol=1e-12)


def test_fedbuff_refuses_rounds_it_does_not_have(tmp_path):
    with pytest.raises(ConfigError, match="schedule.sampling=epoch needs rounds") as error:
        run(small_config(tmp_path, "algorithm=fedbuff", "clients=heterogeneous",
                         "schedule.sampling=epoch"))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("sampling", ["poisson", "epoch"])
def test_pld_epsilon_is_dp_accountings_and_below_rdps(sampling):
    relation = dp_accounting.NeighboringRelation[RELATIONS[sampling]]
    event = accounting.training_event(12, 1.2, 100, 10, sampling)
    direct = dp_accounting.pld.PLDAccountant(neighboring_relation=relation)
    direct.compose(event)
    ours = accounting.epsilon(12, 1.2, 100, 10, 1e-5, sampling, "pld")
    assert ours == pytest.approx(direct.get_epsilon(1e-5), rel=1e-12)
    assert ours < accounting.epsilon(12, 1.2, 100, 10, 1e-5, sampling, "rdp")


def test_pld_with_sampling_without_replacement_is_one_line():
    with pytest.raises(ConfigError, match="no event for sampling without replacement") as error:
        accounting.check_accountant("uniform", "pld")
    assert "\n" not in str(error.value)


def test_both_accountants_side_by_side(tmp_path):
    run(small_config(tmp_path, "schedule.sampling=epoch", "aggregator=dp",
                     "aggregator.noise_multiplier=1.0", "aggregator.clients_per_round=2",
                     "aggregator.accountant=both", "schedule.rounds=5"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    for name in ("rdp", "pld"):
        expected = [accounting.epsilon(r, 1.0, 8, 2, 1e-5, "epoch", name) for r in table["round"]]
        np.testing.assert_allclose(table[f"dp_epsilon_{name}"], expected, rtol=1e-12)
    np.testing.assert_array_equal(table["dp_epsilon"], table["dp_epsilon_pld"])
    assert table["dp_epsilon"].is_monotonic_increasing
