"""Compose the real conf/ with Hydra's compose API and shrink it for tests."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runs (in-process and CLI alike) keep their computation cache in one folder of this session,
# not in the user's: later tests of a configuration load what the first traced.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fedlab-tests-cache-")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from fedlab.config import register_schemas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
GROUPS = ("dataset", "model", "aggregator", "optimizer", "schedule")

register_schemas()


def group_options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_config(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """The real conf/ composed with ``overrides``; ``run_dir`` replaces Hydra's run folder."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with open_dict(cfg):
        cfg.run_dir = str(run_dir) if run_dir is not None else "unused"
    return cfg


def small_config(run_dir: Path, *overrides: str) -> DictConfig:
    """Synthetic data, the smoke schedule, the simple CNN: a run of a few seconds."""
    return compose_config(
        ["dataset=synthetic", "schedule=smoke", "model=simple_cnn", *overrides], run_dir
    )


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, shell_suffix: str = ""
) -> subprocess.CompletedProcess:
    """``python -m fedlab ARGS`` as a user runs it, in ``cwd``."""
    command = [sys.executable, "-m", "fedlab", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    if shell_suffix:
        line = " ".join(f"'{c}'" for c in command) + " " + shell_suffix
        return subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def tiny(tmp_path):
    """A small run configuration writing into a fresh folder."""
    return small_config(tmp_path / "run")


def pytest_configure(config):
    """Swap TFF's import-time context for the placeholder fedlab's entrypoint uses."""
    from fedlab import runtime

    runtime.drop_default_context()
