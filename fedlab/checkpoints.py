"""Server-state checkpoints on TFF's ``FileProgramStateManager``, with corrupt-file fallback."""

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import tensorflow_federated as tff

from fedlab.errors import CheckpointError

log = logging.getLogger(__name__)

PREFIX = "round_"


class Checkpointer:
    """Saves the server state every few rounds and loads the newest usable one."""

    def __init__(self, directory: Path, keep: int):
        """Checkpoints live in ``directory`` as ``round_<n>``; the newest ``keep`` are kept."""
        self._manager = tff.program.FileProgramStateManager(
            str(directory), prefix=PREFIX, keep_total=keep, keep_first=False
        )
        self._directory = directory

    def save(self, state: Any, round_num: int) -> None:
        """Write ``state`` as the checkpoint of ``round_num``."""
        asyncio.run(self._manager.save(state, round_num))

    def load_latest(self, structure: Any) -> tuple[Any, int] | None:
        """The newest checkpoint that loads, with its round; ``None`` when there is none.

        A checkpoint that fails to load (partly written, corrupted, or from another model) is
        skipped with a warning, and the one before it is tried; skipped ones are deleted
        once an older one loads, since the resumed run writes those rounds again.

        Raises:
          CheckpointError: checkpoints exist but none of them loads.
        """
        versions = asyncio.run(self._manager.get_versions()) or []
        failures = []
        for version in reversed(versions):
            try:
                state = asyncio.run(self._manager.load(version, structure))
            except Exception as error:  # noqa: BLE001 - any failure makes this one unusable
                failures.append(f"round_{version}: {type(error).__name__}: {error}"[:300])
                log.warning("checkpoint round_%d is unusable (%s); trying an older one",
                            version, type(error).__name__)
                continue
            for unusable in versions[versions.index(version) + 1:]:
                shutil.rmtree(self._directory / f"{PREFIX}{unusable}", ignore_errors=True)
            return state, version
        if failures:
            raise CheckpointError(
                f"none of the {len(failures)} checkpoints in {self._directory} is usable "
                f"(newest: {failures[0]}); delete the folder to start afresh"
            )
        return None
