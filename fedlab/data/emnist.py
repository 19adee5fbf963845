"""TFF's federated EMNIST, loaded with ``tff.simulation.datasets.emnist.load_data``."""

import collections
import functools
import hashlib
import os
import string

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data.federated_data import FederatedData, clients_as_arrays
from fedlab.data.tff_database import load_tff_database, tff_cache_dir
from fedlab.errors import DataError

# TFF stores the data set as <cache_dir>/emnist_all.sqlite (downloaded as .sqlite.lzma).
DATABASE_NAME = "emnist_all.sqlite"
# The largest client data set in federated EMNIST digits: the shuffle buffer of the study.
MAX_CLIENT_DATASET_SIZE = 418
EMNIST62_CLASS_NAMES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)


def emnist_database_path(cache_dir: str | None) -> str:
    """Where ``tff.simulation.datasets.emnist.load_data`` keeps the uncompressed database."""
    return os.path.join(tff_cache_dir(cache_dir), DATABASE_NAME)


def database_partition_sha256(path: str, client_ids) -> str:
    """SHA-256 of the training client ids and the database file that holds their examples."""
    digest = hashlib.sha256()
    for client_id in sorted(client_ids):
        digest.update(client_id.encode())
    with open(path, "rb") as database:
        for block in iter(lambda: database.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _to_xy(element: collections.OrderedDict) -> collections.OrderedDict:
    return collections.OrderedDict(
        x=tf.expand_dims(element["pixels"], axis=-1), y=tf.cast(element["label"], tf.int32)
    )


def load_emnist(
    only_digits: bool = True,
    cache_dir: str | None = None,
    max_test_clients: int | None = None,
) -> FederatedData:
    """Federated EMNIST: writers as clients, their test examples pooled as the held-out set.

    Each writer's own test examples are also kept apart (``client_test``), so the client-level
    evaluation uses EMNIST's natural per-client test data.

    Args:
      only_digits: the 10 digit classes (3,383 writers); false: digits and letters, 62 classes
        (3,400 writers).
      cache_dir: the folder holding ``emnist_all.sqlite`` (null: ``~/.tff``).
      max_test_clients: use only the first N writers' test examples (null: every writer's).

    Raises:
      DataError: the database is absent and cannot be downloaded (the message names the path).
    """
    path = emnist_database_path(cache_dir)
    train, test = load_tff_database(
        functools.partial(tff.simulation.datasets.emnist.load_data, only_digits=only_digits),
        cache_dir, DATABASE_NAME, "EMNIST")
    test_ids = test.client_ids[:max_test_clients] if max_test_clients else test.client_ids
    # Each writer's own test examples: client-level evaluation.
    client_test = clients_as_arrays(test.preprocess(lambda ds: ds.map(_to_xy)), test_ids)
    if not client_test:
        raise DataError(f"EMNIST database {path} has no test examples")
    return FederatedData(
        partition_sha256=database_partition_sha256(path, train.client_ids),
        train=train.preprocess(lambda ds: ds.map(_to_xy)),
        test_x=np.concatenate([x for x, _ in client_test.values()]),
        test_y=np.concatenate([y for _, y in client_test.values()]),
        client_test=client_test,
        input_shape=(28, 28, 1),
        num_classes=10 if only_digits else 62,
        class_names=EMNIST62_CLASS_NAMES[: 10 if only_digits else 62],
        shuffle_buffer=MAX_CLIENT_DATASET_SIZE,
    )
