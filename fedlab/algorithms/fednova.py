"""FedNova (Wang et al. 2020) as NIID-Bench runs it: normalized averaging of local updates.

The paper: "Tackling the Objective Inconsistency Problem in Heterogeneous Federated
Optimization"; NIID-Bench's code: ``experiments.py``, ``train_net_fednova`` and the ``fednova``
branch of its main loop.

Round ``t``, server model ``θ``, each sampled client ``i`` with ``n_i`` examples:

- the server broadcasts ``θ``;
- client ``i`` starts at ``θ_i = θ`` and takes ``τ_i`` local steps of the client optimizer, SGD
  with momentum ``ρ`` (``optimizer.client.momentum``; none: ``ρ = 0``), its momentum buffer
  zero at the start of every round (NIID-Bench builds a new ``optim.SGD`` per client per round);
  ``τ_i`` counts the batches it actually trained on (local epochs x batches; fewer if its
  work is cut short), so clients of different sizes take different numbers of steps;
- it computes ``a_i = (τ_i - ρ (1 - ρ^τ_i) / (1 - ρ)) / (1 - ρ)`` (``a_i = τ_i`` without
  momentum: the l1 norm of the paper's momentum-SGD vector ``a_i``) and uploads the normalized
  update ``d_i = (θ - θ_i) / a_i`` with the weight ``n_i`` (the examples it trained on: local
  epochs x its examples), and ``a_i``;
- the server takes ``mean_d = Σ n_i d_i / Σ n_i`` with the configured aggregator and the
  coefficient ``Σ n_i a_i / Σ n_i`` with a plain weighted mean (``tff.federated_mean``), and
  applies ``coefficient · mean_d`` with the server optimizer: server SGD at learning rate 1
  (``optimizer.server.learning_rate``, fedlab's default) is NIID-Bench's
  ``θ <- θ - coefficient · mean_d``.

Differences from NIID-Bench: it weights clients by ``len(train_dataloader)``, the number of
batches of one local epoch (``ceil(n_i / B)``), fedlab by examples (the paper's ``p_i = n_i /
n``); the two agree up to the last partial batch. Its SGD adds weight decay 1e-5 (``--reg``),
fedlab's client optimizer has none.

A client uploads the model-sized ``d_i``, as FedAvg does, plus ``a_i`` and its weight for the
coefficient (64 bits). No client keeps state: the process is TFF's ``LearningProcess`` (cached
like TFF's own). A uniformly weighted (DP) aggregator is refused: the server step scales by
the clients' ``a_i``, their step counts (so their data sizes), which the DP aggregator's
clipping and noise would not cover.
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.algorithms.base import (
    DEFAULT_LOOP,
    Aggregator,
    Algorithm,
    IncompatibleAggregator,
    ModelFn,
    Optimizer,
    is_unweighted,
    model_weights_accessors,
)
from fedlab.errors import ConfigError


def client_momentum(client_optimizer: Optimizer) -> float:
    """The momentum ``ρ`` of an SGD client optimizer (0 without momentum).

    Raises:
      ConfigError: the client optimizer is not TFF's SGD (``build_sgdm``): FedNova's ``a_i``
        is written for (momentum) SGD.
    """
    hparams = client_optimizer.get_hparams(client_optimizer.initialize(()))
    if not set(hparams) <= {"learning_rate", "momentum"}:
        raise ConfigError(
            "algorithm fednova needs an SGD client optimizer (tff.learning.optimizers."
            f"build_sgdm, with or without momentum); this one has {sorted(hparams)}")
    return float(hparams.get("momentum", 0.0))


def normalizing_factor(steps: tf.Tensor, momentum: float) -> tf.Tensor:
    """``a_i`` of ``steps`` local steps of SGD with ``momentum`` ρ (float32).

    ``(τ - ρ (1 - ρ^τ) / (1 - ρ)) / (1 - ρ)``; ``τ`` when ``ρ = 0``.
    """
    tau = tf.cast(steps, tf.float32)
    if momentum == 0:
        return tau
    rho = tf.constant(momentum, tf.float32)
    return (tau - rho * (1.0 - tf.pow(rho, tau)) / (1.0 - rho)) / (1.0 - rho)


def _client_update_fn(model_fn: ModelFn, client_optimizer: Optimizer, momentum: float):
    """The client's FedNova update as a ``tf.function`` (built inside a TFF computation)."""
    model = model_fn()

    @tf.function
    def client_update(initial_weights, data):
        weights = tff.learning.models.ModelWeights.from_model(model)
        tf.nest.map_structure(lambda v, t: v.assign(t), weights, initial_weights)
        trainable = tuple(tf.nest.flatten(weights.trainable))
        initial = tuple(tf.nest.flatten(initial_weights.trainable))
        specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in trainable)
        optimizer_state = client_optimizer.initialize(specs)
        examples = tf.constant(0, tf.int64)
        steps = tf.constant(0, tf.int64)
        for batch in iter(data):
            with tf.GradientTape() as tape:
                output = model.forward_pass(batch, training=True)
            gradients = tape.gradient(output.loss, trainable)
            optimizer_state, updated = client_optimizer.next(optimizer_state, trainable,
                                                             gradients)
            for variable, value in zip(trainable, updated, strict=True):
                variable.assign(value)
            examples += tf.cast(output.num_examples, tf.int64)
            steps += 1
        factor = normalizing_factor(steps, momentum)
        # d_i = (θ - θ_i) / a_i (zero for a client that took no step).
        normalized = tuple(tf.math.divide_no_nan(a - b, factor)
                           for a, b in zip(initial, trainable, strict=True))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in normalized])
        # As TFF's FedAvg: a non-finite client contributes nothing.
        normalized = tuple(tf.where(finite, d, tf.zeros_like(d)) for d in normalized)
        weight = tf.where(finite, tf.cast(examples, tf.float32), 0.0)
        result = tff.learning.templates.ClientResult(
            update=tf.nest.pack_sequence_as(initial_weights.trainable, normalized),
            update_weight=weight)
        return result, factor, model.report_local_unfinalized_metrics()

    return client_update


class FedNova(Algorithm):
    """FedNova: each client's update normalized by its local steps (see the module doc).

    The client optimizer must be SGD (``build_sgdm``); its momentum is FedNova's ``ρ``. Server
    SGD at learning rate 1 is the paper's (and NIID-Bench's) server update.
    """

    name = "fednova"

    def model_fn(self, task, input_spec):
        """The task's ``VariableModel`` function (the client loop is written here)."""
        return task.tff_model_fn(input_spec)

    def build(self, model_fn: ModelFn, aggregator: Aggregator, client_optimizer: Optimizer,
              server_optimizer: Optimizer,
              loop: tff.learning.LoopImplementation = DEFAULT_LOOP, num_clients: int = 0,
              ) -> tff.learning.templates.LearningProcess:
        """FedNova's learning process (a TFF ``LearningProcess``; see the module docstring).

        Raises:
          IncompatibleAggregator: a uniformly weighted (DP) aggregator.
          ConfigError: a client optimizer other than SGD.
        """
        del loop, num_clients  # the client loop iterates the dataset (DATASET_ITERATOR)
        if is_unweighted(aggregator):
            raise IncompatibleAggregator(
                "FedNova's server step scales by the clients' a_i (their local step counts, "
                "so their data sizes), which a uniformly weighted DP aggregator's clipping and "
                "noise would not cover")
        momentum = client_momentum(client_optimizer)

        with tf.Graph().as_default():
            probe = model_fn()
            element_type = tff.types.tensorflow_to_type(probe.input_spec)
            metric_finalizers = probe.metric_finalizers()
        weights_type = tff.learning.models.weights_type_from_model(model_fn)
        data_type = tff.SequenceType(element_type)
        update_type = weights_type.trainable

        @tff.tensorflow.computation
        def initial_weights():
            return tff.learning.models.ModelWeights.from_model(model_fn())

        distributor = tff.learning.templates.build_broadcast_process(weights_type)
        aggregation = aggregator.create(update_type, tff.TensorType(np.float32))
        finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
            server_optimizer, weights_type)
        aggregate_metrics = tff.learning.metrics.sum_then_finalize(metric_finalizers)

        @tff.tensorflow.computation(weights_type, data_type)
        def client_update(weights, data):
            return _client_update_fn(model_fn, client_optimizer, momentum)(weights, data)

        @tff.tensorflow.computation(update_type, np.float32)
        def server_step(mean_normalized, coefficient):
            # coefficient · mean_d; no client trained (0/0): no step.
            coefficient = tf.where(tf.math.is_finite(coefficient), coefficient, 0.0)
            return tf.nest.map_structure(lambda d: coefficient * d, mean_normalized)

        @tff.federated_computation
        def initialize():
            return tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
                tff.federated_eval(initial_weights, tff.SERVER), distributor.initialize(),
                tff.federated_value((), tff.SERVER), aggregation.initialize(),
                finalizer.initialize()))

        server_state_type = initialize.type_signature.result

        @tff.federated_computation(server_state_type, tff.FederatedType(data_type, tff.CLIENTS))
        def next_fn(state, client_data):
            distributed = distributor.next(state.distributor, state.global_model_weights)
            result, factors, outputs = tff.federated_map(
                client_update, (distributed.result, client_data))
            aggregated = aggregation.next(state.aggregator, result.update, result.update_weight)
            coefficient = tff.federated_mean(factors, result.update_weight)
            step = tff.federated_map(server_step, (aggregated.result, coefficient))
            finalized = finalizer.next(state.finalizer, state.global_model_weights, step)
            new_state = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
                finalized.result, distributed.state, state.client_work, aggregated.state,
                finalized.state))
            metrics = tff.federated_zip(collections.OrderedDict(
                distributor=distributed.measurements,
                client_work=tff.federated_zip(collections.OrderedDict(
                    train=aggregate_metrics(outputs))),
                aggregator=aggregated.measurements,
                finalizer=finalized.measurements))
            return tff.learning.templates.LearningProcessOutput(new_state, metrics)

        get_model_weights, set_model_weights = model_weights_accessors(server_state_type.member)
        return tff.learning.templates.LearningProcess(initialize, next_fn, get_model_weights,
                                                      set_model_weights)
