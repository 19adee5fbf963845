"""Learning-rate schedules for the server optimizer, on TFF's ``schedule_learning_rate``.

The server optimizer takes exactly one step per round, so a schedule over its steps is a
schedule over rounds (step ``i`` is round ``i + 1``).
"""

import tensorflow as tf
import tensorflow_federated as tff

from fedlab.errors import ConfigError

SCHEDULES = ("constant", "exponential", "inverse_sqrt")


def with_round_schedule(
    optimizer: tff.learning.optimizers.Optimizer,
    learning_rate: float,
    schedule: str = "constant",
    decay: float = 0.99,
) -> tff.learning.optimizers.Optimizer:
    """``optimizer`` with its learning rate decayed per round.

    ``exponential``: ``learning_rate * decay**i``; ``inverse_sqrt``: ``learning_rate / sqrt(1+i)``
    for the ``i``-th round counted from 0; ``constant`` returns ``optimizer`` unchanged.

    Raises:
      ConfigError: an unknown schedule, or a decay outside (0, 1].
    """
    if schedule == "constant":
        return optimizer
    if schedule == "exponential":
        if not 0 < decay <= 1:
            raise ConfigError(f"optimizer.server_decay must be in (0, 1], got {decay}")

        def schedule_fn(step):
            return learning_rate * tf.pow(decay, tf.cast(step, tf.float32))
    elif schedule == "inverse_sqrt":

        def schedule_fn(step):
            return learning_rate / tf.sqrt(1.0 + tf.cast(step, tf.float32))
    else:
        raise ConfigError(f"optimizer.server_schedule must be one of {SCHEDULES}, got {schedule!r}")
    return tff.learning.optimizers.schedule_learning_rate(optimizer, schedule_fn)
