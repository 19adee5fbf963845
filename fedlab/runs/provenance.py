"""Where a run's numbers came from: code, environment, data fingerprints, command and times.

Everything here is cheap and imports nothing heavy, so the record can be made before training
starts and completed when it ends (``summary.json``, key ``provenance``).
"""

import datetime
import importlib.metadata
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path

# Installed distributions whose versions decide a run's numbers (beside Python itself).
PACKAGES = ("fedlab", "tensorflow", "tensorflow-federated", "keras", "numpy", "pandas", "scipy",
            "jax", "jaxlib", "dp-accounting", "tensorflow-model-optimization",
            "tensorflow-privacy", "hydra-core", "omegaconf", "mlxtend")
SOURCE_TREE = Path(__file__).resolve().parents[2]  # the checkout fedlab/ is in


def now() -> str:
    """The current time in ISO 8601 with the UTC offset."""
    return datetime.datetime.now(datetime.UTC).astimezone().isoformat(timespec="seconds")


def installed_versions(names=PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` where it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(tree: Path = SOURCE_TREE) -> dict[str, object]:
    """``git_commit`` and ``git_dirty`` of the checkout fedlab runs from (``None`` outside one)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(tree), *args], capture_output=True,
                                  text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    if not (tree / ".git").exists():
        return {"git_commit": None, "git_dirty": None}
    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if changes is None else bool(changes)}


def start_record(argv: list[str] | None = None) -> dict[str, object]:
    """Everything known when a run starts: versions, checkout, host, command line, start time."""
    versions = installed_versions()
    return {
        "fedlab_version": versions["fedlab"],
        **git_state(),
        "python": platform.python_version(),
        "tensorflow": versions["tensorflow"],
        "tensorflow_federated": versions["tensorflow-federated"],
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": shlex.join(sys.argv if argv is None else argv),
        "started_at": now(),
        "packages": versions,
    }
