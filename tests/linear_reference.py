"""A tiny linear model and NumPy pieces of its training: references for algorithms' tests."""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

FEATURES, CLASSES, BATCH, EPOCHS = 4, 3, 3, 2
# Client SGD at 0.1 and server SGD at 1.0 (a round of one client moves the model by its update).
CLIENT_SGD = tff.learning.optimizers.build_sgdm(learning_rate=0.1)
SERVER_SGD = tff.learning.optimizers.build_sgdm(learning_rate=1.0)
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


def flat(weights) -> np.ndarray:
    """A model's trainable weights, flattened and concatenated."""
    return np.concatenate([np.asarray(w).ravel() for w in weights.trainable])


def one_round(process, data, sampled, flags=None) -> np.ndarray:
    """The flattened model after one round of ``sampled`` clients from the initial state.

    With ``flags``, the process takes each client's flag beside its data (replaced uploads).
    """
    state = process.initialize()
    datasets = client_datasets(data, sampled)
    output = (process.next(state, datasets) if flags is None
              else process.next(state, datasets, flags))
    return flat(process.get_model_weights(output.state))


# The clients each round samples in the stateful algorithms' reference tests.
SAMPLED_ROUNDS = ([0, 1], [1, 2], [0, 3], [1, 3])


def assert_close(ours, theirs):
    """Tensors equal to float32 precision (rtol 1e-5, atol 1e-6), one pair at a time."""
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def compare_stateful_rounds(tmp_path, process, data, weights, reference_round):
    """Run a stateful-clients ``process`` round by round against a NumPy reference.

    Args:
      tmp_path: where the local worker logs.
      process: a ``StatefulClientsProcess`` on :func:`linear_model_fn`.
      data: the clients' ``(x, y)``.
      weights: the initial trainable weights.
      reference_round: ``reference_round(sampled)`` advances the reference by one round and
        returns its model weights, server slot (``state.client_work``) and clients' states.

    Returns:
      The last round's output.
    """
    from fedlab.executors import contexts

    stored = {i: process.initial_client_state() for i in range(len(data))}
    with contexts.local_execution(tmp_path / "worker.log"):
        state = process.set_model_weights(
            process.initialize(),
            tff.learning.models.ModelWeights(trainable=weights, non_trainable=[]))
        for sampled in SAMPLED_ROUNDS:
            output = process.next(state, client_datasets(data, sampled),
                                  [stored[i] for i in sampled])
            state = output.state
            for i, new in zip(sampled, output.client_states, strict=True):
                stored[i] = [np.asarray(t) for t in new]
            expected_weights, expected_slot, expected_clients = reference_round(sampled)
            assert_close(process.get_model_weights(state).trainable, expected_weights)
            assert_close(state.client_work, expected_slot)
            for i, expected in expected_clients.items():
                assert_close(stored[i], expected)
    return output
