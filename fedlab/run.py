"""``run(cfg)``: the one function that reads the composed configuration."""

import json
import logging
import math
import time
from pathlib import Path

import pandas as pd
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fedlab import central, comms, federated, optimizers, provenance, runtime
from fedlab.checkpoints import Checkpointer
from fedlab.data import FederatedData
from fedlab.errors import ConfigError, FedlabError
from fedlab.evaluation import CentralEvaluator
from fedlab.preflight import ensure_writable, validate_schedule
from fedlab.resume import check_resume, config_record, save_record
from fedlab.schedule import Schedule
from fedlab.training import METRICS_FILE, MetricsSink, RoundClients, train

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.keras"
WORKER_LOG = "worker.log"
CLIENT_LABELS_FILE = "client_labels.csv"


def build(node: DictConfig, what: str):
    """``hydra.utils.instantiate`` with failures turned into one-line fedlab errors."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, FedlabError):
            raise cause from None
        reason = str(cause or error).splitlines()[0]
        raise ConfigError(f"cannot build the {what} ({node.get('_target_')}): {reason}") from error


def write_summary(run_dir: Path, extra: dict) -> dict:
    """Summarise ``metrics.csv`` (final and best figures) plus ``extra`` into summary.json."""
    summary = dict(extra)
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.exists():
        metrics = pd.read_csv(metrics_path)
        if len(metrics):
            last = metrics.iloc[-1]
            evaluated = metrics.dropna(subset=["eval_accuracy"])
            summary.update(
                rounds_completed=int(last["round"]),
                final_train_loss=float(last["train_loss"]),
                final_train_accuracy=float(last["train_accuracy"]),
                final_eval_loss=float(evaluated["eval_loss"].iloc[-1]) if len(evaluated) else None,
                final_eval_accuracy=(
                    float(evaluated["eval_accuracy"].iloc[-1]) if len(evaluated) else None
                ),
                best_eval_accuracy=(
                    float(evaluated["eval_accuracy"].max()) if len(evaluated) else None
                ),
                bits_up_total=int(last["bits_up_cumulative"]),
                bits_down_total=int(last["bits_down_cumulative"]),
                bits_up_per_client_per_round=int(last["bits_up_per_client"]),
                bits_down_per_client_per_round=int(last["bits_down_per_client"]),
                training_seconds=float(metrics["round_seconds"].sum()),
                evaluation_seconds=float(metrics.get("eval_seconds", pd.Series(dtype=float)).sum()),
            )
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(cfg: DictConfig) -> float:
    """Build everything the configuration names, train, and return the final eval accuracy.

    Writes into ``cfg.run_dir``: run_config.yaml, metrics.csv, TensorBoard events,
    checkpoints/, model.keras, summary.json (with the run's provenance) and worker.log.
    Re-running with the same ``run_dir`` and configuration resumes (``schedule.rounds`` may grow);
    another configuration is refused before anything is written. A run that stops on an error
    still gets a summary.json with ``status: failed`` and the message.

    Raises:
      RunFolderConflict: ``run_dir`` holds a run of another configuration (nothing written).
      FedlabError: bad configuration, missing data, divergence or unusable checkpoints.
    """
    started = time.perf_counter()
    record = provenance.start_record()
    run_dir = Path(cfg.run_dir)
    ensure_writable(run_dir)
    run_config = config_record(cfg)
    check_resume(run_dir, run_config)
    save_record(run_dir, run_config)
    try:
        schedule: Schedule = OmegaConf.to_object(cfg.schedule)
        validate_schedule(schedule)
        if cfg.mode not in ("federated", "central"):
            raise ConfigError(f"mode must be 'federated' or 'central', got {cfg.mode!r}")
        if cfg.executor.kind not in ("local", "remote"):
            raise ConfigError(
                f"executor.kind must be 'local' or 'remote', got {cfg.executor.kind!r}")
        if cfg.executor.concurrent_calls < -1:
            raise ConfigError(
                "executor.concurrent_calls must be -1 (no limit), 0 (one per CPU core) or a "
                f"positive count, got {cfg.executor.concurrent_calls}")
        return _build_and_train(cfg, schedule, run_dir, started, record)
    except FedlabError as error:
        write_summary(run_dir, {"status": "failed", "error": str(error),
                                "provenance": {**record, "ended_at": provenance.now()}})
        raise
    except KeyboardInterrupt:
        write_summary(run_dir, {"status": "interrupted",
                                "provenance": {**record, "ended_at": provenance.now()}})
        raise


def _build_and_train(cfg: DictConfig, schedule: Schedule, run_dir: Path, started: float,
                     record: dict) -> float:
    data: FederatedData = build(cfg.dataset, "dataset")
    record.update(test_set_sha256=data.test_set_sha256, partition_sha256=data.partition_sha256)
    if cfg.mode == "federated" and schedule.clients_per_round > data.num_clients:
        raise ConfigError(
            f"schedule.clients_per_round={schedule.clients_per_round} exceeds the "
            f"{data.num_clients} clients of the dataset"
        )
    if data.client_label_counts is not None:
        counts = pd.DataFrame(data.client_label_counts, columns=list(data.class_names))
        counts.insert(0, "client", data.train.client_ids)
        counts.to_csv(run_dir / CLIENT_LABELS_FILE, index=False)
    model_builder = build(cfg.model, "model")
    try:
        initial_model = federated.seeded_keras_model(
            model_builder, data.input_shape, data.num_classes, seed=schedule.seed
        )
    except ValueError as error:
        reason = next((line.strip() for line in str(error).splitlines()
                       if "Negative dimension" in line), str(error).splitlines()[0])
        raise ConfigError(
            f"model {cfg.model._target_} cannot take inputs of shape {data.input_shape}: "
            f"{reason.split(' for ', 1)[0]}"
        ) from error

    if cfg.mode == "central":
        outcome = central.train_central(
            initial_model, data, build(cfg.central, "central optimizer"), epochs=schedule.rounds,
            batch_size=schedule.batch_size, seed=schedule.seed,
            sink=MetricsSink(run_dir, tensorboard=cfg.tensorboard),
        )
        outcome.save(run_dir / MODEL_FILE)
        return _finish(run_dir, initial_model, started, rounds_trained=schedule.rounds,
                       checkpoint_seconds=[], record=record)
    def preprocess(dataset, shuffle_seed):
        return federated.client_dataset(
            dataset, local_epochs=schedule.local_epochs, batch_size=schedule.batch_size,
            shuffle_buffer=data.shuffle_buffer, seed=shuffle_seed,
        )

    round_clients = RoundClients(
        data.train, preprocess, schedule.clients_per_round, seed=schedule.seed
    )
    input_spec = preprocess(data.train.create_tf_dataset_for_client(data.train.client_ids[0]),
                            0).element_spec
    process = federated.build_fedavg(
        model_builder, data.input_shape, data.num_classes, input_spec,
        aggregator=build(cfg.aggregator, "aggregator"),
        client_optimizer=build(cfg.optimizer.client, "client optimizer"),
        server_optimizer=optimizers.with_round_schedule(
            build(cfg.optimizer.server, "server optimizer"), cfg.optimizer.server.learning_rate,
            cfg.optimizer.server_schedule, cfg.optimizer.server_decay,
        ),
    )
    communication = comms.measure_round_communication(process.next)
    evaluator = CentralEvaluator(
        model_builder(data.input_shape, data.num_classes), data.test_x, data.test_y
    )
    log.info(
        "%s on %s: %d clients (%d per round), %d parameters, %.2f MB down / %.2f MB up per "
        "client per round",
        initial_model.name, cfg.dataset._target_.rsplit(".", 1)[-1],
        data.num_clients, schedule.clients_per_round, initial_model.count_params(),
        communication.broadcast_bits_per_client / 8e6, communication.upload_bits_per_client / 8e6,
    )
    if cfg.executor.kind == "local":
        execution = runtime.local_execution(run_dir / WORKER_LOG, cfg.executor.concurrent_calls)
    else:
        execution = runtime.remote_execution(list(cfg.executor.targets),
                                             cfg.executor.connect_timeout_seconds)
    with execution:
        outcome = train(
            process,
            federated.keras_model_weights(initial_model),
            round_clients,
            schedule,
            evaluator,
            communication,
            Checkpointer(run_dir / "checkpoints", keep=schedule.keep_checkpoints),
            MetricsSink(run_dir, tensorboard=cfg.tensorboard),
        )
        final_weights = process.get_model_weights(outcome.state)
    final_weights.assign_weights_to(evaluator.model)
    evaluator.model.save(run_dir / MODEL_FILE)
    return _finish(run_dir, initial_model, started, outcome.rounds_trained,
                   outcome.checkpoint_seconds, record)


def _finish(run_dir: Path, initial_model, started: float, rounds_trained: int,
            checkpoint_seconds: list[float], record: dict) -> float:
    """Write summary.json and return the final eval accuracy (NaN if never evaluated)."""
    summary = write_summary(
        run_dir,
        {
            "status": "completed",
            "num_parameters": int(initial_model.count_params()),
            "rounds_trained_this_invocation": rounds_trained,
            "checkpoint_seconds_mean": (
                sum(checkpoint_seconds) / len(checkpoint_seconds) if checkpoint_seconds else None
            ),
            "wall_seconds_this_invocation": time.perf_counter() - started,
            "provenance": {**record, "ended_at": provenance.now()},
        },
    )
    final_accuracy = summary.get("final_eval_accuracy")
    log.info("done: final eval accuracy %s, results in %s", final_accuracy, run_dir)
    return math.nan if final_accuracy is None else float(final_accuracy)
