"""Fashion-MNIST (Xiao et al. 2017) from the IDX files of Debian's ``dataset-fashion-mnist``.

``apt-get install dataset-fashion-mnist`` puts the four files in
``/usr/share/datasets/fashion-mnist/`` (gzipped); any folder holding them, gzipped or not, can
be named with ``dataset.data_dir``. Nothing is downloaded. The 60,000 training images are
dealt to clients (NIID-Bench's 10 by default); the official 10,000 test images are held out.
"""

import gzip
from pathlib import Path

import numpy as np

from fedlab.data.federated_data import FederatedData, partitioned_federated_data
from fedlab.data.partition import Partition
from fedlab.errors import DataError

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# IDX: two zero bytes, a type code (0x08: unsigned bytes), the number of dimensions, then each
# dimension as a big-endian 32-bit integer, then the values.
UNSIGNED_BYTE = 0x08


def idx_path(folder: Path, name: str) -> Path:
    """``folder/name.gz`` if it exists, else ``folder/name`` (which may not exist)."""
    gzipped = folder / f"{name}.gz"
    return gzipped if gzipped.is_file() else folder / name


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped when its name ends ``.gz``) as a uint8 array.

    Raises:
      DataError: not an IDX file of unsigned bytes, or its values do not fill its shape.
    """
    try:
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} cannot be read: {error}") from error
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] != UNSIGNED_BYTE:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    dimensions = content[3]
    header = 4 + 4 * dimensions
    if len(content) < header:
        raise DataError(f"{path}: its IDX header is cut short")
    shape = tuple(int(d) for d in np.frombuffer(content, ">u4", dimensions, offset=4))
    values = np.frombuffer(content, np.uint8, offset=header)
    if values.size != int(np.prod(shape)):
        raise DataError(f"{path}: {values.size} values where its IDX header says {shape}")
    return values.reshape(shape)


def missing_files(folder: Path) -> list[str]:
    """The IDX files (with or without ``.gz``) that ``folder`` lacks, by path."""
    return [str(idx_path(folder, name)) for names in FILES.values() for name in names
            if not idx_path(folder, name).is_file()]


def read_fashion_mnist(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's images (uint8, N x 28 x 28) and labels (uint8, N) from ``folder``.

    Raises:
      DataError: a file is missing (one line naming it and how to get it) or malformed.
    """
    paths = [idx_path(folder, name) for name in FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST is not in {folder} (no {', '.join(missing)}[.gz]): "
            "apt-get install dataset-fashion-mnist, or set dataset.data_dir to a folder "
            "holding its IDX files")
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
        raise DataError(f"{paths[0]}: images of shape {images.shape[1:]} (28 x 28 expected)")
    if len(images) != len(labels):
        raise DataError(f"{paths[0]} holds {len(images)} images, {paths[1]} {len(labels)} "
                        "labels")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{paths[1]}: label {labels.max()} outside 0..9")
    return images, labels


def load_fashion_mnist(
    num_clients: int = 10,
    partition: Partition | None = None,
    client_test_fraction: float = 0.0,
    partition_seed: int = 0,
    data_dir: str = DEFAULT_DATA_DIR,
) -> FederatedData:
    """Fashion-MNIST scaled to [0, 1], 28x28x1: the 60,000 training images dealt to clients.

    Args:
      num_clients: the number of clients (NIID-Bench's parties: 10).
      partition: how the training images are dealt (:class:`fedlab.data.partition.Partition`,
        any method; default IID).
      client_test_fraction: the share of each client's images it keeps as its own test data
        for client-level evaluation (0: none).
      partition_seed: the seed of the dealing (``${schedule.seed}`` in the config).
      data_dir: the folder of the four IDX files (``train``/``t10k``, ``images-idx3``/
        ``labels-idx1``, ``-ubyte`` with or without ``.gz``).

    The held-out set is the official 10,000 test images, the same for every seed.

    Raises:
      DataError: the files are missing (nothing is downloaded) or malformed.
    """
    folder = Path(data_dir).expanduser()
    train_x, train_y = read_fashion_mnist(folder, "train")
    test_x, test_y = read_fashion_mnist(folder, "test")
    partition = partition or Partition()
    return partitioned_federated_data(
        (train_x.astype(np.float32) / 255.0)[..., None], train_y.astype(np.int32),
        (test_x.astype(np.float32) / 255.0)[..., None], test_y.astype(np.int32),
        num_clients, partition, np.random.default_rng([partition_seed, 4]), CLASS_NAMES,
        client_test_fraction, np.random.default_rng([partition_seed, 6]),
    )
