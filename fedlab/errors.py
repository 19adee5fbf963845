"""Errors fedlab reports as one clear line instead of a traceback."""

import logging
import signal


class FedlabError(Exception):
    """Base class of the errors the entrypoint reports as a single line."""


class ConfigError(FedlabError):
    """The composed configuration asks for something impossible."""


class DataError(FedlabError):
    """A data set is missing or malformed."""


class DivergenceError(FedlabError):
    """Training produced a non-finite loss."""


class CheckpointError(FedlabError):
    """No usable checkpoint although the run folder has some."""


class WorkerError(FedlabError):
    """A TFF worker cannot be reached or stopped answering."""


class RunFolderConflict(FedlabError):
    """A run folder is being continued with a configuration other than the one that started it."""


class Interrupted(FedlabError):
    """A signal stopped training after a round; the checkpoint and summary are written."""

    def __init__(self, message: str, signal_number: int):
        """``signal_number``: the signal that stopped the run."""
        super().__init__(message)
        self.signal_number = signal_number

    def resend(self) -> None:
        """End the process as the signal would have (its handler now: default or submitit's)."""
        logging.shutdown()
        signal.raise_signal(self.signal_number)
