"""The local TFF worker: how it is started (flags, environment) and that it is stopped."""

import os
import signal
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest import reachable_listeners, small_config

from fedlab.errors import WorkerError
from fedlab.executors import contexts, worker
from fedlab.run import run


def _command_line_and_environment(pid: int) -> tuple[list[str], dict[str, str]]:
    proc = Path(f"/proc/{pid}")
    arguments = proc.joinpath("cmdline").read_bytes().decode().split("\0")
    pairs = (entry.split("=", 1) for entry in
             proc.joinpath("environ").read_bytes().decode().split("\0") if "=" in entry)
    return arguments, dict(pairs)


@pytest.mark.parametrize("concurrent_calls,expected", [
    (0, worker.usable_cores()), (3, 3), (-1, -1),
])
def test_local_worker_flags_and_allocator(tmp_path, concurrent_calls, expected):
    with contexts.local_worker(tmp_path / "worker.log", concurrent_calls):
        [pid] = worker.worker_processes_alive()
        arguments, environment = _command_line_and_environment(pid)
    assert f"--max_concurrent_computation_calls={expected}" in arguments
    assert environment["MALLOC_ARENA_MAX"] == "2"
    assert worker.worker_processes_alive() == []


def test_users_allocator_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert worker.worker_environment()["MALLOC_ARENA_MAX"] == "4"


@pytest.mark.parametrize("how,said", [
    (signal.SIGKILL, "was killed by SIGKILL (what the kernel's out-of-memory killer sends"),
    (signal.SIGTERM, "was killed by SIGTERM"),
])
def test_a_launched_worker_says_how_it_ended(tmp_path, how, said):
    with worker.launched_worker(tmp_path / "worker.log") as launched:
        assert launched.exit_description() is None
        launched.process.send_signal(how)
        launched.process.wait()
        assert launched.exit_description().startswith(said)


def test_a_local_worker_killed_mid_run_is_named_at_once_and_the_rounds_stay(tmp_path):
    metrics = tmp_path / "metrics.csv"
    finished = threading.Event()

    def kill_after_two_rounds():
        while not finished.is_set() and not (
                metrics.exists() and len(metrics.read_text().splitlines()) > 2):
            finished.wait(0.1)
        for pid in worker.worker_processes_alive():
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_two_rounds, daemon=True)
    killer.start()
    try:
        with pytest.raises(WorkerError, match="the local TFF worker was killed by SIGKILL"):
            run(small_config(tmp_path, "schedule.rounds=400", "schedule.checkpoint_every=1"))
    finally:
        finished.set()
        killer.join(timeout=60)
    assert 2 <= len(pd.read_csv(metrics)) < 400


def _tff_computation_answers() -> bool:
    import tensorflow as tf
    import tensorflow_federated as tff

    @tff.tensorflow.computation(tf.int32)
    def double(x):
        return x * 2

    return double(21) == 42


def test_the_local_worker_is_reachable_only_through_a_private_unix_socket(tmp_path, caplog):
    with worker.launched_worker(tmp_path / "worker.log") as launched:
        with contexts.local_execution(tmp_path / "worker.log", worker=launched):
            assert _tff_computation_answers()
        assert launched.target.startswith("unix:")
        socket_folder = Path(launched.target.removeprefix("unix:")).parent
        assert socket_folder.stat().st_mode & 0o777 == 0o700
        assert launched.exposure is None
        pid = launched.process.pid
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert reachable_listeners(os.getpid()) == []
    assert not socket_folder.exists()
    assert "could not be isolated" not in caplog.text


def test_without_isolation_the_run_still_works_and_says_once_what_is_exposed(tmp_path, caplog):
    with worker.launched_worker(tmp_path / "worker.log", isolate=False) as launched:
        with contexts.local_execution(tmp_path / "worker.log", worker=launched):
            assert _tff_computation_answers()
        exposed = reachable_listeners(os.getpid())  # the check that finds nothing above
        assert len(exposed) == 1 and str(launched.process.pid) == exposed[0].split()[0]
    warnings = [r.getMessage() for r in caplog.records if "could not be isolated" in
                r.getMessage()]
    assert len(warnings) == 1
    assert "listens on port" in warnings[0] and "every interface" in warnings[0]
