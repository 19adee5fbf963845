"""Trackers and output folders that fail: one ``error:`` line, exit 1, no finished round lost."""

import json

import pandas as pd
import pytest
from conftest import metrics, run_cli, small_config

from fedlab.errors import ConfigError
from fedlab.loggers import mlflow as mlflow_logger
from fedlab.run import run
from fedlab.runs.files import METRICS_FILE, SUMMARY_FILE

SMOKE = ("dataset=synthetic", "schedule=smoke", "model=simple_cnn")


def _one_error_line(result, *fragments):
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in (result.stderr + result.stdout).splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.mark.parametrize("overrides,fragments", [
    (("logger=mlflow", "logger.tracking_uri={blocked}/mlruns"),
     ("MLflow store", "{blocked}/mlruns", "logger.tracking_uri")),
    (("computation_cache={blocked}/cache",),
     ("computation cache", "{blocked}/cache", "computation_cache=null")),
])
def test_an_unwritable_store_or_cache_is_one_line(tmp_path, overrides, fragments):
    blocked = tmp_path / "a-file"  # a file where a folder would have to be
    blocked.write_text("")
    result = run_cli(*SMOKE, *(o.format(blocked=blocked) for o in overrides),
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    _one_error_line(result, *(f.format(blocked=blocked) for f in fragments))


def test_an_unwritable_run_folder_is_one_line(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run_cli(*SMOKE, f"hydra.run.dir={blocked}/run", cwd=tmp_path)
    _one_error_line(result, f"{blocked}/run", "hydra.run.dir")


def test_an_unreachable_tracking_server_fails_at_once(tmp_path):
    with pytest.raises(ConfigError, match="no server answers at 127.0.0.1:9.*logger=none"):
        run(small_config(tmp_path, "logger=mlflow", "logger.tracking_uri=http://127.0.0.1:9"))


def test_a_store_failing_after_round_2_keeps_rounds_1_2_and_their_checkpoint(tmp_path,
                                                                              monkeypatch):
    real = mlflow_logger._log_metrics

    def failing_from_round_2(client, run_id, figures, step):
        if step >= 2:
            raise OSError(28, "No space left on device")
        real(client, run_id, figures, step)

    monkeypatch.setattr(mlflow_logger, "_log_metrics", failing_from_round_2)
    with pytest.raises(ConfigError, match="MLflow store.*No space left.*rounds 1-2 are in"):
        run(small_config(tmp_path / "run", "logger=mlflow", "schedule.rounds=4",
                         "schedule.checkpoint_every=5",
                         f"logger.tracking_uri={tmp_path / 'mlruns'}"))
    assert list(metrics(tmp_path / "run")["round"]) == [1, 2]
    assert (tmp_path / "run" / "checkpoints" / "round_2").is_dir()
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["status"] == "failed" and "No space left" in summary["error"]


def test_a_metrics_file_failing_in_round_2_keeps_round_1(tmp_path, monkeypatch):
    from fedlab.callbacks import metrics as metrics_module

    real = metrics_module.MetricsSink.release

    def failing_in_round_2(self, row, round_num):
        if round_num == 2:
            raise OSError(30, "Read-only file system")
        real(self, row, round_num)

    monkeypatch.setattr(metrics_module.MetricsSink, "release", failing_in_round_2)
    with pytest.raises(ConfigError, match="cannot write round 2 to metrics.csv.*Read-only"):
        run(small_config(tmp_path, "schedule.rounds=3", "schedule.checkpoint_every=1"))
    assert list(pd.read_csv(tmp_path / METRICS_FILE)["round"]) == [1]
    # The newest checkpoint is of a round metrics.csv holds: the run resumes.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["round_1"]
