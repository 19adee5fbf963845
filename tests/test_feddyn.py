"""FedDyn against a direct NumPy implementation of the paper's update (Acar et al. 2021, Alg. 1)."""

import numpy as np
import pytest
import tensorflow_federated as tff
from conftest import metrics, small_config
from linear_reference import (
    CLASSES,
    FEATURES,
    batches,
    clients,
    compare_stateful_rounds,
    gradient,
    linear_model_fn,
)

from fedlab.algorithms.feddyn import FedDyn
from fedlab.errors import ConfigError
from fedlab.run import run


def numpy_feddyn_round(theta, h, grads, sampled, data, local_lr, alpha, n_clients):
    """One round of Algorithm 1: each sampled client minimizes its dynamically regularized
    objective by SGD on its batches, the server updates h and the model (uniform weights)."""
    finals = []
    for i in sampled:
        w = [t.copy() for t in theta]
        for bx, by in batches(*data[i]):
            g = gradient(w[0], w[1], bx, by)
            w = [wk - local_lr * (gk - gi + alpha * (wk - tk))
                 for wk, gk, gi, tk in zip(w, g, grads[i], theta, strict=True)]
        grads[i] = [gi - alpha * (wk - tk) for gi, wk, tk in zip(grads[i], w, theta, strict=True)]
        finals.append(w)
    h = [hk - alpha / n_clients * sum(w[k] - theta[k] for w in finals) for k, hk in enumerate(h)]
    theta = [sum(w[k] for w in finals) / len(finals) - h[k] / alpha for k in range(2)]
    return theta, h


def test_feddyn_equals_the_papers_update_on_a_linear_model(tmp_path):
    local_lr, alpha, n_clients = 0.1, 0.3, 4
    data = clients(n_clients)
    process = FedDyn(alpha).build(
        linear_model_fn, tff.aggregators.MeanFactory(),
        tff.learning.optimizers.build_sgdm(local_lr),
        tff.learning.optimizers.build_sgdm(1.0), num_clients=n_clients)
    rng = np.random.default_rng(1)
    theta = [rng.normal(size=(FEATURES, CLASSES)).astype(np.float32),
             rng.normal(size=CLASSES).astype(np.float32)]
    h = [np.zeros_like(w) for w in theta]
    reference_grads = {i: [np.zeros_like(w) for w in theta] for i in range(n_clients)}

    def reference_round(sampled):
        nonlocal theta, h
        theta, h = numpy_feddyn_round(theta, h, reference_grads, sampled, data, local_lr,
                                      alpha, n_clients)
        return theta, h, reference_grads

    compare_stateful_rounds(tmp_path, process, data, theta, reference_round)
    # The server state and the clients' gradient states moved: not a check of zeros.
    assert max(np.abs(w).max() for w in h) > 1e-3
    assert max(np.abs(w).max() for w in reference_grads[1]) > 1e-3


def test_feddyn_refuses_a_non_positive_alpha():
    with pytest.raises(ConfigError, match="algorithm.alpha must be > 0"):
        FedDyn(0.0)


def test_feddyn_runs_from_its_yaml_and_keeps_client_states(tmp_path):
    run(small_config(tmp_path, "algorithm=feddyn", "algorithm.alpha=0.1", "schedule.rounds=2",
                     "schedule.checkpoint_every=1"))
    table = metrics(tmp_path)
    assert list(table["round"]) == [1, 2]
    assert table["train_loss"].notna().all()
    with np.load(tmp_path / "checkpoints" / "round_2" / "client_states.npz") as saved:
        assert len(saved["client_ids"]) > 0
    # FedDyn uploads one model-sized value, as FedAvg does, and its 32-bit participation count.
    fedavg = tmp_path / "fedavg"
    run(small_config(fedavg, "schedule.rounds=1"))
    assert table["bits_up_per_client"][0] - metrics(fedavg)["bits_up_per_client"][0] == 32
