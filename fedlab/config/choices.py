"""Closed choices of the configuration, as enums: a misspelled value fails at composition.

Kept free of heavy imports: the config schemas (and ``python -m fedlab --help``) load this.
"""

from enum import Enum


class PartitionMethod(str, Enum):
    """How examples are dealt to clients."""

    iid = "iid"
    dirichlet = "dirichlet"
    shards = "shards"


class ServerSchedule(str, Enum):
    """How the server learning rate changes over rounds."""

    constant = "constant"
    exponential = "exponential"
    inverse_sqrt = "inverse_sqrt"


class Staleness(str, Enum):
    """How FedBuff weights an update by its staleness s (``algorithm.staleness``)."""

    none = "none"  # every update weighs its examples
    polynomial = "polynomial"  # (1 + s)^-exponent, as Nguyen et al. 2022


class Objective(str, Enum):
    """What a run returns to a sweeper (Optuna maximises or minimises it)."""

    final_eval_accuracy = "final_eval_accuracy"
    best_eval_accuracy = "best_eval_accuracy"
    rounds_to_target = "rounds_to_target"
