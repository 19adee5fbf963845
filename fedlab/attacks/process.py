"""Model poisoning: the malicious clients' uploads, changed between their training and the upload.

The round is TFF's composed learning process (``tff.learning.templates.compose_learning_process``:
broadcast, client work, aggregator, optimizer finalizer) with one step between the client work
and the aggregator, run on each client: a client whose flag is 1 replaces its honest update
``u`` (``u`` as TFF's client work computes it, before any aggregator clips or quantizes) by

- ``sign_flip``: ``-scale * u``;
- ``gaussian``: ``scale * ||u|| * z / ||z||``, ``z`` standard normal, drawn from the run's seed
  and a fingerprint of ``u`` (each client and round its own draw, reproducible);
- ``backdoor``: ``scale * u`` (model replacement's boost; its data are poisoned too).

Its example weight is unchanged. The server state is the TFF process's, so checkpoints, the
computation's bits and the aggregators are as without the attack. ``next(state, data, flags)``
takes the flags as a CLIENTS-placed ``float32`` beside the data.
"""

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
from tensorflow_federated.python.aggregators import factory_utils

from fedlab.algorithms.base import DEFAULT_LOOP, Composed
from fedlab.attacks import Attack, FlaggedProcess, counted_cohorts
from fedlab.config.choices import AttackKind
from fedlab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AttackedProcess:
    """A learning process whose ``next(state, client_data, flags)`` replaces flagged uploads."""

    initialize: Any
    next: Any
    get_model_weights: Any
    set_model_weights: Any

    def with_next(self, next_fn) -> "AttackedProcess":
        """The same process with another ``next`` (e.g. one that builds the clients' data)."""
        return dataclasses.replace(self, next=next_fn)


def poisoned_update(update, flag, attack: Attack):
    """``update`` as a client with ``flag`` uploads it (module doc).

    Args:
      update: a client's honest update (a structure of tensors).
      flag: 1.0 for a malicious client, 0.0 for an honest one.
      attack: what malicious clients upload.
    """
    tensors = tf.nest.flatten(update)
    if attack.kind is AttackKind.gaussian:
        norm = tf.linalg.global_norm(tensors)
        fingerprint = tf.bitcast(tf.add_n([tf.reduce_sum(tf.abs(t)) for t in tensors]),
                                 tf.int32)
        seed = tf.stack([tf.constant(attack.seed, tf.int32), fingerprint])
        draws = [tf.random.stateless_normal(tf.shape(t), seed=seed + i, dtype=t.dtype)
                 for i, t in enumerate(tensors)]
        scale = attack.scale * tf.math.divide_no_nan(norm, tf.linalg.global_norm(draws))
        attacked = [scale * z for z in draws]
    else:  # sign_flip: -scale u; backdoor: scale u
        factor = -attack.scale if attack.kind is AttackKind.sign_flip else attack.scale
        attacked = [factor * t for t in tensors]
    chosen = [tf.where(flag > 0, a, t) for a, t in zip(attacked, tensors, strict=True)]
    return tf.nest.pack_sequence_as(update, chosen)


def replaced_uploads_process(honest, client_work, aggregator, server_optimizer,
                             upload: Callable) -> AttackedProcess:
    """``honest`` (a TFF composed process) with each client's upload passed through ``upload``.

    Args:
      honest: the algorithm's learning process, as TFF's builder composed it.
      client_work: the same client work the builder composed (``Algorithm.client_work``).
      aggregator: the same aggregation factory (weighted, or unweighted: then wrapped as TFF's
        unweighted builders wrap it).
      server_optimizer: the same server optimizer.
      upload: ``upload(update, flag)``, TensorFlow: what a client with ``flag`` uploads instead
        of its honest ``update`` (the update itself for flag 0).

    Raises:
      TypeError: the round built does not have the algorithm's signature.
    """
    state_type = honest.initialize.type_signature.result.member
    weights_type = state_type.global_model_weights
    client_result = client_work.next.type_signature.result.result.member
    update_type = client_result.update
    if isinstance(aggregator, tff.aggregators.UnweightedAggregationFactory):
        aggregator = factory_utils.as_weighted_aggregator(aggregator)
    aggregation = aggregator.create(update_type, client_result.update_weight)
    distributor = tff.learning.templates.build_broadcast_process(weights_type)
    finalizer = tff.learning.templates.build_apply_optimizer_finalizer(server_optimizer,
                                                                      weights_type)

    @tff.tensorflow.computation(update_type, np.float32)
    def replaced(update, flag):
        return upload(update, flag)

    @tff.federated_computation(tff.FederatedType(state_type, tff.SERVER),
                               client_work.next.type_signature.parameter[2],
                               tff.FederatedType(np.float32, tff.CLIENTS))
    def next_fn(state, client_data, flags):
        distributed = distributor.next(state.distributor, state.global_model_weights)
        work = client_work.next(state.client_work, distributed.result, client_data)
        updates = tff.federated_map(replaced, (work.result.update, flags))
        aggregated = aggregation.next(state.aggregator, updates, work.result.update_weight)
        finalized = finalizer.next(state.finalizer, state.global_model_weights,
                                   aggregated.result)
        new_state = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
            finalized.result, distributed.state, work.state, aggregated.state,
            finalized.state))
        metrics = tff.federated_zip(collections.OrderedDict(
            distributor=distributed.measurements, client_work=work.measurements,
            aggregator=aggregated.measurements, finalizer=finalized.measurements))
        return tff.learning.templates.LearningProcessOutput(new_state, metrics)

    honest_next, ours = honest.next.type_signature, next_fn.type_signature
    pairs = [(ours.parameter[0], honest_next.parameter[0]),
             (ours.parameter[1], honest_next.parameter[1]), (ours.result, honest_next.result)]
    if not all(a.is_equivalent_to(b) for a, b in pairs):
        raise TypeError(f"the round with replaced uploads {next_fn.type_signature} does not "
                        f"match the algorithm's {honest_next} (its builder composes other pieces)")
    return AttackedProcess(honest.initialize, next_fn, honest.get_model_weights,
                           honest.set_model_weights)


def algorithm_process_with_uploads(algorithm, honest, model_fn, aggregator, client_optimizer,
                                   server_optimizer, upload: Callable, feature: str,
                                   loop=DEFAULT_LOOP, hint: str = "") -> AttackedProcess:
    """The algorithm's process ``honest`` with uploads replaced, from its own client work.

    Args:
      algorithm: the run's algorithm (:class:`~fedlab.algorithms.base.Algorithm`).
      honest: the process its ``build`` returned.
      model_fn: the model ``build`` took.
      aggregator: the aggregation factory ``build`` took.
      client_optimizer: the clients' optimizer.
      server_optimizer: the server's optimizer.
      upload: ``upload(update, flag)`` (:func:`replaced_uploads_process`).
      feature: the setting that replaces uploads, for the message when it cannot.
      loop: TFF's client loop implementation ``build`` used.
      hint: what to add to that message (what works instead).

    Raises:
      ConfigError: the algorithm's clients do not run TFF's client work (one line).
    """
    unweighted = isinstance(aggregator, tff.aggregators.UnweightedAggregationFactory)
    client_work = algorithm.client_work(model_fn, client_optimizer, unweighted, loop)
    if client_work is None:
        raise ConfigError(
            f"{feature} changes uploads, which needs TFF's client work (algorithm=fedavg or "
            f"fedprox); algorithm '{algorithm.name}' runs its own{hint}")
    return replaced_uploads_process(honest, client_work, aggregator, server_optimizer, upload)


def attacked_algorithm_process(algorithm, honest, model_fn, aggregator, client_optimizer,
                               server_optimizer, attack: Attack,
                               loop=DEFAULT_LOOP) -> AttackedProcess:
    """The algorithm's process ``honest`` with the malicious clients' uploads poisoned.

    The arguments are :func:`algorithm_process_with_uploads`'s, with ``attack`` (what malicious
    clients upload: :func:`poisoned_update`) in place of ``upload`` and ``feature``.

    Raises:
      ConfigError: the algorithm's clients do not run TFF's client work (one line; data
        poisoning, ``label_flip``, works with every algorithm).
    """
    return algorithm_process_with_uploads(
        algorithm, honest, model_fn, aggregator, client_optimizer, server_optimizer,
        functools.partial(poisoned_update, attack=attack), f"clients.attack={attack.kind.value}",
        loop, " (data poisoning, clients.attack=label_flip, works with every algorithm)")


def with_attack(composed: Composed, attack: Attack, malicious: list[str]) -> Composed:
    """The composed process and cohorts with malicious clients counted (and flagged).

    Without an active attack, ``composed`` itself. A process that poisons uploads
    (:class:`AttackedProcess`) gets each client's flag beside its input.

    Args:
      composed: what the algorithm's ``compose`` returned.
      attack: the malicious clients' behaviour.
      malicious: the malicious clients' ids.
    """
    if not attack.active:
        return composed
    flagged = attack.poisons_updates
    return dataclasses.replace(
        composed, process=FlaggedProcess(composed.process) if flagged else composed.process,
        cohorts=counted_cohorts(composed.cohorts, dict.fromkeys(malicious, 1.0),
                                "malicious_clients", flagged))
