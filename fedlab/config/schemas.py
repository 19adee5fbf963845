"""The run configuration's schemas, registered in Hydra's ConfigStore.

Every option file naming one of fedlab's builders extends a schema derived from that builder's
signature (:mod:`fedlab.config.signatures`): the signature is the one place its defaults are
written, and a misspelled key or a value of the wrong type fails when Hydra composes the
configuration, before anything is built. The dataclasses below are the schemas of what is not
a builder's argument: the top level, the schedule (:class:`fedlab.config.schedule.Schedule`
itself), what the assembler reads of a data set, the sweeper's objective, personalization.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fedlab.config.choices import Objective
from fedlab.config.schedule import Schedule
from fedlab.config.signatures import option_schemas

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"


@dataclass
class DatasetSchema:
    """What every data set takes besides its loader's own arguments (read by the assembler).

    ``validation_fraction`` > 0 carves a validation set from the training data
    (``fedlab.data.validation``: each in-memory client's share, or a share of a database's
    clients); selection (best figures, the search's objective) then reads it, never the test set.

    Attributes:
      validation_fraction: the share of the training data carved as a validation set (0: none):
        of every in-memory client's examples, or of a database's clients, whole.
      validation_seed: the seed of that carve (not the training seed: the validation set stays
        the same for every training seed).
    """

    validation_fraction: float = 0.0
    validation_seed: int = 0

@dataclass
class ScheduleSchema(Schedule):
    """How long and how widely to train, and the seed every random stream derives from."""

@dataclass
class ObjectiveSchema:
    """What ``python -m fedlab`` returns to a sweeper (Optuna optimises it).

    ``rounds_to_target``: the first round with held-out accuracy >= ``target_accuracy``
    (``schedule.rounds + 1`` when never reached); minimise it.

    Attributes:
      metric: what a run returns to the sweeper: ``final_eval_accuracy``,
        ``best_eval_accuracy`` or ``rounds_to_target`` (read on validation when the run has a
        validation set).
      target_accuracy: the target of ``rounds_to_target``.
    """

    metric: Objective = Objective.final_eval_accuracy
    target_accuracy: float = 0.8

@dataclass
class PersonalizationSchema:
    """Personalized evaluation (``fedlab.callbacks.PersonalizedEvaluation``).

    ``epochs`` of plain SGD per client on its own training data (0: off); ``learning_rate``
    defaults to the client optimizer's; ``every`` > 0 also evaluates every that many rounds
    (0: after the last round only).

    Attributes:
      epochs: epochs of plain SGD each client fine-tunes the global model for (0: off).
      learning_rate: the fine-tuning learning rate (default: the client optimizer's).
      every: also evaluate every this many rounds (0: after the last round only).
    """

    epochs: int = 0
    learning_rate: float = "${optimizer.client.learning_rate}"  # type: ignore[assignment]
    every: int = 0

@dataclass
class FedlabSchema:
    """The top level of a composed run configuration.

    Attributes:
      dataset: the ``dataset`` group's option.
      model: the ``model`` group's option.
      trainer: the ``trainer`` group's option.
      algorithm: the ``algorithm`` group's option.
      aggregator: the ``aggregator`` group's option.
      optimizer: the ``optimizer`` group's option.
      callbacks: the ``callbacks`` group's option.
      clients: the ``clients`` group's option.
      privacy_audit: the ``privacy_audit`` group's option (canaries and the empirical epsilon).
      logger: the ``logger`` group's option (null: no experiment tracker).
      schedule: the ``schedule`` group's option.
      executor: the ``executor`` group's option.
      run_dir: the run folder (Hydra's output folder; point ``hydra.run.dir`` at an existing
        run folder to resume it).
      tensorboard: write TensorBoard event files next to ``metrics.csv``.
      computation_cache: the folder of traced and compiled computations kept for later runs of
        the same configuration (null: off).
      objective: what ``python -m fedlab`` returns to a sweeper.
      personalization: personalized evaluation.
    """

    dataset: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    algorithm: Any = MISSING
    aggregator: Any = MISSING
    optimizer: Any = MISSING
    callbacks: Any = MISSING
    clients: Any = MISSING
    privacy_audit: Any = MISSING
    logger: Any = None
    schedule: ScheduleSchema = field(default_factory=ScheduleSchema)
    executor: Any = MISSING
    run_dir: str = MISSING
    tensorboard: bool = True
    # Traced and compiled computations kept for later runs (null: off; README, computation cache).
    computation_cache: str | None = "${oc.env:XDG_CACHE_HOME,'~/.cache'}/fedlab/computations"
    objective: ObjectiveSchema = field(default_factory=ObjectiveSchema)
    personalization: PersonalizationSchema = field(default_factory=PersonalizationSchema)


def register_schemas(conf_dir: Path = CONF_DIR) -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent).

    Args:
      conf_dir: the config folder whose option files' targets the schemas derive from.
    """
    store = ConfigStore.instance()
    store.store(name="fedlab_schema", node=FedlabSchema)
    store.store(group="schema/schedule", name="schedule", node=ScheduleSchema)
    for (group, option), schema in option_schemas(conf_dir, {"dataset": DatasetSchema}).items():
        store.store(group=f"schema/{group}", name=option, node=schema)
