"""The assembler: the only code that reads the composed configuration.

``run(cfg)`` builds everything the configuration names and trains; ``python -m fedlab`` also
asks it whether a run folder already holds the configuration's completed run
(:func:`already_completed`), to launch the executor's worker early
(:func:`launch_executor_early`) and for the sweeper's objective (:func:`objective`). TensorFlow
is imported by ``run`` alone, so the other three answer without it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fedlab.config.schedule import Schedule
from fedlab.errors import ConfigError, FedlabError, Interrupted
from fedlab.runs import provenance
from fedlab.runs.figures import objective_value
from fedlab.runs.files import CLIENT_LABELS_FILE, CLIENT_SIZES_FILE
from fedlab.runs.folder import ensure_writable, validate_schedule
from fedlab.runs.resume import check_resume, completed_with, config_record, save_record
from fedlab.runs.summary import write_summary

if TYPE_CHECKING:
    from fedlab.data import FederatedData

log = logging.getLogger(__name__)

# The configuration a learning process is traced from, the key of its computation cache entry
# (with ``schedule.seed``, the global TF seed while tracing, when the process has random ops:
# see ProcessCache). A new group that shapes the process belongs here.
SHAPING_CONFIG = ("model", "algorithm", "aggregator", "optimizer")


def build(node: DictConfig, what: str, **built):
    """``hydra.utils.instantiate`` with failures turned into one-line fedlab errors.

    ``built``: parts of ``node`` already built, passed as they are.
    """
    try:
        return instantiate(node, **built)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, FedlabError):
            raise cause from None
        reason = str(cause or error).splitlines()[0]
        raise ConfigError(f"cannot build the {what} ({node.get('_target_')}): {reason}") from error


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The configuration ``python -m fedlab OVERRIDES`` would run (Hydra's compose API).

    Args:
      overrides: command-line overrides (``dataset=mnist``, ``schedule.rounds=3``).
    """
    from hydra import compose, initialize_config_dir

    from fedlab.config.schemas import CONF_DIR, register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def already_completed(cfg: DictConfig) -> bool:
    """Whether ``cfg.run_dir`` holds this configuration's completed run (nothing to do)."""
    return completed_with(Path(cfg.run_dir), config_record(cfg))


def objective(cfg: DictConfig) -> float:
    """The configured objective (``cfg.objective``) of the run in ``cfg.run_dir``."""
    return objective_value(Path(cfg.run_dir), cfg.objective.metric,
                           cfg.objective.target_accuracy, cfg.schedule.rounds)


def launch_executor_early(cfg: DictConfig, stack: contextlib.ExitStack):
    """The run's executor, its local worker launched now (it starts while TF is imported).

    ``None`` for a trainer without an executor, or when the executor cannot be built or its
    worker launched: :func:`run` then builds it and reports the problem like any other.

    Args:
      cfg: the composed configuration.
      stack: the worker stays up until this stack closes.
    """
    if "executor" not in cfg.trainer:
        return None
    try:
        executor = instantiate(cfg.trainer.executor)
        if hasattr(executor, "launched"):
            stack.enter_context(executor.launched(Path(cfg.run_dir)))
    except (InstantiationException, FedlabError, OSError):
        return None
    return executor


def load_dataset(node: DictConfig) -> FederatedData:
    """The ``dataset`` config's data: its loader's output, with the validation set carved."""
    from fedlab.data.validation import with_validation

    split_keys = ("validation_fraction", "validation_seed")
    missing = [key for key in split_keys if key not in node]
    if missing:
        raise ConfigError(
            f"the dataset option ({node.get('_target_')}) lacks {', '.join(missing)}: extend the "
            "dataset schema in its defaults list (- /schema/dataset/<option>@_here_, derived for "
            "fedlab's loaders) or set them")
    loader = OmegaConf.create({  # the loader's own arguments (interpolations resolved)
        k: v for k, v in OmegaConf.to_container(node, resolve=True).items()
        if k not in split_keys})
    return with_validation(build(loader, "dataset"), node.validation_fraction,
                           node.validation_seed)


def shaping_config(record: dict) -> dict:
    """The nodes of a resolved configuration ``record`` that shape the learning process."""
    config = OmegaConf.create(record)
    nodes = {key: OmegaConf.select(config, key) for key in SHAPING_CONFIG}
    return {key: OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
            for key, node in nodes.items()}


def run(cfg: DictConfig, executor=None) -> float:
    """Build everything the configuration names, train, and return the final eval accuracy.

    ``executor``: the trainer's executor when the caller built it already (``python -m fedlab``
    launches the local worker before importing TensorFlow); else built from ``cfg``.

    Writes into ``cfg.run_dir``: run_config.yaml, metrics.csv, TensorBoard events,
    checkpoints/, model.keras, summary.json (with the run's provenance) and worker.log.
    Re-running with the same ``run_dir`` and configuration resumes (``schedule.rounds`` may grow);
    another configuration is refused before anything is written. A run that stops on an error
    still gets a summary.json with ``status: failed`` and the message.

    Raises:
      RunFolderConflict: ``run_dir`` holds a run of another configuration (nothing written).
      Interrupted: a signal (SIGTERM) stopped training after a round; the checkpoint and the
        summary (``status: interrupted``) are written.
      FedlabError: bad configuration, missing data, divergence or unusable checkpoints.
    """
    import pandas as pd

    from fedlab.executors.computation_cache import ProcessCache, config_fingerprint
    from fedlab.loggers import mlflow, tensorboard
    from fedlab.tasks import Task

    started = time.perf_counter()
    record = provenance.start_record()
    run_dir = Path(cfg.run_dir)
    ensure_writable(run_dir, private=True)
    if cfg.computation_cache:
        ensure_writable(Path(cfg.computation_cache).expanduser(), "computation cache",
                        key="computation_cache", alternative="computation_cache=null")
    run_config = config_record(cfg)
    check_resume(run_dir, run_config)
    save_record(run_dir, run_config)
    try:
        schedule: Schedule = OmegaConf.to_object(cfg.schedule)
        validate_schedule(schedule)
        if OmegaConf.select(cfg, "privacy_audit.canaries", default=0) and (
                "privacy_audit" not in cfg.trainer):
            raise ConfigError(
                f"privacy_audit.canaries={cfg.privacy_audit.canaries} needs a trainer that inserts "
                f"canaries (trainer=federated); {cfg.trainer._target_} does not")
        trainer = build(cfg.trainer, "trainer",
                        **({} if executor is None else {"executor": executor}))
        data = load_dataset(cfg.dataset)
        log.debug("start-up: data loaded")
        record.update(test_set_sha256=data.test_set_sha256,
                      partition_sha256=data.partition_sha256, test_examples=len(data.test_y),
                      train_examples=(None if data.client_label_counts is None
                                      else int(data.client_label_counts.sum())))
        if data.validation_x is not None:
            record.update(validation_set_sha256=data.validation_set_sha256,
                          validation_examples=len(data.validation_y))
        if data.client_label_counts is not None:
            counts = pd.DataFrame(data.client_label_counts, columns=list(data.class_names))
            counts.insert(0, "client", data.train.client_ids)
            counts.to_csv(run_dir / CLIENT_LABELS_FILE, index=False)
        if data.client_sizes is not None:
            data.client_sizes.to_csv(run_dir / CLIENT_SIZES_FILE, index=False)
        task = Task.for_data(build(cfg.model, "model"), data.input_shape, data.num_classes,
                             data.task, cfg.dataset._target_)
        record.update(held_out_predictions=task.kind.predictions(data.test_y))
        try:
            initial_model = task.keras_model(seed=schedule.seed)
        except ValueError as error:
            reason = next((line.strip() for line in str(error).splitlines()
                           if "Negative dimension" in line), str(error).splitlines()[0])
            raise ConfigError(
                f"model {cfg.model._target_} cannot take inputs of shape {data.input_shape}: "
                f"{reason.split(' for ', 1)[0]}"
            ) from error
        cache = (ProcessCache(Path(cfg.computation_cache).expanduser(),
                              config_fingerprint(shaping_config(run_config)), schedule.seed)
                 if cfg.computation_cache else None)
        figures = trainer.train(task, data, schedule, run_dir, initial_model,
                                process_cache=cache)
    except (KeyboardInterrupt, Exception) as error:
        # A fedlab error, an interruption, or a bug or library failure: leave a record, raise.
        ended = {"provenance": {**record, "ended_at": provenance.now()}}
        if isinstance(error, KeyboardInterrupt):
            ended["status"] = "interrupted"
        else:
            ended.update(status="failed", error=str(error) if isinstance(error, FedlabError)
                         else f"{type(error).__name__}: {error}")
        mlflow.finish(run_dir, write_summary(run_dir, ended))
        raise
    signal_number = figures.pop("interrupted_signal", None)
    failure = figures.pop("failed", None)  # a callback that could not go on (see Callback)
    summary = write_summary(run_dir, {
        "status": ("failed" if failure is not None
                   else "completed" if signal_number is None else "interrupted"),
        **({"error": failure} if failure is not None else {}),
        "num_parameters": int(initial_model.count_params()),
        **figures,
        "wall_seconds_this_invocation": time.perf_counter() - started,
        "provenance": {**record, "ended_at": provenance.now()},
    })
    if cfg.tensorboard:
        tensorboard.write(run_dir, run_config, summary)
    mlflow.finish(run_dir, summary)
    if failure is not None:
        raise ConfigError(f"{failure}; rounds 1-{summary.get('rounds_completed', 0)} are in "
                          f"{run_dir}")
    if signal_number is not None:
        raise Interrupted(f"{summary['stopped_early']}; results so far in {run_dir}; run the "
                          "same command again to resume", signal_number)
    final_accuracy = summary.get("final_eval_accuracy")
    log.info("done: final eval accuracy %s, results in %s", final_accuracy, run_dir)
    return math.nan if final_accuracy is None else float(final_accuracy)
