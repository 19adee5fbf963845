"""Every option of every group composes and builds; bad input fails at composition."""

from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import CONF_DIR, GROUPS, compose_config, group_options
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf.errors import ValidationError

from fedlab.data import fashion_mnist
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
        sampling = "epoch" if option == "dp_ftrl" else "uniform"  # DP-FTRL needs epochs
        factory, guarantee = factory.for_federation(num_clients=50, rounds=10,
                                                    sampling=sampling)
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
    if option == "fashion_mnist" and fashion_mnist.missing_files(
            Path(fashion_mnist.DEFAULT_DATA_DIR)):  # a Debian package, never downloaded
        pytest.skip("Debian's dataset-fashion-mnist is not installed: apt-get install "
                    "dataset-fashion-mnist")
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


# ---- Each default written once: the builder's signature, the derived schema, the YAML


def _option_files():
    import yaml
    return [(path, yaml.safe_load(path.read_text()) or {})
            for path in sorted(CONF_DIR.glob("*/*.yaml"))
            if path.parent.name not in ("experiment", "hparams_search")]


def _target_nodes(node, where):
    """Every (where, node) of an option file's content that names a ``_target_``."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield where, node
        for key, value in node.items():
            if key != "defaults":
                yield from _target_nodes(value, f"{where}.{key}")


def _imported(target):
    from hydra.utils import get_object
    return get_object(target)


def _signature(target):
    import inspect
    builder = _imported(target)
    return inspect.signature(builder.__init__ if isinstance(builder, type) else builder)


@pytest.mark.parametrize("path,content", _option_files(), ids=lambda v: getattr(v, "stem", ""))
def test_derived_schemas_read_what_python_reads_and_yaml_restates_no_default(path, content):
    import dataclasses
    import inspect

    from fedlab.config.signatures import signature_fields

    for where, node in _target_nodes(content, f"{path.parent.name}/{path.stem}"):
        target = node["_target_"]
        if target.startswith("fedlab.") and not node.get("_partial_"):
            read = {name: default for name, _, default in signature_fields(target)}
            python = {name: p.default for name, p in _signature(target).parameters.items()
                      if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
            if dataclasses.is_dataclass(_imported(target)):
                python = {f.name: f.default for f in dataclasses.fields(_imported(target))}
            assert list(read) == list(python), where
            for name, default in python.items():
                expected = "???" if default is inspect.Parameter.empty else (
                    list(default) if isinstance(default, tuple) else default)
                assert read[name] == expected, f"{where}.{name}"
            # A value the YAML sets differs from the signature's default: one place each.
            restated = [key for key, value in node.items()
                        if key in python and python[key] is not inspect.Parameter.empty
                        and value == (getattr(python[key], "value", python[key]))]
            assert not restated, f"{where} restates the signature's defaults of {restated}"
        elif not target.startswith("fedlab."):
            # Another library's builder: every key the YAML sets is one of its parameters.
            parameters = _signature(target).parameters
            assert set(node) - {"_target_", "_partial_"} <= set(parameters), where


def test_callbacks_yaml_restates_no_signature_default():
    import inspect

    import yaml

    callbacks = yaml.safe_load((CONF_DIR / "callbacks" / "default.yaml").read_text())
    for name, node in callbacks.items():
        if not isinstance(node, dict):
            continue
        parameters = _signature(node["_target_"]).parameters
        for key in set(node) - {"_target_"}:
            default = parameters[key].default
            assert default is inspect.Parameter.empty or default != node[key], f"{name}.{key}"


def test_defaults_fedlab_writes_as_literals_equal_the_tff_constants_they_follow():
    from fedlab.data import shakespeare

    baselines = tff.simulation.baselines
    assert shakespeare.SEQUENCE_LENGTH == (
        baselines.shakespeare.char_prediction_preprocessing.DEFAULT_SEQUENCE_LENGTH)
    schema = compose_config(["dataset=stackoverflow"]).dataset
    assert schema.vocab_size == baselines.stackoverflow.constants.DEFAULT_WORD_VOCAB_SIZE
    assert schema.sequence_length == baselines.stackoverflow.constants.DEFAULT_SEQUENCE_LENGTH


def test_a_new_builder_parameter_reaches_the_composed_config_without_a_schema_edit(tmp_path):
    from fedlab.config.signatures import option_schemas

    (tmp_path / "algorithm").mkdir()
    (tmp_path / "algorithm" / "mine.yaml").write_text("_target_: fedlab.algorithms.feddyn.FedDyn\n")
    schema = option_schemas(tmp_path)[("algorithm", "mine")]
    assert schema().alpha == 0.01 and schema()._target_ == "fedlab.algorithms.feddyn.FedDyn"


def test_the_default_rates_are_the_ones_tuning_selected_on_validation():
    import pandas as pd

    selected = pd.read_csv(CONF_DIR.parent / "experiments" / "default_job" / "tuning" /
                           "selected.csv").iloc[0]
    cfg = compose_config([])
    assert cfg.optimizer.client.learning_rate == selected["optimizer.client.learning_rate"]
    assert cfg.optimizer.server.learning_rate == selected["optimizer.server.learning_rate"]
    # The reference study's rate stays one override away.
    assert compose_config(["+experiment=seed_study"]).optimizer.client.learning_rate == 0.02
