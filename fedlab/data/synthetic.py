"""A tiny generated image-classification problem for tests and smoke runs."""

import numpy as np

from fedlab.data.federated_data import FederatedData, client_data_from_arrays
from fedlab.errors import ConfigError


def load_synthetic(
    num_clients: int = 8,
    examples_per_client: int = 24,
    test_examples: int = 64,
    image_size: int = 8,
    num_classes: int = 3,
    seed: int = 0,
) -> FederatedData:
    """Images of one channel: a fixed random pattern per class plus Gaussian noise.

    Learnable in a few rounds, so smoke runs can check that accuracy moves.
    """
    if min(num_clients, examples_per_client, test_examples, image_size, num_classes) < 1:
        raise ConfigError("every size of the synthetic dataset must be >= 1")
    rng = np.random.default_rng([seed, 2])
    patterns = rng.normal(size=(num_classes, image_size, image_size, 1)).astype(np.float32)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, num_classes, size=count).astype(np.int32)
        x = patterns[y] + 0.8 * rng.normal(size=(count, image_size, image_size, 1))
        return x.astype(np.float32), y

    clients = {f"client_{i:04d}": draw(examples_per_client) for i in range(num_clients)}
    test_x, test_y = draw(test_examples)
    return FederatedData(
        train=client_data_from_arrays(clients),
        test_x=test_x,
        test_y=test_y,
        input_shape=(image_size, image_size, 1),
        num_classes=num_classes,
        class_names=tuple(f"class_{c}" for c in range(num_classes)),
        shuffle_buffer=examples_per_client,
    )
