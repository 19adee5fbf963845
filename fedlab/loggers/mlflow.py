"""Experiment tracking in MLflow (``logger=mlflow``): a run's config, rounds and results.

:class:`MlflowLogger` is a callback of the federated loop. When training starts it opens an
MLflow run (or, when the run folder was tracked before, the same run again: resume continues
it), logs the resolved config (``run_config.yaml``) as params and remembers the run in the run
folder (``mlflow_run.json``); after every round it logs that round's ``metrics.csv`` columns as
metrics at step = round. After ``summary.json`` is written, the assembler calls :func:`finish`,
which logs the summary's figures and the run folder's files (summary, metrics, config, client
tables, plots) as artifacts and ends the MLflow run with the run's status.

The runs of one sweep share one MLflow experiment, named after the sweep folder; a single run
goes to the experiment ``fedlab`` (``experiment_name`` overrides both). Only MLflow's client
API is used: no global active run, no autologging.
"""

import json
import logging
import math
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fedlab.callbacks.base import Callback, TrainingContext, stop_with_error
from fedlab.errors import ConfigError, FedlabError
from fedlab.runs.files import MLFLOW_RUN_FILE, RUN_CONFIG_FILE, SWEEP_MARKER

log = logging.getLogger("fedlab")
SINGLE_RUN_EXPERIMENT = "fedlab"
# What a sweep folder holds (Hydra writes it when a multirun starts).
# Run-folder files logged as artifacts at the end (those that exist).
ARTIFACT_PATTERNS = ("summary.json", "metrics.csv", "run_config.yaml", "client_*.csv",
                     "*.png")
# MLflow's limit on a param value's length (MLflow 3.x).
MAX_PARAM_LENGTH = 6000
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


def tracking_uri_of(location: str) -> str:
    """A URI MLflow takes: a server or ``file:`` URI as given, a plain path as ``file:`` URI."""
    if "://" in location or location.startswith("file:"):
        return location
    return Path(location).expanduser().resolve().as_uri()


def flat_params(config: dict) -> dict[str, str]:
    """A nested config as dotted keys and string values MLflow accepts as params."""
    flat = pd.json_normalize(config, sep=".").iloc[0].to_dict() if config else {}
    return {key: str(value)[:MAX_PARAM_LENGTH] for key, value in flat.items()}


def numeric_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row (MLflow metrics are floats)."""
    numbers = {}
    for key, value in row.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            numbers[key] = number
    return numbers


def _check_reachable(tracking_uri: str, timeout_seconds: float = 5.0) -> None:
    """Fail at once on a tracking server nobody answers at (MLflow retries for minutes)."""
    url = urllib.parse.urlsplit(tracking_uri)
    if url.scheme not in ("http", "https"):
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_seconds).close()
    except OSError as error:
        raise OSError(f"no server answers at {url.hostname}:{port} "
                      f"({error.strerror or error})") from None


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _log_metrics(client, run_id: str, metrics: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, stamp, step) for k, v in metrics.items()])


class MlflowLogger(Callback):
    """Log the run to MLflow: params when training starts, each round's columns as it ends."""

    def __init__(self, tracking_uri: str = "mlruns", experiment_name: str | None = None):
        """Track at ``tracking_uri`` (a folder or a server URI) in ``experiment_name``.

        Args:
          tracking_uri: MLflow's store: a folder (relative to where fedlab is launched) or a
            server URI.
          experiment_name: the MLflow experiment (null: the sweep folder for a sweep's runs,
            ``fedlab`` for a single run).
        """
        self.tracking_uri = tracking_uri_of(tracking_uri)
        self.experiment_name = experiment_name
        self._client = None
        self._run_id: str | None = None

    def experiment_for(self, run_dir: Path) -> str:
        """The configured experiment; else the sweep folder of a sweep's run, else ``fedlab``."""
        if self.experiment_name:
            return self.experiment_name
        sweep = run_dir.resolve().parent
        return str(sweep) if (sweep / SWEEP_MARKER).exists() else SINGLE_RUN_EXPERIMENT

    def on_train_start(self, context: TrainingContext) -> None:
        """Open the MLflow run (the recorded one when resuming) and log the config.

        Raises:
          ConfigError: the store cannot be reached or written (one line naming it).
        """
        try:
            self._start(context)
        except FedlabError:
            raise
        except Exception as error:  # noqa: BLE001 - MLflow's store and REST errors alike
            raise ConfigError(self._failure(error)) from None

    def _failure(self, error: BaseException) -> str:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return (f"cannot track the run in the MLflow store {self.tracking_uri}: {reason} (set "
                "logger.tracking_uri to a writable folder or a reachable server, or logger=none)")

    def _start(self, context: TrainingContext) -> None:
        _check_reachable(self.tracking_uri)
        self._client = client = _client(self.tracking_uri)
        record_path = context.run_dir / MLFLOW_RUN_FILE
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if record.get("tracking_uri") == self.tracking_uri:
            self._run_id = record["run_id"]
            client.set_tag(self._run_id, "fedlab.resumed_from_round", str(context.resumed_from))
            log.info("MLflow: continuing run %s at %s", self._run_id, self.tracking_uri)
            return
        name = self.experiment_for(context.run_dir)
        experiment = client.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(name))
        run = client.create_run(experiment_id, run_name=context.run_dir.name,
                                tags={"fedlab.run_dir": str(context.run_dir.resolve())})
        self._run_id = run.info.run_id
        config_path = context.run_dir / RUN_CONFIG_FILE
        config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self._run_id, params=params[start:start + 100])
        record_path.write_text(json.dumps({"tracking_uri": self.tracking_uri,
                                           "run_id": self._run_id,
                                           "experiment": name}))
        log.info("MLflow: run %s in experiment %r at %s", self._run_id, name, self.tracking_uri)

    def on_round_end(self, context: TrainingContext, round_num: int, result: Any,
                     row: dict[str, float]) -> bool | None:
        """Log the round's columns at step ``round_num``; a store gone away stops the run.

        The round is still recorded and checkpointed (:func:`stop_with_error`).
        """
        try:
            _log_metrics(self._client, self._run_id, numeric_metrics(row), round_num)
        except Exception as error:  # noqa: BLE001 - MLflow's store and REST errors alike
            return stop_with_error(context, self._failure(error))
        return None


def finish(run_dir: Path, summary: dict) -> None:
    """Log ``summary``'s figures and the run folder's files, and end the run's MLflow run.

    Does nothing for a run folder MLflow did not track. A tracking store that cannot be reached
    costs one warning: the run's own files are complete either way.
    """
    record_path = run_dir / MLFLOW_RUN_FILE
    if not record_path.exists():
        return
    record = json.loads(record_path.read_text())
    try:
        client = _client(record["tracking_uri"])
        run_id = record["run_id"]
        figures = numeric_metrics({k: v for k, v in summary.items() if not isinstance(v, bool)})
        last_step = int(summary.get("rounds_completed") or 0)
        _log_metrics(client, run_id, figures, last_step)
        for pattern in ARTIFACT_PATTERNS:
            for path in sorted(run_dir.glob(pattern)):
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, STATUS.get(summary.get("status"), "FINISHED"))
    except Exception as error:  # noqa: BLE001 - MLflow's store and REST errors alike
        log.warning("MLflow: could not finish run %s at %s (%s: %s); the run folder is complete",
                    record.get("run_id"), record.get("tracking_uri"), type(error).__name__,
                    error)
