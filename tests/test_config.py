"""Every option of every group composes and builds; bad input fails at composition."""

import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import GROUPS, compose_config, group_options
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf.errors import ValidationError

from fedlab.data.synthetic import load_synthetic
from fedlab.run import load_dataset
from fedlab.tasks import accepted_kinds


def test_every_group_has_options():
    for group in GROUPS:
        assert group_options(group), group


@pytest.mark.parametrize("option", group_options("model"))
def test_model_options_build_on_dataset_shapes(option):
    builder = instantiate(compose_config([f"model={option}"]).model)
    if "next_token" in accepted_kinds(builder):  # token sequences: logits at every position
        assert builder((80,), 90)(tf.zeros((2, 80), tf.int32)).shape == (2, 80, 90)
    else:
        assert builder((32, 32, 3), 10).output_shape == (None, 10)


@pytest.mark.parametrize("option", group_options("aggregator"))
def test_aggregator_options_build_factories(option):
    factory = instantiate(compose_config([f"aggregator={option}"]).aggregator)
    if hasattr(factory, "for_federation"):  # DP: built for a federation's size
        factory, guarantee = factory.for_federation(num_clients=50, rounds=10)
        assert guarantee.num_clients == 50 and guarantee.clients_per_round == 10
    assert isinstance(factory, (tff.aggregators.WeightedAggregationFactory,
                                tff.aggregators.UnweightedAggregationFactory))


@pytest.mark.parametrize("option", group_options("optimizer"))
def test_optimizer_options_build_tff_optimizers(option):
    cfg = compose_config([f"optimizer={option}"])
    for side in ("client", "server"):
        assert isinstance(instantiate(cfg.optimizer[side]), tff.learning.optimizers.Optimizer)


@pytest.mark.parametrize("option", group_options("schedule"))
def test_schedule_options_are_positive(option):
    schedule = compose_config([f"schedule={option}"]).schedule
    assert schedule.rounds > 0 and schedule.clients_per_round > 0


# These download on first use, which this machine cannot; their parsing is tested on small
# files in their on-disk formats (test_data.py, test_shakespeare.py, test_tff_datasets.py).
NEEDS_DOWNLOAD = {"cifar10", "cifar100", "emnist", "emnist62", "shakespeare_tff",
                  "stackoverflow"}


@pytest.mark.parametrize("option", sorted(set(group_options("dataset")) - NEEDS_DOWNLOAD))
def test_dataset_options_build(option):
    data = load_dataset(compose_config([f"dataset={option}"]).dataset)
    assert data.num_clients >= 2
    example = next(iter(data.train.create_tf_dataset_for_client(data.train.client_ids[0])))
    assert tuple(example["x"].shape) == data.input_shape
    assert example["y"].dtype == tf.int32


@pytest.mark.parametrize("option", sorted(NEEDS_DOWNLOAD))
def test_downloading_datasets_compose(option):
    assert compose_config([f"dataset={option}"]).dataset._target_.startswith("fedlab.data.")


@pytest.mark.parametrize("dataset", ["mnist", "synthetic", "cifar10"])
def test_partition_seed_follows_schedule_seed_and_split_seed_does_not(dataset):
    cfg = compose_config([f"dataset={dataset}", "schedule.seed=7"])
    assert cfg.dataset.partition_seed == 7
    if dataset != "cifar10":  # CIFAR-10 has its own fixed test set
        assert cfg.dataset.split_seed == 0


def test_synthetic_test_set_depends_on_split_seed_only():
    a = load_synthetic(split_seed=1, partition_seed=1)
    b = load_synthetic(split_seed=1, partition_seed=2)
    c = load_synthetic(split_seed=2, partition_seed=1)
    assert a.test_set_sha256 == b.test_set_sha256 != c.test_set_sha256
    assert a.partition_sha256 != b.partition_sha256
    assert a.partition_sha256 == load_synthetic(split_seed=1, partition_seed=1).partition_sha256


def test_unknown_option_fails_at_composition():
    with pytest.raises(MissingConfigException, match="model/no_such_model"):
        compose_config(["model=no_such_model"])


def test_misspelled_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="roundz"):
        compose_config(["schedule.roundz=3"])


def test_wrong_type_fails_at_composition():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config(["schedule.rounds=many"])
    assert isinstance(error.value.__cause__, ValidationError)


def test_misspelled_dataset_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="num_clientz"):
        compose_config(["dataset.num_clientz=3"])
