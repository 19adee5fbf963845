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


@pytest.mark.parametrize("module", ["fedlab", "fedlab.report", "fedlab.select", "fedlab.worker",
                                    "fedlab.credentials"])
def test_module_entry_points_answer_help(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in (result.stdout + result.stderr).lower() or "fedlab" in result.stdout


@pytest.mark.parametrize("script", ["fedlab", "fedlab-report", "fedlab-select", "fedlab-worker",
                                    "fedlab-credentials"])
def test_console_scripts_answer_help(script):
    path = shutil.which(script) or str(REPO / ".venv" / "bin" / script)
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
