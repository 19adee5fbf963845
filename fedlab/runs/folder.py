"""Checks that run before anything heavy is imported or built; each fails with one line."""

import os
from pathlib import Path

from fedlab.config.schedule import Schedule
from fedlab.errors import ConfigError

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


def make_private(folder: Path) -> None:
    """Create ``folder`` (and missing parents) readable by this user alone (0700).

    An existing folder this user owns is made private too. Raises OSError.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_uid == os.getuid():
        folder.chmod(0o700)


def owned_by_this_user(path: Path) -> bool:
    """Whether ``path`` (a file, or a folder and every file directly in it) is this user's."""
    try:
        paths = [path, *(path.iterdir() if path.is_dir() else ())]
        return all(p.lstat().st_uid == os.getuid() for p in paths)
    except OSError:
        return False


def ensure_writable(folder: Path, what: str = "run folder", private: bool = False,
                    key: str = "hydra.run.dir", alternative: str = "") -> None:
    """Create ``folder`` (``private``: readable by this user alone) and prove it can be written.

    Args:
      folder: the folder.
      what: what it is, in the message.
      private: make it readable by this user alone.
      key: the configuration key that sets it, in the message.
      alternative: another way out, in the message (e.g. ``computation_cache=null``).

    Raises:
      ConfigError: the folder cannot be created or written (one line naming it and ``key``).
    """
    try:
        if private:
            make_private(folder)
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fedlab_write_test_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to the {what} {folder}: {error.strerror} (set {key} to "
                          f"a writable folder{', or ' + alternative if alternative else ''})"
                          ) from error
