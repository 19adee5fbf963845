"""The run's hyperparameters for TensorBoard's HParams dashboard.

Each run folder gets a session with every scalar setting of its resolved configuration
(``schedule.rounds``, ``optimizer.client.learning_rate``, ``aggregator._target_`` ...); the
dashboard takes the metrics from the scalars already logged per round (``eval_accuracy``,
``train_loss`` ...), so ``tensorboard --logdir multirun/<sweep>`` compares a sweep's runs.
"""

from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp


def flat_settings(record: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Every scalar of a nested configuration record, keyed by its dotted path (None skipped)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[f"{prefix}{key}"] = str(value)
        elif isinstance(value, bool | int | float | str):
            flat[f"{prefix}{key}"] = value
    return flat


def write(run_dir: Path, record: dict[str, Any], summary: dict[str, Any]) -> None:
    """Log ``record``'s settings as the run's HParams session (trial id: the run folder)."""
    settings = flat_settings(record)
    settings["status"] = str(summary.get("status"))
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        hp.hparams(settings, trial_id=str(run_dir))
    writer.close()
