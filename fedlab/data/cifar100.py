"""TFF's federated CIFAR-100, loaded with ``tff.simulation.datasets.cifar100.load_data``.

500 training clients of 100 images each (TFF's Pachinko-allocation partition of CIFAR-100's
training split) and 100 test clients partitioning its test split. Images are preprocessed by
TFF's CIFAR-100 baseline (``build_image_map``: float, centre crop to ``crop_size`` x
``crop_size``, per-image standardisation), once, without random distortion.
"""

import collections
import os

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data.emnist import database_partition_sha256
from fedlab.data.federated_data import FederatedData, clients_as_arrays
from fedlab.data.tff_database import load_tff_database, tff_cache_dir
from fedlab.errors import ConfigError, DataError

# TFF stores the data set as <cache_dir>/cifar100.sqlite (downloaded as .sqlite.lzma).
DATABASE_NAME = "cifar100.sqlite"
EXAMPLES_PER_CLIENT = 100  # every training client of TFF's partition: the shuffle buffer
NUM_CLASSES = 100
# Test clients are not training clients (TFF partitions the two splits separately): their ids
# are prefixed so that no one reads them as the same people.
TEST_CLIENT_PREFIX = "test/"
_preprocessing = tff.simulation.baselines.cifar100.image_classification_preprocessing


def load_cifar100(crop_size: int = 24, cache_dir: str | None = None,
                  max_test_clients: int | None = None) -> FederatedData:
    """Federated CIFAR-100: TFF's 500 training clients; its test clients pooled as held-out set.

    ``crop_size`` is the side of TFF's centre crop (24 in Reddi et al. 2020; 32 keeps the whole
    image). Each test client's images are kept apart too (``client_test``, ids ``test/<id>``).

    Args:
      crop_size: the side of TFF's centre crop, 1..32.
      cache_dir: the folder holding ``cifar100.sqlite`` (null: ``~/.tff``).
      max_test_clients: use only the first N test clients (null: all 100).

    Raises:
      ConfigError: ``crop_size`` outside 1..32.
      DataError: the database is absent and cannot be downloaded (the message names the path).
    """
    if not 1 <= crop_size <= 32:
        raise ConfigError(f"dataset.crop_size must be in 1..32 (CIFAR images are 32x32), "
                          f"got {crop_size}")
    path = os.path.join(tff_cache_dir(cache_dir), DATABASE_NAME)
    train, test = load_tff_database(tff.simulation.datasets.cifar100.load_data, cache_dir,
                                    DATABASE_NAME, "CIFAR-100")
    image_map = _preprocessing.build_image_map((crop_size, crop_size, 3), distort=False)

    def to_xy(element):
        image, label = image_map(element)
        return collections.OrderedDict(x=image, y=tf.cast(label, tf.int32))

    test_ids = test.client_ids[:max_test_clients] if max_test_clients else test.client_ids
    client_test = clients_as_arrays(test.preprocess(lambda dataset: dataset.map(to_xy)),
                                    test_ids, TEST_CLIENT_PREFIX)
    if not client_test:
        raise DataError(f"CIFAR-100 database {path} has no test examples")
    return FederatedData(
        partition_sha256=database_partition_sha256(path, train.client_ids),
        train=train.preprocess(lambda dataset: dataset.map(to_xy)),
        test_x=np.concatenate([x for x, _ in client_test.values()]),
        test_y=np.concatenate([y for _, y in client_test.values()]),
        client_test=client_test,
        input_shape=(crop_size, crop_size, 3),
        num_classes=NUM_CLASSES,
        class_names=tuple(str(label) for label in range(NUM_CLASSES)),
        shuffle_buffer=EXAMPLES_PER_CLIENT,
    )
