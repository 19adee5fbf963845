"""The training schedule: one dataclass, used as the config schema and by the loop."""

from dataclasses import dataclass

from fedlab.config.choices import Sampling


@dataclass
class Schedule:
    """How long and how widely to train; every random stream derives from ``seed``.

    Defaults are the reference study's budget: 10 rounds x 10 clients, 1 local epoch, batch 20.

    Attributes:
      rounds: the number of rounds (``trainer=central``: epochs); resuming may raise it.
      clients_per_round: clients sampled per round (with ``sampling=poisson``: expected).
      sampling: how they are drawn: ``uniform`` (that many, without replacement, each round
        independently), ``poisson`` (each client joins with probability
        clients_per_round / N, so the cohort's size varies and may be 0: the round then leaves
        the model unchanged) or ``epoch`` (the federation is shuffled each epoch and walked in
        cohorts of clients_per_round, the last one smaller when N is not a multiple: every
        client trains once per epoch of ceil(N / clients_per_round) rounds).
      local_epochs: passes of each sampled client over its own data per round.
      batch_size: the clients' (and central training's) batch size.
      batch_within_epochs: false: a client's examples are repeated for the local epochs, then
        batched (TFF tutorials' order: a batch may span two epochs); true: each epoch is
        batched on its own (McMahan et al.'s E passes of ceil(n / B) steps).
      seed: the training seed every random stream derives from (client sampling, shuffling,
        initial model; and by default the partition, DP noise and simulated clients).
      eval_every: evaluate every this many rounds, and after the last.
      checkpoint_every: checkpoint every this many rounds, and after the last.
      keep_checkpoints: the number of newest checkpoints kept.
    """

    rounds: int = 10
    clients_per_round: int = 10
    sampling: Sampling = Sampling.uniform
    local_epochs: int = 1
    batch_size: int = 20
    # False: a client's examples are repeated for the local epochs, then batched (the reference
    # study's and TFF tutorials' order: a batch may span two epochs, and batch_size >= epochs x
    # examples is one step). True: each epoch is batched on its own (McMahan et al.'s
    # ClientUpdate: E passes of ceil(n / B) steps; batch_size >= examples is full-batch GD).
    batch_within_epochs: bool = False
    seed: int = 0
    eval_every: int = 1
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
