"""An empirical privacy audit inside a run: canary clients and the one-shot estimate.

Andrew, Kairouz, Oh, Oprea, McMahan and Suriyakumar, "One-shot Empirical Privacy Estimation for
Federated Learning" (ICLR 2024). ``privacy_audit.canaries=K`` makes K of the federation's clients
canaries, drawn once from ``privacy_audit.seed`` (a stream of their own) among the clients that
are not malicious, and written to ``canary_clients.csv``. A canary is sampled like every other
client; whenever it takes part, it uploads ``canary_norm`` times its own fixed random unit
direction ``c_k`` in place of its update (before the aggregator, which clips it like any other
upload). K more directions are held back: drawn the same way and never inserted.

The estimate reads only the final model, as the paper's final-model threat model: the cosine of
the model's total change ``Δ = w_0 - w_t`` (trainable weights; TFF's sign: a client's update is
its start minus its trained weights, and the server steps against it) with each direction. Two
Gaussians are fitted: ``N(μ_1, σ_1²)`` to the inserted canaries' cosines, ``N(μ_0, σ_0²)`` to the
held-back ones'. ``empirical_epsilon`` is the smallest ε for which that pair of Gaussians is
(ε, δ)-indistinguishable in both directions (:func:`gaussians_epsilon`), at the run's δ. The
authors' code (google-research/federated, ``one_shot_epe``) takes the null in closed form
instead, ``N(0, 1/d)`` for d weights (the cosine of a fixed vector with a random direction;
their code uses the exact distribution below d = 1,000);
``empirical_epsilon_analytic_null`` is that estimate, free of the held-back fit's noise.

The directions are drawn by TensorFlow's stateless normal generator from ``(seed, k)``, inside
the round and again by the estimate, so nothing of size K x d is stored. A canary's own data
never reach the model, but it still trains on them locally (its loss counts in the round's
training columns, its example count is its weight in a weighted aggregator); canaries are left
out of the client-level tables (``client_labels.csv``, ``client_sizes.csv``,
``client_eval.csv``, ``personalized_eval.csv``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize, stats

from fedlab.attacks import FlaggedProcess, counted_cohorts
from fedlab.errors import ConfigError
from fedlab.runs.files import CANARY_CLIENTS_FILE, CLIENT_LABELS_FILE, CLIENT_SIZES_FILE

if TYPE_CHECKING:
    from fedlab.algorithms.base import Algorithm, Composed
    from fedlab.data import FederatedData

_CANARY_STREAM = 1409  # fedlab's other seeded streams use other numbers
_EPSILON_CEILING = 1e6  # an estimate beyond this is reported as this


@dataclasses.dataclass(frozen=True)
class PrivacyAudit:
    """The canaries of a run and when to estimate (module doc).

    Attributes:
      canaries: K, the canary clients inserted (as many more are held back); 0: no audit.
      every: also estimate every this many rounds (0: after the last round only).
      canary_norm: the norm of a canary's upload, before the aggregator clips it.
      delta: the delta the estimate is at (null: the DP aggregator's ``target_delta``, or
        ``fedlab.privacy.accounting.DEFAULT_DELTA`` without DP).
      seed: the seed the canaries and their directions are drawn from.
    """

    canaries: int = 0
    every: int = 0
    canary_norm: float = 1.0
    delta: float | None = None
    seed: int = 0

    def __post_init__(self):
        """Check the ranges.

        Raises:
          ConfigError: one canary or a negative count or period, a norm not positive, a delta
            outside (0, 1).
        """
        if self.canaries < 0 or self.canaries == 1 or self.every < 0:
            raise ConfigError(f"privacy_audit.canaries must be 0 (off) or >= 2 (a spread to fit), "
                              f"and privacy_audit.every >= 0; got {self.canaries} and "
                              f"{self.every}")
        if not self.canary_norm > 0:
            raise ConfigError(f"privacy_audit.canary_norm must be positive, got "
                              f"{self.canary_norm}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ConfigError(f"privacy_audit.delta must be in (0, 1), got {self.delta}")

    @property
    def active(self) -> bool:
        """Whether the run inserts canaries."""
        return self.canaries > 0

    def canary_clients(self, client_ids: Sequence[str]) -> list[str]:
        """The canary clients, drawn from the seed among ``client_ids``, in their order.

        Args:
          client_ids: the clients canaries may be drawn from (the federation's, less any
            malicious ones).

        Returns:
          K client ids (none without an audit).

        Raises:
          ConfigError: K leaves fewer than one ordinary client among ``client_ids``.
        """
        if not self.active:
            return []
        if self.canaries >= len(client_ids):
            raise ConfigError(
                f"privacy_audit.canaries={self.canaries} must be fewer than the "
                f"{len(client_ids)} clients that are not malicious (canaries are drawn from "
                "them)")
        rng = np.random.default_rng([self.seed, _CANARY_STREAM])
        chosen = rng.choice(len(client_ids), size=self.canaries, replace=False)
        return [client_ids[i] for i in sorted(chosen)]

    def flags(self, canary_ids: Sequence[str]) -> dict[str, float]:
        """Each canary client's flag: ``k + 1`` for the canary with direction ``k``.

        Args:
          canary_ids: the canary clients, in the order :meth:`canary_clients` gave them.
        """
        return {client: float(k + 1) for k, client in enumerate(canary_ids)}

    def upload(self, update, flag):
        """What a client with ``flag`` uploads (TensorFlow, inside the round).

        Args:
          update: the client's model update (a structure of tensors).
          flag: the client's flag: 0 for an ordinary client, ``k + 1`` for canary ``k``.

        Returns:
          ``update`` itself, or for a canary ``canary_norm`` times its direction, shaped as
          ``update``.
        """
        import tensorflow as tf

        tensors = tf.nest.flatten(update)
        sizes = [t.shape.num_elements() for t in tensors]

        def canary():
            direction = self.canary_norm * canary_direction(
                tf.cast(flag, tf.int64) - 1, self.seed, sum(sizes))
            return [tf.reshape(tf.cast(part, t.dtype), t.shape)
                    for part, t in zip(tf.split(direction, sizes), tensors, strict=True)]

        chosen = tf.cond(flag > 0, canary, lambda: tensors)
        return tf.nest.pack_sequence_as(update, chosen)

    def estimate(self, change: np.ndarray, delta: float) -> dict[str, float]:
        """The estimate from the model's total change (module doc).

        Args:
          change: ``w_0 - w_t``, the trainable weights flattened and concatenated.
          delta: the delta the estimate is at.

        Returns:
          ``empirical_epsilon``, ``empirical_epsilon_analytic_null`` and the cosines' means
          and standard deviations (``canary_cosine_mean`` ... ``held_back_cosine_std``).
        """
        cosines = direction_cosines(change, self.seed, 2 * self.canaries)
        inserted, held_back = cosines[:self.canaries], cosines[self.canaries:]
        (canary_mean, canary_std), (null_mean, null_std) = (gaussian_fit(inserted),
                                                            gaussian_fit(held_back))
        return {"empirical_epsilon": empirical_epsilon(inserted, held_back, delta),
                "empirical_epsilon_analytic_null": analytic_null_epsilon(inserted, change.size,
                                                                         delta),
                "canary_cosine_mean": canary_mean, "canary_cosine_std": canary_std,
                "held_back_cosine_mean": null_mean, "held_back_cosine_std": null_std}


def without_canaries(data: FederatedData, canaries: list[str], run_dir: Path) -> FederatedData:
    """``data`` for the client-level tables with the audit's canaries left out.

    Writes ``canary_clients.csv`` and removes the canaries' rows from the run folder's client
    tables (``client_labels.csv``, ``client_sizes.csv``). Training still samples them.

    Args:
      data: the run's federated data.
      canaries: the canary clients (none: ``data`` itself, nothing written).
      run_dir: the run folder.

    Returns:
      ``data`` without canaries in ``client_test`` (client-level and personalized evaluation).
    """
    if not canaries:
        return data
    pd.DataFrame({"client": canaries}).to_csv(run_dir / CANARY_CLIENTS_FILE, index=False)
    for name in (CLIENT_LABELS_FILE, CLIENT_SIZES_FILE):
        if (run_dir / name).is_file():
            table = pd.read_csv(run_dir / name, dtype={"client": str})
            table[~table["client"].isin(canaries)].to_csv(run_dir / name, index=False)
    if not data.client_test:
        return data
    return dataclasses.replace(data, client_test={
        client: arrays for client, arrays in data.client_test.items() if client not in canaries})


def with_canary_uploads(audit: PrivacyAudit, algorithm: Algorithm, process, model_fn, aggregator,
                        client_optimizer, server_optimizer):
    """The algorithm's process with the canaries' uploads inserted (itself without an audit).

    Args:
      audit: the run's audit.
      algorithm: the run's algorithm.
      process: the learning process its ``build`` returned.
      model_fn: the model ``build`` took.
      aggregator: the aggregation factory ``build`` took.
      client_optimizer: the clients' optimizer.
      server_optimizer: the server's optimizer.

    Raises:
      ConfigError: the algorithm's clients do not run TFF's client work (one line).
    """
    if not audit.active:
        return process
    from fedlab.attacks.process import algorithm_process_with_uploads

    return algorithm_process_with_uploads(algorithm, process, model_fn, aggregator,
                                          client_optimizer, server_optimizer, audit.upload,
                                          "privacy_audit.canaries")


def with_canaries(composed: Composed, audit: PrivacyAudit, canaries: list[str]) -> Composed:
    """The composed process and cohorts with each client's canary flag beside its input.

    ``metrics.csv`` gets ``canary_clients``, the canaries sampled each round. Without canaries,
    ``composed`` itself.

    Args:
      composed: what the algorithm's ``compose`` returned (and the attack wrapped).
      audit: the run's audit.
      canaries: the canary clients.
    """
    if not canaries:
        return composed
    return dataclasses.replace(
        composed, process=FlaggedProcess(composed.process),
        cohorts=counted_cohorts(composed.cohorts, audit.flags(canaries), "canary_clients",
                                paired=True))


def canary_direction(index, seed: int, size: int):
    """Canary ``index``'s unit direction in ``R^size`` (TensorFlow, float32; graph or eager).

    Args:
      index: the canary's index k (a Python or TensorFlow integer).
      seed: the audit's seed.
      size: the number of trainable weights.
    """
    import tensorflow as tf

    draw = tf.random.stateless_normal(
        [size], seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)]))
    return draw / tf.norm(draw)


def direction_cosines(change: np.ndarray, seed: int, count: int) -> np.ndarray:
    """The cosine of ``change`` with each of canary directions ``0 .. count - 1``.

    Args:
      change: the model's total change, flattened.
      seed: the audit's seed.
      count: how many directions (inserted and held back).

    Returns:
      ``count`` cosines (zeros when ``change`` is zero).
    """
    change = np.asarray(change, np.float64)
    norm = np.linalg.norm(change)
    if norm == 0:
        return np.zeros(count)
    return np.array([float(np.dot(canary_direction(k, seed, change.size).numpy(), change)) / norm
                     for k in range(count)])


def gaussian_pair_delta(epsilon: float, p: tuple[float, float], q: tuple[float, float]) -> float:
    """The smallest delta with ``P(S) <= e^ε Q(S) + delta`` for every set S.

    ``P = N(p[0], p[1]²)``, ``Q = N(q[0], q[1]²)``. The worst S is where the log density ratio
    exceeds ε: a quadratic's sign, so an interval or the two rays outside one.

    Args:
      epsilon: the epsilon.
      p: P's mean and standard deviation.
      q: Q's mean and standard deviation.
    """
    (mp, sp), (mq, sq) = p, q
    a = 1 / (2 * sq**2) - 1 / (2 * sp**2)
    b = mp / sp**2 - mq / sq**2
    c = mq**2 / (2 * sq**2) - mp**2 / (2 * sp**2) + math.log(sq / sp) - epsilon

    def mass(mean, sd, low, high):  # of N(mean, sd²) on (low, high), from the nearer tail
        if high <= mean:
            return float(stats.norm.cdf(high, mean, sd) - stats.norm.cdf(low, mean, sd))
        return float(stats.norm.sf(low, mean, sd) - stats.norm.sf(high, mean, sd))

    if abs(a) < 1e-12 * max(1 / sp**2, 1 / sq**2):  # equal variances: a half-line
        if b == 0:
            return max(0.0, 1 - math.exp(epsilon)) if c > 0 else 0.0
        edge = -c / b
        parts = [(edge, math.inf)] if b > 0 else [(-math.inf, edge)]
    else:
        disc = b * b - 4 * a * c
        if disc <= 0:
            parts = [(-math.inf, math.inf)] if a > 0 else []
        else:
            r1, r2 = sorted(((-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)))
            parts = [(-math.inf, r1), (r2, math.inf)] if a > 0 else [(r1, r2)]
    def scaled(q_mass):  # e^ε Q(part), capped where it dwarfs every P(part) anyway
        return math.exp(min(epsilon + math.log(q_mass), 700.0)) if q_mass > 0 else 0.0

    delta = sum(mass(mp, sp, lo, hi) - scaled(mass(mq, sq, lo, hi)) for lo, hi in parts)
    return max(delta, 0.0)


def gaussians_epsilon(null: tuple[float, float], observed: tuple[float, float],
                      delta: float) -> float:
    """The smallest ε >= 0 for which ``N(null)`` and ``N(observed)`` are (ε, δ)-close both ways.

    Args:
      null: mean and standard deviation of one Gaussian.
      observed: mean and standard deviation of the other.
      delta: the delta.
    """
    def excess(epsilon):
        return max(gaussian_pair_delta(epsilon, observed, null),
                   gaussian_pair_delta(epsilon, null, observed)) - delta

    if excess(0.0) <= 0:
        return 0.0
    high = 1.0
    while excess(high) > 0:
        if high >= _EPSILON_CEILING:
            return _EPSILON_CEILING
        high *= 2
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-9, rtol=1e-10))


def gaussian_fit(cosines: np.ndarray) -> tuple[float, float]:
    """The Gaussian of a set of cosines: their mean and standard deviation (ddof 1).

    Args:
      cosines: the cosines.
    """
    return float(np.mean(cosines)), float(np.std(cosines, ddof=1))


def epsilon_against_null(null: tuple[float, float], inserted: np.ndarray,
                         delta: float) -> float:
    """The estimate: the Gaussian fitted to the inserted cosines against the ``null`` one.

    A degenerate fit (no change, or identical cosines) gives 0 where the means agree, else the
    ceiling.

    Args:
      null: the null Gaussian's mean and standard deviation.
      inserted: the inserted canaries' cosines with the model's total change.
      delta: the delta.
    """
    observed = gaussian_fit(inserted)
    if min(null[1], observed[1]) <= 0:
        return 0.0 if null[0] == observed[0] else _EPSILON_CEILING
    return gaussians_epsilon(null, observed, delta)


def empirical_epsilon(inserted: np.ndarray, held_back: np.ndarray, delta: float) -> float:
    """Andrew et al.'s estimate from the inserted and held-back canaries' cosines.

    Args:
      inserted: the inserted canaries' cosines with the model's total change.
      held_back: the held-back canaries' cosines.
      delta: the delta.
    """
    return epsilon_against_null(gaussian_fit(held_back), inserted, delta)


def analytic_null_epsilon(inserted: np.ndarray, dimension: int, delta: float) -> float:
    """The estimate against the closed-form null ``N(0, 1/d)`` (the authors' code's).

    Args:
      inserted: the inserted canaries' cosines with the model's total change.
      dimension: d, the number of trainable weights.
      delta: the delta.
    """
    return epsilon_against_null((0.0, dimension ** -0.5), inserted, delta)
