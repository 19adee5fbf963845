"""Held-out evaluation of the global model, centrally with Keras.

The held-out test examples are one pooled array (the embedded MNIST test split, or EMNIST's
test clients concatenated), so evaluating centrally gives the exact accuracy over every test
example at a fraction of the cost of a federated evaluation round.
"""

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab import task


class CentralEvaluator:
    """Evaluates model weights on a fixed test set with one compiled Keras model."""

    def __init__(self, keras_model: tf.keras.Model, test_x: np.ndarray, test_y: np.ndarray):
        """Compile ``keras_model`` (a fresh copy of the trained architecture) for evaluation."""
        self._model = keras_model
        self._model.compile(
            loss=task.loss(),
            metrics=task.metrics(),
        )
        self._test = tf.data.Dataset.from_tensor_slices((test_x, test_y)).batch(500).cache()

    @property
    def model(self) -> tf.keras.Model:
        """The Keras model holding the weights of the last evaluation."""
        return self._model

    def evaluate(self, weights: tff.learning.models.ModelWeights) -> dict[str, float]:
        """``eval_loss`` and ``eval_accuracy`` of ``weights`` on the test set."""
        weights.assign_weights_to(self._model)
        result = self._model.evaluate(self._test, verbose=0, return_dict=True)
        return {"eval_loss": float(result["loss"]), "eval_accuracy": float(result[task.ACCURACY])}
