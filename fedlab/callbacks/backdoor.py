"""The backdoor's success on held-out data: ``backdoor_accuracy`` (``clients.attack=backdoor``)."""

import time

import numpy as np
import tensorflow as tf

from fedlab.attacks.poisoning import add_trigger, trigger_value
from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.callbacks.evaluation import evaluation_due
from fedlab.config.choices import AttackKind


class BackdoorEvaluation(Callback):
    """The share of triggered held-out images the global model classifies as the target.

    Every held-out image whose class is not ``clients.backdoor_target`` gets the trigger
    (:func:`fedlab.attacks.poisoning.add_trigger`); ``backdoor_accuracy`` is the fraction of
    them predicted as the target, every ``every`` rounds and after the last (NaN between), with
    ``backdoor_eval_seconds``. Nothing without a backdoor attack.
    """

    def __init__(self, every: int):
        """Evaluate every ``every`` rounds.

        Args:
          every: evaluate every this many rounds, and after the last round.
        """
        self.every = every
        self._images: tf.data.Dataset | None = None

    def on_train_start(self, context: TrainingContext) -> None:
        """Stamp the trigger on the held-out images not of the target class."""
        attack = context.attack
        if attack is None or attack.kind is not AttackKind.backdoor:
            return
        data = context.data
        others = data.test_x[np.asarray(data.test_y).reshape(-1) != attack.backdoor_target]
        self._images = tf.data.Dataset.from_tensor_slices(
            add_trigger(others, trigger_value(data))).batch(500).cache()
        self._target = attack.backdoor_target
        self._model = context.task.keras_model()

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add ``backdoor_accuracy`` and ``backdoor_eval_seconds`` (NaN between evaluations)."""
        if self._images is None:
            return
        row.update(backdoor_accuracy=np.nan, backdoor_eval_seconds=np.nan)
        if not evaluation_due(self.every, round_num, context):
            return
        started = time.perf_counter()
        context.model_weights().assign_weights_to(self._model)
        predicted = np.argmax(self._model.predict(self._images, verbose=0), axis=-1)
        row.update(backdoor_accuracy=float(np.mean(predicted == self._target)),
                   backdoor_eval_seconds=time.perf_counter() - started)
