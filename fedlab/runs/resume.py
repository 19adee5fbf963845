"""Resuming a run folder only with the configuration that started it.

The first invocation writes ``run_config.yaml`` (the resolved configuration) into the run folder.
A later invocation into the same folder continues only when its configuration equals that one,
apart from a larger ``schedule.rounds`` and the keys in ``MAY_CHANGE``, which decide where and
how the run executes, not its numbers. A folder with no finished round may start afresh with any
configuration. Anything else stops with one line naming the differing
keys, before anything in the folder changes. Hydra itself rewrites ``.hydra/`` before a run
starts, so for ``python -m fedlab`` the check also runs as a Hydra callback (:class:`ResumeGuard`)
ahead of that.
"""

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fedlab.errors import RunFolderConflict
from fedlab.runs.files import METRICS_FILE, RUN_CONFIG_FILE, SUMMARY_FILE, SWEEP_RECORD_FILE

# Keys (and everything below them) that may differ between invocations of one run: where and
# how it executes and what it prints, not its numbers.
MAY_CHANGE = ("executor", "computation_cache", "tensorboard", "trainer.tensorboard",
              "callbacks.metrics_release.tensorboard", "callbacks.progress_line",
              "callbacks.preemption", "objective")


REFERENCE = re.compile(r"\$\{([\w.]+)\}")


def config_record(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration of a run, as ``run_config.yaml`` keeps it.

    Without Hydra's node, ``run_dir``, and the nodes that only point at another part of the
    configuration (``trainer.aggregator: ${aggregator}``: recorded there).
    """
    tree = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    for key in ("hydra", "run_dir"):  # run_dir points into Hydra's runtime node
        tree.pop(key, None)
    _drop_node_references(tree, OmegaConf.create(tree))
    return OmegaConf.to_container(OmegaConf.create(tree), resolve=True)


def _drop_node_references(node: dict, root: DictConfig) -> None:
    for key, value in list(node.items()):
        if isinstance(value, dict):
            _drop_node_references(value, root)
        elif isinstance(value, str) and (target := REFERENCE.fullmatch(value)):
            if isinstance(OmegaConf.select(root, target.group(1)), DictConfig):
                del node[key]


def _may_change(key: str) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in MAY_CHANGE)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def rounds_done(run_dir: Path) -> int:
    """The last round ``metrics.csv`` of ``run_dir`` holds (0 without one)."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return 0
    with path.open(newline="") as file:
        return max((int(row["round"]) for row in csv.DictReader(file)), default=0)


def check_resume(run_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to continue ``run_dir`` with a configuration other than the one that started it.

    Raises:
      RunFolderConflict: keys differ (named with old and new values), or ``schedule.rounds`` is
        below the rounds the folder already holds.
    """
    path = run_dir / RUN_CONFIG_FILE
    done = rounds_done(run_dir)
    if not path.exists() or done == 0:
        return  # nothing to continue: the run (re)starts from round 1 with this configuration
    started = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    differences = _differences(started, record, ignore=("schedule.rounds",))
    requested = _flatten(record)
    if differences and _written_before_the_move(started, differences):
        raise RunFolderConflict(
            f"the run folder {run_dir} was written by an older fedlab, before its modules moved "
            "(only builder paths differ and newer keys are added, e.g. " + differences[0] +
            "): it cannot be resumed, though python -m fedlab.report reads it; start a new run "
            "folder")
    if differences:
        raise RunFolderConflict(
            f"the run folder {run_dir} was started with another configuration "
            f"({'; '.join(differences)}); nothing was changed: resume with the original "
            "settings (only schedule.rounds may grow) or choose a new run folder"
        )
    if requested.get("schedule.rounds", 0) < done:
        raise RunFolderConflict(
            f"schedule.rounds={requested['schedule.rounds']} is below the {done} rounds the run "
            f"folder {run_dir} already holds; nothing was changed: ask for at least as many "
            "rounds, or choose a new run folder"
        )


def _written_before_the_move(started: dict, differences: list[str]) -> bool:
    """Whether ``differences`` are only builder paths that no longer exist, and keys added since.

    (A run folder of fedlab before its packages moved: its ``_target_`` paths name modules that
    are gone. A run of another model or algorithm names paths that exist.)
    """
    from fedlab.config.signatures import SignatureError, signature_fields

    old = _flatten(started)
    moved = False
    for difference in differences:
        key = difference.split(":", 1)[0]
        if "'<absent>' ->" in difference:
            continue
        if not key.endswith("_target_") or not str(old.get(key, "")).startswith("fedlab."):
            return False
        try:
            signature_fields(str(old[key]))
            return False  # the old builder still exists: another configuration
        except SignatureError:
            moved = True
    return moved


def _differences(started: dict, requested: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """``key: old -> new`` of every key that differs, apart from ``ignore`` and MAY_CHANGE."""
    started, requested = _flatten(started), _flatten(requested)
    return [
        f"{key}: {started.get(key, '<absent>')!r} -> {requested.get(key, '<absent>')!r}"
        for key in sorted(set(started) | set(requested))
        if key not in ignore and not _may_change(key)
        and started.get(key, "<absent>") != requested.get(key, "<absent>")
    ]


def completed_with(run_dir: Path, record: dict[str, Any]) -> bool:
    """Whether ``run_dir`` holds a run that completed with the configuration ``record``.

    (Its summary says ``completed`` and its ``run_config.yaml`` equals ``record``, the schedule's
    rounds included, up to the keys in MAY_CHANGE.) Such a run has nothing left to do.
    """
    summary, path = run_dir / SUMMARY_FILE, run_dir / RUN_CONFIG_FILE
    try:
        if json.loads(summary.read_text()).get("status") != "completed":
            return False
        started = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OSError, ValueError):
        return False
    return not _differences(started, record)


def sweep_record(config: DictConfig) -> dict[str, Any]:
    """What makes a sweep the same sweep.

    Its jobs' shared configuration, the command line's task overrides (sweeps included) and
    the sweeper's search space.
    """
    return {"config": config_record(config),
            "task_overrides": sorted(OmegaConf.select(config, "hydra.overrides.task") or []),
            "sweeper_params": OmegaConf.to_container(
                OmegaConf.select(config, "hydra.sweeper.params") or OmegaConf.create({}))}


def check_sweep(sweep_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to launch into ``sweep_dir`` when another sweep configuration wrote it.

    Raises:
      RunFolderConflict: the recorded sweep differs (named keys); nothing was changed.
    """
    path = sweep_dir / SWEEP_RECORD_FILE
    if not path.exists():
        return
    started = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    differences = _differences(started.get("config", {}), record["config"],
                               ignore=("schedule.rounds",))
    differences += [f"{key}: {started.get(key)!r} -> {record[key]!r}"
                    for key in ("task_overrides", "sweeper_params")
                    if started.get(key) != record[key]]
    if differences:
        raise RunFolderConflict(
            f"the sweep folder {sweep_dir} was written by another sweep "
            f"({'; '.join(differences)}); nothing was changed: re-run the original command "
            "or choose a new hydra.sweep.dir")


def save_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Keep ``record`` as the configuration of ``run_dir``."""
    (run_dir / RUN_CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(record)))


class ResumeGuard(Callback):
    """Hydra callback: the resume and sweep guards, before Hydra writes anything.

    :func:`check_resume` before a run's folder is written, :func:`check_sweep` before a sweep
    launches into an existing sweep folder.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Stop with one line (exit code 1) when the sweep folder belongs to another sweep.

        Otherwise record this sweep there (and create the folder: Optuna's storage lives in it).
        """
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        record = sweep_record(config)
        try:
            check_sweep(sweep_dir, record)
        except RunFolderConflict as error:
            sys.stderr.write(f"error: {error}\n")
            sys.exit(1)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_RECORD_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(record)))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Stop with one line (exit code 1) when the run folder belongs to another config."""
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        try:
            check_resume(run_dir, config_record(config))
        except RunFolderConflict as error:
            sys.stderr.write(f"error: {error}\n")
            sys.exit(1)
