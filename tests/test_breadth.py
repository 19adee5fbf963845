"""Every option smoke-runs; CIFAR-10 parsing; DP, secure, schedules, central mode; experiments."""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CONF_DIR, compose_config, group_options, metrics, small_config
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import open_dict

from fedlab.data import cifar10
from fedlab.data.partition import Partition
from fedlab.errors import ConfigError, DataError
from fedlab.run import run
from fedlab.tasks import accepted_kinds

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


# Krum needs n > 2f + 2 clients per round (f = 1 by default), more than the smoke schedule's 2.
COHORT_FOR = {"krum": 5, "multi_krum": 5}
SAMPLING_FOR = {"dp_ftrl": "epoch"}  # DP-FTRL's guarantee needs epoch sampling


# One of each kind trains in the default tier (TFF's mean, a quantizing, a DP, a tree-DP, a
# stacked robust one, Krum's cohort); the others in the slow tier.
QUICK_AGGREGATORS = {"mean", "compression", "dp", "dp_ftrl", "median", "krum"}


@pytest.mark.parametrize("option", [
    pytest.param(o, marks=() if o in QUICK_AGGREGATORS else pytest.mark.slow)
    for o in group_options("aggregator")])
def test_every_aggregator_trains_and_is_accounted(tmp_path, option):
    cohort = COHORT_FOR.get(option)
    run(small_config(tmp_path, f"aggregator={option}",
                     *([f"schedule.clients_per_round={cohort}"] if cohort else []),
                     f"schedule.sampling={SAMPLING_FOR.get(option, 'uniform')}"))
    table = metrics(tmp_path)
    assert table["round"].tolist() == [1, 2]
    model_bits = 4 * 32 * (3 * 3 * 16 + 16 + 4 * 4 * 16 * 64 + 64 + 64 * 3 + 3) // 4
    assert (table["bits_down_per_client"] >= model_bits).all()
    assert (table["bits_up_per_client"] >= model_bits).all()


@pytest.mark.parametrize("option", group_options("optimizer"))
def test_every_optimizer_trains(tmp_path, option):
    run(small_config(tmp_path, f"optimizer={option}"))
    assert metrics(tmp_path)["train_loss"].notna().all()


@pytest.mark.parametrize("override,message", [
    ("optimizer.server_schedule=cosine", "Invalid value 'cosine', expected one of"),
    ("dataset.partition.method=dirchlet", "Invalid value 'dirchlet', expected one of"),
    ("trainer=centralised", "Could not find 'trainer/centralised'"),
    ("algorithm=fedavgg", "Could not find 'algorithm/fedavgg'"),
    ("algorithm=fedprox algorithm.proximal_strenght=1", "Key 'proximal_strenght' not in"),
])
def test_closed_choices_fail_at_composition(override, message):
    with pytest.raises(HydraException) as failure:
        compose_config(override.split())
    assert message in f"{failure.value} {failure.value.__cause__}"


IMAGE_MODELS = [m for m in group_options("model") if "next_token" not in accepted_kinds(
    instantiate(compose_config([f"model={m}"]).model))]
TEXT_MODELS = sorted(set(group_options("model")) - set(IMAGE_MODELS))


# ResNet-18's 11 M parameters take about a minute here: in the slow run.
@pytest.mark.parametrize("option", [
    pytest.param(m, marks=pytest.mark.slow) if m == "resnet18" else m for m in IMAGE_MODELS])
def test_every_image_model_trains_on_20px_images(tmp_path, option):
    run(small_config(tmp_path, f"model={option}", "dataset.image_size=20"))
    assert len(metrics(tmp_path)) == 2


@pytest.mark.slow  # (char_lstm_small trains in test_shakespeare.py's default tests too)
@pytest.mark.parametrize("option", TEXT_MODELS)
def test_every_text_model_trains_on_a_play(tmp_path, option):
    run(compose_config(["dataset=shakespeare", "dataset.plays=[macbeth]", f"model={option}",
                        "schedule=smoke", "schedule.clients_per_round=2",
                        "schedule.batch_size=8"], tmp_path))
    assert len(metrics(tmp_path)) == 2


@pytest.mark.parametrize("schedule", ["exponential", "inverse_sqrt"])
def test_server_learning_rate_schedules_run(tmp_path, schedule):
    run(small_config(tmp_path, "optimizer=adam", f"optimizer.server_schedule={schedule}"))
    assert len(metrics(tmp_path)) == 2


def test_central_mode_writes_the_same_columns_per_epoch(tmp_path):
    fed, central = tmp_path / "fed", tmp_path / "central"
    run(small_config(fed))
    accuracy = run(small_config(central, "trainer=central", "schedule.rounds=3"))
    table = metrics(central)
    assert set(table.columns) == set(metrics(fed).columns)
    assert table["round"].tolist() == [1, 2, 3]
    assert (table["bits_up"] == 0).all() and (table["examples"] == 8 * 24).all()
    assert table["eval_accuracy"].iloc[-1] == pytest.approx(accuracy)
    assert (central / "model.keras").exists() and (central / "summary.json").exists()


def test_partition_histogram_is_saved(tmp_path):
    run(compose_config(["dataset=mnist", "dataset.num_clients=10", "schedule=smoke",
                        "dataset.partition.method=shards", "model=mlp"], tmp_path))
    counts = pd.read_csv(tmp_path / "client_labels.csv")
    assert len(counts) == 10 and counts.drop(columns="client").to_numpy().sum() == 4000
    assert ((counts.drop(columns="client") > 0).sum(axis=1) <= 2).all()


@pytest.mark.parametrize("override,message", [
    ("aggregator=dp aggregator.noise_multiplier=-1", "noise_multiplier must be >= 0"),
    ("model=tutorial_cnn", "cannot take inputs of shape"),
])
def test_bad_breadth_settings_fail_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run(small_config(tmp_path, *override.split()))
    assert not (tmp_path / "metrics.csv").exists()


def test_mnist_alpha_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        run(compose_config(["dataset.partition.method=dirichlet", "dataset.partition.alpha=0",
                            "schedule=smoke"], tmp_path))


def _write_cifar_batches(folder, per_batch=6):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cifar10.BATCH_FILES:
        batch = {b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=per_batch).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_parses_the_keras_on_disk_format(tmp_path):
    _write_cifar_batches(tmp_path / "cifar-10-batches-py")
    data = cifar10.load_cifar10(num_clients=3, partition=Partition("iid"),
                                data_dir=str(tmp_path / "cifar-10-batches-py"))
    assert data.input_shape == (32, 32, 3) and data.num_classes == 10
    assert data.test_x.shape == (6, 32, 32, 3) and 0 <= data.test_x.min() <= data.test_x.max() <= 1
    assert data.client_label_counts.sum() == 30
    assert data.class_names[0] == "airplane"


def test_cifar10_missing_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path)):
        cifar10.load_cifar10(data_dir=str(tmp_path))


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    cfg = compose_config([f"+experiment={experiment}"])
    assert cfg.schedule.rounds > 0 and cfg.schedule.clients_per_round > 0


# Every experiment composes (above); the smoke runs of all but these few are in the slow tier.
QUICK_EXPERIMENTS = {"seed_study", "robustness", "niid_bench", "default_tuning"}


@pytest.mark.parametrize("experiment", [
    pytest.param(e, marks=() if e in QUICK_EXPERIMENTS else pytest.mark.slow)
    for e in EXPERIMENTS])
def test_every_experiment_composes_and_smoke_runs(tmp_path, experiment):
    # CIFAR-10 cannot be downloaded here: that experiment runs on synthetic images instead;
    # Shakespeare's smoke run takes one play and the small model. The privacy frontier's
    # budget is given on its command line (its header), and 50 canaries need more than 10
    # clients: its smoke run takes epsilon 4 and 2 canaries.
    small = ["dataset.num_clients=10"]
    data = {"cnn_tutorial": ["dataset=synthetic", "dataset.image_size=20"],
            "shakespeare": ["dataset.plays=[macbeth]", "model=char_lstm_small"],
            **dict.fromkeys(["privacy_frontier", "privacy_frontier_tuning"],
                            [*small, "aggregator.target_epsilon=4",
                             "privacy_audit.canaries=2"])}.get(experiment, small)
    cfg = compose_config([f"+experiment={experiment}", *data, "schedule.rounds=1",
                          "schedule.clients_per_round=2"], tmp_path)
    if "fashion_mnist" in cfg.dataset._target_ and not FASHION_MNIST.exists():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST} "
                    "(apt-get install dataset-fashion-mnist)")
    with open_dict(cfg):
        cfg.schedule.eval_every = 1
    run(cfg)
    assert metrics(tmp_path)["round"].tolist() == [1]
