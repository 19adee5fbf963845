"""TFF's CIFAR-100 and Stack Overflow, parsed from small files in their real on-disk formats."""

import os

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config, write_tff_database

from fedlab.data import cifar100, stackoverflow
from fedlab.errors import ConfigError, DataError
from fedlab.run import run


def _offline(monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", unreachable)


# --- CIFAR-100 -------------------------------------------------------------------------------

def _write_cifar100(folder, train_clients=3, test_clients=2, per_client=4):
    """TFF's cifar100.sqlite layout; returns each test client's labels."""
    rng = np.random.default_rng(0)

    def examples():
        return [{"image": rng.integers(0, 256, (32, 32, 3)).tolist(),
                 "label": int(rng.integers(100)), "coarse_label": int(rng.integers(20))}
                for _ in range(per_client)]

    splits = {"train": {str(c): examples() for c in range(train_clients)},
              "test": {str(c): examples() for c in range(test_clients)}}
    write_tff_database(folder / cifar100.DATABASE_NAME, splits)
    return splits


def test_cifar100_is_read_from_its_database_format_and_cropped_as_tff_does(tmp_path):
    splits = _write_cifar100(tmp_path)
    data = cifar100.load_cifar100(crop_size=24, cache_dir=str(tmp_path))
    assert sorted(data.train.client_ids) == ["0", "1", "2"]
    assert list(data.client_test) == ["test/0", "test/1"]  # not the training clients "0", "1"
    assert data.test_x.shape == (8, 24, 24, 3) and data.test_x.dtype == np.float32
    assert data.test_y.dtype == np.int32 and data.num_classes == 100
    assert data.test_y.tolist() == [e["label"] for c in ("0", "1") for e in splits["test"][c]]
    # TFF's preprocessing: the centre 24x24 of the image, standardised per image.
    image = np.asarray(splits["test"]["0"][0]["image"], np.float32)[4:28, 4:28]
    expected = (image - image.mean()) / max(image.std(), 1 / np.sqrt(image.size))
    np.testing.assert_allclose(data.test_x[0], expected, rtol=1e-4, atol=1e-4)
    element = next(iter(data.train.create_tf_dataset_for_client("2")))
    assert tuple(element["x"].shape) == (24, 24, 3)
    assert int(element["y"]) == splits["train"]["2"][0]["label"]
    assert data.partition_sha256 == cifar100.load_cifar100(cache_dir=str(tmp_path)).partition_sha256


def test_cifar100_offline_names_the_cache_path(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(DataError, match=str(tmp_path / "cifar100.sqlite")) as raised:
        cifar100.load_cifar100(cache_dir=str(tmp_path))
    assert "\n" not in str(raised.value)


def test_a_crop_larger_than_the_image_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="crop_size must be in 1..32"):
        cifar100.load_cifar100(crop_size=33, cache_dir=str(tmp_path))


@pytest.mark.slow
def test_a_round_on_cifar100(tmp_path):
    (tmp_path / "cache").mkdir()
    _write_cifar100(tmp_path / "cache", train_clients=4, per_client=6)
    run(compose_config(["dataset=cifar100", f"dataset.cache_dir={tmp_path / 'cache'}",
                        "model=simple_cnn", "schedule=smoke", "schedule.rounds=1",
                        "schedule.clients_per_round=2"], tmp_path / "run"))
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert table["eval_accuracy"].between(0, 1).all()


# --- Stack Overflow --------------------------------------------------------------------------

VOCAB = ["the", "i", "to", "a", "how", "do"]


def _post(tokens):
    return {"creation_date": "2010-01-01 00:00:00.000000 UTC", "score": 1, "tags": "python",
            "title": "a title", "tokens": tokens, "type": "question"}


def _write_stackoverflow(folder, train=None, test=None):
    """TFF's stackoverflow.sqlite and extracted word counts (most frequent first)."""
    train = train or {"u1": ["how do i", "i do"], "u2": ["the cat to a", "how"]}
    test = test or {"u1": ["how do i sort"], "u2": ["a b c", "do"], "u3": ["the"]}
    write_tff_database(folder / stackoverflow.DATABASE_NAME, {
        "train": {c: [_post(t) for t in posts] for c, posts in train.items()},
        "heldout": {"u9": [_post("the")]},
        "test": {c: [_post(t) for t in posts] for c, posts in test.items()}})
    counts = folder / stackoverflow.WORD_COUNTS_FILE
    counts.parent.mkdir(parents=True, exist_ok=True)
    counts.write_text("".join(f"{w} {100 - i}\n" for i, w in enumerate(VOCAB)))


def _words(ids, vocab):
    names = ("<pad>", *vocab, "<oov>", "<bos>", "<eos>")
    return [names[i] for i in ids]


def test_stackoverflow_is_read_from_its_database_format_as_tffs_preprocessing_makes_it(tmp_path):
    _write_stackoverflow(tmp_path)
    data = stackoverflow.load_stackoverflow(cache_dir=str(tmp_path), vocab_size=5,
                                            sequence_length=4, test_examples=100)
    vocab = VOCAB[:5]  # "do" is out of the 5-word vocabulary
    assert data.task == "next_token" and data.input_shape == (4,)
    assert data.num_classes == 5 + 4 and len(data.class_names) == data.num_classes
    assert sorted(data.train.client_ids) == ["u1", "u2"]
    element = next(iter(data.train.create_tf_dataset_for_client("u1")))
    x, y = element["x"].numpy(), element["y"].numpy()
    assert _words(x, vocab) == ["<bos>", "how", "<oov>", "i"]
    assert _words(y, vocab) == ["how", "<oov>", "i", "<eos>"]
    second = list(data.train.create_tf_dataset_for_client("u2"))[1]
    x, y = second["x"].numpy(), second["y"].numpy()
    assert _words(x, vocab) == ["<bos>", "how", "<eos>", "<pad>"]  # padded after eos
    assert _words(y, vocab) == ["how", "<eos>", "<pad>", "<pad>"]
    x, y = next(iter(data.train.create_tf_dataset_for_client("u2"))).values()
    assert _words(y.numpy(), vocab) == ["the", "<oov>", "to", "a"]  # truncated: no room for eos
    assert sorted(data.client_test) == ["u1", "u2", "u3"]
    assert len(data.test_y) == 4 and data.test_y.dtype == np.int32


def test_stackoverflow_held_out_clients_are_taken_in_a_seeded_order_until_enough(tmp_path):
    _write_stackoverflow(tmp_path)
    load = lambda **kwargs: stackoverflow.load_stackoverflow(  # noqa: E731
        cache_dir=str(tmp_path), vocab_size=6, sequence_length=4, **kwargs)
    first = load(test_examples=2, test_seed=0)
    assert 2 <= len(first.test_y) and len(first.client_test) < 3
    assert first.test_set_sha256 == load(test_examples=2, test_seed=0).test_set_sha256
    orders = {tuple(load(test_examples=1, test_seed=seed).client_test) for seed in range(8)}
    assert len(orders) > 1  # the seed draws which users are held out


def test_stackoverflow_caps_each_clients_sentences(tmp_path):
    _write_stackoverflow(tmp_path)
    data = stackoverflow.load_stackoverflow(cache_dir=str(tmp_path), vocab_size=6,
                                            sequence_length=4, max_client_examples=1)
    assert len(list(data.train.create_tf_dataset_for_client("u1"))) == 1


def test_stackoverflow_offline_names_the_cache_path(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(DataError, match=str(tmp_path / "stackoverflow.sqlite")) as raised:
        stackoverflow.load_stackoverflow(cache_dir=str(tmp_path))
    assert "\n" not in str(raised.value)


def test_stackoverflow_word_counts_missing_offline_names_their_path(tmp_path, monkeypatch):
    _offline(monkeypatch)
    path = os.path.join(tmp_path, "datasets", "stackoverflow.word_count")
    with pytest.raises(DataError, match=path) as raised:
        stackoverflow.load_vocabulary(str(tmp_path), 10)
    assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_a_round_on_stackoverflow_builds_the_vocabulary_in_the_worker(tmp_path):
    (tmp_path / "cache").mkdir()
    _write_stackoverflow(tmp_path / "cache")
    run(compose_config(["dataset=stackoverflow", f"dataset.cache_dir={tmp_path / 'cache'}",
                        "dataset.vocab_size=6", "dataset.sequence_length=4",
                        "model=char_lstm_small", "schedule=smoke", "schedule.rounds=1",
                        "schedule.clients_per_round=2", "schedule.batch_size=2"],
                       tmp_path / "run"))
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert table["eval_accuracy"].between(0, 1).all() and table["train_loss"].notna().all()


def test_resnet18_is_tffs_with_logits_out():
    import tensorflow as tf
    import tensorflow_federated as tff

    from fedlab.models.images import resnet18

    ours = resnet18((24, 24, 3), 100)
    theirs = tff.simulation.models.resnet_models.create_resnet18((24, 24, 3), 100)
    ours.set_weights(theirs.get_weights())  # same layers, same shapes
    x = np.random.default_rng(0).random((2, 24, 24, 3), np.float32)
    np.testing.assert_allclose(tf.nn.softmax(ours(x)).numpy(), theirs(x).numpy(), atol=1e-6)
    assert not np.allclose(ours(x).numpy().sum(axis=1), 1.0)
