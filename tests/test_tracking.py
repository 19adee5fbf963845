"""logger=mlflow: runs read back through MLflow's own client."""

import json

import mlflow
import pandas as pd
import pytest
from conftest import compose_config, metrics, small_config, summary

from fedlab.loggers import mlflow as mlflow_logger
from fedlab.run import run
from fedlab.runs.files import MLFLOW_RUN_FILE


def _tracked(tmp_path, run_dir, *overrides):
    return small_config(run_dir, "logger=mlflow",
                        f"logger.tracking_uri={tmp_path / 'mlruns'}", *overrides)


def _runs(tmp_path, experiment="fedlab"):
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    return mlflow.search_runs(experiment_names=[experiment])


def test_a_tracked_run_reads_back_through_mlflow(tmp_path):
    run_dir = tmp_path / "run"
    run(_tracked(tmp_path, run_dir))
    runs = _runs(tmp_path)
    assert len(runs) == 1
    tracked = runs.iloc[0]
    assert tracked["status"] == "FINISHED"
    assert tracked["params.schedule.rounds"] == "2" and tracked["params.model._target_"] == (
        "fedlab.models.images.simple_cnn")
    client = mlflow.tracking.MlflowClient()
    table = metrics(run_dir)
    history = client.get_metric_history(tracked["run_id"], "eval_accuracy")
    assert [(m.step, m.value) for m in history] == list(
        zip(table["round"], table["eval_accuracy"], strict=True))
    assert tracked["metrics.final_eval_accuracy"] == summary(run_dir)["final_eval_accuracy"]
    artifacts = {a.path for a in client.list_artifacts(tracked["run_id"])}
    assert {"metrics.csv", "summary.json", "run_config.yaml"} <= artifacts
    assert json.loads((run_dir / MLFLOW_RUN_FILE).read_text())["run_id"] == tracked["run_id"]


def test_resume_continues_the_same_mlflow_run(tmp_path):
    run_dir = tmp_path / "run"
    run(_tracked(tmp_path, run_dir, "schedule.rounds=2"))
    run(_tracked(tmp_path, run_dir, "schedule.rounds=4"))
    runs = _runs(tmp_path)
    assert len(runs) == 1
    history = mlflow.tracking.MlflowClient().get_metric_history(runs.iloc[0]["run_id"],
                                                                "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == metrics(run_dir)["train_loss"].tolist()
    assert runs.iloc[0]["tags.fedlab.resumed_from_round"] == "2"


def test_a_sweeps_runs_share_the_sweep_folders_experiment(tmp_path):
    sweep = tmp_path / "multirun" / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    logger = mlflow_logger.MlflowLogger(str(tmp_path / "mlruns"))
    assert logger.experiment_for(sweep / "0") == str(sweep.resolve())
    assert logger.experiment_for(tmp_path / "single") == "fedlab"
    assert mlflow_logger.MlflowLogger("x", "mine").experiment_for(sweep / "0") == "mine"


def test_without_a_logger_nothing_is_tracked(tmp_path):
    cfg = compose_config(["dataset=synthetic"])
    assert cfg.logger is None and cfg.callbacks.experiment_logger is None
    run(small_config(tmp_path / "run"))
    assert not (tmp_path / "run" / MLFLOW_RUN_FILE).exists()


def test_a_failed_run_is_marked_failed(tmp_path):
    from fedlab.errors import FedlabError

    # Fails after training started (the logger opened its run): a NaN stop is a FedlabError.
    with pytest.raises(FedlabError):
        run(_tracked(tmp_path, tmp_path / "run", "optimizer.client.learning_rate=1e12"))
    runs = _runs(tmp_path)
    assert runs.iloc[0]["status"] == "FAILED"
    assert pd.notna(runs.iloc[0]["run_id"])
