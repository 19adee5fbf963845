"""Checks that run before anything heavy is imported or built; each fails with one line."""

import os
from pathlib import Path

from fedlab.errors import ConfigError
from fedlab.schedule import Schedule

POSITIVE_SCHEDULE_KEYS = ("rounds", "clients_per_round", "local_epochs", "batch_size",
                          "eval_every", "checkpoint_every", "keep_checkpoints")


def validate_schedule(schedule: Schedule) -> None:
    """Reject schedules that cannot run.

    Raises:
      ConfigError: naming the offending ``schedule.<key>``.
    """
    for key in POSITIVE_SCHEDULE_KEYS:
        value = getattr(schedule, key)
        if value < 1:
            raise ConfigError(f"schedule.{key} must be a positive integer, got {value}")


def ensure_writable(folder: Path, what: str = "run folder") -> None:
    """Create ``folder`` and prove a file can be written there.

    Raises:
      ConfigError: the folder cannot be created or written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fedlab_write_test_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to the {what} {folder}: {error.strerror}") from error
