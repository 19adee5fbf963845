"""SCAFFOLD (option II) against a direct NumPy implementation of the paper's update."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import TIMING, assert_same_weights, metrics, small_config
from linear_reference import (
    CLASSES,
    EPOCHS,
    FEATURES,
    batches,
    clients,
    compare_stateful_rounds,
    gradient,
    linear_model_fn,
)

from fedlab.algorithms.scaffold import Scaffold
from fedlab.errors import ConfigError
from fedlab.run import run


def numpy_scaffold_round(x, c, controls, sampled, data, local_lr, global_lr, n_clients):
    """One round of the paper's algorithm (option II) with example-weighted model averaging."""
    updates, weights, control_deltas = [], [], []
    for i in sampled:
        y = [w.copy() for w in x]
        steps = batches(*data[i])
        for bx, by in steps:
            g = gradient(y[0], y[1], bx, by)
            y = [w - local_lr * (gw - ci + cc)
                 for w, gw, ci, cc in zip(y, g, controls[i], c, strict=True)]
        new_ci = [ci - cc + (xw - yw) / (len(steps) * local_lr)
                  for ci, cc, xw, yw in zip(controls[i], c, x, y, strict=True)]
        updates.append([yw - xw for yw, xw in zip(y, x, strict=True)])
        weights.append(len(data[i][0]))
        control_deltas.append([n - o for n, o in zip(new_ci, controls[i], strict=True)])
        controls[i] = new_ci
    mean_update = [sum(w * u[k] for w, u in zip(weights, updates, strict=True)) / sum(weights)
                   for k in range(2)]
    x = [xw + global_lr * du for xw, du in zip(x, mean_update, strict=True)]
    c = [cc + sum(d[k] for d in control_deltas) / n_clients for k, cc in enumerate(c)]
    return x, c


def test_scaffold_equals_the_papers_update_on_a_linear_model(tmp_path):
    local_lr, global_lr, n_clients = 0.1, 0.7, 4
    data = clients(n_clients)
    process = Scaffold().build(
        linear_model_fn, tff.aggregators.MeanFactory(),
        tff.learning.optimizers.build_sgdm(local_lr),
        tff.learning.optimizers.build_sgdm(global_lr), num_clients=n_clients)
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(FEATURES, CLASSES)).astype(np.float32),
         rng.normal(size=CLASSES).astype(np.float32)]
    c = [np.zeros_like(w) for w in x]
    reference_controls = {i: [np.zeros_like(w) for w in x] for i in range(n_clients)}

    def reference_round(sampled):
        nonlocal x, c
        x, c = numpy_scaffold_round(x, c, reference_controls, sampled, data, local_lr,
                                    global_lr, n_clients)
        return x, c, reference_controls

    output = compare_stateful_rounds(tmp_path, process, data, x, reference_round)
    assert output.metrics["client_work"]["train"]["num_examples"] == 2 * 6 * EPOCHS
    # The control variates moved: the check above is not a check of zeros.
    assert max(np.abs(w).max() for w in c) > 1e-3


def test_scaffold_refuses_a_momentum_client_optimizer():
    with pytest.raises(ConfigError, match="plain client SGD"):
        Scaffold().build(linear_model_fn, tff.aggregators.MeanFactory(),
                         tff.learning.optimizers.build_sgdm(0.1, momentum=0.9),
                         tff.learning.optimizers.build_sgdm(1.0), num_clients=2)


# ---- SCAFFOLD in fedlab's runs: communication, the client-state store across resume, bad input


def _states(run_dir, round_num):
    with np.load(run_dir / "checkpoints" / f"round_{round_num}" / "client_states.npz") as saved:
        return {key: saved[key] for key in saved.files}


def test_scaffold_uploads_and_downloads_a_control_variate_beside_the_model(tmp_path):
    run(small_config(tmp_path / "fedavg", "schedule.rounds=1"))
    run(small_config(tmp_path / "scaffold", "algorithm=scaffold", "schedule.rounds=1"))
    fedavg, scaffold = metrics(tmp_path / "fedavg"), metrics(tmp_path / "scaffold")
    trainable_bits = 32 * tf.keras.models.load_model(
        tmp_path / "scaffold" / "model.keras", compile=False).count_params()
    # simple_cnn's weights are all trainable: one more model-sized float32 value each way.
    for column in ("bits_up_per_client", "bits_down_per_client"):
        assert scaffold[column][0] - fedavg[column][0] == trainable_bits


@pytest.mark.slow
def test_client_states_survive_resume_bit_for_bit(tmp_path):
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    settings = ["algorithm=scaffold", "schedule.checkpoint_every=1", "dataset.num_clients=6",
                "schedule.clients_per_round=2"]
    run(small_config(resumed, *settings, "schedule.rounds=2"))
    run(small_config(resumed, *settings, "schedule.rounds=4"))
    run(small_config(whole, *settings, "schedule.rounds=4"))
    pd.testing.assert_frame_equal(metrics(resumed).drop(columns=TIMING),
                                  metrics(whole).drop(columns=TIMING), check_exact=True)
    assert_same_weights(resumed, whole)
    first, second = _states(resumed, 4), _states(whole, 4)
    assert first.keys() == second.keys() and len(first["client_ids"]) > 2
    for key in first:
        assert first[key].tobytes() == second[key].tobytes()
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["client_states_kept"] == len(first["client_ids"])
    assert summary["client_states_MiB"] == pytest.approx(
        sum(a.nbytes for k, a in first.items() if k not in ("client_ids", "widths")) / 2**20)
    # The states moved away from their zero start: the comparison is not of zeros.
    assert any(np.abs(a).max() > 0 for k, a in first.items() if k not in ("client_ids", "widths"))


def test_a_checkpoint_without_client_states_is_skipped_for_an_older_one(tmp_path):
    settings = ["algorithm=scaffold", "schedule.checkpoint_every=1", "dataset.num_clients=6",
                "schedule.clients_per_round=2"]
    run(small_config(tmp_path, *settings, "schedule.rounds=2"))
    (tmp_path / "checkpoints" / "round_2" / "client_states.npz").unlink()
    run(small_config(tmp_path, *settings, "schedule.rounds=3"))
    assert metrics(tmp_path)["round"].tolist() == [1, 2, 3]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_scaffold_with_dp_is_refused_naming_both(tmp_path):
    with pytest.raises(ConfigError, match="algorithm 'scaffold' cannot use the aggregator "
                                          "fedlab.privacy.aggregator.DpAggregator: its control"):
        run(small_config(tmp_path, "algorithm=scaffold", "aggregator=dp"))
    assert not (tmp_path / "metrics.csv").exists()
