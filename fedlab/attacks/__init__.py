"""Malicious clients: who they are, what they do, and how a run composes them.

Set by the ``clients`` group (``clients.attack``, ``attack_fraction``, ``attack_scale``,
``backdoor_target``). Of the federation's ``N`` clients, ``attack_fraction x N`` (rounded half
up) are malicious, drawn once from ``schedule.seed`` (a stream of their own) and written to
``malicious_clients.csv``; in each round they are sampled like everyone else, and
``metrics.csv`` counts them (``malicious_clients``). An attack is data poisoning
(:mod:`fedlab.attacks.poisoning`: ``label_flip``, and ``backdoor``'s training data), model
poisoning (:mod:`fedlab.attacks.process`: ``sign_flip``, ``gaussian`` and ``backdoor``'s boost
multiply or replace a malicious client's upload), or both. Data poisoning composes with every
algorithm; model poisoning with those whose client work is TFF's (FedAvg, FedProx).

A DP aggregator's guarantee covers the honest clients only: the malicious ones add what they
like. Clipping bounds what each can add, which is why DP is also a (weak) defense.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fedlab.config.choices import AttackKind
from fedlab.errors import ConfigError

log = logging.getLogger("fedlab")
_MALICIOUS_STREAM = 1301  # fedlab's other seeded streams use other numbers


@dataclasses.dataclass(frozen=True)
class Attack:
    """The malicious clients' behaviour (module doc).

    Attributes:
      kind: what they do.
      fraction: the fraction of the federation that is malicious, in [0, 1).
      scale: ``sign_flip``'s and ``gaussian``'s factor, ``backdoor``'s boost.
      backdoor_target: the class triggered images are relabelled to (``backdoor``).
      seed: the seed the malicious set is drawn from.
    """

    kind: AttackKind
    fraction: float
    scale: float
    backdoor_target: int
    seed: int

    def __post_init__(self):
        """Check the ranges.

        Raises:
          ConfigError: a fraction outside [0, 1) or a scale not positive.
        """
        object.__setattr__(self, "kind", AttackKind(self.kind))
        if not 0 <= self.fraction < 1:
            raise ConfigError(f"clients.attack_fraction must be in [0, 1), got {self.fraction}")
        if not self.scale > 0:
            raise ConfigError(f"clients.attack_scale must be positive, got {self.scale}")

    @property
    def active(self) -> bool:
        """Whether any client misbehaves."""
        return self.kind is not AttackKind.none and self.fraction > 0

    @property
    def poisons_updates(self) -> bool:
        """Whether malicious clients change their upload (not only their data)."""
        return self.active and (self.kind in (AttackKind.sign_flip, AttackKind.gaussian)
                                or (self.kind is AttackKind.backdoor and self.scale != 1))

    def malicious(self, client_ids: Sequence[str]) -> list[str]:
        """The malicious clients of a federation, drawn from the seed.

        Args:
          client_ids: the federation's clients.

        Returns:
          ``floor(fraction x N + 1/2)`` of them, in the federation's order (a warning when
          that is none although an attack is set).
        """
        if not self.active:
            return []
        count = math.floor(self.fraction * len(client_ids) + 0.5)
        if count == 0:
            log.warning("clients.attack_fraction=%s of %d clients is no client: nobody attacks",
                        self.fraction, len(client_ids))
        rng = np.random.default_rng([self.seed, _MALICIOUS_STREAM])
        chosen = rng.choice(len(client_ids), size=count, replace=False)
        return [client_ids[i] for i in sorted(chosen)]


@dataclasses.dataclass
class FlaggedProcess:
    """A process whose ``next(state, data, flags)`` takes each client's malicious flag.

    The loop sees a ``LearningProcess``-like object whose ``next(state, inputs)`` takes
    ``(flag, input)`` pairs (:func:`counted_cohorts`).
    """

    process: Any

    def __post_init__(self):
        """Expose the process's other computations."""
        self.initialize = self.process.initialize
        self.get_model_weights = self.process.get_model_weights
        self.set_model_weights = self.process.set_model_weights

    def next(self, state, inputs):
        """One round; the flags travel as a CLIENTS-placed argument beside the data."""
        return self.process.next(state, [data for _, data in inputs],
                                 [flag for flag, _ in inputs])


def counted_cohorts(cohorts: Callable, flags: Mapping[str, float], column: str,
                    paired: bool) -> Callable:
    """Each round's cohort with its flagged clients counted in ``column`` (and flags paired).

    Args:
      cohorts: ``cohorts(round)`` gives the round's :class:`~fedlab.clients.sampling.Cohort`.
      flags: the flagged clients' ids and their (nonzero) flags; other clients' flag is 0.
      column: the ``metrics.csv`` column counting the round's flagged clients.
      paired: pair each input with its client's flag, for a :class:`FlaggedProcess`.
    """

    def cohort(round_num: int):
        clients = cohorts(round_num)
        round_flags = [float(flags.get(c, 0.0)) for c in clients.client_ids]
        columns = {**clients.columns, column: sum(f != 0 for f in round_flags)}
        inputs = (list(zip(round_flags, clients.inputs, strict=True)) if paired
                  else clients.inputs)
        return dataclasses.replace(clients, inputs=inputs, columns=columns)

    return cohort
