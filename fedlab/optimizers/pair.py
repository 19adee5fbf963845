"""Client and server optimizers of a federated run, with the server's per-round schedule.

The schedules use TFF's ``schedule_learning_rate``. The server optimizer takes exactly one step
per round, so a schedule over its steps is a schedule over rounds (step ``i`` is round ``i + 1``).
"""

import tensorflow as tf
import tensorflow_federated as tff

from fedlab.config.choices import ServerSchedule
from fedlab.errors import ConfigError


def learning_rate(optimizer: tff.learning.optimizers.Optimizer) -> float:
    """The learning rate a TFF optimizer was built with."""
    return float(optimizer.get_hparams(optimizer.initialize(()))["learning_rate"])


def with_round_schedule(
    optimizer: tff.learning.optimizers.Optimizer,
    schedule: ServerSchedule = ServerSchedule.constant,
    decay: float = 0.99,
) -> tff.learning.optimizers.Optimizer:
    """``optimizer`` with its learning rate decayed per round.

    ``exponential``: ``learning_rate * decay**i``; ``inverse_sqrt``: ``learning_rate / sqrt(1+i)``
    for the ``i``-th round counted from 0; ``constant`` returns ``optimizer`` unchanged.

    Raises:
      ConfigError: a decay outside (0, 1] for ``exponential``.
    """
    schedule = ServerSchedule(schedule)
    if schedule is ServerSchedule.constant:
        return optimizer
    initial = learning_rate(optimizer)
    if schedule is ServerSchedule.exponential:
        if not 0 < decay <= 1:
            raise ConfigError(f"optimizer.server_decay must be in (0, 1], got {decay}")

        def schedule_fn(step):
            return initial * tf.pow(decay, tf.cast(step, tf.float32))
    else:

        def schedule_fn(step):
            return initial / tf.sqrt(1.0 + tf.cast(step, tf.float32))
    return tff.learning.optimizers.schedule_learning_rate(optimizer, schedule_fn)


class OptimizerPair:
    """The ``optimizer`` group: a client optimizer and a (scheduled) server optimizer."""

    def __init__(self, client: tff.learning.optimizers.Optimizer,
                 server: tff.learning.optimizers.Optimizer,
                 server_schedule: ServerSchedule = ServerSchedule.constant,
                 server_decay: float = 0.99):
        """Schedule ``server``'s learning rate per round with ``server_schedule``.

        Args:
          client: the client optimizer: a ``tff.learning.optimizers`` builder (``_target_``)
            and its arguments.
          server: the server optimizer, likewise.
          server_schedule: the server learning rate per round: ``constant``, ``exponential``
            (``learning_rate * server_decay**i`` in round i + 1) or ``inverse_sqrt``
            (``learning_rate / sqrt(1 + i)``).
          server_decay: the factor per round of the ``exponential`` schedule, in (0, 1].
        """
        self.client = client
        self.server = with_round_schedule(server, server_schedule, server_decay)
