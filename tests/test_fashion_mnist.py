"""dataset=fashion_mnist (Debian's IDX files) and model=niid_cnn (NIID-Bench's simple-cnn)."""

import collections
import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import compose_config, summary

from fedlab.data import fashion_mnist
from fedlab.data.fashion_mnist import load_fashion_mnist, read_idx
from fedlab.data.partition import Partition
from fedlab.errors import DataError
from fedlab.models.images import niid_cnn
from fedlab.run import load_dataset, run
from fedlab.tasks import Task

DEBIAN = Path(fashion_mnist.DEFAULT_DATA_DIR)
needs_debian_files = pytest.mark.skipif(
    bool(fashion_mnist.missing_files(DEBIAN)),
    reason=f"Debian's dataset-fashion-mnist is not installed (no {DEBIAN}/*-ubyte.gz): "
           "apt-get install dataset-fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format: 0, 0, type 0x08, rank, big-endian dims, values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_fashion_mnist(folder: Path, train=12, test=5, gzipped=True, seed=0):
    """A small data set in the Debian package's layout; returns its arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        arrays[split] = images, labels
        for name, array in zip(fashion_mnist.FILES[split], (images, labels), strict=True):
            content = idx_bytes(array)
            if gzipped:
                (folder / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (folder / name).write_bytes(content)
    return arrays


@pytest.mark.parametrize("gzipped", [True, False])
def test_reads_idx_files_gzipped_or_not(tmp_path, gzipped):
    arrays = write_fashion_mnist(tmp_path, gzipped=gzipped)
    data = load_fashion_mnist(num_clients=3, partition=Partition("iid"), data_dir=str(tmp_path))
    train_x, train_y = arrays["train"]
    test_x, test_y = arrays["test"]
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    assert data.class_names[0] == "T-shirt/top" and data.class_names[-1] == "Ankle boot"
    # The official test images, in order, scaled to [0, 1].
    np.testing.assert_array_equal(data.test_x, (test_x / 255.0).astype(np.float32)[..., None])
    np.testing.assert_array_equal(data.test_y, test_y)
    assert data.test_y.dtype == np.int32 and data.test_x.dtype == np.float32
    dealt = np.concatenate([data.train.arrays(c)[0] for c in data.train.client_ids])
    assert data.num_clients == 3 and len(dealt) == 12
    # Every training image dealt once, unchanged but for the scaling.
    expected = np.sort((train_x / 255.0).astype(np.float32).reshape(12, -1), axis=0)
    np.testing.assert_array_equal(np.sort(dealt.reshape(12, -1), axis=0), expected)
    assert data.client_label_counts.sum() == 12
    assert data.client_sizes["train_examples"].tolist() == [4, 4, 4]


def test_missing_files_are_one_line_naming_the_folder_and_the_package(tmp_path):
    with pytest.raises(DataError) as error:
        load_fashion_mnist(data_dir=str(tmp_path / "nowhere"))
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message and "dataset.data_dir" in message


def test_malformed_idx_files_are_refused(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((4, 2), np.uint8))[:-1])
    with pytest.raises(DataError, match=r"7 values where its IDX header says \(4, 2\)"):
        read_idx(short)
    (tmp_path / "broken.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(tmp_path / "broken.gz")


def test_data_dir_composes_with_its_debian_default():
    cfg = compose_config(["dataset=fashion_mnist"])
    assert cfg.dataset.data_dir == str(DEBIAN) and cfg.dataset.num_clients == 10


@needs_debian_files
def test_the_debian_files_hold_60000_training_and_10000_test_images_balanced():
    data = load_dataset(compose_config(["dataset=fashion_mnist",
                                        "dataset.partition.method=label_quantity"]).dataset)
    assert data.client_label_counts.sum() == 60_000 and len(data.test_y) == 10_000
    assert data.client_label_counts.sum(axis=0).tolist() == [6_000] * 10
    assert np.bincount(data.test_y).tolist() == [1_000] * 10
    assert data.test_x.shape == (10_000, 28, 28, 1)
    assert data.test_x.min() == 0.0 and data.test_x.max() == 1.0
    assert ((data.client_label_counts > 0).sum(axis=1) == 2).all()  # K = 2 by default


def test_niid_cnn_has_niid_benchs_44426_parameters_and_runs_functionally():
    model = niid_cnn((28, 28, 1), 10)
    assert model.count_params() == 44_426
    assert [w.shape.as_list() for w in model.trainable_weights] == [
        [5, 5, 1, 6], [6], [5, 5, 6, 16], [16], [256, 120], [120], [120, 84], [84], [84, 10],
        [10]]
    # PyTorch's default initialisation: every weight within 1/sqrt(fan_in).
    for weights, fan_in in zip(model.get_weights()[::2], (25, 150, 256, 120, 84), strict=True):
        assert np.abs(weights).max() <= fan_in ** -0.5
    # TFF's fast path: a FunctionalModel (no variables per client).
    assert Task.runs_functionally(model)
    input_spec = collections.OrderedDict(x=tf.TensorSpec([None, 28, 28, 1], tf.float32),
                                         y=tf.TensorSpec([None], tf.int32))
    task = Task(niid_cnn, (28, 28, 1), 10)
    assert isinstance(task.tff_model(input_spec), tff.learning.models.FunctionalModel)


@pytest.mark.slow
@needs_debian_files
def test_a_run_on_fashion_mnist_reports_60000_dealt_and_10000_held_out(tmp_path):
    run(compose_config(["dataset=fashion_mnist", "model=niid_cnn", "schedule=smoke",
                        "schedule.batch_size=64"], tmp_path))
    assert summary(tmp_path)["provenance"]["held_out_predictions"] == 10_000
    sizes = pd.read_csv(tmp_path / "client_sizes.csv")
    assert sizes["train_examples"].sum() == 60_000 and len(sizes) == 10
    labels = pd.read_csv(tmp_path / "client_labels.csv").drop(columns="client")
    assert labels.to_numpy().sum() == 60_000 and list(labels.columns)[0] == "T-shirt/top"
