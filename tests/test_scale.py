"""Issue 15's speed levers change how a round runs, never what it computes."""

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import REPO, TIMING, compose_config, deterministic_metrics, small_config

from fedlab.clients.datasets import (
    ClientWork,
    PythonDatasets,
    WorkerDatasets,
    client_datasets,
    worker_readable,
)
from fedlab.data.federated_data import client_data_from_arrays
from fedlab.executors import contexts, execution
from fedlab.models import images
from fedlab.run import run
from fedlab.tasks import Task
from fedlab.trainers import federated

GOLDEN = REPO / "tests" / "data" / "golden"
# Runs whose metrics.csv the code before issue 15's changes wrote (tests/data/golden/), with the
# client learning rate of that time (0.02; the default job's is tuned since).
GOLDEN_RUNS = {
    "fedavg_mnist": ["dataset=mnist", "model=simple_cnn", "schedule.rounds=3",
                     "schedule.clients_per_round=10", "schedule.seed=3",
                     "optimizer.client.learning_rate=0.02"],
    "unreliable_mnist": ["dataset=mnist", "model=simple_cnn", "schedule.rounds=3",
                         "schedule.clients_per_round=10", "schedule.seed=3", "clients=unreliable",
                         "clients.dropout=0.3", "clients.deadline_seconds=20",
                         "clients.partial_work=true", "optimizer.client.learning_rate=0.02"],
    "mime_lite_synthetic": ["dataset=synthetic", "model=simple_cnn", "schedule.rounds=3",
                            "schedule.clients_per_round=4", "algorithm=mime_lite",
                            "schedule.local_epochs=2", "optimizer.client.learning_rate=0.02"],
}


@pytest.mark.parametrize("name", sorted(GOLDEN_RUNS))
def test_same_seed_gives_the_metrics_written_before(tmp_path, name):
    run(compose_config(GOLDEN_RUNS[name], tmp_path))
    now = deterministic_metrics(tmp_path)
    before = pd.read_csv(GOLDEN / f"{name}.csv").drop(columns=TIMING)
    assert list(now.columns) == list(before.columns)
    # FedAvg's Keras-model client work broadcast its (constant) 32-bit learning rate with the
    # model; the functional client work has no state, so each client downloads 32 bits less.
    bits_down = ["bits_down", "bits_down_cumulative", "bits_down_per_client"]
    assert set(before["bits_down_per_client"] - now["bits_down_per_client"]) <= {0, 32}
    now, before = now.drop(columns=bits_down), before.drop(columns=bits_down)
    integers = [c for c in before.columns if pd.api.types.is_integer_dtype(before[c])]
    pd.testing.assert_frame_equal(now[integers], before[integers], check_exact=True)
    # Bit-identical on the machine that wrote them; another CPU may round the last digit.
    np.testing.assert_allclose(now.to_numpy(float), before.to_numpy(float), rtol=1e-5)


DATASET_ROUTES = {  # how the clients' examples reach the worker
    "file": ("executor.client_datasets_in_worker=true", "executor.client_arrays_from_file=true"),
    "embedded": ("executor.client_datasets_in_worker=true",
                 "executor.client_arrays_from_file=false"),
    "python": ("executor.client_datasets_in_worker=false",),
}


@pytest.mark.slow
def test_datasets_built_in_the_worker_train_exactly_like_datasets_from_python(tmp_path):
    tables = {}
    for route, overrides in DATASET_ROUTES.items():
        run(small_config(tmp_path / route, "schedule.rounds=3", "schedule.seed=7",
                         "clients=unreliable", "clients.partial_work=true",
                         "clients.deadline_seconds=1", *overrides))
        tables[route] = deterministic_metrics(tmp_path / route)
        assert not (tmp_path / route / execution.CLIENT_ARRAYS_FILE).exists()  # removed
    pd.testing.assert_frame_equal(tables["file"], tables["python"], check_exact=True)
    pd.testing.assert_frame_equal(tables["embedded"], tables["python"], check_exact=True)
    assert tables["python"]["examples"].sum() > 0


def _clients():
    rng = np.random.default_rng(0)
    return {f"c{i}": (rng.random((5 + i, 3, 3, 1), dtype=np.float32),
                      rng.integers(0, 4, 5 + i).astype(np.int32)) for i in range(3)}


def _preprocess(dataset, seed):
    return federated.client_dataset(dataset, local_epochs=2, batch_size=2, shuffle_buffer=8,
                                   seed=seed)


def test_worker_datasets_hold_each_clients_own_examples_in_the_python_order(tmp_path):
    clients = _clients()
    data = client_data_from_arrays(clients)
    worker = client_datasets(data, _preprocess, graph_seed=5)
    assert isinstance(worker, WorkerDatasets)
    python = PythonDatasets(data, _preprocess)
    tf.random.set_seed(5)  # the global seed eager datasets pair their shuffle seed with
    with contexts.local_execution(tmp_path / "worker.log"):
        for work in (ClientWork("c2", 11), ClientWork("c0", 3, batches=2)):
            built = list(worker.computation(*worker([work])[0]))
            sent = list(python.dataset(work).as_numpy_iterator())
            assert len(built) == len(sent) == (2 if work.batches == 2 else 7)
            for a, b in zip(built, sent, strict=True):
                np.testing.assert_array_equal(a["x"], b["x"])
                np.testing.assert_array_equal(a["y"], b["y"])
        # All of c2's examples, twice (two local epochs), nobody else's.
        examples = np.concatenate([b["y"] for b in worker.computation("c2", 11, -1)])
    assert sorted(examples) == sorted(np.tile(clients["c2"][1], 2))


def _mixed_clients():  # uint8 images with channels, int64 labels, uneven client sizes
    rng = np.random.default_rng(1)
    return {f"client {i}": (rng.integers(0, 256, (1 + 3 * i, 4, 3, 2), dtype=np.uint8),
                            rng.integers(0, 10, 1 + 3 * i).astype(np.int64)) for i in range(4)}


def _traced_examples(client_data, client_id):
    """A client's examples and labels, read by a computation that runs in the worker."""
    @tff.tensorflow.computation(tf.string)
    def all_rows(client):
        return client_data.serializable_dataset_fn(client).batch(1000).get_single_element()

    rows = all_rows(client_id)
    return rows["x"], rows["y"]


def test_the_worker_reads_each_clients_rows_from_the_arrays_file(tmp_path):
    clients = _mixed_clients()
    in_memory = client_data_from_arrays(clients)
    stored = in_memory.stored(tmp_path / "arrays.records")
    assert stored.element_type_structure == in_memory.element_type_structure
    assert (tmp_path / "arrays.records").stat().st_size == in_memory.nbytes
    with contexts.local_execution(tmp_path / "worker.log"):
        for client_id, (x, y) in clients.items():
            for client_data in (in_memory, stored):
                got_x, got_y = _traced_examples(client_data, client_id)
                np.testing.assert_array_equal(got_x, x)
                np.testing.assert_array_equal(got_y, y)
        # The worker reads the file when it runs: changed bytes are changed examples.
        (tmp_path / "arrays.records").write_bytes(bytes(in_memory.nbytes))
        got_x, got_y = _traced_examples(stored, "client 3")
        assert not got_x.any() and not got_y.any()
        np.testing.assert_array_equal(_traced_examples(in_memory, "client 3")[0],
                                      clients["client 3"][0])


def test_a_relative_arrays_file_is_opened_in_the_workers_folder(tmp_path):
    clients = _mixed_clients()
    stored = client_data_from_arrays(clients).stored(tmp_path / "arrays.records",
                                                     "arrays.records")
    with contexts.local_execution(tmp_path / "worker.log"):
        np.testing.assert_array_equal(_traced_examples(stored, "client 2")[1],
                                      clients["client 2"][1])


def test_data_too_large_to_embed_is_read_from_the_arrays_file(tmp_path):
    data = client_data_from_arrays(_clients(), embed_limit_bytes=0)
    with worker_readable(data, (tmp_path / "a.records", str(tmp_path / "a.records"))) as stored:
        assert isinstance(client_datasets(stored, _preprocess, graph_seed=0), WorkerDatasets)
        assert (tmp_path / "a.records").is_file()
    assert not (tmp_path / "a.records").exists()


def test_arrays_file_that_cannot_be_written_leaves_the_arrays_embedded(tmp_path, caplog):
    data = client_data_from_arrays(_clients())
    blocked = tmp_path / "missing folder" / "a.records"
    with caplog.at_level(logging.WARNING, logger="fedlab"), \
            worker_readable(data, (blocked, str(blocked))) as kept:
        assert kept is data
    assert "cannot write them" in caplog.text
    with worker_readable(data, None) as unchanged:
        assert unchanged is data
    wide_labels = client_data_from_arrays(  # tf.io.decode_raw has no uint32
        {c: (x, y.astype(np.uint32)) for c, (x, y) in _clients().items()})
    with worker_readable(wide_labels, (tmp_path / "b.records", "b.records")) as kept:
        assert kept is wide_labels
    assert "uint32" in caplog.text and not (tmp_path / "b.records").exists()
    with_empty_client = client_data_from_arrays(
        {**_clients(), "empty": (np.zeros((0, 3, 3, 1), np.float32), np.zeros(0, np.int32))})
    with worker_readable(with_empty_client, (tmp_path / "c.records", "c.records")) as kept:
        assert kept is with_empty_client
    assert "without examples" in caplog.text


def test_data_too_large_to_embed_is_sent_from_python(caplog):
    data = client_data_from_arrays(_clients(), embed_limit_bytes=0)
    with caplog.at_level(logging.INFO, logger="fedlab"):
        datasets = client_datasets(data, _preprocess, graph_seed=0)
    assert isinstance(datasets, PythonDatasets)
    assert "built in Python" in caplog.text
    assert len(list(datasets([ClientWork("c1", 0)])[0])) == 6


@pytest.mark.slow
def test_subrounds_train_like_one_pass_of_the_cohort(tmp_path):
    tables = {}
    for per_subround in (0, 1):
        run(small_config(tmp_path / str(per_subround), "schedule.rounds=3",
                         "schedule.clients_per_round=3", "aggregator=compression",
                         f"executor.clients_per_subround={per_subround}"))
        tables[per_subround] = deterministic_metrics(tmp_path / str(per_subround))
    one_pass, in_parts = tables[0], tables[1]
    pd.testing.assert_frame_equal(one_pass[["examples", "batches", "bits_up"]],
                                  in_parts[["examples", "batches", "bits_up"]], check_exact=True)
    # The aggregate is summed client by client instead of at once: equal up to rounding.
    for column in ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy"):
        np.testing.assert_allclose(in_parts[column], one_pass[column], rtol=1e-4)


@pytest.mark.parametrize("cohort,per_subround,expected", [
    (10, 0, 1), (10, 10, 1), (10, 4, 3), (200, 20, 10)])
def test_subround_count(cohort, per_subround, expected):
    assert execution.subrounds(cohort, per_subround) == expected


FEDAVG_CNN_BYTES = 1_663_370 * 4


def test_memory_warning_suggests_the_largest_subround_that_fits():
    available = 3 * 2**30
    line = execution.memory_warning(FEDAVG_CNN_BYTES, 200, 0, available)
    assert line.startswith("200 clients at once need about 4.9 GiB in the TFF worker")
    suggested = int(re.search(r"clients_per_subround=(\d+)", line).group(1))
    budget = execution.WORKER_MEMORY_SHARE * available
    assert (execution.worker_memory_bytes(FEDAVG_CNN_BYTES, suggested) <= budget
            < execution.worker_memory_bytes(FEDAVG_CNN_BYTES, suggested + 1))
    assert execution.memory_warning(FEDAVG_CNN_BYTES, 200, suggested, available) is None
    assert execution.memory_warning(FEDAVG_CNN_BYTES, 10, 0, available) is None
    assert execution.memory_warning(FEDAVG_CNN_BYTES, 200, 0, None) is None
    assert "even one client" in execution.memory_warning(FEDAVG_CNN_BYTES, 200, 0, 2**29)


def test_available_memory_is_read_from_the_kernel():
    available = execution.available_memory_bytes()
    if not Path("/proc/meminfo").exists():
        assert available is None
    else:
        assert 0 < available < 2**50


def test_a_run_whose_clients_would_not_fit_warns_and_still_trains(tmp_path, caplog,
                                                                  monkeypatch):
    monkeypatch.setattr(execution, "available_memory_bytes", lambda: 2**20)
    with caplog.at_level(logging.WARNING, logger="fedlab"):
        run(small_config(tmp_path, "schedule.rounds=1"))
    assert "clients at once need about" in caplog.text
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
    assert execution.RemoteExecution().memory_warning(FEDAVG_CNN_BYTES, 10**6) is None


def test_one_subround_keeps_tffs_plain_context_and_more_use_the_mergeable_one():
    plain = contexts.execution_context(["localhost:1"])
    parts = contexts.execution_context(["localhost:1"], num_subrounds=3)
    assert type(plain).__name__ == "SyncExecutionContext"
    assert type(parts).__name__ == "MergeableCompExecutionContext"


def _with_dropout(input_shape, num_classes):
    return tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
                                tf.keras.layers.Flatten(), tf.keras.layers.Dropout(0.5),
                                tf.keras.layers.Dense(num_classes)])


def test_stateless_models_run_functionally_and_dropout_keeps_the_keras_path():
    spec = _preprocess(client_data_from_arrays(_clients()).create_tf_dataset_for_client("c0"),
                       0).element_spec
    plain = Task(images.simple_cnn, (3, 3, 1), 4).tff_model(spec)
    dropout = Task(_with_dropout, (3, 3, 1), 4).tff_model(spec)
    assert isinstance(plain, tff.learning.models.FunctionalModel)
    assert not isinstance(dropout, tff.learning.models.FunctionalModel) and callable(dropout)
