"""Krum and Multi-Krum (``aggregator=krum``, ``multi_krum``; Blanchard et al. 2017).

With ``f`` Byzantine clients among ``n``, each client's score is the sum of its squared
distances to its ``n - f - 2`` nearest other clients; Krum returns the update of lowest score,
Multi-Krum the mean of the ``selected`` lowest-scored updates (ties go to the earlier client).
The guarantee needs ``n > 2 f + 2``: a configured cohort that small is refused; a round in
which fewer clients report (dropouts) scores against at least one neighbour.
"""

import functools

import tensorflow as tf

from fedlab.aggregators.stacked import StackedFactory
from fedlab.errors import ConfigError


def krum_scores(updates: tf.Tensor, byzantine_clients: int) -> tf.Tensor:
    """Each client's Krum score: summed squared distances to its ``n - f - 2`` nearest.

    Distances are computed in float64 from the Gram matrix. A non-finite distance counts as
    infinite, so an overflowing or NaN upload scores infinity and is never preferred.

    Args:
      updates: the clients' updates, ``n x d``.
      byzantine_clients: f; each client is scored on its ``max(n - f - 2, 1)`` nearest others
        (its only neighbour, itself, when n = 1).

    Returns:
      The ``n`` scores (float64).
    """
    rows = tf.cast(updates, tf.float64)
    squared = tf.reduce_sum(tf.square(rows), axis=1)
    distances = (squared[:, tf.newaxis] + squared[tf.newaxis, :]
                 - 2 * tf.matmul(rows, rows, transpose_b=True))
    count = tf.shape(updates)[0]
    infinite = tf.constant(float("inf"), tf.float64)
    distances = tf.where(tf.math.is_nan(distances), infinite, tf.maximum(distances, 0.0))
    distances = tf.linalg.set_diag(distances, tf.fill([count], infinite))  # not its own
    neighbours = tf.clip_by_value(count - byzantine_clients - 2, 1, tf.maximum(count - 1, 1))
    return tf.reduce_sum(-tf.math.top_k(-distances, k=neighbours).values, axis=1)


def multi_krum(updates: tf.Tensor, weights: tf.Tensor, previous: tf.Tensor,
               byzantine_clients: int, selected: int) -> tf.Tensor:
    """The mean of the ``selected`` updates of lowest Krum score (Krum: ``selected=1``).

    Args:
      updates: the clients' updates, ``n x d``.
      weights: the clients' weights (unused: clients weigh equally).
      previous: the previous aggregate (unused).
      byzantine_clients: f.
      selected: m, how many of the lowest-scored updates are averaged (at most n).
    """
    del weights, previous
    scores = krum_scores(updates, byzantine_clients)
    count = tf.shape(updates)[0]
    keep = tf.argsort(scores, stable=True)[:tf.minimum(selected, count)]
    return tf.reduce_mean(tf.gather(updates, keep), axis=0)


def _check_krum_settings(byzantine_clients: int, clients_per_round: int, selected: int) -> None:
    if byzantine_clients < 0:
        raise ConfigError(f"aggregator.byzantine_clients must be >= 0, got {byzantine_clients}")
    if clients_per_round <= 2 * byzantine_clients + 2:
        raise ConfigError(
            f"Krum tolerates f Byzantine clients only with n > 2f + 2 clients per round: "
            f"aggregator.byzantine_clients={byzantine_clients} needs clients_per_round >= "
            f"{2 * byzantine_clients + 3}, got {clients_per_round}")
    if not 1 <= selected <= clients_per_round:
        raise ConfigError(f"aggregator.selected must be in 1..{clients_per_round} (the clients "
                          f"per round), got {selected}")


def krum_aggregator(byzantine_clients: int = 1, clients_per_round: int = 10,
                    quantization_bits: int | None = None, seed: int = 0) -> StackedFactory:
    """Krum: the one client update closest to its nearest neighbours.

    Args:
      byzantine_clients: f, the number of Byzantine clients per round it is built to tolerate.
      clients_per_round: n, the clients aggregated per round (must exceed 2f + 2).
      quantization_bits: null or 8 (8-bit stochastic quantization of each update).
      seed: the seed of the quantization's rounding noise.

    Raises:
      ConfigError: n <= 2f + 2, or a negative f.
    """
    return multi_krum_aggregator(byzantine_clients, 1, clients_per_round, quantization_bits,
                                 seed)


def multi_krum_aggregator(byzantine_clients: int = 1, selected: int = 5,
                          clients_per_round: int = 10, quantization_bits: int | None = None,
                          seed: int = 0) -> StackedFactory:
    """Multi-Krum: the mean of the ``selected`` client updates of lowest Krum score.

    Args:
      byzantine_clients: f, the number of Byzantine clients per round it is built to tolerate.
      selected: m, how many of the lowest-scored updates are averaged (1: Krum).
      clients_per_round: n, the clients aggregated per round (must exceed 2f + 2).
      quantization_bits: null or 8 (8-bit stochastic quantization of each update).
      seed: the seed of the quantization's rounding noise.

    Raises:
      ConfigError: n <= 2f + 2, a negative f, or m outside 1..n.
    """
    _check_krum_settings(byzantine_clients, clients_per_round, selected)
    return StackedFactory(functools.partial(multi_krum, byzantine_clients=byzantine_clients,
                                            selected=selected), quantization_bits, seed)
