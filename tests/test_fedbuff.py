"""FedBuff: a schedule by hand, FedAvg when nothing is asynchronous, resume, bad input."""

import pandas as pd
import pytest
from conftest import TIMING, assert_same_weights, metrics, small_config

from fedlab.algorithms.fedbuff import BufferedSchedule, FedBuff
from fedlab.errors import ConfigError
from fedlab.run import run


def test_staleness_on_a_hand_computed_schedule():
    # Clients a, b, c take 1, 2.5 and 1 s; 2 train at once; the server updates on every arrival.
    # t=0 a,b start on v0; t=1 a arrives (s=0) -> v1, a restarts on v1 (b busy); t=2 a (s=0)
    # -> v2, a restarts on v2; t=2.5 b arrives, downloaded v0 at v2 (s=2) -> v3, b restarts on
    # v3; t=3 a arrives, downloaded v2 at v3 (s=1).
    order = ["a", "b", "c"]
    schedule = BufferedSchedule(order, {"a": 1.0, "b": 2.5, "c": 1.0}, concurrency=2,
                                buffer_size=1, seed=0, sampler=lambda wave, size: order[:size])
    updates = [schedule.update(n) for n in range(1, 5)]
    assert [u.seconds for u in updates] == [1.0, 2.0, 2.5, 3.0]
    assert [[a.client_id for a in u.arrivals] for u in updates] == [["a"], ["a"], ["b"], ["a"]]
    staleness = [n - a.version for n, u in enumerate(updates) for a in u.arrivals]
    assert staleness == [0, 0, 2, 1]
    assert [u.started for u in updates] == [2, 1, 1, 1]
    assert [set(u.in_flight_versions) for u in updates] == [{0}, {0}, {2}, {3}]
    weights = [FedBuff(staleness="polynomial").staleness_weight(s) for s in staleness]
    assert weights == [1.0, 1.0, 3 ** -0.5, 2 ** -0.5]
    assert FedBuff(staleness="none").staleness_weight(2) == 1.0


def test_a_buffer_of_every_concurrent_client_on_equal_clients_is_fedavg(tmp_path):
    equal = ["clients=heterogeneous", "clients.spread=0", "dataset.num_clients=6",
             "schedule.clients_per_round=3", "schedule.rounds=3"]
    run(small_config(tmp_path / "fedavg", *equal))
    run(small_config(tmp_path / "fedbuff", *equal, "algorithm=fedbuff",
                     "algorithm.concurrency=3", "algorithm.buffer_size=3"))
    fedavg, fedbuff = metrics(tmp_path / "fedavg"), metrics(tmp_path / "fedbuff")
    assert (fedbuff["staleness_max"] == 0).all()
    pd.testing.assert_frame_equal(
        fedavg.drop(columns=TIMING),
        fedbuff.drop(columns=[*TIMING, "staleness_mean", "staleness_max"]), check_exact=True)
    assert_same_weights(tmp_path / "fedavg", tmp_path / "fedbuff")


ASYNC = ["algorithm=fedbuff", "clients=heterogeneous", "dataset.num_clients=8",
         "algorithm.concurrency=5", "algorithm.buffer_size=2", "schedule.checkpoint_every=1"]


@pytest.mark.slow
def test_fedbuff_reproduces_and_resumes_with_stale_updates(tmp_path):
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    run(small_config(resumed, *ASYNC, "schedule.rounds=3"))
    run(small_config(resumed, *ASYNC, "schedule.rounds=6"))
    run(small_config(whole, *ASYNC, "schedule.rounds=6"))
    table = metrics(whole)
    assert table["staleness_max"].max() > 0  # the resumed run needed older versions
    assert (table["clients_reported"] == 2).all()
    pd.testing.assert_frame_equal(metrics(resumed).drop(columns=TIMING),
                                  table.drop(columns=TIMING), check_exact=True)
    assert_same_weights(resumed, whole)


@pytest.mark.parametrize(("overrides", "message"), [
    (["algorithm.concurrency=0"], "algorithm.concurrency must be a positive integer"),
    (["algorithm.buffer_size=-1"], "algorithm.buffer_size must be a positive integer"),
    (["clients=ideal"], "algorithm=fedbuff needs simulated time"),
    (["aggregator=dp"], "algorithm 'fedbuff' cannot use the aggregator"),
])
def test_bad_fedbuff_settings_fail_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(small_config(tmp_path, "algorithm=fedbuff", "clients=heterogeneous", *overrides))
    assert not (tmp_path / "metrics.csv").exists()
