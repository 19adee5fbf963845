"""SCAFFOLD (Karimireddy et al. 2020, option II), composed from TFF's templates.

Round, with server model ``x``, server control variate ``c`` and client control variates
``c_i`` (kept by each client between the rounds it is sampled in, zero before its first):

- the server broadcasts ``x`` and ``c`` (TFF's broadcast distributor and ``federated_broadcast``);
- client ``i`` starts at ``y = x`` and takes its ``K`` local steps
  ``y <- y - lr_l (g_i(y) - c_i + c)`` (the client optimizer: plain SGD, learning rate
  ``lr_l`` = ``optimizer.client.learning_rate``), then sets
  ``c_i+ = c_i - c + (x - y) / (K lr_l)`` and uploads ``x - y`` and ``c_i+ - c_i``;
- the server aggregates ``x - y`` with the configured aggregator (example-weighted, as FedAvg)
  and applies it with the server optimizer (TFF's apply-optimizer finalizer: SGD at
  ``optimizer.server.learning_rate`` is the paper's global step size ``lr_g``), and sets
  ``c <- c + (1/N) sum_i (c_i+ - c_i)`` over the ``N`` clients of the federation.

A client uploads two model-sized values, so twice FedAvg's bits; ``fedlab.clients.communication``
reads both from the computation. The per-client ``c_i`` live in fedlab's client-state store
(:mod:`fedlab.clients.states`), handed to the round as a CLIENTS-placed input and returned as a
CLIENTS-placed output.
"""


import tensorflow as tf
import tensorflow_federated as tff

from fedlab.algorithms.base import (
    DEFAULT_LOOP,
    Aggregator,
    IncompatibleAggregator,
    ModelFn,
    Optimizer,
    StatefulClientsAlgorithm,
    is_unweighted,
    model_weights_accessors,
)
from fedlab.algorithms.parts import round_parts
from fedlab.clients.states import StatefulClientsProcess, StatefulOutput
from fedlab.errors import ConfigError
from fedlab.optimizers.pair import learning_rate


def _client_update_fn(model_fn: ModelFn, client_optimizer: Optimizer, local_lr: float):
    """The client's SCAFFOLD update as a ``tf.function`` (built inside a TFF computation)."""
    model = model_fn()

    @tf.function
    def client_update(initial_weights, data, server_control, client_control):
        weights = tff.learning.models.ModelWeights.from_model(model)
        tf.nest.map_structure(lambda v, t: v.assign(t), weights, initial_weights)
        trainable = tuple(tf.nest.flatten(weights.trainable))
        correction = tuple(c - ci for c, ci in zip(server_control, client_control, strict=True))
        specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in trainable)
        optimizer_state = client_optimizer.initialize(specs)
        steps = tf.constant(0, tf.int64)
        examples = tf.constant(0, tf.int64)
        for batch in iter(data):
            with tf.GradientTape() as tape:
                output = model.forward_pass(batch, training=True)
            gradients = tape.gradient(output.loss, trainable)
            corrected = tuple(g + k for g, k in zip(gradients, correction, strict=True))
            optimizer_state, updated = client_optimizer.next(optimizer_state, trainable,
                                                             corrected)
            for variable, value in zip(trainable, updated, strict=True):
                variable.assign(value)
            steps += 1
            examples += tf.cast(output.num_examples, tf.int64)
        initial = tuple(tf.nest.flatten(initial_weights.trainable))
        update = tuple(a - b for a, b in zip(initial, trainable, strict=True))  # x - y
        scale = 1.0 / (tf.cast(tf.maximum(steps, 1), tf.float32) * local_lr)
        # Option II: c_i+ = c_i - c + (x - y) / (K lr_l); no step leaves c_i as it was.
        new_control = tuple(
            tf.where(steps > 0, ci - c + u * scale, ci)
            for ci, c, u in zip(client_control, server_control, update, strict=True))
        control_delta = tuple(n - ci for n, ci in zip(new_control, client_control, strict=True))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(u))
                                for u in update + control_delta])
        # As TFF's FedAvg: a non-finite client contributes nothing (zero update and weight).
        update = tuple(tf.where(finite, u, tf.zeros_like(u)) for u in update)
        control_delta = tuple(tf.where(finite, d, tf.zeros_like(d)) for d in control_delta)
        new_control = tuple(tf.where(finite, n, ci) for n, ci in
                            zip(new_control, client_control, strict=True))
        weight = tf.where(finite, tf.cast(examples, tf.float32), 0.0)
        result = tff.learning.templates.ClientResult(
            update=tf.nest.pack_sequence_as(initial_weights.trainable, update),
            update_weight=weight)
        return result, control_delta, new_control, model.report_local_unfinalized_metrics()

    return client_update


class Scaffold(StatefulClientsAlgorithm):
    """SCAFFOLD, option II (Karimireddy et al. 2020): local steps corrected by control variates.

    Its step sizes are the ``optimizer`` group's: ``optimizer.client.learning_rate`` (local,
    plain SGD) and ``optimizer.server.learning_rate`` (global). Example-weighted aggregators
    only: a uniformly weighted (DP) aggregator clips and noises one update per client, which
    the control variates would bypass.
    """

    name = "scaffold"

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP, num_clients: int = 0,
              ) -> StatefulClientsProcess:
        """SCAFFOLD for a federation of ``num_clients`` clients.

        Raises:
          IncompatibleAggregator: a uniformly weighted (DP) aggregator.
          ConfigError: a client optimizer with momentum (option II assumes plain SGD).
        """
        del loop  # the client loop iterates the dataset (TFF's DATASET_ITERATOR)
        if num_clients < 1:
            raise ValueError(f"SCAFFOLD needs the federation's size, got {num_clients}")
        if is_unweighted(aggregator):
            raise IncompatibleAggregator(
                "its control variates would reach the server outside the uniformly weighted "
                "(DP) aggregator's clipping and noise, which account for one update per client")
        hparams = client_optimizer.get_hparams(
            client_optimizer.initialize(tf.TensorSpec([], tf.float32)))
        if hparams.get("momentum"):
            raise ConfigError(
                f"algorithm=scaffold takes plain client SGD (option II divides by the local "
                f"learning rate), got optimizer.client.momentum={hparams['momentum']}")
        local_lr = learning_rate(client_optimizer)

        parts = round_parts(model_fn, aggregator, server_optimizer)
        control_type = parts.trainable_type

        @tff.tensorflow.computation(parts.weights_type, parts.data_type, control_type,
                                    control_type)
        def client_update(weights, data, server_control, client_control):
            update = _client_update_fn(model_fn, client_optimizer, local_lr)
            return update(weights, data, server_control, client_control)

        @tff.tensorflow.computation(control_type, control_type)
        def server_control_update(control, delta_sum):
            return tuple(c + d / float(num_clients) for c, d in zip(control, delta_sum,
                                                                     strict=True))

        state_type = parts.initialize.type_signature.result

        @tff.federated_computation(state_type, tff.FederatedType(parts.data_type, tff.CLIENTS),
                                   tff.FederatedType(control_type, tff.CLIENTS))
        def next_fn(state, client_data, client_controls):
            distributed = parts.distributor.next(state.distributor, state.global_model_weights)
            server_control = tff.federated_broadcast(state.client_work)
            result, control_delta, new_controls, outputs = tff.federated_map(
                client_update, (distributed.result, client_data, server_control,
                                client_controls))
            aggregated = parts.aggregate(state.aggregator, result.update, result.update_weight)
            control = tff.federated_map(server_control_update,
                                        (state.client_work, tff.federated_sum(control_delta)))
            finalized = parts.finalizer.next(state.finalizer, state.global_model_weights,
                                             aggregated.result)
            new_state = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
                finalized.result, distributed.state, control, aggregated.state,
                finalized.state))
            return StatefulOutput(new_state, parts.metrics(distributed, outputs, aggregated,
                                                           finalized), new_controls)

        get_model_weights, set_model_weights = model_weights_accessors(state_type.member)
        return StatefulClientsProcess(parts.initialize, next_fn, get_model_weights,
                                      set_model_weights, parts.initial_client_state)
