"""The learning task every training and evaluation path shares: one loss, one metric.

Models output logits and the loss is computed from them, exactly, by TFF's client training, the
held-out evaluation and ``mode=central`` alike. (With a softmax output, Keras' own ``evaluate``
silently takes the softmax's input as logits, while TFF's training clips the probabilities to
[1e-7, 1 - 1e-7]: the two losses of one model then disagree as soon as it is confident and
wrong, by orders of magnitude once it diverges.)
"""

import tensorflow as tf

ACCURACY = "accuracy"


def loss() -> tf.keras.losses.Loss:
    """Sparse categorical cross-entropy on logits, averaged over examples."""
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def metrics() -> list[tf.keras.metrics.Metric]:
    """The metrics reported for training and held-out data, keyed ``ACCURACY``."""
    return [tf.keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)]
