"""What the documentation says, checked: settings no other test exercises, by behaviour; the
commands of Getting started and the Tutorials, run; every fedlab command the pages show,
composed."""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf
from conftest import CONF_DIR, REPO, compose_config, small_config

from fedlab.config.choices import ServerSchedule
from fedlab.errors import CheckpointError, ConfigError
from fedlab.optimizers import pair
from fedlab.privacy import aggregator
from fedlab.run import run
from fedlab.runs.folder import POSITIVE_SCHEDULE_KEYS
from fedlab.runs.resume import MAY_CHANGE


@pytest.mark.parametrize("key", POSITIVE_SCHEDULE_KEYS)
@pytest.mark.parametrize("value", [0, -1])
def test_a_non_positive_schedule_value_is_refused_before_anything_is_written(
        tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"schedule\.{key} must be a positive integer, "
                                          rf"got {value}"):
        run(small_config(tmp_path, f"schedule.{key}={value}"))
    assert not (tmp_path / "metrics.csv").exists()


@pytest.mark.parametrize("schedule,decay,expected", [
    (ServerSchedule.exponential, 0.5, [1.0, 0.5, 0.25, 0.125]),
    (ServerSchedule.inverse_sqrt, 0.99, [1.0, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5]),
    (ServerSchedule.constant, 0.5, [1.0, 1.0, 1.0, 1.0]),
])
def test_server_learning_rate_schedules_decay_per_round(schedule, decay, expected):
    import tensorflow_federated as tff

    optimizer = pair.with_round_schedule(
        tff.learning.optimizers.build_sgdm(learning_rate=1.0), schedule, decay)
    weights = (tf.constant([0.0]),)
    state = optimizer.initialize((tf.TensorSpec([1], tf.float32),))
    rates = []
    for _ in expected:  # a unit gradient: each step moves the weight by the learning rate
        before = float(weights[0][0])
        state, weights = optimizer.next(state, weights, (tf.constant([1.0]),))
        rates.append(before - float(weights[0][0]))
    assert rates == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("decay", [0.0, 1.5])
def test_an_exponential_decay_outside_0_1_is_refused(tmp_path, decay):
    with pytest.raises(ConfigError, match="optimizer.server_decay must be in"):
        run(small_config(tmp_path, "optimizer.server_schedule=exponential",
                         f"optimizer.server_decay={decay}"))


def test_dp_with_over_selection_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"clients.over_selection=0.3 with a DP aggregator"):
        run(small_config(tmp_path, "aggregator=dp", "dataset.num_clients=20",
                         "schedule.clients_per_round=10", "clients=unreliable"))
    assert not (tmp_path / "metrics.csv").exists()


@pytest.mark.parametrize("noise,stddev,expected", [
    (0.3, None, 0.5),   # max(0.05 x 10 clients, 0.3)
    (2.0, None, 2.0),   # max(0.5, 2.0)
    (0.3, 4.0, 4.0),    # given
])
def test_adaptive_clipping_options_reach_the_query(monkeypatch, noise, stddev, expected):
    seen = {}
    real = aggregator.noise_queries.gaussian_adaptive

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(aggregator.noise_queries, "gaussian_adaptive", spy)
    aggregator.DpAggregator(
        noise_multiplier=noise, clients_per_round=10, clipped_count_stddev=stddev,
        initial_l2_norm_clip=0.7, target_unclipped_quantile=0.8, clip_learning_rate=0.05,
    ).for_federation(num_clients=50, rounds=3)
    assert seen == {"clipped_count_stddev": expected, "initial_l2_norm_clip": 0.7,
                    "target_unclipped_quantile": 0.8, "learning_rate": 0.05}


def test_only_the_newest_keep_checkpoints_are_kept(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=5", "schedule.checkpoint_every=1",
                     "schedule.keep_checkpoints=2"))
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["round_4", "round_5"]


def test_resume_when_no_checkpoint_loads_says_so_and_keeps_the_rounds(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=2"))
    for checkpoint in (tmp_path / "checkpoints").iterdir():
        for item in checkpoint.rglob("*"):
            if item.is_file():
                item.write_bytes(b"garbage")
    rows = pd.read_csv(tmp_path / "metrics.csv")
    with pytest.raises(CheckpointError):
        run(small_config(tmp_path, "schedule.rounds=4"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "metrics.csv"), rows, check_exact=True)


MAY_CHANGE_OVERRIDES = {  # one override for each key README says a resume may change
    "executor": "executor.concurrent_calls=1",
    "computation_cache": "computation_cache=null",
    "tensorboard": "tensorboard=false",
    "trainer.tensorboard": "trainer.tensorboard=false",  # trainer=central's (below)
    "callbacks.metrics_release.tensorboard": "callbacks.metrics_release.tensorboard=false",
    "callbacks.progress_line": "~callbacks.progress_line",
    "callbacks.preemption": "~callbacks.preemption",
    "objective": "objective.metric=best_eval_accuracy",
}


def test_every_may_change_key_has_a_case():
    assert set(MAY_CHANGE_OVERRIDES) == set(MAY_CHANGE)


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(MAY_CHANGE_OVERRIDES))
def test_a_resume_may_change_each_setting_readme_lists(tmp_path, key):
    base = ["trainer=central"] if key == "trainer.tensorboard" else []
    run(small_config(tmp_path / "whole", *base, "schedule.rounds=3"))
    run(small_config(tmp_path / "resumed", *base, "schedule.rounds=2"))
    run(small_config(tmp_path / "resumed", *base, "schedule.rounds=3",
                     MAY_CHANGE_OVERRIDES[key]))
    timing = ["round_seconds", "eval_seconds"]
    resumed, whole = (pd.read_csv(tmp_path / name / "metrics.csv").drop(columns=timing)
                      for name in ("resumed", "whole"))
    pd.testing.assert_frame_equal(resumed, whole, check_exact=True)


def test_summary_holds_the_keys_readme_lists(tmp_path):
    run(small_config(tmp_path, "schedule.rounds=2", "clients=heterogeneous"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    listed = {"status", "final_eval_accuracy", "best_eval_accuracy", "training_seconds",
              "evaluation_seconds", "learning_process", "sim_seconds_total",
              "clients_reported_mean", "rounds_without_reports", "provenance"}
    assert listed <= set(summary), listed - set(summary)
    provenance = {"test_set_sha256", "partition_sha256", "fedlab_version", "git_commit",
                  "git_dirty", "python", "tensorflow", "tensorflow_federated", "packages",
                  "host", "platform", "command", "started_at", "ended_at"}
    assert provenance <= set(summary["provenance"]), provenance - set(summary["provenance"])


def test_client_level_evaluation_is_timed(tmp_path):
    run(compose_config(["dataset=mnist", "dataset.num_clients=10", "model=mlp",
                        "schedule=smoke", "dataset.client_test_fraction=0.3",
                        "schedule.eval_every=1"], tmp_path))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["round"].tolist() == [1, 2]
    assert (table["client_eval_seconds"] > 0).all()


@pytest.mark.parametrize("launcher", ["ray_cluster", "slurm"])
def test_cluster_launchers_compose(launcher):
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"],
                      return_hydra_config=True)
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    if launcher == "ray_cluster":
        assert launcher_cfg["ray"]["init"]["address"] == "auto"
        assert launcher_cfg["ray"]["init"]["_node_ip_address"] is None
    else:
        assert "submitit" in launcher_cfg["_target_"].lower()


@pytest.mark.parametrize("status,returned,expected", [
    ("COMPLETED", 0.5, [0.5]),
    ("COMPLETED", float("nan"), None),   # Optuna records the trial as FAIL
    ("COMPLETED", float("inf"), None),
    ("FAILED", 0.5, None),
])
def test_the_sweeper_fails_trials_without_a_finite_objective(status, returned, expected):
    from types import SimpleNamespace

    from hydra.core.utils import JobStatus

    from hydra_plugins.fedlab_optuna_sweeper._impl import _values

    job = SimpleNamespace(status=JobStatus[status], return_value=returned)
    assert _values(job, 1) == expected


def test_minimizing_rounds_to_target_composes():
    cfg = compose_config(["hparams_search=learning_rates", "objective.metric=rounds_to_target",
                          "hydra.sweeper.direction=minimize"])
    assert cfg.objective.metric == "rounds_to_target"


# --- The docs' commands run -------------------------------------------------------------------
# Every command of the Getting started pages and the Tutorials runs here, as a reader types them:
# each page's ```bash blocks (and its ```python snippets, with python), in order, in one bash
# session (set -euo pipefail), in a fresh folder (the Getting started pages share one, as they
# build on each other). `uv run X` runs X in this environment; each `python -m fedlab` and
# `fedlab` call is shrunk by the page's overrides below, which replace the page's values of the
# same keys and are added otherwise.

DOCS = REPO / "docs"
SMOKE_OVERRIDES = "dataset=synthetic schedule=smoke model=simple_cnn"
SMALL_MNIST = "model=mlp dataset.num_clients=10 schedule.rounds=2 schedule.clients_per_round=2"
# page -> the overrides for each of its ```bash blocks (one string: every block).
SHRUNK = {
    "getting-started/first-run.md": SMOKE_OVERRIDES,
    "getting-started/run-folder.md": SMOKE_OVERRIDES,
    "getting-started/first-sweep.md": SMOKE_OVERRIDES,
    "tutorials/study.md": [
        f"{SMALL_MNIST} schedule.seed=100 optimizer.client.learning_rate=0.1,0.2 "
        "optimizer.server.learning_rate=1.0",                      # tune the default job
        "",                                                        # select
        f"{SMALL_MNIST} schedule.seed=0,1,2",                      # test seeds
        "",                                                        # report
        f"{SMALL_MNIST} schedule.local_epochs=1 optimizer.client.learning_rate=0.1 "
        "optimizer.server.learning_rate=1.0",                      # tune each method
        "", "",                                                    # select; the study's
        f"{SMALL_MNIST} schedule.local_epochs=1 schedule.seed=1,2,3",  # test seeds
        "", "",                                                    # report; --from-runs
    ],
    "tutorials/shakespeare.md": [
        "",                                                        # --samples
        "model=char_lstm_small schedule.rounds=2 schedule.clients_per_round=2",
        "",                                                        # the run's files
        "model=char_lstm_small dataset.plays=[hamlet] schedule.rounds=2 "
        "schedule.clients_per_round=2 schedule.seed=0",            # the full study
    ],
    "tutorials/privacy.md": [
        "model=simple_cnn schedule.rounds=4",                      # the budget stop
        "",                                                        # its files
        "model=simple_cnn schedule.rounds=4",                      # a budget refused
        "model=simple_cnn schedule.rounds=4",                      # noise for a budget
        "",                                                        # the epsilon table
        "model=simple_cnn schedule.rounds=2 schedule.seed=0",      # what DP costs
    ],
}
# Commands a page shows that the test does not run, and why.
NOT_RUN = {
    "pip install uv==0.13.9 && uv sync": "the environment these tests run in is that install",
}
# Commands a page shows failing, with (a part of) the one line they fail with.
FAILING = {
    "uv run python -m fedlab aggregator=dp aggregator.noise_multiplier=1.0 "
    "aggregator.target_epsilon=1": "error: one round already takes epsilon to",
}

PRELUDE = r"""
shrink() {  # SHRUNK=("$@" with $DOC_OVERRIDES: each replaces the page's value of its key, or
  # is added after the page's last override (Hydra takes overrides in one run, before --cfg)
  local -a extra added=() tail=(); local -A at=(); local arg key i last=-1
  read -ra extra <<< "$DOC_OVERRIDES"
  SHRUNK=("$@")
  for i in "${!SHRUNK[@]}"; do
    arg=${SHRUNK[$i]}
    if [[ $arg == *=* && $arg != -* ]]; then at[${arg%%=*}]=$i; last=$i; fi
  done
  for arg in "${extra[@]}"; do
    key=${arg%%=*}
    if [[ -v "at[$key]" ]]; then SHRUNK[${at[$key]}]=$arg; else added+=("$arg"); fi
  done
  if (( last < 0 )); then SHRUNK+=("${added[@]}"); return; fi
  tail=("${SHRUNK[@]:last+1}")
  SHRUNK=("${SHRUNK[@]:0:last+1}" "${added[@]}" "${tail[@]}")
}
python() {
  if [[ ${1-} == -m && ${2-} == fedlab ]]; then
    shift 2; shrink "$@"; command python -m fedlab "${SHRUNK[@]}"
  else
    command python "$@"
  fi
}
fedlab() { shrink "$@"; command fedlab "${SHRUNK[@]}"; }
uv() {
  [[ ${1-} == run ]] || { echo "the docs test runs only 'uv run': uv $*" >&2; return 1; }
  shift; "$@"
}
"""


def bash_blocks(page: str) -> list[str]:
    """The ```bash blocks of a docs page, in order."""
    return re.findall(r"^```bash\n(.*?)^```", (DOCS / page).read_text(), re.M | re.S)


def block_commands(block: str) -> list[str]:
    """A block's commands: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def page_script(page: str) -> str:
    """The page's blocks as one bash script, each bash block after its shrinking overrides."""
    blocks = re.findall(r"^```(bash|python)\n(.*?)^```", (DOCS / page).read_text(), re.M | re.S)
    overrides = SHRUNK[page]
    bash = [text for language, text in blocks if language == "bash"]
    if isinstance(overrides, str):
        overrides = [overrides] * len(bash)
    assert len(overrides) == len(bash), f"{page}: {len(bash)} blocks, overrides for " \
                                        f"{len(overrides)}"
    overrides = iter(overrides)
    lines = [PRELUDE]
    for language, block in blocks:
        if language == "python":
            lines.append(f"python - <<'SNIPPET'\n{block}SNIPPET")
            continue
        lines.append(f"DOC_OVERRIDES={shlex.quote(next(overrides))}")
        for command in block_commands(block):
            if command in FAILING:
                lines.append(f"if {command}; then echo 'did not fail: {command}' >&2; exit 97; fi")
            elif command not in NOT_RUN:
                lines.append(command)
    return "\n".join(lines) + "\n"


def run_pages(pages: tuple[str, ...], folder: Path, timeout: float = 600) -> str:
    """Run ``pages``' commands in ``folder``, one bash session per page; their output.

    ``experiments/`` is linked into the folder: pages read the studies' committed results.
    """
    if not (folder / "experiments").exists():
        (folder / "experiments").symlink_to(REPO / "experiments")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    output = []
    for page in pages:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", page_script(page)],
                                cwd=folder, env=env, capture_output=True, text=True,
                                timeout=timeout)
        output.append(result.stdout + result.stderr)
        assert result.returncode == 0, f"{page}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        for command, message in FAILING.items():
            if any(command in block_commands(block) for block in bash_blocks(page)):
                assert message in output[-1], (command, message)
    return "\n".join(output)


def test_every_page_with_commands_is_run_or_checked():
    pages = {str(p.relative_to(DOCS)) for p in DOCS.glob("*/*.md")
             if p.parent.name in ("getting-started", "tutorials") and bash_blocks(
                 str(p.relative_to(DOCS)))}
    assert pages == set(SHRUNK)
    shown = {c for page in SHRUNK for block in bash_blocks(page) for c in block_commands(block)}
    assert set(NOT_RUN) | set(FAILING) <= shown, (set(NOT_RUN) | set(FAILING)) - shown


def test_the_help_excerpt_lists_each_shown_group_as_help_does():
    text = (DOCS / "getting-started" / "first-run.md").read_text()
    excerpt = re.search(r"^fedlab is powered by Hydra\.$(.*?)^```", text, re.M | re.S).group(1)
    shown = re.findall(r"^(\w+): (.*)$", excerpt, re.M)
    assert len(shown) >= 3
    for group, options in shown:
        listed = ", ".join(sorted(o.stem for o in (CONF_DIR / group).glob("*.yaml")))
        assert options == listed, f"first-run.md's --help excerpt: {group}: {listed}"


@pytest.mark.slow
def test_getting_started_runs_as_written(tmp_path):
    output = run_pages(("getting-started/first-run.md", "getting-started/run-folder.md",
                        "getting-started/first-sweep.md"), tmp_path)
    assert "skipped:" in output  # the sweep's second run skips its finished jobs
    report = tmp_path / "multirun" / "first_sweep" / "report"
    assert len(pd.read_csv(report / "runs.csv")) == 6
    assert "final_eval_accuracy_last_k" in set(pd.read_csv(report / "paired.csv")["metric"])


@pytest.mark.slow
def test_the_study_tutorial_runs_as_written(tmp_path):
    run_pages(("tutorials/study.md",), tmp_path)
    methods = pd.read_csv(tmp_path / "reports" / "algorithms" / "paired.csv")
    assert {"fedavg", "scaffold"} <= set(methods["a"]) | set(methods["b"])
    assert methods["p_holm"].notna().any()  # 3 seeds: intervals and Holm's correction
    assert (tmp_path / "reports" / "default_job" / "paired.csv").exists()


@pytest.mark.slow
def test_the_shakespeare_tutorial_runs_as_written(tmp_path):
    run_pages(("tutorials/shakespeare.md",), tmp_path)
    assert (tmp_path / "reports" / "shakespeare" / "runs.csv").exists()
    assert (tmp_path / "reports" / "shakespeare_central" / "runs.csv").exists()


@pytest.mark.slow
def test_the_privacy_tutorial_runs_as_written(tmp_path):
    output = run_pages(("tutorials/privacy.md",), tmp_path)
    assert "stopping after round 3: privacy budget" in output
    assert "the smallest that keeps epsilon <= 8.0" in output
    assert "dp_epsilon" in pd.read_csv(tmp_path / "reports" / "privacy" / "runs.csv")


def fedlab_overrides(command: str) -> list[str] | None:
    """The overrides of a ``python -m fedlab`` / ``fedlab`` command line (sweeps: the first
    value of each); None for any other command, or one whose overrides the shell computes."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # not a shell command (an apostrophe in a listing)
        return None
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the command
        words.pop(0)
    if words[:2] == ["uv", "run"]:
        words = words[2:]
    if words[:3] == ["python", "-m", "fedlab"]:
        words = words[3:]
    elif words[:1] == ["fedlab"]:
        words = words[1:]
    else:
        return None
    if "$" in command:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, overrides, skip = OverridesParser.create(), [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("--cfg", "-c", "--package", "-p"):
            skip = True
        elif not word.startswith("-"):
            override = parser.parse_override(word)
            if override.is_sweep_override():
                word = f"{word.split('=', 1)[0]}={next(override.sweep_string_iterator())}"
            overrides.append(word)
    return overrides


def test_every_fedlab_command_in_the_docs_composes():
    from hydra import compose, initialize_config_dir

    pages = {str(p.relative_to(REPO)): bash_blocks(str(p.relative_to(DOCS)))
             for p in sorted(DOCS.glob("*/*.md"))}
    pages["README.md"] = re.findall(r"^```\n(.*?)^```", (REPO / "README.md").read_text(),
                                    re.M | re.S)
    composed = 0
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for page, blocks in pages.items():
            for block in blocks:
                for command in block_commands(block):
                    overrides = fedlab_overrides(command)
                    if overrides is None:
                        continue
                    try:
                        compose(config_name="config", overrides=overrides,
                                return_hydra_config=True)
                    except Exception as error:  # noqa: BLE001 - Hydra's several error types
                        pytest.fail(f"{page}: {command}\n{error}")
                    composed += 1
    assert composed >= 40, composed
