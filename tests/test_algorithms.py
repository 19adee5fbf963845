"""The algorithm group: every algorithm x aggregator pair builds or is refused with both named,
each algorithm trains, FedProx with mu=0 is FedAvg, bad values fail before training."""

import collections

import pandas as pd
import pytest
import tensorflow as tf
from conftest import (
    TIMING,
    assert_same_weights,
    compose_config,
    group_options,
    metrics,
    small_config,
)
from hydra.utils import instantiate

from fedlab.errors import ConfigError
from fedlab.models import images
from fedlab.run import run
from fedlab.tasks import Task

SPEC = collections.OrderedDict(x=tf.TensorSpec([None, 8, 8, 1], tf.float32),
                               y=tf.TensorSpec([None], tf.int32))
# What TFF cannot build: fedsgd has no unweighted variant, and DP-FedAvg weighs clients uniformly.
# SCAFFOLD's control variates would bypass DP's clipping and noise; FedBuff is asynchronous;
# FedNova's server step scales by the clients' step counts, which DP would not cover.
REFUSED = {(a, dp) for a in ("fedsgd", "scaffold", "fedbuff", "fednova")
           for dp in ("dp", "dp_fixed", "dp_ftrl")}
SAMPLING = {"dp_ftrl": "epoch"}  # DP-FTRL's guarantee needs epoch sampling


# The default tier builds every algorithm with the mean and FedAvg with every aggregator; the
# slow tier the other pairs (each build traces TFF computations: 8 x 14 of them take minutes).
PAIRS = [pytest.param(algorithm, aggregator, marks=() if "fedavg" in (algorithm,) or
                      aggregator == "mean" else pytest.mark.slow)
         for algorithm in group_options("algorithm") for aggregator in group_options("aggregator")]


@pytest.mark.parametrize("algorithm, aggregator", PAIRS)
def test_every_algorithm_aggregator_pair_builds_or_is_refused(algorithm, aggregator):
    cfg = compose_config([f"algorithm={algorithm}", f"aggregator={aggregator}"])
    trainer = instantiate(cfg.trainer)
    task = Task(images.mlp, (8, 8, 1), 3)
    if (algorithm, aggregator) in REFUSED:
        with pytest.raises(ConfigError, match=f"algorithm '{algorithm}' cannot use the "
                                              "aggregator"):
            trainer.build_process(task, SPEC, trainer.aggregator_for(
                50, 10, SAMPLING.get(aggregator, "uniform"))[0], 50)
    else:
        process = trainer.build_process(task, SPEC, trainer.aggregator_for(
                50, 10, SAMPLING.get(aggregator, "uniform"))[0], 50)
        weights = process.get_model_weights.type_signature.result
        mlp = images.mlp((8, 8, 1), 3)
        assert [tuple(t.shape) for t in weights.trainable] == [
            tuple(w.shape) for w in mlp.trainable_weights]


def test_an_impossible_pair_fails_before_training_with_both_named(tmp_path):
    with pytest.raises(ConfigError, match="algorithm 'fedsgd' cannot use the aggregator "
                                          "fedlab.privacy.aggregator.DpAggregator: "
                                          "TFF has no fedsgd"):
        run(small_config(tmp_path, "algorithm=fedsgd", "aggregator=dp"))
    assert not (tmp_path / "metrics.csv").exists()


@pytest.mark.parametrize("algorithm", [  # FedAvg by default; the others' runs are slow
    option if option == "fedavg" else pytest.param(option, marks=pytest.mark.slow)
    for option in group_options("algorithm")])
def test_every_algorithm_trains_resumes_and_reproduces(tmp_path, algorithm):
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    # FedBuff runs on simulated time only.
    options = [f"algorithm={algorithm}",
               *(["clients=heterogeneous", "algorithm.concurrency=2", "algorithm.buffer_size=2"]
                 if algorithm == "fedbuff" else [])]
    run(small_config(resumed, *options, "schedule.rounds=2"))
    run(small_config(resumed, *options, "schedule.rounds=3"))
    run(small_config(whole, *options, "schedule.rounds=3"))
    table = metrics(resumed)
    assert table["round"].tolist() == [1, 2, 3]
    assert table["train_loss"].notna().all() and (table["bits_up_per_client"] > 0).all()
    # The resumed run equals an uninterrupted one with the same seed.
    pd.testing.assert_frame_equal(table.drop(columns=TIMING),
                                  metrics(whole).drop(columns=TIMING), check_exact=True)


def test_fedprox_with_zero_proximal_strength_is_fedavg(tmp_path):
    run(small_config(tmp_path / "fedavg", "schedule.rounds=3"))
    run(small_config(tmp_path / "fedprox", "algorithm=fedprox",
                     "algorithm.proximal_strength=0", "schedule.rounds=3"))
    fedavg, fedprox = metrics(tmp_path / "fedavg"), metrics(tmp_path / "fedprox")
    # The same communication too: with the functional model neither client work has state (on
    # TFF's Keras-model path FedAvg's received its learning rate, 32 bits, each round).
    pd.testing.assert_frame_equal(fedavg.drop(columns=TIMING), fedprox.drop(columns=TIMING),
                                  check_exact=True)
    assert_same_weights(tmp_path / "fedavg", tmp_path / "fedprox")


def test_fedprox_with_a_strong_proximal_term_trains_differently(tmp_path):
    run(small_config(tmp_path / "fedavg", "schedule.rounds=2"))
    run(small_config(tmp_path / "fedprox", "algorithm=fedprox",
                     "algorithm.proximal_strength=10", "schedule.rounds=2"))
    assert not metrics(tmp_path / "fedavg")["train_loss"].equals(
        metrics(tmp_path / "fedprox")["train_loss"])


def test_mime_lite_uploads_the_full_gradient_too(tmp_path):
    run(small_config(tmp_path / "fedavg", "schedule.rounds=1"))
    run(small_config(tmp_path / "mime", "algorithm=mime_lite", "schedule.rounds=1"))
    fedavg, mime = metrics(tmp_path / "fedavg"), metrics(tmp_path / "mime")
    # The model update and the full-batch gradient: twice the model (plus the metrics).
    assert mime["bits_up_per_client"][0] > 1.9 * fedavg["bits_up_per_client"][0]


def test_negative_proximal_strength_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="algorithm.proximal_strength must be >= 0"):
        run(small_config(tmp_path, "algorithm=fedprox", "algorithm.proximal_strength=-0.1"))
    assert not (tmp_path / "metrics.csv").exists()
