"""The docs site: its reference pages are generated from the code and cannot fall behind it."""

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from conftest import REPO, small_config
from omegaconf import OmegaConf

import fedlab.run
from fedlab.runs import files


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference",
                                                  REPO / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


@pytest.fixture(scope="module")
def options_page():
    missing = []
    return gen.options_page(missing), missing


def test_every_group_and_option_in_conf_has_its_section(options_page):
    page, _ = options_page
    options = [path for path in sorted((REPO / "conf").rglob("*.yaml"))
               if path.parent != REPO / "conf"]
    assert len(options) > 50
    for path in options:
        group = str(path.parent.relative_to(REPO / "conf"))
        assert f"## {group} {{#{gen.anchor(group)}}}" in page, group
        assert f"### {group}={path.stem} {{#{gen.anchor(group, path.stem)}}}" in page, path


def test_every_key_of_every_composed_option_has_a_row_with_its_default(options_page):
    page, _ = options_page
    for (group, option), node in gen.composed_options().items():
        section = page.split(f"### {group}={option} ", 1)[1].split("\n### ", 1)[0]
        if node is None:
            continue
        for key, value in _keys(OmegaConf.to_container(node, resolve=False), group):
            row = next((line for line in section.splitlines()
                        if line.startswith(f"| `{key}` |")), None)
            assert row is not None, f"{group}={option}: {key} has no row"
            default = f"`{value['_target_']}`" if isinstance(value, dict) and "_target_" in value \
                else gen.value_text(value)
            assert row.split(" | ")[1] == default, (key, row)


def _keys(node: dict, prefix: str):
    """Every key of a composed option and of the nodes in it that name a builder."""
    for key, value in node.items():
        if key in gen.HIDDEN_KEYS:
            continue
        yield f"{prefix}.{key}", value
        if isinstance(value, dict) and "_target_" in value:
            yield from _keys(value, f"{prefix}.{key}")


def test_the_top_level_keys_have_their_rows(options_page):
    page, _ = options_page
    top = page.split("## Top level", 1)[1].split("\n## ", 1)[0]
    for key in ("run_dir", "tensorboard", "computation_cache", "objective.metric",
                "objective.target_accuracy", "personalization.epochs",
                "personalization.learning_rate", "personalization.every"):
        assert f"| `{key}` |" in top, key
    assert "| `schedule.rounds` | `10` |" in page


def test_every_key_has_a_meaning(options_page):
    """A builder parameter without an ``Args:`` (or ``Attributes:``) entry fails here."""
    page, missing = options_page
    assert not missing, f"document these in the builder's docstring: {missing}"
    assert gen.UNDOCUMENTED not in page


def test_a_new_choice_shows_in_the_options_page(options_page):
    from fedlab.config.choices import PartitionMethod

    page, _ = options_page
    for method in PartitionMethod:
        assert f"`{method.value}`" in page


def test_every_package_has_an_api_page_in_the_nav():
    packages = {f"fedlab.{p.parent.name}" for p in (REPO / "fedlab").glob("*/__init__.py")}
    assert packages <= set(gen.API_MODULES), packages - set(gen.API_MODULES)
    nav = (REPO / "mkdocs.yml").read_text()
    for module in gen.API_MODULES:
        assert f"reference/api/{module}.md" in nav, module
    assert set(gen.api_pages()) == {f"reference/api/{m}.md" for m in gen.API_MODULES} | {
        "reference/api/index.md"}


def test_every_console_script_is_on_the_command_line_page():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {script for script, _ in gen.COMMANDS}


# ---- the run folder page: every name a run writes is documented in docs/reference/columns.yaml

def test_every_run_folder_file_name_is_documented():
    documented = gen.documented_names("files")
    names = {value for name, value in vars(files).items() if name.isupper()}
    assert names <= documented, names - documented


def test_every_column_and_key_a_run_writes_is_documented(tmp_path):
    """A small real run with the optional columns on: nothing it writes is undocumented."""
    fedlab.run.run(small_config(tmp_path, "clients=heterogeneous", "aggregator=dp",
                                "dataset.validation_fraction=0.25",
                                "callbacks.target_stop.accuracy=0.0",
                                "privacy_audit.canaries=2"))
    with open(tmp_path / files.METRICS_FILE) as metrics:
        columns = set(next(csv.reader(metrics)))
    summary = json.loads((tmp_path / files.SUMMARY_FILE).read_text())
    assert {"val_accuracy", "sim_round_seconds", "dp_epsilon",
            "empirical_epsilon"} <= columns  # options took
    assert columns - gen.documented_names("metrics.csv") == set()
    assert set(summary) - gen.documented_names("summary.json") == set()
    assert set(summary["provenance"]) - gen.documented_names("provenance") == set()
    written = {path.name for path in tmp_path.iterdir()}
    documented = gen.documented_names("files")
    undocumented = {name for name in written if name not in documented
                    and not any(re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"),
                                             name) for pattern in documented)
                    and name != ".hydra"}
    assert not undocumented


def test_the_keys_a_resume_may_change_are_listed():
    from fedlab.runs.resume import MAY_CHANGE

    meaning = gen.columns()["files"]["tables"][0]["names"][files.RUN_CONFIG_FILE]
    assert all(f"`{key}`" in meaning for key in MAY_CHANGE), meaning


def test_the_reports_columns_are_documented():
    from fedlab.report import collect, stats

    runs = gen.documented_names("runs.csv")
    assert set(collect.FIGURES) | set(collect.FINGERPRINTS) <= runs
    assert set(stats.COLUMNS) <= gen.documented_names("paired.csv")


def test_the_run_folder_page_lists_every_documented_name():
    page = gen.run_folder_page()
    for section, spec in gen.columns().items():
        if section != "intro":
            for block in spec["tables"]:
                for name in block["names"]:
                    assert f"| `{name}` |" in page, name


def test_columns_yaml_is_valid():
    data = yaml.safe_load((REPO / "docs" / "reference" / "columns.yaml").read_text())
    assert {"files", "metrics.csv", "summary.json", "provenance", "runs.csv"} <= set(data)


# ---- the whole site

@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "--site-dir", str(tmp_path / "site")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    for page in ("reference/options/index.html", "reference/run-folder/index.html",
                 "reference/cli/index.html", "reference/api/fedlab.algorithms/index.html",
                 "explanation/architecture/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "usage: python -m fedlab.report" in cli
