"""Malicious clients: who they are, their poisoned data, their poisoned uploads, bad settings."""

import collections
import dataclasses

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import compose_config, small_config
from linear_reference import (
    CLIENT_SGD,
    SERVER_SGD,
    clients,
    flat,
    linear_model_fn,
    one_round,
)

from fedlab.algorithms.fedavg import FedAvg
from fedlab.algorithms.fedprox import FedProx
from fedlab.algorithms.scaffold import Scaffold
from fedlab.attacks import Attack
from fedlab.attacks.poisoning import (
    TRIGGER_SIZE,
    add_trigger,
    check_attack,
    poisoned,
    trigger_value,
)
from fedlab.attacks.process import attacked_algorithm_process
from fedlab.config.choices import AttackKind
from fedlab.data.synthetic import load_synthetic
from fedlab.errors import ConfigError, DivergenceError
from fedlab.executors import contexts
from fedlab.models import images
from fedlab.run import run
from fedlab.tasks import Task

DATA = clients(count=3, examples=6, seed=1)


def attack(kind, fraction, scale=1.0, backdoor_target=0, seed=0) -> Attack:
    """An attack with the clients group's defaults for what is not given."""
    return Attack(kind, fraction, scale, backdoor_target, seed)


def processes(algorithm, malicious_behaviour: Attack):
    """The honest TFF process and the attacked one, on the tiny linear model."""
    aggregator = tff.aggregators.MeanFactory()
    honest = algorithm.build(linear_model_fn, aggregator, CLIENT_SGD, SERVER_SGD)
    return honest, attacked_algorithm_process(algorithm, honest, linear_model_fn, aggregator,
                                              CLIENT_SGD, SERVER_SGD, malicious_behaviour)


def round_weights(process, sampled, flags=None) -> np.ndarray:
    """The model after one round of ``sampled`` clients from the initial state."""
    return one_round(process, DATA, sampled, flags)


@pytest.mark.parametrize("algorithm", [FedAvg(), FedProx(0.1)])
@pytest.mark.parametrize("kind", ["sign_flip", "backdoor"])
def test_uploads_are_the_papers_attack_of_the_honest_update(tmp_path, algorithm, kind):
    """Honest flags give TFF's process bit for bit; a flagged client uploads its attack."""
    scale = 4.0
    honest, attacked = processes(algorithm, attack(kind, 0.3, scale))
    with contexts.local_execution(tmp_path / "worker.log"):
        start = flat(honest.get_model_weights(honest.initialize()))
        np.testing.assert_array_equal(round_weights(attacked, [0, 1, 2], [0.0, 0.0, 0.0]),
                                      round_weights(honest, [0, 1, 2]))
        # Each client's honest update u_i (server SGD at 1: a round of one client moves by u_i).
        updates = [start - round_weights(honest, [i]) for i in range(3)]
        attacked_after = round_weights(attacked, [0, 1, 2], [1.0, 0.0, 0.0])
    factor = -scale if kind == "sign_flip" else scale
    uploads = [factor * updates[0], updates[1], updates[2]]
    examples = np.array([len(y) for _, y in DATA], np.float64)
    expected = start - np.average(uploads, axis=0, weights=examples)
    np.testing.assert_allclose(attacked_after, expected, rtol=1e-5, atol=1e-6)


def test_honest_flags_leave_the_functional_model_and_dp_rounds_as_tffs(tmp_path):
    """fedlab's fast path (a functional model) and a uniformly weighted (DP) aggregator."""
    task = Task(images.mlp, (8, 8, 1), 3)
    rng = np.random.default_rng(2)
    data = [tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
        x=rng.random((6, 8, 8, 1), np.float32), y=rng.integers(0, 3, 6).astype(np.int32))
    ).batch(3) for _ in range(3)]
    model = task.tff_model(data[0].element_spec)
    for aggregator in (tff.aggregators.MeanFactory(),
                       tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
                           noise_multiplier=0.0, clients_per_round=3, clip=1.0)):
        unweighted = isinstance(aggregator, tff.aggregators.UnweightedAggregationFactory)
        builder = (tff.learning.algorithms.build_unweighted_fed_avg if unweighted
                   else tff.learning.algorithms.build_weighted_fed_avg)
        honest = builder(model, client_optimizer_fn=CLIENT_SGD, server_optimizer_fn=SERVER_SGD,
                         model_aggregator=aggregator,
                         loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR)
        attacked = attacked_algorithm_process(FedAvg(), honest, model, aggregator, CLIENT_SGD,
                                              SERVER_SGD, attack("sign_flip", 0.3, 4.0))
        with contexts.local_execution(tmp_path / "worker.log"):
            state = honest.initialize()
            expected = honest.get_model_weights(honest.next(state, data).state)
            flagged = attacked.get_model_weights(attacked.next(state, data, [0.0] * 3).state)
            moved = attacked.get_model_weights(attacked.next(state, data, [1.0, 0.0, 0.0]).state)
        for ours, theirs in zip(flagged.trainable, expected.trainable, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert not np.array_equal(moved.trainable[0], expected.trainable[0])


def test_gaussian_uploads_noise_of_the_scaled_norm_reproducibly(tmp_path):
    honest, attacked = processes(FedAvg(), attack("gaussian", 0.3, 2.0, seed=5))
    with contexts.local_execution(tmp_path / "worker.log"):
        start = flat(honest.get_model_weights(honest.initialize()))
        update = start - round_weights(honest, [0])
        upload = start - round_weights(attacked, [0], [1.0])
        again = start - round_weights(attacked, [0], [1.0])
    np.testing.assert_array_equal(upload, again)
    np.testing.assert_allclose(np.linalg.norm(upload), 2.0 * np.linalg.norm(update), rtol=1e-5)
    cosine = upload @ update / np.linalg.norm(upload) / np.linalg.norm(update)
    assert abs(cosine) < 0.9  # not the update, scaled


def test_the_malicious_set_is_drawn_once_from_the_seed():
    ids = [f"c{i}" for i in range(20)]
    chosen = attack("sign_flip", 0.3, seed=3).malicious(ids)
    assert len(chosen) == 6 and chosen == attack("gaussian", 0.3, seed=3).malicious(ids)
    assert chosen != attack("sign_flip", 0.3, seed=4).malicious(ids)
    assert attack("none", 0.3).malicious(ids) == [] == attack("sign_flip", 0.0).malicious(ids)


def synthetic(**overrides):
    return load_synthetic(num_clients=6, **overrides)


def test_label_flip_maps_each_malicious_label_and_leaves_the_rest():
    data = synthetic()
    malicious = data.train.client_ids[:2]
    attacked = poisoned(data, attack("label_flip", 0.3), malicious)
    for client in data.train.client_ids:
        (x, y), (x2, y2) = data.train.arrays(client), attacked.train.arrays(client)
        np.testing.assert_array_equal(x, x2)
        expected = data.num_classes - 1 - y if client in malicious else y
        np.testing.assert_array_equal(y2, expected)
    np.testing.assert_array_equal(attacked.test_y, data.test_y)


def test_backdoor_triggers_half_of_a_malicious_clients_images_as_the_target():
    data = synthetic()
    client = data.train.client_ids[0]
    attacked = poisoned(data, attack("backdoor", 0.3, backdoor_target=2), [client])
    (x, y), (x2, y2) = data.train.arrays(client), attacked.train.arrays(client)
    changed = np.any(x != x2, axis=tuple(range(1, x.ndim)))
    assert changed.sum() == len(y) // 2
    np.testing.assert_array_equal(y2[changed], 2)
    np.testing.assert_array_equal(y2[~changed], y[~changed])
    np.testing.assert_array_equal(x2[changed], add_trigger(x[changed], trigger_value(data)))
    corner = x2[changed][:, -TRIGGER_SIZE - 1:-1, -TRIGGER_SIZE - 1:-1]
    assert np.all(corner == trigger_value(data))
    other = data.train.client_ids[1]
    np.testing.assert_array_equal(attacked.train.arrays(other)[0], data.train.arrays(other)[0])


@pytest.mark.parametrize("build, message", [
    (lambda: attack("sign_flip", 1.0), r"clients.attack_fraction must be in \[0, 1\)"),
    (lambda: attack("sign_flip", -0.1), r"clients.attack_fraction must be in \[0, 1\)"),
    (lambda: attack("gaussian", 0.1, 0.0), "clients.attack_scale must be positive"),
    (lambda: check_attack(attack("backdoor", 0.1, backdoor_target=10), synthetic()),
     r"clients.backdoor_target must be a class in 0..2"),
    (lambda: check_attack(attack("backdoor", 0.1), dataclasses.replace(
        synthetic(), task="next_token")), "poisons image labels; the data set is for next_tok"),
    (lambda: check_attack(attack("backdoor", 0.1), dataclasses.replace(
        synthetic(), input_shape=(80,))), "inputs of shape"),
    (lambda: attacked_algorithm_process(Scaffold(), None, linear_model_fn,
                                        tff.aggregators.MeanFactory(), CLIENT_SGD, SERVER_SGD,
                                        attack("sign_flip", 0.1)),
     "algorithm 'scaffold' runs its own"),
])
def test_bad_attacks_are_one_line(build, message):
    with pytest.raises(ConfigError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_a_backdoor_run_counts_its_attackers_and_measures_the_backdoor(tmp_path):
    run(small_config(tmp_path, "clients.attack=backdoor", "clients.attack_fraction=0.5",
                     "clients.attack_scale=3", "clients.backdoor_target=1",
                     "schedule.clients_per_round=4"))
    table = pd.read_csv(tmp_path / "metrics.csv")
    malicious = pd.read_csv(tmp_path / "malicious_clients.csv")["client"]
    assert len(malicious) == 4  # half of the synthetic data set's 8 clients
    assert table["malicious_clients"].between(0, 4).all()
    assert table["backdoor_accuracy"].between(0, 1).all()


def test_trigger_shapes_follow_the_images():
    for shape in [(3, 28, 28), (3, 28, 28, 1), (3, 32, 32, 3)]:
        stamped = add_trigger(np.zeros(shape, np.float32), 1.0)
        assert stamped.sum() == 3 * TRIGGER_SIZE**2 * (shape[3] if len(shape) == 4 else 1)


def test_attack_kinds_are_the_configs_choices():
    assert {k.value for k in AttackKind} == {"none", "sign_flip", "gaussian", "label_flip",
                                            "backdoor"}


@pytest.mark.slow
def test_sign_flipping_attackers_leave_the_mean_worse_than_the_median(tmp_path):
    """The issue's check, on the robustness study's task and seed 1 (20 rounds each)."""
    common = ["+experiment=robustness", "clients.attack=sign_flip", "clients.attack_fraction=0.3",
              "clients.attack_scale=4", "optimizer.client.learning_rate=0.3", "schedule.seed=1"]
    try:
        mean = run(compose_config([*common, "aggregator=mean"], tmp_path / "mean"))
    except DivergenceError:  # the mean's weights went non-finite (round 10 in the study)
        mean = None
    median = run(compose_config([*common, "aggregator=median"], tmp_path / "median"))
    assert mean is None or mean < median, (mean, median)
    assert median > 0.3  # the study's seed 1: 0.521
