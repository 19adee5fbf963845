"""The one structure every data source returns, and the helpers they share."""

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


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

    @property
    def num_clients(self) -> int:
        """How many training clients there are."""
        return len(self.train.client_ids)

    def test_dataset(self, batch_size: int = 500) -> tf.data.Dataset:
        """The held-out examples as batched ``(x, y)`` tuples, for Keras ``evaluate``."""
        return tf.data.Dataset.from_tensor_slices((self.test_x, self.test_y)).batch(batch_size)


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
