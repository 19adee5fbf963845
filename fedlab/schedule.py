"""The training schedule: one dataclass, used as the config schema and by the loop."""

from dataclasses import dataclass


@dataclass
class Schedule:
    """How long and how widely to train; every random stream derives from ``seed``.

    Defaults are the reference study's budget: 10 rounds x 10 clients, 1 local epoch, batch 20.
    """

    rounds: int = 10
    clients_per_round: int = 10
    local_epochs: int = 1
    batch_size: int = 20
    seed: int = 0
    eval_every: int = 1
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
