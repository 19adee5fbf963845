"""The one structure every data source returns, and the helpers they share."""

import collections
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data.partition import Partition, label_histogram
from fedlab.errors import ConfigError


@dataclass(frozen=True)
class FederatedData:
    """Federated training clients plus a centrally held test set.

    Client datasets yield ``OrderedDict(x=example, y=label)`` examples (an image and its class,
    or a token sequence and its next tokens: see ``task``), unbatched; the training
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
    # The task kind the examples are for (a name in fedlab.tasks.KINDS).
    task: str = "image_classification"
    # One row per client describing its size (written to the run folder), when the source has it.
    client_sizes: pd.DataFrame | None = None
    # A validation set carved from the training data (fedlab.data.validation), for selection.
    validation_x: np.ndarray | None = None
    validation_y: np.ndarray | None = None

    @property
    def validation_set_sha256(self) -> str | None:
        """SHA-256 of the validation examples and labels, if there are any."""
        if self.validation_x is None:
            return None
        return array_sha256([self.validation_x, self.validation_y])

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


def clients_as_arrays(client_data: tff.simulation.datasets.ClientData,
                      client_ids: Iterable[str], prefix: str = ""
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each client's ``x``/``y`` examples as a pair of arrays, keyed ``prefix + client id``.

    Clients without examples are left out.
    """
    clients = {}
    for client_id in client_ids:
        batches = list(client_data.create_tf_dataset_for_client(client_id).batch(4096)
                       .as_numpy_iterator())
        if batches:
            clients[prefix + client_id] = (np.concatenate([b["x"] for b in batches]),
                                           np.concatenate([b["y"] for b in batches]))
    return clients


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
    its training examples are the rest. A ``feature_noise`` partition adds each client's noise
    (drawn with ``rng`` after the split) to all its examples, held-out ones included; the
    central test set stays clean. ``client_sizes`` lists each client's ``train_examples``
    (and ``test_examples``, ``noise_std`` where they apply).

    Raises:
      ConfigError: a fraction outside [0, 1), or one that leaves a client no training example.
    """
    if not 0 <= client_test_fraction < 1:
        raise ConfigError(
            f"dataset.client_test_fraction must be in [0, 1), got {client_test_fraction}")
    parts = partition.split(train_y, num_clients, rng)
    train_x = partition.noisy_features(train_x, parts, rng)
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
    sizes = pd.DataFrame({"client": list(clients), "train_examples": [len(p) for p in parts]})
    if client_test is not None:
        sizes["test_examples"] = [len(y) for _, y in client_test.values()]
    if partition.adds_noise:
        sizes["noise_std"] = [partition.noise_std(i, len(parts)) for i in range(len(parts))]
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
        client_sizes=sizes,
    )


# Up to this many bytes of client arrays are embedded in the client-dataset computation that
# fedlab's worker runs (see ArrayClientData), which travels to the worker with every round
# (measured faster than per-client datasets at 12.5 MB; not measured above). Larger data is
# sent as each sampled client's own dataset, unless the worker reads the arrays from a file.
EMBEDDED_ARRAYS_LIMIT_BYTES = 64 * 2**20
# The dtypes tf.io.decode_raw reads back from a client-arrays file.
RAW_DTYPES = frozenset(np.dtype(t) for t in (
    np.float16, np.float32, np.float64, np.complex64, np.complex128, np.int8, np.int16,
    np.int32, np.int64, np.uint8, np.uint16, np.bool_))


class ArrayClientData(tff.simulation.datasets.ClientData):
    """A ClientData over in-memory arrays whose datasets hold only their own client's rows.

    ``TestClientData`` bakes every client's data into each dataset graph, which would ship the
    whole data set to the TFF worker for every client every round. Here the arrays are stacked
    once and a client's dataset is its own rows, looked up from its id in TensorFlow, so
    ``serializable_dataset_fn`` traces into a TFF computation that builds any client's dataset
    inside the worker from its id alone. Traced, the rows come from

    - the arrays themselves, embedded in the computation (up to ``embed_limit_bytes``; above
      that tracing raises ValueError and datasets travel from Python, one per client), or
    - a file of the clients' arrays (:meth:`stored`), which a worker sharing the file system
      reads: the computation then carries only the file's name and each client's row range.

    In Python (eager) a client's dataset is sliced from the arrays directly.
    """

    def __init__(self, clients: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 embed_limit_bytes: int = EMBEDDED_ARRAYS_LIMIT_BYTES,
                 records_file: str | None = None):
        """``clients``: client id -> (examples, labels); ``records_file``: see :meth:`stored`."""
        super().__init__()
        self._clients = dict(clients)
        self._client_ids = list(self._clients)
        self._embed_limit_bytes, self._records_file = embed_limit_bytes, records_file
        counts = np.array([len(y) for _, y in self._clients.values()], dtype=np.int64)
        self._counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        first_x, first_y = self._clients[self._client_ids[0]]
        self._row_dtypes = (first_x.dtype, first_y.dtype)
        self._row_shapes = (first_x.shape[1:], first_y.shape[1:])
        self._element_type_structure = self.create_tf_dataset_for_client(
            self._client_ids[0]).element_spec

    @property
    def client_ids(self) -> list[str]:
        """The clients' ids, in the order their rows are stacked."""
        return self._client_ids

    def arrays(self, client_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A client's examples and labels."""
        return self._clients[client_id]

    @property
    def element_type_structure(self):
        """``OrderedDict(x=TensorSpec, y=TensorSpec)`` of one example."""
        return self._element_type_structure

    @property
    def nbytes(self) -> int:
        """Bytes of every client's examples and labels."""
        return sum(x.nbytes + y.nbytes for x, y in self._clients.values())

    def create_tf_dataset_for_client(self, client_id: str) -> tf.data.Dataset:
        """The client's own examples, unbatched, from the arrays in memory."""
        x, y = self._clients[client_id]
        return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y))

    @property
    def serializable_dataset_fn(self):
        """``client id -> dataset``, traceable into a computation the worker runs (see class)."""
        return self._dataset_for_client

    def _dataset_for_client(self, client_id) -> tf.data.Dataset:
        if tf.executing_eagerly():
            if isinstance(client_id, tf.Tensor):
                client_id = client_id.numpy().decode()
            return self.create_tf_dataset_for_client(client_id)
        if self._records_file is None and self.nbytes > self._embed_limit_bytes:
            raise ValueError(f"{self.nbytes} bytes of client arrays are more than the "
                             f"{self._embed_limit_bytes} fedlab embeds in a computation")
        index = tf.reshape(tf.where(tf.equal(tf.constant(self._client_ids), client_id)), [])
        start = tf.gather(tf.constant(self._starts), index)
        count = tf.gather(tf.constant(self._counts), index)
        if self._records_file is not None:  # the client's block: its examples, its labels
            x_bytes, y_bytes = (count * size for size in self._row_bytes)
            before = start * sum(self._row_bytes)  # the blocks before, then the blocks after
            block = tf.data.FixedLengthRecordDataset(
                self._records_file, x_bytes + y_bytes, header_bytes=before,
                footer_bytes=self.nbytes - before - x_bytes - y_bytes,
                buffer_size=x_bytes + y_bytes).take(1).get_single_element()
            (x_dtype, y_dtype), (x_shape, y_shape) = self._row_dtypes, self._row_shapes
            examples = tf.strings.substr(block, tf.constant(0, tf.int64), x_bytes)
            labels = tf.strings.substr(block, x_bytes, y_bytes)
            return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
                x=_decoded_rows(examples, x_dtype, x_shape, count),
                y=_decoded_rows(labels, y_dtype, y_shape, count)))
        # Every client's rows embedded, this one's selected.
        all_x, all_y = (np.concatenate([arrays[i] for arrays in self._clients.values()])
                        for i in (0, 1))
        return tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
            x=tf.constant(all_x)[start:start + count], y=tf.constant(all_y)[start:start + count]))

    @property
    def _row_bytes(self) -> tuple[int, int]:
        return tuple(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                     for shape, dtype in zip(self._row_shapes, self._row_dtypes, strict=True))

    def stored(self, path: Path, worker_path: str | None = None) -> "ArrayClientData":
        """Write the arrays to ``path``, client after client; the same clients reading it.

        A client's block is its examples' bytes, then its labels' (little-endian), at its
        first row times the bytes of one example and label; a traced dataset reads that one
        block. ``worker_path`` is the name the worker opens (default ``str(path)``; a relative
        name resolves in the worker's working directory). Raises OSError when ``path`` cannot
        be written, ValueError for dtypes ``tf.io.decode_raw`` cannot read back or a client
        without examples.
        """
        for dtype in self._row_dtypes:
            if np.dtype(dtype) not in RAW_DTYPES:
                raise ValueError(f"client arrays of dtype {dtype} cannot be read from a file")
        if not self._counts.all():
            raise ValueError("a client without examples cannot be read from a file")
        with open(path, "wb") as records:
            for x, y in self._clients.values():
                for array in (x, y):
                    np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tofile(
                        records)
        return ArrayClientData(self._clients, self._embed_limit_bytes,
                               str(path) if worker_path is None else worker_path)


def _decoded_rows(raw: tf.Tensor, dtype: np.dtype, row_shape: tuple[int, ...],
                  count: tf.Tensor) -> tf.Tensor:
    """``count`` rows of ``row_shape`` from their little-endian bytes."""
    shape = tf.concat([[count], tf.constant(row_shape, tf.int64, shape=[len(row_shape)])], 0)
    return tf.reshape(tf.io.decode_raw(raw, dtype), shape)


def client_data_from_arrays(
    clients: Mapping[str, tuple[np.ndarray, np.ndarray]],
    embed_limit_bytes: int = EMBEDDED_ARRAYS_LIMIT_BYTES,
) -> ArrayClientData:
    """The :class:`ArrayClientData` of ``clients`` (client id -> (examples, labels))."""
    return ArrayClientData(clients, embed_limit_bytes)
