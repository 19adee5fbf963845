"""CIFAR-10 through Keras' own loader and on-disk format, dealt to clients."""

import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from keras.src.datasets.cifar import load_batch

from fedlab.data.federated_data import FederatedData, partitioned_federated_data
from fedlab.data.partition import Partition
from fedlab.errors import DataError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def keras_cifar10_dir() -> Path:
    """Where ``tf.keras.datasets.cifar10.load_data`` extracts the data set."""
    return Path(os.path.expanduser("~")) / ".keras" / "datasets" / "cifar-10-batches-py"


def read_cifar10_batches(folder: Path) -> tuple[tuple, tuple]:
    """Parse the extracted ``cifar-10-batches-py`` folder with Keras' batch reader."""
    train = [load_batch(str(folder / name)) for name in BATCH_FILES[:-1]]
    test_x, test_y = load_batch(str(folder / "test_batch"))
    train_x = np.concatenate([x for x, _ in train]).transpose(0, 2, 3, 1)
    train_y = np.concatenate([y for _, y in train])
    return (train_x, train_y), (test_x.transpose(0, 2, 3, 1), np.asarray(test_y))


def load_cifar10(
    num_clients: int = 100,
    partition: Partition | None = None,
    client_test_fraction: float = 0.0,
    partition_seed: int = 0,
    data_dir: str | None = None,
) -> FederatedData:
    """CIFAR-10 scaled to [0, 1]: the 50,000 training images dealt to clients, 10,000 held out.

    Reads ``data_dir`` (default: Keras' cache folder) when it holds the extracted batches, and
    otherwise calls ``tf.keras.datasets.cifar10.load_data()``, which downloads them. The test
    set is CIFAR-10's own; ``partition_seed`` deals the training images to clients, each
    keeping ``client_test_fraction`` of its own for client-level evaluation.

    Args:
      num_clients: the number of clients the training images are dealt to.
      partition: how they are dealt (:class:`fedlab.data.partition.Partition`: a ``method``
        and its parameters; default IID).
      client_test_fraction: the share of each client's examples it keeps as its own test data
        for client-level evaluation (0: none).
      partition_seed: the seed of the dealing to clients.
      data_dir: the folder of the extracted ``cifar-10-batches-py`` (null: Keras' cache,
        ``~/.keras/datasets``).

    Raises:
      DataError: the data set is not on disk and cannot be downloaded; names the folder.
    """
    folder = Path(data_dir) if data_dir else keras_cifar10_dir()
    if all((folder / name).exists() for name in BATCH_FILES):
        (train_x, train_y), (test_x, test_y) = read_cifar10_batches(folder)
    elif data_dir is None:
        try:
            (train_x, train_y), (test_x, test_y) = tf.keras.datasets.cifar10.load_data()
        except Exception as error:  # noqa: BLE001 - urllib/HTTP/OS errors alike
            raise DataError(
                f"CIFAR-10 is not in {folder} and could not be downloaded "
                f"({type(error).__name__}). Put cifar-10-python.tar.gz's extracted folder "
                f"(data_batch_1..5, test_batch) at {folder}, or set dataset.data_dir."
            ) from error
    else:
        raise DataError(f"{folder} does not hold the CIFAR-10 batches {', '.join(BATCH_FILES)}")
    partition = partition or Partition()
    rng = np.random.default_rng([partition_seed, 3])
    return partitioned_federated_data(
        (train_x / 255.0).astype(np.float32), train_y.reshape(-1).astype(np.int32),
        (test_x / 255.0).astype(np.float32), test_y.reshape(-1).astype(np.int32),
        num_clients, partition, rng, CLASS_NAMES,
        client_test_fraction, np.random.default_rng([partition_seed, 6]),
    )
