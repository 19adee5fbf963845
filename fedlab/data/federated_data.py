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


# Up to this many bytes of client arrays are embedded in the client-dataset computation that
# fedlab's worker runs (see client_data_from_arrays), which travels to the worker with every
# round (measured faster than per-client datasets at 12.5 MB; not measured above). Larger data
# is sent as each sampled client's own dataset.
EMBEDDED_ARRAYS_LIMIT_BYTES = 64 * 2**20


def client_data_from_arrays(
    clients: Mapping[str, tuple[np.ndarray, np.ndarray]],
    embed_limit_bytes: int = EMBEDDED_ARRAYS_LIMIT_BYTES,
) -> tff.simulation.datasets.ClientData:
    """A ClientData whose datasets hold only their own client's arrays.

    ``TestClientData`` bakes every client's data into each dataset graph, which would ship the
    whole data set to the TFF worker for every client every round. Here the arrays are stacked
    once and a client's dataset is ``from_tensor_slices`` of its own rows, looked up from its id
    in TensorFlow, so ``serializable_dataset_fn`` traces into a TFF computation that builds any
    client's dataset inside the worker from its id alone. Above ``embed_limit_bytes`` of arrays
    the lookup stays in Python (datasets then travel from Python, one per client).
    """
    client_ids = list(clients)
    arrays = dict(clients)
    if sum(x.nbytes + y.nbytes for x, y in arrays.values()) > embed_limit_bytes:

        def dataset_for_client(client_id: str) -> tf.data.Dataset:
            x, y = arrays[client_id]
            return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y))

        return tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
            client_ids, dataset_for_client)

    counts = np.array([len(arrays[c][1]) for c in client_ids], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    all_x = np.concatenate([arrays[c][0] for c in client_ids])
    all_y = np.concatenate([arrays[c][1] for c in client_ids])

    def dataset_for_client(client_id) -> tf.data.Dataset:
        if tf.executing_eagerly():  # in Python: slice the client's own arrays
            if isinstance(client_id, tf.Tensor):
                client_id = client_id.numpy().decode()
            x, y = arrays[client_id]
            return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y))
        # Traced into a TFF computation: every client's rows embedded, this one's selected.
        index = tf.reshape(tf.where(tf.equal(tf.constant(client_ids), client_id)), [])
        start = tf.gather(tf.constant(starts), index)
        end = start + tf.gather(tf.constant(counts), index)
        return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
            x=tf.constant(all_x)[start:end], y=tf.constant(all_y)[start:end]))

    return tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
        client_ids, dataset_for_client)
