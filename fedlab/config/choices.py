"""Closed choices of the configuration, as enums: a misspelled value fails at composition.

Kept free of heavy imports: the config schemas (and ``python -m fedlab --help``) load this.
"""

from enum import Enum


class PartitionMethod(str, Enum):
    """How examples are dealt to clients (``fedlab.data.partition``; NIID-Bench's names noted)."""

    iid = "iid"  # NIID-Bench's homo
    dirichlet = "dirichlet"
    shards = "shards"
    label_dirichlet = "label_dirichlet"  # NIID-Bench's noniid-labeldir
    label_quantity = "label_quantity"  # NIID-Bench's noniid-#label<K>
    quantity_dirichlet = "quantity_dirichlet"  # NIID-Bench's iid-diff-quantity
    feature_noise = "feature_noise"  # NIID-Bench's homo with --noise (noise_type level)


class Sampling(str, Enum):
    """How each round's clients are drawn (``schedule.sampling``; ``fedlab.clients.sampling``)."""

    uniform = "uniform"  # clients_per_round without replacement, independently each round
    poisson = "poisson"  # each client with probability clients_per_round / N: cohorts vary
    epoch = "epoch"  # a fresh shuffle each epoch, walked in cohorts: each client once per epoch


class Accountant(str, Enum):
    """How a DP run's epsilon is accounted (``aggregator.accountant``; ``fedlab.privacy``)."""

    rdp = "rdp"  # Renyi DP (every sampling)
    pld = "pld"  # privacy loss distributions (poisson and epoch sampling)
    both = "both"  # PLD's in dp_epsilon, and dp_epsilon_rdp, dp_epsilon_pld beside it


class AttackKind(str, Enum):
    """What the malicious clients do (``clients.attack``; ``fedlab.attacks``)."""

    none = "none"
    sign_flip = "sign_flip"  # upload -attack_scale x the honest update
    gaussian = "gaussian"  # upload noise of attack_scale x the honest update's norm
    label_flip = "label_flip"  # train on labels mapped c -> C - 1 - c (data poisoning)
    backdoor = "backdoor"  # train on triggered images of the target class, boost the update


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
