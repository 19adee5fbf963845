"""FedDyn (Acar et al. 2021, "Federated Learning Based on Dynamic Regularization").

Round ``t``, with server model ``θ``, server state ``h`` and each client's state ``g_i`` (the
gradient of its last local objective, kept between the rounds it is sampled in, zero before its
first), with ``α`` = ``algorithm.alpha``:

- the server broadcasts ``θ``;
- client ``i`` starts at ``θ_i = θ`` and takes its local steps (the client optimizer) on its
  dynamically regularized objective ``L_i(θ_i) - <g_i, θ_i> + α/2 ||θ_i - θ||²``, whose gradient
  is ``∇L_i(θ_i) - g_i + α (θ_i - θ)``; then sets ``g_i <- g_i - α (θ_i - θ)`` and uploads
  ``θ - θ_i``;
- the server takes the mean ``u`` of the uploads over the round's ``P`` clients (the configured
  aggregator, each client weighted 1 as in the paper), sets ``h <- h + α (P / N) u`` over the
  ``N`` clients of the federation (the paper's ``h - α/N Σ (θ_i - θ)``), and applies
  ``u + h / α`` with the server optimizer, so that with SGD at rate 1 (the default
  ``optimizer.server.learning_rate``) ``θ <- mean_i θ_i - h / α``: the paper's update.

A client uploads one model-sized value, as FedAvg, and a 32-bit count (``P``). The ``g_i``
live in fedlab's client-state store (:mod:`fedlab.clients.states`), saved with every checkpoint.
"""


import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.algorithms.base import (
    DEFAULT_LOOP,
    Aggregator,
    ModelFn,
    Optimizer,
    StatefulClientsAlgorithm,
    model_weights_accessors,
)
from fedlab.algorithms.parts import round_parts
from fedlab.clients.states import StatefulClientsProcess, StatefulOutput
from fedlab.errors import ConfigError


def _client_update_fn(model_fn: ModelFn, client_optimizer: Optimizer, alpha: float):
    """The client's FedDyn update as a ``tf.function`` (built inside a TFF computation)."""
    model = model_fn()

    @tf.function
    def client_update(initial_weights, data, gradient_state):
        weights = tff.learning.models.ModelWeights.from_model(model)
        tf.nest.map_structure(lambda v, t: v.assign(t), weights, initial_weights)
        trainable = tuple(tf.nest.flatten(weights.trainable))
        initial = tuple(tf.nest.flatten(initial_weights.trainable))
        specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in trainable)
        optimizer_state = client_optimizer.initialize(specs)
        examples = tf.constant(0, tf.int64)
        for batch in iter(data):
            with tf.GradientTape() as tape:
                output = model.forward_pass(batch, training=True)
            gradients = tape.gradient(output.loss, trainable)
            regularized = tuple(g - gi + alpha * (v - v0) for g, gi, v, v0 in zip(
                gradients, gradient_state, trainable, initial, strict=True))
            optimizer_state, updated = client_optimizer.next(optimizer_state, trainable,
                                                             regularized)
            for variable, value in zip(trainable, updated, strict=True):
                variable.assign(value)
            examples += tf.cast(output.num_examples, tf.int64)
        update = tuple(a - b for a, b in zip(initial, trainable, strict=True))  # θ - θ_i
        # g_i <- g_i - α (θ_i - θ) = g_i + α (θ - θ_i)
        new_state = tuple(gi + alpha * u for gi, u in zip(gradient_state, update, strict=True))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in update + new_state])
        # As TFF's FedAvg: a non-finite client contributes nothing and keeps its state.
        update = tuple(tf.where(finite, u, tf.zeros_like(u)) for u in update)
        new_state = tuple(tf.where(finite, n, gi)
                          for n, gi in zip(new_state, gradient_state, strict=True))
        weight = tf.where(finite, 1.0, 0.0)
        result = tff.learning.templates.ClientResult(
            update=tf.nest.pack_sequence_as(initial_weights.trainable, update),
            update_weight=weight)
        return result, new_state, model.report_local_unfinalized_metrics()

    return client_update


class FedDyn(StatefulClientsAlgorithm):
    """FedDyn: local objectives dynamically regularized toward the server model (``alpha``).

    Its step sizes are the ``optimizer`` group's (the client optimizer takes the local steps;
    server SGD at rate 1 is the paper's server update). Any aggregator: clients are weighted
    uniformly (example weight 1; a uniformly weighted DP aggregator takes the update alone).
    """

    name = "feddyn"

    def __init__(self, alpha: float = 0.01):
        """The regularizer's weight.

        Args:
          alpha: the weight of the dynamic regularizer (> 0): each client's objective adds
            alpha/2 ||w - w_t||^2 and the server applies the mean update plus h/alpha.

        Raises:
          ConfigError: ``alpha`` <= 0 (the server update divides by it).
        """
        if not alpha > 0:
            raise ConfigError(f"algorithm.alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP, num_clients: int = 0,
              ) -> StatefulClientsProcess:
        """FedDyn for a federation of ``num_clients`` clients (see the module docstring).

        Raises:
          ValueError: ``num_clients`` < 1.
        """
        del loop  # the client loop iterates the dataset (TFF's DATASET_ITERATOR)
        if num_clients < 1:
            raise ValueError(f"FedDyn needs the federation's size, got {num_clients}")
        alpha = self.alpha
        parts = round_parts(model_fn, aggregator, server_optimizer)
        state_type, update_type = parts.trainable_type, parts.weights_type.trainable

        @tff.tensorflow.computation(parts.weights_type, parts.data_type, state_type)
        def client_update(weights, data, gradient_state):
            return _client_update_fn(model_fn, client_optimizer, alpha)(
                weights, data, gradient_state)

        @tff.tensorflow.computation(state_type, update_type, np.float32)
        def server_update(h, mean_update, participants):
            # h <- h + α (P / N) u; the finalizer then applies u + h / α.
            share = alpha * participants / float(num_clients)
            flat = tuple(tf.nest.flatten(mean_update))
            new_h = tuple(hk + share * uk for hk, uk in zip(h, flat, strict=True))
            step = tuple(uk + hk / alpha for uk, hk in zip(flat, new_h, strict=True))
            return new_h, tf.nest.pack_sequence_as(mean_update, step)

        server_state_type = parts.initialize.type_signature.result

        @tff.federated_computation(server_state_type,
                                   tff.FederatedType(parts.data_type, tff.CLIENTS),
                                   tff.FederatedType(state_type, tff.CLIENTS))
        def next_fn(state, client_data, gradient_states):
            distributed = parts.distributor.next(state.distributor, state.global_model_weights)
            result, new_states, outputs = tff.federated_map(
                client_update, (distributed.result, client_data, gradient_states))
            aggregated = parts.aggregate(state.aggregator, result.update, result.update_weight)
            participants = tff.federated_sum(result.update_weight)
            h, step = tff.federated_map(server_update,
                                        (state.client_work, aggregated.result, participants))
            finalized = parts.finalizer.next(state.finalizer, state.global_model_weights, step)
            new_state = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
                finalized.result, distributed.state, h, aggregated.state, finalized.state))
            return StatefulOutput(new_state, parts.metrics(distributed, outputs, aggregated,
                                                           finalized), new_states)

        get_model_weights, set_model_weights = model_weights_accessors(server_state_type.member)
        return StatefulClientsProcess(parts.initialize, next_fn, get_model_weights,
                                      set_model_weights, parts.initial_client_state)
