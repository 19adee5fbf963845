"""NIID-Bench's partitions (fedlab.data.partition): each one's defining property."""

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config

from fedlab.data.federated_data import partitioned_federated_data
from fedlab.data.partition import (
    NIID_BENCH_MIN_SIZE,
    Partition,
    label_histogram,
)
from fedlab.errors import ConfigError
from fedlab.run import run

CLASSES = 10
LABELS = np.repeat(np.arange(CLASSES), 600)  # 6,000 examples, 600 per class, like FMNIST / 10


def _histogram(parts):
    return label_histogram(LABELS, parts, CLASSES)


def _dealt_once(parts):
    everything = np.concatenate(parts)
    return len(everything) == len(set(everything.tolist())) == len(LABELS)


@pytest.mark.parametrize("k", [1, 2, 3, CLASSES])
def test_label_quantity_gives_every_client_exactly_k_labels_each_class_split_evenly(k):
    parts = Partition("label_quantity", labels_per_client=k).split(
        LABELS, 10, np.random.default_rng(0))
    histogram = _histogram(parts)
    assert ((histogram > 0).sum(axis=1) == k).all()
    # Client i holds class i mod C (NIID-Bench's first label), and every class is held.
    assert all(histogram[i, i % CLASSES] > 0 for i in range(10))
    assert _dealt_once(parts)
    for label in range(CLASSES):  # a class is split in near-equal parts among its holders
        shares = histogram[:, label][histogram[:, label] > 0]
        assert shares.sum() == 600 and shares.max() - shares.min() <= 1
    assert all((np.diff(p) > 0).all() for p in parts)  # sorted, as every method's


def test_label_quantity_with_fewer_clients_than_classes_leaves_unheld_classes_out(caplog):
    with caplog.at_level(logging.WARNING, logger="fedlab"):
        parts = Partition("label_quantity", labels_per_client=2).split(
            LABELS, 3, np.random.default_rng(0))
    histogram = _histogram(parts)
    assert ((histogram > 0).sum(axis=1) == 2).all()
    unheld = int((histogram.sum(axis=0) == 0).sum())
    assert unheld >= CLASSES - 6 and histogram.sum() == 600 * (CLASSES - unheld)
    assert "left out" in caplog.text


@pytest.mark.parametrize("k", [0, CLASSES + 1])
def test_label_quantity_refuses_k_outside_the_classes(k):
    with pytest.raises(ConfigError, match=r"labels_per_client must be in 1\.\.10"):
        Partition("label_quantity", labels_per_client=k).split(LABELS, 10, np.random.default_rng(0))


def test_label_dirichlet_is_niid_benchs_labeldir_capped_skewed_and_at_least_ten_each():
    n, clients = len(LABELS), 10
    sizes_seen = []
    for seed in range(5):
        parts = Partition("label_dirichlet", alpha=0.1).split(
            LABELS, clients, np.random.default_rng(seed))
        histogram = _histogram(parts)
        sizes = histogram.sum(axis=1)
        assert _dealt_once(parts) and sizes.min() >= NIID_BENCH_MIN_SIZE
        # The balance step: a client stops receiving once it holds n / clients examples, so
        # it ends below that plus the last class it was dealt.
        assert sizes.max() < n / clients + 600
        # Label skew: with alpha 0.1 a client's largest class dominates.
        assert (histogram.max(axis=1) / sizes).mean() > 0.5
        sizes_seen.append(sizes)
    # fedlab's own dirichlet has no cap: on the same draws its sizes spread further.
    uncapped = [_histogram(Partition("dirichlet", alpha=0.1).split(
                    LABELS, clients, np.random.default_rng(s))).sum(axis=1)
                for s in range(5)]
    assert np.mean([s.std() for s in uncapped]) > np.mean([s.std() for s in sizes_seen])


def test_quantity_dirichlet_keeps_the_global_label_mix_with_unequal_sizes():
    parts = Partition("quantity_dirichlet", alpha=0.5).split(LABELS, 10, np.random.default_rng(0))
    histogram = _histogram(parts)
    sizes = histogram.sum(axis=1)
    assert _dealt_once(parts)
    # NIID-Bench's rule is on the drawn proportions (p_min * n >= 10); the integer cuts can
    # leave one example fewer.
    assert sizes.min() >= NIID_BENCH_MIN_SIZE - 1
    assert sizes.max() / sizes.min() > 3  # sizes from Dirichlet(0.5): far from equal
    large = sizes >= 500
    assert large.any()
    shares = histogram[large] / sizes[large, None]
    assert np.abs(shares - 1 / CLASSES).max() < 0.05  # iid labels: the global 10 % each


@pytest.mark.parametrize("method", ["label_dirichlet", "quantity_dirichlet"])
def test_niid_bench_minimum_of_ten_examples_is_refused_when_impossible(method):
    with pytest.raises(ConfigError, match="at least 10 examples"):
        Partition(method).split(LABELS[:95], 10, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        Partition(method, alpha=0).split(LABELS, 10, np.random.default_rng(0))


@pytest.mark.parametrize("method", ["iid", "feature_noise"])
def test_iid_and_feature_noise_deal_equal_sizes(method):
    parts = Partition(method).split(np.arange(60_001) % CLASSES, 10, np.random.default_rng(0))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 60_001


def _noisy_data(noise, clients=5, seed=0):
    images = np.full((2000, 28, 28, 1), 0.5, np.float32)
    labels = np.arange(2000, dtype=np.int32) % CLASSES
    test = np.full((10, 28, 28, 1), 0.5, np.float32)
    return partitioned_federated_data(
        images, labels, test, labels[:10], clients, Partition("feature_noise", noise=noise),
        np.random.default_rng(seed), [str(c) for c in range(CLASSES)])


def test_feature_noise_gives_client_i_noise_of_std_noise_times_i_over_n_minus_one():
    data = _noisy_data(0.2)
    for i, client in enumerate(data.train.client_ids):
        x, _ = data.train.arrays(client)
        difference = x - 0.5
        expected = 0.2 * i / (data.num_clients - 1)  # NIID-Bench's level: noise / (N-1) * i
        assert difference.std() == pytest.approx(expected, rel=0.02, abs=1e-7)
        assert abs(difference.mean()) < 0.01
    assert (data.test_x == 0.5).all()  # the central test set stays clean
    sizes = data.client_sizes
    assert list(sizes.columns) == ["client", "train_examples", "noise_std"]
    np.testing.assert_allclose(sizes["noise_std"], [0, 0.05, 0.1, 0.15, 0.2])
    # Seeded, drawn once: the same seed gives the same noisy images.
    assert data.partition_sha256 == _noisy_data(0.2).partition_sha256
    assert data.partition_sha256 != _noisy_data(0.2, seed=1).partition_sha256
    with pytest.raises(ConfigError, match="partition.noise must be >= 0"):
        _noisy_data(-0.1)


def test_new_methods_compose_with_their_parameters():
    cfg = compose_config(["dataset.partition.method=label_quantity",
                          "dataset.partition.labels_per_client=3",
                          "dataset.partition.noise=0.2"])
    assert cfg.dataset.partition.labels_per_client == 3 and cfg.dataset.partition.noise == 0.2


def test_a_run_writes_client_labels_and_sizes_for_a_niid_bench_partition(tmp_path):
    run(compose_config(["dataset=mnist", "dataset.num_clients=10", "schedule=smoke",
                        "model=mlp", "dataset.partition.method=label_quantity",
                        "dataset.partition.labels_per_client=2"], tmp_path))
    labels = pd.read_csv(tmp_path / "client_labels.csv").set_index("client")
    assert len(labels) == 10 and ((labels > 0).sum(axis=1) == 2).all()
    sizes = pd.read_csv(tmp_path / "client_sizes.csv").set_index("client")
    assert sizes["train_examples"].sum() == 4000
    assert (sizes["train_examples"] == labels.sum(axis=1)).all()
