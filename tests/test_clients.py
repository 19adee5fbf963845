"""Simulated clients: dropouts, over-selection, device profiles, deadlines, simulated time."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import metrics, small_config

from fedlab.clients.communication import measure_round_communication
from fedlab.clients.conditions import ClientConditions
from fedlab.clients.datasets import PythonDatasets
from fedlab.config.schedule import Schedule
from fedlab.errors import ConfigError
from fedlab.executors import execution
from fedlab.run import build, load_dataset, run
from fedlab.runs.files import CLIENT_PROFILES_FILE
from fedlab.tasks import Task

CLIENT_COLUMNS = {"clients_sampled", "clients_reported", "clients_dropped", "clients_partial",
                  "sim_round_seconds", "sim_seconds_cumulative"}
# Columns that depend only on the seed (not on how long the machine took).
DETERMINISTIC = ["round", "train_loss", "train_accuracy", "examples", "batches", "eval_loss",
                 "eval_accuracy", "bits_down", "bits_up", "clients_sampled", "clients_reported",
                 "clients_dropped", "clients_partial", "sim_round_seconds",
                 "sim_seconds_cumulative"]


def uniform(**settings) -> ClientConditions:
    """Conditions whose profiles are exactly the medians (spread 0)."""
    return ClientConditions(**{"examples_per_second": 10.0, "downlink_mbps": 1.0,
                               "uplink_mbps": 0.5, **settings})


def plan(conditions, examples, clients_per_round=3, batch_size=10):
    ids = [f"c{i}" for i in range(len(examples))]
    # 2e6 bits down at 1 Mbit/s = 2 s; 1e6 bits up at 0.5 Mbit/s = 2 s.
    return conditions.plan_round(1, ids, examples, batch_size, clients_per_round,
                                 conditions.profiles(ids), bits_down=2_000_000, bits_up=1_000_000)


def test_simulated_time_is_the_slowest_reporting_clients_transfers_plus_compute():
    # 4 s of transfers + 20/10, 40/10, 10/10 s of training.
    result = plan(uniform(), [20, 40, 10])
    assert [c.seconds for c in result.clients] == [6.0, 8.0, 5.0]
    assert result.columns == {"clients_sampled": 3, "clients_reported": 3, "clients_dropped": 0,
                              "clients_partial": 0, "sim_round_seconds": 8.0}
    assert [c.batches for c in result.clients] == [2, 4, 1]


def test_a_deadline_drops_the_straggler_and_the_round_waits_for_the_deadline():
    result = plan(uniform(deadline_seconds=7.0), [20, 40, 10])
    assert [c.status for c in result.clients] == ["reported", "missed_deadline", "reported"]
    assert result.columns["clients_reported"] == 2 and result.columns["clients_dropped"] == 1
    assert result.seconds == 7.0


def test_partial_work_sends_the_whole_batches_finished_by_the_deadline():
    # 7 s deadline - 4 s of transfers = 3 s of training at 10 examples/s: 3 batches of 10.
    result = plan(uniform(deadline_seconds=7.0, partial_work=True), [20, 40, 10])
    straggler = result.clients[1]
    assert (straggler.status, straggler.batches, straggler.examples) == ("partial", 3, 30)
    assert straggler.seconds == 7.0
    assert result.columns["clients_reported"] == 3 and result.columns["clients_partial"] == 1


def test_over_selection_aggregates_the_first_clients_to_finish():
    conditions = uniform(over_selection=0.5)
    assert conditions.sample_size(2) == 3
    result = plan(conditions, [20, 40, 10], clients_per_round=2)
    assert [c.status for c in result.clients] == ["reported", "not_needed", "reported"]
    assert result.seconds == 6.0  # the second report ends the round
    assert result.columns["clients_dropped"] == 1


def test_profiles_are_log_normal_around_the_median_and_seeded():
    conditions = ClientConditions(examples_per_second=50.0, uplink_mbps=1.0, spread=0.5, seed=3)
    ids = [f"c{i}" for i in range(20000)]
    profiles = conditions.profiles(ids)
    assert np.median(profiles["examples_per_second"]) == pytest.approx(50.0, rel=0.03)
    assert np.std(np.log(profiles["uplink_mbps"])) == pytest.approx(0.5, rel=0.03)
    assert np.isinf(profiles["downlink_mbps"]).all()  # not simulated: instant
    pd.testing.assert_frame_equal(profiles, conditions.profiles(ids), check_exact=True)
    other = ClientConditions(examples_per_second=50.0, uplink_mbps=1.0, spread=0.5, seed=4)
    assert not profiles.equals(other.profiles(ids))


def test_dropout_rate_is_the_probability_of_not_reporting():
    conditions = ClientConditions(dropout=0.3)
    ids = [f"c{i}" for i in range(100)]
    profiles = conditions.profiles(ids)
    fractions = [conditions.plan_round(r, ids, [10] * 100, 10, 100, profiles, 1, 1)
                 .columns["clients_reported"] / 100 for r in range(1, 51)]
    assert np.mean(fractions) == pytest.approx(0.7, abs=0.03)
    assert len(set(fractions)) > 1  # drawn afresh every round
    assert conditions.plan_round(7, ids, [10] * 100, 10, 100, profiles, 1, 1) == \
        conditions.plan_round(7, ids, [10] * 100, 10, 100, profiles, 1, 1)


@pytest.mark.parametrize(("settings", "message"), [
    ({"dropout": 1.0}, "clients.dropout must be in [0, 1), got 1.0"),
    ({"dropout": -0.1}, "clients.dropout must be in [0, 1)"),
    ({"over_selection": -0.5}, "clients.over_selection must be >= 0"),
    ({"uplink_mbps": 0.0}, "clients.uplink_mbps must be positive"),
    ({"examples_per_second": -3.0}, "clients.examples_per_second must be positive"),
    ({"uplink_mbps": 1.0, "deadline_seconds": 0.0}, "clients.deadline_seconds must be positive"),
    ({"deadline_seconds": 5.0}, "deadline_seconds needs a simulated speed"),
    ({"partial_work": True}, "partial_work needs clients.deadline_seconds"),
])
def test_impossible_settings_are_one_clear_line(settings, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")) as error:
        ClientConditions(**settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("override", "message"), [
    ("clients.dropout=1.5", "clients.dropout must be in [0, 1)"),
    ("clients.downlink_mbps=-1", "clients.downlink_mbps must be positive"),
    ("clients.over_selection=9", "samples 20 clients per round but the dataset has 8"),
])
def test_bad_client_settings_stop_before_training(tmp_path, override, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        run(small_config(run_dir, "clients=unreliable", override))
    assert not (run_dir / "metrics.csv").exists()


def test_ideal_clients_add_no_columns_and_heterogeneous_ones_do_not_change_training(tmp_path):
    run(small_config(tmp_path / "ideal"))
    run(small_config(tmp_path / "slow", "clients=heterogeneous"))
    ideal, slow = metrics(tmp_path / "ideal"), metrics(tmp_path / "slow")
    assert not CLIENT_COLUMNS & set(ideal)
    assert CLIENT_COLUMNS <= set(slow)
    same = ["train_loss", "eval_accuracy", "examples", "bits_up"]
    pd.testing.assert_frame_equal(ideal[same], slow[same], check_exact=True)
    assert (slow["sim_round_seconds"] > 0).all()
    assert slow["sim_seconds_cumulative"].tolist() == pytest.approx(
        slow["sim_round_seconds"].cumsum().tolist())
    profiles = pd.read_csv(tmp_path / "slow" / CLIENT_PROFILES_FILE)
    assert len(profiles) == 8 and (profiles["train_examples"] == 24).all()


def _process_and_rounds(run_dir, *overrides):
    """The trainer's process and both round-client builders for a small config."""
    cfg = small_config(run_dir, *overrides)
    trainer = build(cfg.trainer, "trainer")
    data = load_dataset(cfg.dataset)
    task = Task(build(cfg.model, "model"), data.input_shape, data.num_classes)
    schedule = Schedule(**{k: cfg.schedule[k] for k in cfg.schedule})

    def preprocess(dataset, seed):
        return dataset.shuffle(data.shuffle_buffer, seed=seed).repeat(1).batch(
            schedule.batch_size)

    first = preprocess(data.train.create_tf_dataset_for_client(data.train.client_ids[0]), 0)
    process = trainer.build_process(task, first.element_spec, trainer.aggregator)
    return trainer, process, data, schedule, preprocess, task


def test_dropped_clients_are_not_in_the_aggregate(tmp_path):
    trainer, process, data, schedule, preprocess, task = _process_and_rounds(
        tmp_path, "clients=unreliable", "clients.dropout=0.5", "clients.over_selection=0",
        "schedule.clients_per_round=6", "clients.seed=0")
    with execution.LocalExecution().context(tmp_path):
        communication = measure_round_communication(process.next)
        datasets = PythonDatasets(data.train, preprocess)
        simulated = trainer.algorithm.cohorts(data, schedule, datasets, trainer.clients,
                                              communication)
        trainer.clients = ClientConditions()
        every_client = trainer.algorithm.cohorts(data, schedule, datasets, trainer.clients,
                                                 communication)
        start = process.initialize()
        planned = simulated.plan(1)
        reporting = planned.reporting
        assert 0 < len(reporting) < 6
        cohort = simulated(1)
        with_dropout = process.next(start, cohort.inputs)
        only_those = process.next(start, [datasets.dataset(simulated.work(1, c.index, c.client_id))
                                          for c in reporting])
        everyone = process.next(start, every_client(1).inputs)
        weights = [process.get_model_weights(o.state).trainable
                   for o in (with_dropout, only_those, everyone)]
    for a, b in zip(weights[0], weights[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(weights[0], weights[2], strict=True))
    examples = int(with_dropout.metrics["client_work"]["train"]["num_examples"])
    assert examples == 24 * len(reporting)
    assert cohort.columns["clients_reported"] == len(reporting)


def test_a_round_without_reports_leaves_the_model_unchanged_and_says_so(tmp_path):
    run_dir = tmp_path / "run"
    run(small_config(run_dir, "clients=heterogeneous", "clients.deadline_seconds=0.001",
                     "schedule.rounds=3"))
    table = metrics(run_dir)
    assert (table["clients_reported"] == 0).all() and (table["examples"] == 0).all()
    assert table["train_loss"].isna().all()
    assert (table["eval_accuracy"] == table["eval_accuracy"].iloc[0]).all()
    assert (table["sim_round_seconds"] == 0.001).all()
    assert (table["bits_up"] == 0).all() and (table["bits_down"] > 0).all()
    summary = pd.read_json(run_dir / "summary.json", typ="series")
    assert summary["status"] == "completed" and summary["rounds_without_reports"] == 3


UNRELIABLE = ("clients=unreliable", "clients.dropout=0.4", "clients.deadline_seconds=2",
              "clients.partial_work=true", "clients.examples_per_second=10",
              "schedule.clients_per_round=4", "schedule.checkpoint_every=1")


@pytest.mark.slow
def test_simulated_clients_are_reproducible_and_resume_as_if_uninterrupted(tmp_path):
    run(small_config(tmp_path / "a", *UNRELIABLE, "schedule.rounds=4"))
    run(small_config(tmp_path / "b", *UNRELIABLE, "schedule.rounds=4"))
    run(small_config(tmp_path / "c", *UNRELIABLE, "schedule.rounds=2"))
    run(small_config(tmp_path / "c", *UNRELIABLE, "schedule.rounds=4"))  # resumed
    tables = [metrics(tmp_path / name)[DETERMINISTIC] for name in "abc"]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    pd.testing.assert_frame_equal(tables[0], tables[2], check_exact=True)
    a = tables[0]
    assert (a["clients_dropped"] > 0).any() and (a["clients_partial"] > 0).any()
    assert (a["clients_sampled"] == math.ceil(4 * 1.3)).all()
    assert (a["bits_up"] == a["clients_reported"] * metrics(tmp_path / "a")[
        "bits_up_per_client"]).all()
    for name in "bc":
        assert ((tmp_path / name / CLIENT_PROFILES_FILE).read_text()
                == (tmp_path / "a" / CLIENT_PROFILES_FILE).read_text())
