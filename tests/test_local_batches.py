"""schedule.batch_within_epochs: how a client's local epochs are cut into batches."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import metrics, small_config

from fedlab.run import run
from fedlab.trainers import federated


def _batches(examples: int, epochs: int, batch: int, within: bool) -> list[np.ndarray]:
    dataset = tf.data.Dataset.from_tensor_slices(np.arange(examples))
    return list(federated.client_dataset(
        dataset, local_epochs=epochs, batch_size=batch, shuffle_buffer=examples, seed=3,
        batch_within_epochs=within).as_numpy_iterator())


@pytest.mark.parametrize("examples,epochs,batch,within,sizes", [
    (32, 2, 10, False, [10] * 6 + [4]),          # repeated, then batched: batches span epochs
    (32, 2, 10, True, [10, 10, 10, 2] * 2),      # each epoch batched on its own
    (32, 5, 1000, False, [160]),                 # B >= E n: one step per round
    (32, 5, 1000, True, [32] * 5),               # B = infinity: E full-batch steps
])
def test_batch_sizes_follow_the_chosen_cut(examples, epochs, batch, within, sizes):
    assert [len(b) for b in _batches(examples, epochs, batch, within)] == sizes


def test_each_epoch_batched_on_its_own_visits_every_example_once_per_epoch():
    batches = _batches(32, 3, 10, True)
    epochs = [np.concatenate(batches[i:i + 4]) for i in range(0, 12, 4)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(32))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled between epochs


def test_a_run_counts_the_batches_of_the_chosen_cut(tmp_path):
    # synthetic clients, 2 sampled per round: batches per round follow the cut
    counts = {}
    for within in (False, True):
        folder = tmp_path / str(within)
        run(small_config(folder, "schedule.local_epochs=3", "schedule.batch_size=1000",
                         f"schedule.batch_within_epochs={within}"))
        counts[within] = metrics(folder)["batches"].tolist()
    assert counts[False] == [2, 2] and counts[True] == [6, 6]
