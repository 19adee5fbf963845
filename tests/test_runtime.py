"""The local TFF worker: how it is started (flags, environment) and that it is stopped."""

from pathlib import Path

import pytest

from fedlab import runtime, worker


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
    with runtime.local_worker(tmp_path / "worker.log", concurrent_calls):
        [pid] = worker.worker_processes_alive()
        arguments, environment = _command_line_and_environment(pid)
    assert f"--max_concurrent_computation_calls={expected}" in arguments
    assert environment["MALLOC_ARENA_MAX"] == "2"
    assert worker.worker_processes_alive() == []


def test_users_allocator_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert worker.worker_environment()["MALLOC_ARENA_MAX"] == "4"

