"""The one structure every data source returns, and the helpers they share."""

import collections
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data.partition import Partition, label_histogram
from fedlab.errors import ConfigError


@dataclass(frozen=True)
class FederatedData:
    """Federated training clients plus a centrally held test set.

    Client datasets yield ``OrderedDict(x=image, y=label)`` examples, unbatched; the training
    loop shuffles, repeats and batches them. ``test_x``/``test_y`` are the held-out examples the
    global model is evaluated on.
    """

    train: tff.simulation.datasets.ClientData
    test_x: np.ndarray
    test_y: np.ndarray
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: Sequence[str]
    shuffle_buffer: int
    client_label_counts: np.ndarray | None = None  # (clients x classes), when cheap to know
    partition_sha256: str | None = None  # client ids and their examples, see clients_sha256
    # Each client's own held-out examples, by client id (client-level evaluation), if any.
    client_test: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def test_set_sha256(self) -> str:
        """SHA-256 of the held-out examples and labels (dtype, shape and bytes)."""
        return array_sha256([self.test_x, self.test_y])

    @property
    def num_clients(self) -> int:
        """How many training clients there are."""
        return len(self.train.client_ids)

    def pooled_train(self) -> tuple[np.ndarray, np.ndarray]:
        """Every client's training examples in one pair of arrays (for centralized training)."""
        batches = [
            batch
            for client_id in self.train.client_ids
            for batch in self.train.create_tf_dataset_for_client(client_id)
            .batch(4096)
            .as_numpy_iterator()
        ]
        return np.concatenate([b["x"] for b in batches]), np.concatenate([b["y"] for b in batches])


def array_sha256(arrays: Iterable[np.ndarray], digest=None) -> str:
    """SHA-256 over arrays' dtypes, shapes and C-ordered bytes: equal iff the data are equal."""
    digest = digest or hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def clients_sha256(clients: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """SHA-256 of a partition: every client id (sorted) with its examples and labels."""
    digest = hashlib.sha256()
    for client_id in sorted(clients):
        digest.update(client_id.encode())
        array_sha256(clients[client_id], digest)
    return digest.hexdigest()


def partitioned_federated_data(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_clients: int,
    partition: Partition,
    rng: np.random.Generator,
    class_names: Sequence[str],
    client_test_fraction: float = 0.0,
    client_test_rng: np.random.Generator | None = None,
) -> FederatedData:
    """Deal centrally held training arrays to clients and wrap everything as FederatedData.

    With ``client_test_fraction > 0`` each client keeps that share of its own examples
    (rounded, drawn with ``client_test_rng``) as its held-out set for client-level evaluation;
    its training examples are the rest.

    Raises:
      ConfigError: a fraction outside [0, 1), or one that leaves a client no training example.
    """
    if not 0 <= client_test_fraction < 1:
        raise ConfigError(
            f"dataset.client_test_fraction must be in [0, 1), got {client_test_fraction}")
    parts = partition.split(train_y, num_clients, rng)
    client_test = None
    if client_test_fraction > 0:
        client_test_rng = client_test_rng or np.random.default_rng(0)
        held_out, kept = [], []
        for index, part in enumerate(parts):
            shuffled = client_test_rng.permutation(part)
            count = round(client_test_fraction * len(part))
            if count == len(part):
                raise ConfigError(
                    f"dataset.client_test_fraction={client_test_fraction} leaves client_"
                    f"{index:04d} ({len(part)} examples) with no training example")
            held_out.append(np.sort(shuffled[:count]))
            kept.append(np.sort(shuffled[count:]))
        parts = kept
        client_test = {f"client_{i:04d}": (train_x[p], train_y[p])
                       for i, p in enumerate(held_out)}
    clients = {f"client_{i:04d}": (train_x[p], train_y[p]) for i, p in enumerate(parts)}
    return FederatedData(
        train=client_data_from_arrays(clients),
        test_x=test_x,
        test_y=test_y,
        input_shape=tuple(train_x.shape[1:]),
        num_classes=len(class_names),
        class_names=tuple(class_names),
        shuffle_buffer=max(len(p) for p in parts),
        client_label_counts=label_histogram(train_y, parts, len(class_names)),
        partition_sha256=clients_sha256({**clients, **{
            f"{c} test": arrays for c, arrays in (client_test or {}).items()}}),
        client_test=client_test,
    )


def client_data_from_arrays(
    clients: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> tff.simulation.datasets.ClientData:
    """A ClientData whose datasets hold only their own client's arrays.

    ``TestClientData`` bakes every client's data into each dataset graph, which would ship the
    whole data set to the TFF worker for every client every round; here each client dataset is
    ``from_tensor_slices`` of that client's arrays alone.
    """
    arrays = dict(clients)

    def dataset_for_client(client_id: str) -> tf.data.Dataset:
        x, y = arrays[client_id]
        return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y))

    return tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
        list(arrays), dataset_for_client
    )
