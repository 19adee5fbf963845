"""FedNova against a direct NumPy implementation of its update (Wang et al. 2020, as NIID-Bench
runs it: momentum SGD on the clients, a_i-normalized updates, the example-weighted server step)."""

import numpy as np
import pytest
import tensorflow_federated as tff
from conftest import deterministic_metrics, metrics, small_config, summary
from linear_reference import (
    CLASSES,
    EPOCHS,
    FEATURES,
    batches,
    client_datasets,
    clients,
    gradient,
    linear_model_fn,
)

from fedlab.algorithms.fednova import FedNova, client_momentum
from fedlab.errors import ConfigError
from fedlab.executors import contexts
from fedlab.run import run

# Clients of 4, 7, 10 and 5 examples: with batches of 3 over 2 epochs they take 4, 6, 8 and 4
# local steps, so their a_i differ.
SIZES = (4, 7, 10, 5)


def numpy_fednova_round(theta, sampled, data, local_lr, rho):
    """One round: each client runs momentum SGD (PyTorch's and TFF's: v <- ρv + g, w <- w - ηv,
    v = 0 at the start), a_i from its step count, d_i = (θ - θ_i) / a_i; the server steps by
    Σ n_i a_i / Σ n_i times Σ n_i d_i / Σ n_i (n_i: examples trained on)."""
    normalized, factors, weights = [], [], []
    for i in sampled:
        w = [t.astype(np.float64) for t in theta]
        velocity = [np.zeros_like(t) for t in w]
        steps = 0
        for bx, by in batches(*data[i]):
            g = gradient(w[0], w[1], bx.astype(np.float64), by)
            velocity = [rho * v + gk for v, gk in zip(velocity, g, strict=True)]
            w = [wk - local_lr * v for wk, v in zip(w, velocity, strict=True)]
            steps += 1
        a = steps if rho == 0 else (steps - rho * (1 - rho ** steps) / (1 - rho)) / (1 - rho)
        normalized.append([(t - wk) / a for t, wk in zip(theta, w, strict=True)])
        factors.append(a)
        weights.append(EPOCHS * len(data[i][1]))
    total = sum(weights)
    coefficient = sum(n * a for n, a in zip(weights, factors, strict=True)) / total
    mean_d = [sum(n * d[k] for n, d in zip(weights, normalized, strict=True)) / total
              for k in range(2)]
    return [t - coefficient * m for t, m in zip(theta, mean_d, strict=True)], factors


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_fednova_equals_its_update_on_a_linear_model(tmp_path, rho):
    local_lr = 0.1
    data = [clients(1, examples=n, seed=s)[0] for s, n in enumerate(SIZES)]
    client_optimizer = tff.learning.optimizers.build_sgdm(local_lr, momentum=rho or None)
    process = FedNova().build(linear_model_fn, tff.aggregators.MeanFactory(), client_optimizer,
                              tff.learning.optimizers.build_sgdm(1.0))
    assert isinstance(process, tff.learning.templates.LearningProcess)
    rng = np.random.default_rng(1)
    theta = [rng.normal(size=(FEATURES, CLASSES)).astype(np.float32),
             rng.normal(size=CLASSES).astype(np.float32)]
    seen = set()
    with contexts.local_execution(tmp_path / "worker.log"):
        state = process.set_model_weights(
            process.initialize(),
            tff.learning.models.ModelWeights(trainable=theta, non_trainable=[]))
        for sampled in ([0, 1], [1, 2, 3], [0, 2], [3, 1]):
            state = process.next(state, client_datasets(data, sampled)).state
            theta, factors = numpy_fednova_round(theta, sampled, data, local_lr, rho)
            seen.update(factors)
            weights = process.get_model_weights(state)
            for ours, theirs in zip(weights.trainable, theta, strict=True):
                np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # The clients took 4, 6 and 8 steps: three different a_i, so the normalization mattered.
    assert len({round(a, 6) for a in seen}) == 3


def test_fednova_without_momentum_and_one_step_each_is_fedavg_like_sgd(tmp_path):
    # With a_i = τ_i = 1 for every client the step is Σ n_i (θ - θ_i) / Σ n_i: FedAvg's.
    data = [clients(1, examples=3, seed=s)[0] for s in range(3)]
    process = FedNova().build(linear_model_fn, tff.aggregators.MeanFactory(),
                              tff.learning.optimizers.build_sgdm(0.5),
                              tff.learning.optimizers.build_sgdm(1.0))
    fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        linear_model_fn, tff.learning.optimizers.build_sgdm(0.5),
        tff.learning.optimizers.build_sgdm(1.0))
    datasets = [d.take(1) for d in client_datasets(data, [0, 1, 2])]
    with contexts.local_execution(tmp_path / "worker.log"):
        start = fedavg.get_model_weights(fedavg.initialize())
        ours = process.next(process.set_model_weights(process.initialize(), start), datasets)
        theirs = fedavg.next(fedavg.set_model_weights(fedavg.initialize(), start), datasets)
        for a, b in zip(process.get_model_weights(ours.state).trainable,
                        fedavg.get_model_weights(theirs.state).trainable, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fednova_refuses_a_dp_aggregator_and_a_non_sgd_client_optimizer(tmp_path):
    with pytest.raises(ConfigError, match="algorithm 'fednova' cannot use the aggregator .*"
                                          "a_i"):
        run(small_config(tmp_path, "algorithm=fednova", "aggregator=dp"))
    assert not (tmp_path / "metrics.csv").exists()
    with pytest.raises(ConfigError, match="fednova needs an SGD client optimizer"):
        client_momentum(tff.learning.optimizers.build_adam(0.01))
    assert client_momentum(tff.learning.optimizers.build_sgdm(0.1)) == 0.0
    assert client_momentum(tff.learning.optimizers.build_sgdm(0.1, 0.9)) == pytest.approx(0.9)


def test_fednova_runs_from_its_yaml_and_a_cached_second_run_equals_the_first(tmp_path):
    options = ["algorithm=fednova", "optimizer.client.momentum=0.9",
               "optimizer.client.learning_rate=0.01", "schedule.rounds=2",
               f"computation_cache={tmp_path / 'cache'}"]
    run(small_config(tmp_path / "first", *options))
    run(small_config(tmp_path / "second", *options))
    table = metrics(tmp_path / "first")
    assert list(table["round"]) == [1, 2] and table["train_loss"].notna().all()
    assert summary(tmp_path / "first")["learning_process"] == "traced"
    assert summary(tmp_path / "second")["learning_process"] == "from the cache"
    assert deterministic_metrics(tmp_path / "first").equals(
        deterministic_metrics(tmp_path / "second"))
    # FedNova uploads the model-sized d_i, as FedAvg does, plus a_i and its weight (64 bits).
    run(small_config(tmp_path / "fedavg", "schedule.rounds=1"))
    assert table["bits_up_per_client"][0] - metrics(tmp_path / "fedavg")[
        "bits_up_per_client"][0] == 64
