"""Trainers: how a run trains its model, federated (TFF) or central (Keras ``fit``).

Options of the ``trainer`` group. Each takes the run's task, data, schedule, initial model and
folder, trains, saves the final model, and returns figures for ``summary.json``.
"""

import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.algorithms.base import Aggregator, Algorithm, IncompatibleAggregator
from fedlab.attacks.poisoning import poisoned
from fedlab.attacks.process import attacked_algorithm_process, with_attack
from fedlab.callbacks import Callback, Checkpointing, TrainingContext
from fedlab.clients.communication import measure_round_communication
from fedlab.clients.conditions import ClientConditions
from fedlab.clients.datasets import client_datasets, worker_readable
from fedlab.config.choices import Sampling
from fedlab.config.schedule import Schedule
from fedlab.data import FederatedData
from fedlab.errors import ConfigError
from fedlab.executors.computation_cache import ProcessCache
from fedlab.executors.contexts import compile_for_worker
from fedlab.optimizers.pair import OptimizerPair
from fedlab.privacy.audit import (
    PrivacyAudit,
    with_canaries,
    with_canary_uploads,
    without_canaries,
)
from fedlab.runs.files import CLIENT_PROFILES_FILE, MALICIOUS_CLIENTS_FILE, MODEL_FILE
from fedlab.tasks import Task
from fedlab.trainers.loop import train

log = logging.getLogger("fedlab")


def client_dataset(
    dataset: tf.data.Dataset, *, local_epochs: int, batch_size: int, shuffle_buffer: int, seed: int,
    reshuffle_each_iteration: bool = True, batch_within_epochs: bool = False,
) -> tf.data.Dataset:
    """The reference study's client preprocessing: shuffle, repeat for local epochs, batch.

    With ``batch_within_epochs`` each epoch is batched on its own (shuffle, batch, repeat): a
    last smaller batch per epoch instead of batches that span two epochs.

    tf.data's static optimisations are off: a client's few batches gain nothing from them,
    while rewriting each client's dataset graph when its iterator is made (Grappler, per
    client, every round) took 17 % of the worker's CPU at 200 clients x 10 examples.
    """
    shuffled = dataset.shuffle(shuffle_buffer, seed=seed,
                               reshuffle_each_iteration=reshuffle_each_iteration)
    batched = (shuffled.batch(batch_size).repeat(local_epochs) if batch_within_epochs
               else shuffled.repeat(local_epochs).batch(batch_size))
    return batched.with_options(_UNOPTIMIZED)


_UNOPTIMIZED = tf.data.Options()
_UNOPTIMIZED.experimental_optimization.apply_default_optimizations = False
_UNOPTIMIZED.autotune.enabled = False


def model_architecture(model: tf.keras.Model) -> str:
    """The model's layers and their settings as JSON, without the names Keras numbers.

    ("" for a subclassed model.) Two builds of one model in a process get other layer names
    (``dense_1``, ``dense_2``) but the same architecture.
    """
    try:
        text = model.to_json()
    except NotImplementedError:
        return ""
    names = dict.fromkeys(re.findall(r'"name": "([^"]+)"', text))  # in order of appearance
    for index, name in enumerate(names):
        text = text.replace(f'"{name}"', f'"name{index}"')
    return text


def model_bytes(model: tf.keras.Model) -> int:
    """Bytes of one copy of ``model``'s weights."""
    return sum(w.shape.num_elements() * w.dtype.size for w in model.weights)


def keras_model_weights(model: tf.keras.Model) -> tff.learning.models.ModelWeights:
    """The model's weights in TFF's ``ModelWeights`` form."""
    return tff.learning.models.ModelWeights(
        trainable=[w.numpy() for w in model.trainable_weights],
        non_trainable=[w.numpy() for w in model.non_trainable_weights],
    )


class FederatedTrainer:
    """Federated training with a TFF learning process, round by round, through callbacks."""

    def __init__(self, algorithm: Algorithm, aggregator: Aggregator, optimizer: OptimizerPair,
                 executor,
                 callbacks: Mapping[str, Callback], aggregator_name: str = "",
                 clients: ClientConditions | None = None,
                 privacy_audit: PrivacyAudit | None = None):
        """The algorithm, aggregator, optimizers, executor, callbacks and clients of the groups.

        Args:
          algorithm: the ``algorithm`` group's option.
          aggregator: the ``aggregator`` group's option.
          optimizer: the ``optimizer`` group's client and server optimizers.
          executor: the ``executor`` group's option: where the computations run.
          callbacks: the ``callbacks`` group: name -> callback, called in this order after
            every round (a null entry is left out).
          aggregator_name: names the aggregator in messages (default: its type).
          clients: how sampled clients behave (default: ideal, every one reports at once).
          privacy_audit: the canary clients of an empirical privacy audit (default: none).

        Raises:
          ConfigError: canaries with an attack that changes uploads (both replace uploads).
        """
        self.algorithm, self.aggregator, self.optimizer = algorithm, aggregator, optimizer
        self.clients = clients or ClientConditions()
        self.audit = privacy_audit or PrivacyAudit()
        if self.audit.active and self.clients.attack.poisons_updates:
            raise ConfigError(
                f"privacy_audit.canaries with clients.attack={self.clients.attack.kind.value}: "
                "both replace uploads; audit without model poisoning (label_flip is data "
                "poisoning)")
        self.aggregator_name = aggregator_name or type(aggregator).__name__
        self.executor = executor
        self.callbacks = [c for c in callbacks.values() if c is not None]

    def aggregator_for(self, num_clients: int, rounds: int,
                       sampling: Sampling = Sampling.uniform):
        """The TFF aggregator for a federation, and its DP guarantee (``None`` without DP).

        A DP aggregator's noise (calibrated to a budget) and guarantee depend on the number of
        clients, the rounds and how clients are sampled; other aggregators are used as built.
        """
        if hasattr(self.aggregator, "for_federation"):
            return self.aggregator.for_federation(num_clients, rounds, sampling)
        return self.aggregator, None

    def build_process(self, task: Task, input_spec, aggregator: Aggregator, num_clients: int = 0
                      ) -> tff.learning.templates.LearningProcess:
        """The algorithm's learning process for ``task`` with the TFF ``aggregator``.

        ``num_clients`` is the federation's size (algorithms with client state need it). With
        malicious clients that change their uploads, the process poisons them
        (:mod:`fedlab.attacks.process`); with an audit's canaries, it inserts theirs
        (:mod:`fedlab.privacy.audit`).

        Raises:
          ConfigError: TFF cannot build the algorithm with the aggregator (both named), or
            the attack or the canaries with the algorithm.
        """
        model = self.algorithm.model_fn(task, input_spec)
        try:
            process = self.algorithm.build(model, aggregator, self.optimizer.client,
                                           self.optimizer.server, num_clients=num_clients)
        except IncompatibleAggregator as error:
            raise ConfigError(
                f"algorithm '{self.algorithm.name}' cannot use the aggregator "
                f"{self.aggregator_name}: {error}") from None
        process = with_canary_uploads(self.audit, self.algorithm, process, model, aggregator,
                                      self.optimizer.client, self.optimizer.server)
        if not self.clients.attack.poisons_updates:
            return process
        return attacked_algorithm_process(self.algorithm, process, model, aggregator,
                                          self.optimizer.client, self.optimizer.server,
                                          self.clients.attack)

    def train(self, task: Task, data: FederatedData, schedule: Schedule, run_dir: Path,
              initial_model: tf.keras.Model, process_cache: ProcessCache | None = None) -> dict:
        """Train ``schedule.rounds`` rounds (resuming from a checkpoint); save the final model.

        With ``process_cache``, the learning process is loaded from it when it was traced before
        for this configuration, else traced and stored there.

        Raises:
          FedlabError: bad settings, divergence, unusable checkpoints, unreachable workers.
        """
        if schedule.clients_per_round > data.num_clients:
            raise ConfigError(
                f"schedule.clients_per_round={schedule.clients_per_round} exceeds the "
                f"{data.num_clients} clients of the dataset")

        def preprocess(dataset, shuffle_seed):
            return client_dataset(
                dataset, local_epochs=schedule.local_epochs, batch_size=schedule.batch_size,
                shuffle_buffer=data.shuffle_buffer, seed=shuffle_seed,
                reshuffle_each_iteration=self.algorithm.reshuffle_each_iteration,
                batch_within_epochs=schedule.batch_within_epochs)

        attack = self.clients.attack
        malicious = attack.malicious(data.train.client_ids)
        data = poisoned(data, attack, malicious)
        if attack.active:
            pd.DataFrame({"client": malicious}).to_csv(
                run_dir / MALICIOUS_CLIENTS_FILE, index=False)
        excluded = set(malicious)
        canaries = self.audit.canary_clients(
            [client for client in data.train.client_ids if client not in excluded])
        data = without_canaries(data, canaries, run_dir)
        first_client = data.train.create_tf_dataset_for_client(data.train.client_ids[0])
        aggregator, guarantee = self.aggregator_for(data.num_clients, schedule.rounds,
                                                    schedule.sampling)
        if guarantee is not None and guarantee.clients_per_round != schedule.clients_per_round:
            raise ConfigError(
                f"aggregator.clients_per_round={guarantee.clients_per_round} differs from "
                f"schedule.clients_per_round={schedule.clients_per_round}: the DP mean and its "
                "accounting must use the clients actually sampled")
        if guarantee is not None and self.clients.over_selection > 0:
            raise ConfigError(
                f"clients.over_selection={self.clients.over_selection} with a DP aggregator: the "
                "privacy accounting assumes clients_per_round clients sampled per round")
        # The local worker (unless python -m fedlab launched it already) starts with the block
        # and comes up while the process is traced.
        compiler = (compile_for_worker if process_cache is None
                    else process_cache.compiled(compile_for_worker))
        cohort_size = self.clients.sample_size(schedule.clients_per_round)
        if warning := self.executor.memory_warning(model_bytes(initial_model), cohort_size):
            log.warning(warning)
        with (self.executor.context(run_dir, cohort_size, compiler),
              worker_readable(data.train, self.executor.client_arrays_file(run_dir)) as clients):
            datasets = client_datasets(clients, preprocess, graph_seed=schedule.seed,
                                       in_worker=self.executor.client_datasets_in_worker)
            input_spec = preprocess(first_client, 0).element_spec
            build = functools.partial(self.build_process, task, input_spec, aggregator,
                                      data.num_clients)
            process, from_cache = (
                (build(), False) if (process_cache is None or not self.algorithm.cacheable
                                     or attack.poisons_updates or self.audit.active)
                else process_cache.process(build, input_spec=repr(input_spec),
                                           privacy=repr(guarantee),
                                           model=model_architecture(initial_model)))
            log.debug("start-up: learning process ready")
            log.info("%s (%s) on %d clients, %d per round, %d parameters", initial_model.name,
                     self.algorithm.name, data.num_clients, schedule.clients_per_round,
                     initial_model.count_params())
            communication = self.algorithm.communication(
                process, measure_round_communication(process.next))
            cohorts = self.algorithm.cohorts(data, schedule, datasets, self.clients,
                                             communication)
            if getattr(cohorts, "profiles", None) is not None:  # simulated devices
                cohorts.profiles.to_csv(run_dir / CLIENT_PROFILES_FILE)
            state = process.set_model_weights(process.initialize(),
                                              keras_model_weights(initial_model))
            log.debug("start-up: worker ready, process initialised")
            composed = with_canaries(
                with_attack(self.algorithm.compose(datasets.compose(process), cohorts),
                            attack, malicious),
                self.audit, canaries)
            context = TrainingContext(
                process=composed.process, state=state, client_states=composed.states,
                rounds=schedule.rounds, clients_per_round=schedule.clients_per_round,
                run_dir=run_dir, data=data, task=task, privacy=guarantee,
                communication=communication, attack=attack if attack.active else None,
                audit=self.audit if self.audit.active else None)
            last_round = train(context, composed.cohorts, self.callbacks)
            final_weights = context.model_weights()
        final_model = task.keras_model()
        final_weights.assign_weights_to(final_model)
        final_model.save(run_dir / MODEL_FILE)
        checkpoint_seconds = [s for c in self.callbacks if isinstance(c, Checkpointing)
                              for s in c.seconds]
        context.summary.update(composed.figures())
        return {**context.summary,
                "rounds_trained_this_invocation": last_round - context.resumed_from,
                "learning_process": "from the cache" if from_cache else "traced",
                "checkpoint_seconds_mean": (sum(checkpoint_seconds) / len(checkpoint_seconds)
                                            if checkpoint_seconds else None)}
