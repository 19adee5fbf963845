"""Compose the real conf/ with Hydra's compose API and shrink it for tests."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Runs (in-process and CLI alike) keep their computation cache in one folder of this session,
# not in the user's: later tests of a configuration load what the first traced.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fedlab-tests-cache-")

import pytest  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from fedlab.config.schemas import register_schemas  # noqa: E402
from fedlab.run import compose_config as fedlab_compose  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
GROUPS = ("dataset", "model", "aggregator", "optimizer", "schedule")

register_schemas()


def group_options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_config(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """The real conf/ composed with ``overrides``; ``run_dir`` replaces Hydra's run folder."""
    cfg = fedlab_compose(overrides)
    with open_dict(cfg):
        cfg.run_dir = str(run_dir) if run_dir is not None else "unused"
    return cfg


def small_config(run_dir: Path, *overrides: str) -> DictConfig:
    """Synthetic data, the smoke schedule, the simple CNN: a run of a few seconds."""
    return compose_config(
        ["dataset=synthetic", "schedule=smoke", "model=simple_cnn", *overrides], run_dir
    )


# An environment variable that tags the processes a test starts (their children inherit it),
# so a test watches its own processes, not every fedlab process on the machine.
TOKEN_VARIABLE = "FEDLAB_TEST_TOKEN"


def tagged_pids(token: str) -> set[int]:
    """Processes whose environment carries ``TOKEN_VARIABLE=token`` (started by one test)."""
    tag = f"{TOKEN_VARIABLE}={token}".encode()
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if tag in (proc / "environ").read_bytes().split(b"\0"):
                    pids.add(int(proc.name))
            except OSError:
                continue
    return pids


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, shell_suffix: str = "", token: str = ""
) -> subprocess.CompletedProcess:
    """``python -m fedlab ARGS`` as a user runs it, in ``cwd`` (tagged ``token``, if given)."""
    command = [sys.executable, "-m", "fedlab", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0",
           **({TOKEN_VARIABLE: token} if token else {})}
    if shell_suffix:
        line = " ".join(f"'{c}'" for c in command) + " " + shell_suffix
        return subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


# Columns that time a round: the only ones two runs of one configuration may differ in.
TIMING = ["round_seconds", "eval_seconds"]


def metrics(run_dir: Path):
    """The run's ``metrics.csv``."""
    import pandas as pd

    # round_trip: each number exactly as written (pandas' default parser may be 1 ulp off).
    return pd.read_csv(run_dir / "metrics.csv", float_precision="round_trip")


def deterministic_metrics(run_dir: Path):
    """The run's ``metrics.csv`` without the columns that time something on this machine."""
    return metrics(run_dir).drop(columns=[*TIMING, "client_eval_seconds"], errors="ignore")


def summary(run_dir: Path) -> dict:
    """The run's ``summary.json``."""
    import json

    return json.loads((run_dir / "summary.json").read_text())


def folder_snapshot(folder: Path, skip=lambda path: False) -> dict[str, bytes]:
    """Every file below ``folder`` (except those ``skip`` names) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not skip(p)}


def wait_for(condition, seconds: float = 60.0, poll: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def children_of(pid: int) -> list[int]:
    """The direct children of process ``pid`` (none once it is gone)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    tree, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        if Path(f"/proc/{current}").exists():
            tree.append(current)
            frontier.extend(children_of(current))
    return tree


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _listening(pid: int, inodes: set[str]) -> list[str]:
    """``pid``'s listening TCP sockets among ``inodes``, as hex local addresses."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


def _loopback(hex_address: str) -> bool:
    host = hex_address.split(":")[0]
    if len(host) == 8:  # IPv4, little-endian: 127.x.x.x ends with 7F
        return host.endswith("7F")
    return host in ("00000000000000000000000001000000",) or (
        host.startswith("0000000000000000FFFF0000") and host.endswith("7F"))


def reachable_listeners(pid: int) -> list[str]:
    """Listening TCP sockets in ``pid``'s process tree that another host could reach.

    A socket counts as unreachable when bound to a loopback address, or when its process's
    network namespace has no interface but ``lo`` (fedlab's isolated worker binds ``[::]``
    there). Each is described as ``pid address (namespace)``.
    """
    own_namespace = os.readlink("/proc/self/ns/net")
    exposed = []
    for member in process_tree(pid):
        try:
            namespace = os.readlink(f"/proc/{member}/ns/net")
            interfaces = [line.split(":")[0].strip() for line in
                          Path(f"/proc/{member}/net/dev").read_text().splitlines()[2:]]
        except OSError:
            continue
        only_loopback = interfaces == ["lo"]
        for address in _listening(member, _socket_inodes(member)):
            if not _loopback(address) and not only_loopback:
                exposed.append(f"{member} {address} ({namespace}, own: {own_namespace})")
    return exposed


def assert_same_weights(first_run: Path, second_run: Path) -> None:
    """The two runs' final models (``model.keras``) hold bit-identical weights."""
    import tensorflow as tf

    first, second = (tf.keras.models.load_model(run / "model.keras", compile=False)
                     for run in (first_run, second_run))
    assert len(first.weights) == len(second.weights)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    assert first.get_weights(), "a model without weights proves nothing"


def feature(value):
    """A tf.train.Feature holding ``value``: bytes/str, int(s) or float(s)."""
    import numpy as np
    import tensorflow as tf

    values = np.ravel(np.asarray(value, dtype=object if isinstance(value, (str, bytes))
                                 else None)).tolist()
    if isinstance(values[0], (str, bytes)):
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode() if isinstance(v, str) else v for v in values]))
    if isinstance(values[0], int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def write_tff_database(path: Path, splits: dict[str, dict[str, list[dict]]]) -> None:
    """A database in the on-disk layout of TFF's ``*.sqlite`` data sets.

    ``splits[split][client_id]`` lists the client's examples, each a dict of feature values
    stored as a serialized ``tf.train.Example`` (tables ``examples`` and ``client_metadata``).
    """
    import sqlite3

    import tensorflow as tf

    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE examples (split_name TEXT, client_id TEXT, serialized_example_proto BLOB)")
    connection.execute(
        "CREATE TABLE client_metadata (client_id TEXT, split_name TEXT, num_examples INTEGER)")
    for split, clients in splits.items():
        for client, examples in clients.items():
            connection.execute("INSERT INTO client_metadata VALUES (?, ?, ?)",
                               (client, split, len(examples)))
            for example in examples:
                proto = tf.train.Example(features=tf.train.Features(
                    feature={name: feature(value) for name, value in example.items()}))
                connection.execute("INSERT INTO examples VALUES (?, ?, ?)",
                                   (split, client, proto.SerializeToString()))
    connection.commit()
    connection.close()


@pytest.fixture
def tiny(tmp_path):
    """A small run configuration writing into a fresh folder."""
    return small_config(tmp_path / "run")


def pytest_configure(config):
    """Swap TFF's import-time context for the placeholder fedlab's entrypoint uses."""
    from fedlab.executors import contexts

    contexts.drop_default_context()
