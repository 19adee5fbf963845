"""A tiny generated image-classification problem for tests and smoke runs."""

import numpy as np

from fedlab.data.federated_data import FederatedData, client_data_from_arrays, clients_sha256
from fedlab.errors import ConfigError


def load_synthetic(
    num_clients: int = 8,
    examples_per_client: int = 24,
    test_examples: int = 64,
    image_size: int = 8,
    num_classes: int = 3,
    split_seed: int = 0,
    partition_seed: int = 0,
) -> FederatedData:
    """Images of one channel: a fixed random pattern per class plus Gaussian noise.

    Learnable in a few rounds, so smoke runs can check that accuracy moves. The class patterns
    and the test examples come from ``split_seed`` (the problem and its held-out set stay put);
    the clients' examples from ``partition_seed``.

    Args:
      num_clients: the number of clients.
      examples_per_client: training examples per client.
      test_examples: held-out examples.
      image_size: the side of the square one-channel images.
      num_classes: the number of classes.
      split_seed: the seed of the class patterns and the held-out examples.
      partition_seed: the seed of the clients' examples.
    """
    if min(num_clients, examples_per_client, test_examples, image_size, num_classes) < 1:
        raise ConfigError("every size of the synthetic dataset must be >= 1")
    problem_rng = np.random.default_rng([split_seed, 2])
    patterns = problem_rng.normal(size=(num_classes, image_size, image_size, 1)).astype(np.float32)

    def draw(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, num_classes, size=count).astype(np.int32)
        x = patterns[y] + 0.8 * rng.normal(size=(count, image_size, image_size, 1))
        return x.astype(np.float32), y

    test_x, test_y = draw(test_examples, problem_rng)
    client_rng = np.random.default_rng([partition_seed, 5])
    clients = {f"client_{i:04d}": draw(examples_per_client, client_rng)
               for i in range(num_clients)}
    return FederatedData(
        train=client_data_from_arrays(clients),
        test_x=test_x,
        test_y=test_y,
        input_shape=(image_size, image_size, 1),
        num_classes=num_classes,
        class_names=tuple(f"class_{c}" for c in range(num_classes)),
        shuffle_buffer=examples_per_client,
        partition_sha256=clients_sha256(clients),
    )
