"""Ways to deal a labelled data set out to clients; each returns one index array per client."""

from dataclasses import dataclass

import numpy as np

from fedlab.config.choices import PartitionMethod
from fedlab.errors import ConfigError


def partition_indices(
    labels: np.ndarray,
    num_clients: int,
    method: PartitionMethod | str,
    rng: np.random.Generator,
    alpha: float = 0.5,
    shards_per_client: int = 2,
) -> list[np.ndarray]:
    """Split ``range(len(labels))`` into ``num_clients`` non-empty index arrays.

    ``iid``: a random permutation cut into near-equal parts. ``dirichlet``: each class is spread
    over clients with proportions drawn from Dirichlet(``alpha``) (small alpha: strong label skew).
    ``shards``: McMahan et al.'s pathological split, examples sorted by label into
    ``num_clients * shards_per_client`` shards and each client given ``shards_per_client`` of them.
    """
    num_examples = len(labels)
    if num_clients < 1:
        raise ConfigError(f"dataset.num_clients must be >= 1, got {num_clients}")
    if num_clients > num_examples:
        raise ConfigError(
            f"dataset.num_clients={num_clients} exceeds the {num_examples} training examples"
        )
    try:
        method = PartitionMethod(method)
    except ValueError:
        raise ConfigError(f"dataset.partition.method must be one of "
                          f"{[m.value for m in PartitionMethod]}, got {method!r}") from None
    if method is PartitionMethod.iid:
        shuffled = rng.permutation(num_examples)
        return [np.sort(part) for part in np.array_split(shuffled, num_clients)]
    if method is PartitionMethod.dirichlet:
        if alpha <= 0:
            raise ConfigError(f"dataset.partition.alpha must be > 0 for dirichlet, got {alpha}")
        return _dirichlet(labels, num_clients, alpha, rng)
    num_shards = num_clients * shards_per_client
    if shards_per_client < 1 or num_shards > num_examples:
        raise ConfigError(
            f"dataset.partition.shards_per_client={shards_per_client} with {num_clients} "
            f"clients needs 1..{num_examples // num_clients} shards per client"
        )
    by_label = np.argsort(labels, kind="stable")
    shards = np.array_split(by_label, num_shards)
    order = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in order]


def _dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Label-skewed split; redraws until every client has at least one example."""
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].extend(chunk.tolist())
        if all(parts):
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ConfigError(
        f"dirichlet partition with alpha={alpha} left a client empty in 100 draws; "
        "use fewer clients or a larger alpha"
    )


def label_histogram(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Counts per (client, class): how skewed a partition is."""
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts])


@dataclass(frozen=True)
class Partition:
    """How a data set is dealt to clients: ``method`` plus its parameters (a config object)."""

    method: PartitionMethod = PartitionMethod.iid
    alpha: float = 0.5
    shards_per_client: int = 2

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list:
        """One index array per client; see :func:`partition_indices`."""
        return partition_indices(labels, num_clients, self.method, rng, alpha=self.alpha,
                                 shards_per_client=self.shards_per_client)
