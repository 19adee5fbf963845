"""What a task kind is: the loss, metrics and per-example scores every model of the kind uses."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

# The name of the one metric every task reports (``train_accuracy``, ``eval_accuracy``, ...).
ACCURACY = "accuracy"


@dataclass(frozen=True)
class TaskKind:
    """A kind of learning task: its loss, its metrics and how one example is scored.

    ``name`` is what a data set declares (``FederatedData.task``) and a model builder accepts
    (its ``task_kinds``); ``what`` says it in words, for errors. ``loss(reduction)`` builds the
    Keras loss on the model's logits; ``metrics()`` the Keras metrics, the first named
    ``ACCURACY``; ``example_scores(y, logits)`` gives per example its loss, its correct
    predictions and how many predictions count (1 for a label, the non-pad tokens of a
    sequence), for client-level evaluation; ``predictions(y)`` how many predictions the
    targets ``y`` ask for (the sampling error of an accuracy is over these).
    """

    name: str
    what: str
    loss: Callable[..., tf.keras.losses.Loss]
    metrics: Callable[[], list[tf.keras.metrics.Metric]]
    example_scores: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
    predictions: Callable[[np.ndarray], int]
