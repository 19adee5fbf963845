"""TFF's Stack Overflow by user, next-word prediction, with TFF's loader and preprocessing.

``tff.simulation.datasets.stackoverflow.load_data`` reads ``<cache_dir>/stackoverflow.sqlite``
(downloading it once when online): 342,477 training users, and a test split of later posts by
the same users. The vocabulary is the ``vocab_size`` most frequent words of TFF's word counts
(``load_word_counts``; its extracted file is ``<cache_dir>/datasets/stackoverflow.word_count``).
Each sentence becomes ids with TFF's baseline preprocessing (``build_to_ids_fn``: bos, the words
truncated to ``sequence_length``, eos if room; words out of the vocabulary in oov buckets),
padded to ``sequence_length + 1`` and split into inputs and next-word targets, as TFF's
``batch_and_split`` does batch by batch. Pad is 0; accuracy is over the non-pad targets (TFF's
``accuracy``, oov and eos included).
"""

import collections
import hashlib
import itertools
import os
import sqlite3

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data.federated_data import FederatedData, clients_as_arrays
from fedlab.data.tff_database import load_tff_database, tff_cache_dir
from fedlab.errors import ConfigError, DataError

DATABASE_NAME = "stackoverflow.sqlite"
# Where TFF's load_word_counts extracts its archive (Keras' get_file, cache_subdir "datasets").
WORD_COUNTS_FILE = os.path.join("datasets", "stackoverflow.word_count")
_preprocessing = tff.simulation.baselines.stackoverflow.word_prediction_preprocessing
_constants = tff.simulation.baselines.stackoverflow.constants


def load_vocabulary(cache_dir: str | None, vocab_size: int) -> list[str]:
    """The ``vocab_size`` most frequent words of TFF's Stack Overflow word counts.

    Reads the extracted word-count file when it is there (one ``word count`` line per word,
    most frequent first, as ``load_word_counts`` reads it); otherwise TFF's
    ``load_word_counts`` fetches and extracts it.

    Raises:
      DataError: the file is absent and cannot be downloaded (the message names the path).
    """
    path = os.path.join(tff_cache_dir(cache_dir), WORD_COUNTS_FILE)
    if os.path.exists(path):
        with open(path) as lines:
            return [line.split()[0] for line in itertools.islice(lines, vocab_size)]
    try:
        counts = tff.simulation.datasets.stackoverflow.load_word_counts(
            cache_dir=tff_cache_dir(cache_dir), vocab_size=vocab_size)
    except Exception as error:  # noqa: BLE001 - Keras' get_file wraps URL errors in Exception
        raise DataError(
            f"Stack Overflow's word counts are not at {path} and could not be downloaded "
            f"({type(error).__name__}). Put TFF's stackoverflow.word_count there (from "
            "stackoverflow.word_count.tar.bz2) or set dataset.cache_dir") from None
    return list(counts)


def database_metadata_sha256(path: str) -> str:
    """SHA-256 of a TFF database's client metadata (every split, client id and its count).

    The Stack Overflow database is tens of gigabytes: its per-client example counts stand for
    its contents (a changed database with the same counts is not detected).
    """
    digest = hashlib.sha256()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT split_name, client_id, num_examples FROM "
                                  "client_metadata ORDER BY split_name, client_id")
        for split, client, count in rows:
            digest.update(f"{split}\t{client}\t{count}\n".encode())
    finally:
        connection.close()
    return digest.hexdigest()


def sentence_to_sequences(vocab: list[str], sequence_length: int, num_out_of_vocab_buckets: int):
    """A map from a Stack Overflow example to ``OrderedDict(x=inputs, y=next words)``."""
    to_ids = _preprocessing.build_to_ids_fn(vocab, sequence_length, num_out_of_vocab_buckets)

    def to_xy(example):
        ids = tf.cast(to_ids(example), tf.int32)
        ids = tf.pad(ids, [[0, sequence_length + 1 - tf.size(ids)]])
        ids = tf.ensure_shape(ids, [sequence_length + 1])
        return collections.OrderedDict(x=ids[:-1], y=ids[1:])

    return to_xy


def load_stackoverflow(
    cache_dir: str | None = None,
    vocab_size: int = 10000,
    num_out_of_vocab_buckets: int = 1,
    sequence_length: int = 20,
    max_client_examples: int | None = None,
    test_examples: int = 10000,
    test_seed: int = 0,
) -> FederatedData:
    """Stack Overflow: users as clients, next-word sequences; test users' posts held out.

    Test clients are visited in an order drawn from ``test_seed`` and taken whole until their
    sentences reach ``test_examples``: the held-out set is their pooled sentences, and each
    keeps its own as client-level test data (the same users train, on earlier posts).

    Args:
      cache_dir: the folder holding ``stackoverflow.sqlite`` and
        ``datasets/stackoverflow.word_count`` (null: ``~/.tff``).
      vocab_size: the vocabulary: this many most frequent words of TFF's word counts.
      num_out_of_vocab_buckets: ids shared by the words outside the vocabulary.
      sequence_length: words per sequence: a sentence's words are truncated to it, then bos,
        eos and pad make ``sequence_length + 1`` ids, split into inputs and next-word targets.
      max_client_examples: at most this many sentences per user (null: all).
      test_examples: the held-out set: test users' sentences until there are this many.
      test_seed: the seed of the order in which test users are taken.

    Raises:
      ConfigError: a non-positive size.
      DataError: the database or the word counts are absent and cannot be downloaded.
    """
    for name, value in (("vocab_size", vocab_size), ("sequence_length", sequence_length),
                        ("num_out_of_vocab_buckets", num_out_of_vocab_buckets),
                        ("test_examples", test_examples),
                        ("max_client_examples", max_client_examples or 1)):
        if value < 1:
            raise ConfigError(f"dataset.{name} must be positive, got {value}")
    cache_dir = tff_cache_dir(cache_dir)
    path = os.path.join(cache_dir, DATABASE_NAME)
    train, _, test = load_tff_database(tff.simulation.datasets.stackoverflow.load_data,
                                       cache_dir, DATABASE_NAME, "Stack Overflow")
    vocab = load_vocabulary(cache_dir, vocab_size)

    def client_examples(dataset: tf.data.Dataset) -> tf.data.Dataset:
        # The vocabulary table is made where the dataset is (in the worker's graph when traced).
        to_xy = sentence_to_sequences(vocab, sequence_length, num_out_of_vocab_buckets)
        if max_client_examples:
            dataset = dataset.take(max_client_examples)
        return dataset.map(to_xy)

    order = np.random.default_rng(test_seed).permutation(len(test.client_ids))
    test_sequences = test.preprocess(client_examples)
    client_test, gathered = {}, 0
    for index in order:
        if gathered >= test_examples:
            break
        taken = clients_as_arrays(test_sequences, [test.client_ids[index]])
        client_test.update(taken)
        gathered += sum(len(y) for _, y in taken.values())
    if not client_test:
        raise DataError(f"Stack Overflow database {path} has no test examples")
    # Ids as TFF's get_special_tokens lays them out: pad 0, words, oov buckets, bos, eos.
    class_names = ("<pad>", *vocab, *(f"<oov{n}>" for n in range(num_out_of_vocab_buckets)),
                   "<bos>", "<eos>")
    return FederatedData(
        partition_sha256=database_metadata_sha256(path),
        train=train.preprocess(client_examples),
        test_x=np.concatenate([x for x, _ in client_test.values()]),
        test_y=np.concatenate([y for _, y in client_test.values()]),
        client_test=client_test,
        input_shape=(sequence_length,),
        num_classes=len(class_names),
        class_names=class_names,
        shuffle_buffer=_constants.DEFAULT_SHUFFLE_BUFFER_SIZE,
        task="next_token",
    )
