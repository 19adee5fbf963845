"""A validation set carved from the training data, fixed like the test set, for selection.

``dataset.validation_fraction`` (0: none, as before) takes that share of the training data
away from training; the test set is not touched. Where it comes from depends on how the
training data are held:

- **In-memory clients** (``mnist``, ``cifar10``, ``synthetic``, ``shakespeare``): every client
  keeps ``1 - fraction`` of its examples (a seeded shuffle of its own; at least one) and gives
  the rest to the pooled validation set. Validation then has the training clients'
  distribution, which is what selecting a learning rate for those clients needs, and a small
  federation (10 clients) loses no client.
- **Clients streamed from a database** (``emnist``, ``cifar100``, ``stackoverflow``,
  ``shakespeare_tff``): that share of the clients (seeded) is held out whole and their examples
  pooled. Their examples are not in memory to split, and with hundreds to thousands of clients
  validation on unseen clients is the cross-device question anyway.

Either way the draw depends on ``validation_seed`` only, never on the training seed.
"""

import dataclasses

import numpy as np
import tensorflow_federated as tff

from fedlab.data.federated_data import (
    ArrayClientData,
    FederatedData,
    client_data_from_arrays,
    clients_as_arrays,
)
from fedlab.errors import ConfigError


def with_validation(data: FederatedData, fraction: float, seed: int = 0) -> FederatedData:
    """``data`` with ``fraction`` of its training data carved out as its validation set.

    Raises:
      ConfigError: a fraction outside [0, 1), or one that leaves no training client.
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"dataset.validation_fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return data
    if isinstance(data.train, ArrayClientData):
        kept, held = {}, []
        for index, client_id in enumerate(data.train.client_ids):
            x, y = data.train.arrays(client_id)
            order = np.random.default_rng([seed, index]).permutation(len(y))
            cut = len(y) - min(round(fraction * len(y)), len(y) - 1)
            keep, give = np.sort(order[:cut]), np.sort(order[cut:])
            kept[client_id] = (x[keep], y[keep])
            held.append((x[give], y[give]))
        train = client_data_from_arrays(kept)
        described = {}
        if data.client_label_counts is not None:  # the clients' labels after the carve
            described["client_label_counts"] = np.stack([
                np.bincount(y, minlength=data.num_classes) for _, y in kept.values()])
        if data.client_sizes is not None:
            described["client_sizes"] = data.client_sizes.assign(
                validation_examples=[len(y) for _, y in held])
        data = dataclasses.replace(data, **described)
    else:
        ids = list(data.train.client_ids)
        count = round(fraction * len(ids))
        if not 1 <= count < len(ids):
            raise ConfigError(
                f"dataset.validation_fraction={fraction} holds out {count} of the "
                f"{len(ids)} clients: it must hold out at least one and leave one")
        order = np.random.default_rng(seed).permutation(len(ids))
        held_ids = sorted(ids[i] for i in order[:count])
        kept_ids = [c for c in ids if c not in set(held_ids)]
        held = list(clients_as_arrays(data.train, held_ids).values())
        train = tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
            kept_ids, data.train.serializable_dataset_fn)
    if not sum(len(y) for _, y in held):
        raise ConfigError(f"dataset.validation_fraction={fraction} leaves no validation example")
    validation_x = np.concatenate([x for x, _ in held])
    validation_y = np.concatenate([y for _, y in held])
    return dataclasses.replace(data, train=train, validation_x=validation_x,
                               validation_y=validation_y)
