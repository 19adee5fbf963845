"""A tiny linear model and NumPy pieces of its training: references for algorithms' tests."""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

FEATURES, CLASSES, BATCH, EPOCHS = 4, 3, 3, 2
SPEC = collections.OrderedDict(x=tf.TensorSpec([None, FEATURES], tf.float32),
                               y=tf.TensorSpec([None], tf.int32))


def linear_model_fn():
    keras_model = tf.keras.Sequential([tf.keras.layers.Dense(CLASSES, input_shape=(FEATURES,))])
    return tff.learning.models.from_keras_model(
        keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=SPEC, metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def clients(count=4, examples=6, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(examples, FEATURES)).astype(np.float32),
             rng.integers(0, CLASSES, size=examples).astype(np.int32)) for _ in range(count)]


def batches(x, y):
    """The client's batches in order, EPOCHS times: what the TFF dataset yields."""
    return [(x[s:s + BATCH], y[s:s + BATCH]) for _ in range(EPOCHS)
            for s in range(0, len(x), BATCH)]


def gradient(kernel, bias, x, y):
    """Mean softmax cross-entropy's gradient for logits x @ kernel + bias."""
    logits = x @ kernel + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return x.T @ p / len(y), p.mean(axis=0)


def client_datasets(data, sampled):
    """The sampled clients' TFF datasets: batches of BATCH, repeated EPOCHS times."""
    return [tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(x=data[i][0], y=data[i][1])).batch(BATCH).repeat(EPOCHS)
        for i in sampled]
