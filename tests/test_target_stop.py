"""callbacks.target_stop: a run ends once every named accuracy column has reached the target."""

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import metrics, small_config, summary

from fedlab.callbacks import TargetStop
from fedlab.errors import ConfigError
from fedlab.run import run


def _context(history=(), validation=True):
    return SimpleNamespace(data=SimpleNamespace(validation_x=np.zeros(1) if validation else None),
                           history=list(history), summary={})


def _rounds(stop: TargetStop, context, rows) -> list[bool]:
    stop.on_train_start(context)
    return [stop.on_round_end(context, n, None, dict(row)) for n, row in enumerate(rows, 1)]


def test_it_stops_in_the_round_the_last_named_column_first_reaches_the_target():
    rows = [{"val_accuracy": 0.5, "eval_accuracy": 0.4},
            {"val_accuracy": 0.8, "eval_accuracy": np.nan},  # not evaluated this round
            {"val_accuracy": 0.6, "eval_accuracy": 0.7},  # val fell back: it still counts
            {"val_accuracy": 0.9, "eval_accuracy": 0.9}]
    context = _context()
    stops = _rounds(TargetStop(0.7, ["val_accuracy", "eval_accuracy"]), context, rows)
    assert stops == [False, False, True, True]
    assert context.summary["stopped_early"] == (
        "target accuracy 0.7 reached: val_accuracy in round 2, eval_accuracy in round 3")


def test_a_resumed_run_counts_the_rows_it_keeps():
    history = [{"round": "1", "val_accuracy": "0.75", "eval_accuracy": ""}]
    stops = _rounds(TargetStop(0.7, ["val_accuracy", "eval_accuracy"]), _context(history),
                    [{"val_accuracy": 0.1, "eval_accuracy": 0.71}])
    assert stops == [True]


def test_without_a_target_it_never_stops():
    assert _rounds(TargetStop(None, ["val_accuracy"]), _context(validation=False),
                   [{"val_accuracy": 1.0}]) == [False]


@pytest.mark.parametrize("stop,context,message", [
    (TargetStop(0.5, ["val_accuracy"]), _context(validation=False),
     "reads validation, but the data set has none"),
    (TargetStop(0.5, []), _context(), "name at least one accuracy column"),
    (TargetStop(0.5, ["eval_acc"]), _context(), "eval_acc not in the round's columns"),
])
def test_bad_columns_are_refused_in_one_line(stop, context, message):
    with pytest.raises(ConfigError, match=message):
        _rounds(stop, context, [{"val_accuracy": 0.1, "eval_accuracy": 0.1}])


def test_a_real_run_ends_at_the_target_with_its_rows_and_summary(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=4", "callbacks.target_stop.accuracy=0.0",
                     "callbacks.target_stop.columns=[eval_accuracy]"))
    assert metrics(tmp_path)["round"].tolist() == [1]
    record = summary(tmp_path)
    assert record["status"] == "completed"
    assert record["stopped_early"] == "target accuracy 0.0 reached: eval_accuracy in round 1"
