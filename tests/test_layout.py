"""The package's form: packages by role, small modules, an algorithm that owns its round."""

import ast
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from conftest import REPO

PACKAGE = REPO / "fedlab"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_at_most_six_modules_at_the_top_and_none_over_600_lines():
    top = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 6, top
    long = {str(p.relative_to(REPO)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > 600}
    assert not long


def test_no_class_name_is_used_twice():
    names = Counter(node.name for path in MODULES
                    for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ClassDef))
    assert not {name for name, count in names.items() if count > 1}


def test_only_algorithms_know_their_kinds():
    """The trainer asks the algorithm (model_fn, build, communication, cohorts, compose)."""
    kinds = ("asynchronous", "client_state")
    for path in MODULES:
        if PACKAGE / "algorithms" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in kinds:
                pytest.fail(f"{path.relative_to(REPO)}:{node.lineno} reads .{node.attr}")


def test_run_folder_and_report_modules_do_not_import_tensorflow():
    code = ("import sys, fedlab.runs.figures, fedlab.runs.summary, fedlab.runs.resume, "
            "fedlab.runs.files, fedlab.runs.folder, fedlab.runs.provenance, fedlab.report, "
            "fedlab.report.select, fedlab.config.schemas, fedlab.run; "
            "print(sorted(m for m in ('tensorflow', 'tensorflow_federated') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["fedlab.report", "fedlab.select", "fedlab.worker",
                                    "fedlab.credentials"])
def test_module_entry_points_answer_help(module):
    """(``python -m fedlab``: tests/test_cli.py runs it with ``--cfg``, and the default job.)"""
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()


def test_console_scripts_point_at_the_entry_points():
    from importlib.metadata import entry_points

    scripts = {e.name: e for e in entry_points(group="console_scripts")
               if e.name.startswith("fedlab")}
    assert set(scripts) == {"fedlab", "fedlab-report", "fedlab-select", "fedlab-worker",
                            "fedlab-credentials"}
    assert all(callable(script.load()) for script in scripts.values())
    installed = shutil.which("fedlab-report") or str(REPO / ".venv" / "bin" / "fedlab-report")
    result = subprocess.run([installed, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage" in result.stdout.lower(), result.stderr[-2000:]


# ---- Run folders written before the package move (tests/data/pre_move_run: the default job of
# commit aa97474, client lr 0.02, with its .hydra/ record, metrics.csv and summary.json)

PRE_MOVE_RUN = REPO / "tests" / "data" / "pre_move_run"


def test_the_report_reads_a_run_folder_written_before_the_move(tmp_path):
    from fedlab.report.collect import collect_runs

    shutil.copytree(PRE_MOVE_RUN, tmp_path / "old")
    runs, *_ = collect_runs([tmp_path], target_accuracy=0.3)
    row = runs.iloc[0]
    assert row["status"] == "completed"
    assert row["final_eval_accuracy"] == pytest.approx(0.33)
    assert row["rounds_to_target"] == 10


def test_resuming_it_is_refused_with_one_line_saying_why(tmp_path):
    from conftest import compose_config

    from fedlab.errors import RunFolderConflict
    from fedlab.run import run

    shutil.copytree(PRE_MOVE_RUN, tmp_path / "old")
    cfg = compose_config(["optimizer.client.learning_rate=0.02", "schedule.rounds=12",
                          "computation_cache=null"], tmp_path / "old")
    with pytest.raises(RunFolderConflict,
                       match="written by an older fedlab, before its modules moved"):
        run(cfg)


@pytest.mark.slow
def test_the_default_jobs_metrics_are_those_written_before_the_move(tmp_path):
    """No behaviour change: the same configuration gives the same metrics.csv."""
    import numpy as np
    import pandas as pd
    from conftest import TIMING, compose_config, deterministic_metrics

    from fedlab.run import run

    run(compose_config(["optimizer.client.learning_rate=0.02", "computation_cache=null"],
                       tmp_path))
    now = deterministic_metrics(tmp_path)
    before = pd.read_csv(PRE_MOVE_RUN / "metrics.csv").drop(columns=TIMING)
    assert list(now.columns) == list(before.columns)
    integers = [c for c in before.columns if pd.api.types.is_integer_dtype(before[c])]
    pd.testing.assert_frame_equal(now[integers], before[integers], check_exact=True)
    # Bit-identical on the machine that wrote them (checked); another CPU may round the last digit.
    np.testing.assert_allclose(now.to_numpy(float), before.to_numpy(float), rtol=1e-5)
