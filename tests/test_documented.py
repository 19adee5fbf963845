"""Settings README documents that no other test exercises: each checked by behaviour."""

import json
import math

import pandas as pd
import pytest
import tensorflow as tf
from conftest import compose_config, small_config

from fedlab.config.choices import ServerSchedule
from fedlab.errors import CheckpointError, ConfigError
from fedlab.optimizers import pair
from fedlab.privacy import aggregator
from fedlab.run import run
from fedlab.runs.folder import POSITIVE_SCHEDULE_KEYS
from fedlab.runs.resume import MAY_CHANGE


@pytest.mark.parametrize("key", POSITIVE_SCHEDULE_KEYS)
@pytest.mark.parametrize("value", [0, -1])
def test_a_non_positive_schedule_value_is_refused_before_anything_is_written(
        tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"schedule\.{key} must be a positive integer, "
                                          rf"got {value}"):
        run(small_config(tmp_path, f"schedule.{key}={value}"))
    assert not (tmp_path / "metrics.csv").exists()


@pytest.mark.parametrize("schedule,decay,expected", [
    (ServerSchedule.exponential, 0.5, [1.0, 0.5, 0.25, 0.125]),
    (ServerSchedule.inverse_sqrt, 0.99, [1.0, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5]),
    (ServerSchedule.constant, 0.5, [1.0, 1.0, 1.0, 1.0]),
])
def test_server_learning_rate_schedules_decay_per_round(schedule, decay, expected):
    import tensorflow_federated as tff

    optimizer = pair.with_round_schedule(
        tff.learning.optimizers.build_sgdm(learning_rate=1.0), schedule, decay)
    weights = (tf.constant([0.0]),)
    state = optimizer.initialize((tf.TensorSpec([1], tf.float32),))
    rates = []
    for _ in expected:  # a unit gradient: each step moves the weight by the learning rate
        before = float(weights[0][0])
        state, weights = optimizer.next(state, weights, (tf.constant([1.0]),))
        rates.append(before - float(weights[0][0]))
    assert rates == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("decay", [0.0, 1.5])
def test_an_exponential_decay_outside_0_1_is_refused(tmp_path, decay):
    with pytest.raises(ConfigError, match="optimizer.server_decay must be in"):
        run(small_config(tmp_path, "optimizer.server_schedule=exponential",
                         f"optimizer.server_decay={decay}"))


def test_dp_with_over_selection_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"clients.over_selection=0.3 with a DP aggregator"):
        run(small_config(tmp_path, "aggregator=dp", "dataset.num_clients=20",
                         "schedule.clients_per_round=10", "clients=unreliable"))
    assert not (tmp_path / "metrics.csv").exists()


@pytest.mark.parametrize("noise,stddev,expected", [
    (0.3, None, 0.5),   # max(0.05 x 10 clients, 0.3)
    (2.0, None, 2.0),   # max(0.5, 2.0)
    (0.3, 4.0, 4.0),    # given
])
def test_adaptive_clipping_options_reach_the_query(monkeypatch, noise, stddev, expected):
    seen = {}
    real = aggregator.noise_queries.gaussian_adaptive

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(aggregator.noise_queries, "gaussian_adaptive", spy)
    aggregator.DpAggregator(
        noise_multiplier=noise, clients_per_round=10, clipped_count_stddev=stddev,
        initial_l2_norm_clip=0.7, target_unclipped_quantile=0.8, clip_learning_rate=0.05,
    ).for_federation(num_clients=50, rounds=3)
    assert seen == {"clipped_count_stddev": expected, "initial_l2_norm_clip": 0.7,
                    "target_unclipped_quantile": 0.8, "learning_rate": 0.05}


def test_only_the_newest_keep_checkpoints_are_kept(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=5", "schedule.checkpoint_every=1",
                     "schedule.keep_checkpoints=2"))
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["round_4", "round_5"]


def test_resume_when_no_checkpoint_loads_says_so_and_keeps_the_rounds(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=2"))
    for checkpoint in (tmp_path / "checkpoints").iterdir():
        for item in checkpoint.rglob("*"):
            if item.is_file():
                item.write_bytes(b"garbage")
    rows = pd.read_csv(tmp_path / "metrics.csv")
    with pytest.raises(CheckpointError):
        run(small_config(tmp_path, "schedule.rounds=4"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "metrics.csv"), rows, check_exact=True)


MAY_CHANGE_OVERRIDES = {  # one override for each key README says a resume may change
    "executor": "executor.concurrent_calls=1",
    "computation_cache": "computation_cache=null",
    "tensorboard": "tensorboard=false",
    "trainer.tensorboard": "trainer.tensorboard=false",  # trainer=central's (below)
    "callbacks.metrics_release.tensorboard": "callbacks.metrics_release.tensorboard=false",
    "callbacks.progress_line": "~callbacks.progress_line",
    "callbacks.preemption": "~callbacks.preemption",
    "objective": "objective.metric=best_eval_accuracy",
}


def test_every_may_change_key_has_a_case():
    assert set(MAY_CHANGE_OVERRIDES) == set(MAY_CHANGE)


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(MAY_CHANGE_OVERRIDES))
def test_a_resume_may_change_each_setting_readme_lists(tmp_path, key):
    base = ["trainer=central"] if key == "trainer.tensorboard" else []
    run(small_config(tmp_path / "whole", *base, "schedule.rounds=3"))
    run(small_config(tmp_path / "resumed", *base, "schedule.rounds=2"))
    run(small_config(tmp_path / "resumed", *base, "schedule.rounds=3",
                     MAY_CHANGE_OVERRIDES[key]))
    timing = ["round_seconds", "eval_seconds"]
    resumed, whole = (pd.read_csv(tmp_path / name / "metrics.csv").drop(columns=timing)
                      for name in ("resumed", "whole"))
    pd.testing.assert_frame_equal(resumed, whole, check_exact=True)


def test_summary_holds_the_keys_readme_lists(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=2", "clients=heterogeneous"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    listed = {"status", "final_eval_accuracy", "best_eval_accuracy", "training_seconds",
              "evaluation_seconds", "learning_process", "sim_seconds_total",
              "clients_reported_mean", "rounds_without_reports", "provenance"}
    assert listed <= set(summary), listed - set(summary)
    provenance = {"test_set_sha256", "partition_sha256", "fedlab_version", "git_commit",
                  "git_dirty", "python", "tensorflow", "tensorflow_federated", "packages",
                  "host", "platform", "command", "started_at", "ended_at"}
    assert provenance <= set(summary["provenance"]), provenance - set(summary["provenance"])


def test_client_level_evaluation_is_timed(tmp_path):
    run(compose_config(["dataset=mnist", "dataset.num_clients=10", "model=mlp",
                        "schedule=smoke", "dataset.client_test_fraction=0.3",
                        "schedule.eval_every=1"], tmp_path))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["round"].tolist() == [1, 2]
    assert (table["client_eval_seconds"] > 0).all()


@pytest.mark.parametrize("launcher", ["ray_cluster", "slurm"])
def test_cluster_launchers_compose(launcher):
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"],
                      return_hydra_config=True)
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    if launcher == "ray_cluster":
        assert launcher_cfg["ray"]["init"]["address"] == "auto"
        assert launcher_cfg["ray"]["init"]["_node_ip_address"] is None
    else:
        assert "submitit" in launcher_cfg["_target_"].lower()


@pytest.mark.parametrize("status,returned,expected", [
    ("COMPLETED", 0.5, [0.5]),
    ("COMPLETED", float("nan"), None),   # Optuna records the trial as FAIL
    ("COMPLETED", float("inf"), None),
    ("FAILED", 0.5, None),
])
def test_the_sweeper_fails_trials_without_a_finite_objective(status, returned, expected):
    from types import SimpleNamespace

    from hydra.core.utils import JobStatus

    from hydra_plugins.fedlab_optuna_sweeper._impl import _values

    job = SimpleNamespace(status=JobStatus[status], return_value=returned)
    assert _values(job, 1) == expected


def test_minimizing_rounds_to_target_composes():
    cfg = compose_config(["hparams_search=learning_rates", "objective.metric=rounds_to_target",
                          "hydra.sweeper.direction=minimize"])
    assert cfg.objective.metric == "rounds_to_target"
