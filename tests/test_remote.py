"""Training on TFF workers started with `python -m fedlab.worker`, over loopback, mutual TLS."""

import os
import subprocess
import sys
import threading

import pandas as pd
import portpicker
import pytest
from conftest import REPO, children_of, deterministic_metrics, small_config, wait_for

from fedlab.errors import ConfigError, WorkerError
from fedlab.executors.contexts import check_reachable, open_channel
from fedlab.executors.credentials import TlsFiles, make_credentials
from fedlab.run import run

ROUNDS = ["schedule.rounds=3", "schedule.clients_per_round=4"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A deployment's credentials, and a stranger's (another CA) for the bad-credential cases."""
    root = tmp_path_factory.mktemp("credentials")
    make_credentials(root / "ours", ["localhost"])
    make_credentials(root / "theirs", ["localhost"])
    return root / "ours", root / "theirs"


def tls_overrides(folder) -> list[str]:
    return [f"executor.tls.ca={folder / 'ca.pem'}", f"executor.tls.cert={folder / 'driver.pem'}",
            f"executor.tls.key={folder / 'driver.key'}"]


def driver_connect(folder):
    files = TlsFiles(folder / "ca.pem", folder / "driver.pem", folder / "driver.key")
    return lambda target: open_channel(target, files.channel_credentials())


@pytest.fixture
def workers(deployment, tmp_path):
    ours, _ = deployment
    ports = [portpicker.pick_unused_port() for _ in range(2)]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "FEDLAB_TLS_CA": str(ours / "ca.pem"),
                   "FEDLAB_TLS_CERT": str(ours / "worker.pem"),
                   "FEDLAB_TLS_KEY": str(ours / "worker.key")}
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    processes = [
        subprocess.Popen([sys.executable, "-m", "fedlab.worker", f"--port={port}",
                          "--host=localhost"], cwd=REPO, env=environment,
                         stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        for port, log in zip(ports, logs, strict=True)
    ]
    targets = [f"localhost:{port}" for port in ports]
    check_reachable(targets, timeout_seconds=60, connect=driver_connect(ours))
    yield targets, processes, logs
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.parametrize("workers_used,closeness", [
    (1, {"check_exact": True}),  # the same computations: exactly a local run's metrics
    (2, {"rtol": 1e-5}),  # each worker sums its share, the shares summed here: float rounding
])
def test_remote_workers_give_the_metrics_of_a_local_run(tmp_path, workers, deployment,
                                                        workers_used, closeness):
    targets, _, _ = workers
    run(small_config(tmp_path / "local", *ROUNDS))
    run(small_config(tmp_path / "remote", *ROUNDS, "executor=remote",
                     f"executor.targets=[{','.join(targets[:workers_used])}]",
                     *tls_overrides(deployment[0])))
    pd.testing.assert_frame_equal(deterministic_metrics(tmp_path / "local"),
                                  deterministic_metrics(tmp_path / "remote"), **closeness)


def test_a_driver_without_the_deployments_certificate_is_refused_and_logged(
        tmp_path, workers, deployment):
    targets, _, logs = workers
    _, theirs = deployment
    with pytest.raises(WorkerError, match=f"TFF worker {targets[0]} did not answer"):
        run(small_config(tmp_path, "executor=remote", f"executor.targets=[{targets[0]}]",
                         "executor.connect_timeout_seconds=3", *tls_overrides(theirs)))
    assert wait_for(lambda: "refused a connection from" in logs[0].read_text())
    assert not (tmp_path / "metrics.csv").exists()


def test_a_worker_whose_certificate_another_ca_signed_is_not_trusted(deployment):
    ours, theirs = deployment
    port = portpicker.pick_unused_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO),
                   "FEDLAB_TLS_CA": str(theirs / "ca.pem"),
                   "FEDLAB_TLS_CERT": str(theirs / "worker.pem"),
                   "FEDLAB_TLS_KEY": str(theirs / "worker.key")}
    impostor = subprocess.Popen([sys.executable, "-m", "fedlab.worker", f"--port={port}",
                                 "--host=localhost"], cwd=REPO, env=environment,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Reachable with its own CA's driver credentials, never with ours.
        check_reachable([f"localhost:{port}"], 60, driver_connect(theirs))
        with pytest.raises(WorkerError, match="did not answer"):
            check_reachable([f"localhost:{port}"], 3, driver_connect(ours))
    finally:
        impostor.kill()
        impostor.wait()


def test_remote_run_without_credentials_stops_with_one_line(tmp_path, monkeypatch):
    for variable in ("FEDLAB_TLS_CA", "FEDLAB_TLS_CERT", "FEDLAB_TLS_KEY"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=r"TLS credentials missing \(ca, cert, key\)"):
        run(small_config(tmp_path, "executor=remote", "executor.targets=[localhost:1]"))


def test_worker_command_without_credentials_says_so():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEDLAB_TLS_")}
    result = subprocess.run([sys.executable, "-m", "fedlab.worker", "--port=1"], cwd=REPO,
                            env={**environment, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: TLS credentials missing (ca, cert, key): give --ca/--cert/--key or "
        "FEDLAB_TLS_CA/FEDLAB_TLS_CERT/FEDLAB_TLS_KEY (python -m fedlab.credentials DIR "
        "--hosts ... makes them)"]


def test_worker_command_isolates_one_computation_per_core_with_two_arenas(workers):
    _, processes, _ = workers
    gateway = processes[0].pid
    assert wait_for(lambda: children_of(gateway))
    [pid] = children_of(gateway)  # the gateway's one child is the worker binary
    arguments = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
    environment = open(f"/proc/{pid}/environ", "rb").read().decode().split("\0")
    assert arguments[0].endswith("worker_binary")
    assert f"--max_concurrent_computation_calls={len(os.sched_getaffinity(0))}" in arguments
    assert "MALLOC_ARENA_MAX=2" in environment
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_unreachable_worker_is_named(tmp_path, deployment):
    target = f"localhost:{portpicker.pick_unused_port()}"
    with pytest.raises(WorkerError, match=f"TFF worker {target} did not answer"):
        run(small_config(tmp_path, "executor=remote", f"executor.targets=[{target}]",
                         "executor.connect_timeout_seconds=2", *tls_overrides(deployment[0])))


def test_worker_dying_mid_run_is_named_and_the_run_resumes(tmp_path, workers, deployment):
    targets, processes, _ = workers
    remote = ["executor=remote", f"executor.targets=[{targets[0]}]",
              "executor.connect_timeout_seconds=3", "schedule.checkpoint_every=1",
              *tls_overrides(deployment[0])]
    first = small_config(tmp_path, *remote, "schedule.rounds=400")
    metrics = tmp_path / "metrics.csv"
    finished = threading.Event()

    def kill_after_two_rounds():
        while not finished.is_set() and not (
                metrics.exists() and len(metrics.read_text().splitlines()) > 2):
            finished.wait(0.1)
        processes[0].kill()

    killer = threading.Thread(target=kill_after_two_rounds, daemon=True)
    killer.start()
    try:
        with pytest.raises(WorkerError, match=f"TFF worker {targets[0]} stopped answering"):
            run(first)
    finally:
        finished.set()
        killer.join(timeout=60)
    done = len(pd.read_csv(metrics))
    assert 2 <= done < 400
    # The second worker stands in; the run resumes from its last checkpoint.
    resumed = ["executor=remote", f"executor.targets=[{targets[1]}]",
               "schedule.checkpoint_every=1", f"schedule.rounds={done + 2}",
               *tls_overrides(deployment[0])]
    run(small_config(tmp_path, *resumed))
    assert pd.read_csv(metrics)["round"].tolist() == list(range(1, done + 3))
