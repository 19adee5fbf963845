"""The computation cache: a cached process is the traced one; keys change with what shapes it."""

import json
import logging
import os
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from conftest import assert_same_weights, small_config, wait_for

from fedlab.algorithms.fedavg import FedAvg
from fedlab.executors import contexts, execution
from fedlab.executors.computation_cache import (
    COMPILED,
    PROCESS_PARTS,
    PROCESSES,
    ProcessCache,
    config_fingerprint,
    load_process,
    random_ops,
    save_process,
)
from fedlab.executors.worker import worker_processes_alive
from fedlab.models import images
from fedlab.run import run, shaping_config
from fedlab.runs.resume import config_record
from fedlab.tasks import Task

SPEC = (tf.TensorSpec([None, 4, 4, 1], tf.float32), tf.TensorSpec([None], tf.int32))


def _process():
    task = Task(images.mlp, (4, 4, 1), 3)
    return FedAvg().build(
        task.tff_model(SPEC), tff.aggregators.MeanFactory(),
        tff.learning.optimizers.build_sgdm(0.1), tff.learning.optimizers.build_sgdm(1.0))


def _client_data(seed: int):
    rng = np.random.default_rng(seed)
    return [tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(6, 4, 4, 1)).astype(np.float32),
         rng.integers(0, 3, 6).astype(np.int32))).batch(3) for _ in range(2)]


def test_a_loaded_process_has_the_same_types_and_computes_the_same(tmp_path):
    traced = _process()
    save_process(traced, tmp_path / "entry")
    loaded = load_process(tmp_path / "entry")
    for part in PROCESS_PARTS:  # TFF interns types: the very same type, containers included
        assert getattr(loaded, part).type_signature is getattr(traced, part).type_signature
    with contexts.local_execution(tmp_path / "worker.log"):
        results = [process.next(process.initialize(), _client_data(0))
                   for process in (traced, loaded)]
        weights = [process.get_model_weights(result.state)
                   for process, result in zip((traced, loaded), results, strict=True)]
    assert type(results[1]) is type(results[0])
    assert type(weights[1]) is type(weights[0])
    tf.nest.map_structure(np.testing.assert_array_equal, weights[0].trainable,
                          weights[1].trainable)
    assert results[1].metrics == results[0].metrics


def test_the_second_request_loads_instead_of_building(tmp_path, caplog):
    cache = ProcessCache(tmp_path, fingerprint="f")
    built = []

    def build():
        built.append(1)
        return _process()

    assert cache.process(build, input_spec="a")[1] is False
    with caplog.at_level(logging.INFO, logger="fedlab"):
        again, from_cache = cache.process(build, input_spec="a")
    assert built == [1]
    assert from_cache and "loaded from the cache" in caplog.text
    assert isinstance(again, tff.learning.templates.LearningProcess)
    cache.process(build, input_spec="b")  # other run-time facts: another entry
    ProcessCache(tmp_path, fingerprint="g").process(build, input_spec="a")  # another config
    assert built == [1, 1, 1]
    assert len(list((tmp_path / PROCESSES).iterdir())) == 3


def test_an_unusable_entry_is_traced_again(tmp_path, caplog):
    cache = ProcessCache(tmp_path, fingerprint="f")
    cache.process(_process)
    entry = tmp_path / PROCESSES / cache.key()
    (entry / "next.pb").write_bytes(b"not a computation")
    built = []
    with caplog.at_level(logging.WARNING, logger="fedlab"):
        cache.process(lambda: built.append(1) or _process())
    assert built == [1]
    assert "unusable" in caplog.text
    load_process(entry)  # stored again, whole


def test_an_unwritable_cache_costs_only_the_time(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="fedlab"):
        process, _ = ProcessCache(blocker / "cache", fingerprint="f").process(_process)
    assert isinstance(process, tff.learning.templates.LearningProcess)
    assert "cannot write the computation cache" in caplog.text


def test_compiled_computations_are_kept_by_content(tmp_path):
    cache = ProcessCache(tmp_path, fingerprint="f")
    compiled = []

    def compile_fn(computation):
        compiled.append(1)
        return contexts.compile_for_worker(computation)

    cached_compile = cache.compiled(compile_fn)
    process = _process()
    first = cached_compile(process.next)
    again = cached_compile(process.next)
    cached_compile(process.initialize)
    assert compiled == [1, 1]
    assert (tff.framework.ConcreteComputation.get_proto(again)
            == tff.framework.ConcreteComputation.get_proto(first))
    assert len(list((tmp_path / COMPILED).iterdir())) == 2


def test_least_recently_used_entries_go_beyond_the_size_limit(tmp_path):
    roomy = ProcessCache(tmp_path, fingerprint="f")
    for name in ("old", "used", "new"):
        roomy.process(_process, input_spec=name)
        os.utime(tmp_path / PROCESSES / roomy.key(input_spec=name), (1, 1))
    roomy.process(_process, input_spec="used")  # a hit makes it recent again
    entry_size = sum(p.stat().st_size
                     for p in (tmp_path / PROCESSES / roomy.key(input_spec="old")).iterdir())
    tight = ProcessCache(tmp_path, fingerprint="f", max_bytes=int(2.5 * entry_size))
    tight.process(_process, input_spec="newest")
    kept = {p.name for p in (tmp_path / PROCESSES).iterdir()}
    assert kept == {roomy.key(input_spec="newest"), roomy.key(input_spec="used")}
    ProcessCache(tmp_path, fingerprint="f", max_bytes=1).process(_process, input_spec="x")
    assert [p.name for p in (tmp_path / PROCESSES).iterdir()] == [roomy.key(input_spec="x")]


@pytest.mark.parametrize("override,shapes", [
    ("model=fedavg_cnn", True),
    ("optimizer.client.learning_rate=0.5", True),
    ("aggregator=compression", True),
    ("algorithm=fedprox", True),
    ("schedule.seed=9", False),  # in the key only for processes with random ops (below)
    ("schedule.rounds=7", False),
    ("schedule.clients_per_round=3", False),
    ("executor.clients_per_subround=2", False),
    ("clients=unreliable", False),
])
def test_the_fingerprint_follows_the_configuration_that_shapes_the_process(
        tmp_path, override, shapes):
    base = config_fingerprint(shaping_config(config_record(small_config(tmp_path))))
    changed = config_fingerprint(shaping_config(config_record(small_config(tmp_path, override))))
    assert (changed != base) is shapes


def test_a_run_from_the_cache_writes_the_traced_runs_metrics(tmp_path, caplog):
    cache = tmp_path / "cache"
    settings = ("schedule.rounds=2", "schedule.seed=4", f"computation_cache={cache}")
    run(small_config(tmp_path / "traced", *settings))
    with caplog.at_level(logging.INFO, logger="fedlab"):
        run(small_config(tmp_path / "cached", *settings))
    assert "loaded from the cache" in caplog.text
    summaries = [json.loads((tmp_path / name / "summary.json").read_text())
                 for name in ("traced", "cached")]
    assert [s["learning_process"] for s in summaries] == ["traced", "from the cache"]
    timings = ["round_seconds", "eval_seconds"]
    traced, cached = (pd.read_csv(tmp_path / name / "metrics.csv").drop(columns=timings)
                      for name in ("traced", "cached"))
    pd.testing.assert_frame_equal(cached, traced, check_exact=True)
    assert_same_weights(tmp_path / "cached", tmp_path / "traced")


def _launched_workers() -> list[int]:
    """This process's workers, once a just launched one shows in /proc (a moment later).

    The first reading that shows one is returned: a second read can miss the worker while it
    execs (its ``/proc/<pid>/cmdline`` is empty for that moment), as seen in 2 of 15 runs.
    """
    deadline = time.monotonic() + 30  # a loaded machine once took over 10 s
    while not (alive := worker_processes_alive()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_a_worker_launched_early_runs_the_run(tmp_path):
    executor = execution.LocalExecution()
    with executor.launched(tmp_path):
        [launched] = _launched_workers()
        with executor.context(tmp_path):
            # No second worker. (The kernel's list of children can miss one while processes
            # start or exit around it - seen once under load in CI - so it is read again.)
            assert wait_for(lambda: worker_processes_alive() == [launched], seconds=5)
            process = _process()
            weights = process.get_model_weights(process.initialize())
            assert [w.shape for w in weights.trainable] == [(16, 200), (200,), (200, 200),
                                                            (200,), (200, 3), (3,)]
    assert worker_processes_alive() == []
    with executor.context(tmp_path / "other"):  # not launched for this folder: its own
        assert len(_launched_workers()) == 1


def test_the_architecture_ignores_keras_numbering_but_not_the_output_size():
    from fedlab.trainers.federated import model_architecture

    first, second = (images.simple_cnn((28, 28, 1), 10) for _ in range(2))
    assert first.layers[1].name != second.layers[1].name
    assert model_architecture(first) == model_architecture(second)
    assert model_architecture(first) != model_architecture(images.simple_cnn((28, 28, 1), 62))


def test_the_entrypoint_launches_a_local_worker_before_importing_tensorflow(tmp_path):
    import contextlib

    from conftest import compose_config

    from fedlab.run import launch_executor_early

    with contextlib.ExitStack() as stack:
        executor = launch_executor_early(small_config(tmp_path), stack)
        assert isinstance(executor, execution.LocalExecution)
        assert len(_launched_workers()) == 1
    assert worker_processes_alive() == []
    with contextlib.ExitStack() as stack:  # nothing to launch, or settings run() will report
        assert launch_executor_early(compose_config(["trainer=central"], tmp_path),
                                     stack) is None
        assert launch_executor_early(
            small_config(tmp_path, "executor.concurrent_calls=-5"), stack) is None
        assert worker_processes_alive() == []


def test_random_ops_are_found_and_a_deterministic_process_has_none():
    assert random_ops(_process()) == []

    @tff.tensorflow.computation
    def noise():
        return tf.random.normal([3])

    @tff.tensorflow.computation
    def fixed():
        return tf.zeros([3])

    parts = dict(  # only the four computations are read
        initialize=fixed, next=noise, get_model_weights=fixed, set_model_weights=fixed)
    assert random_ops(type("Parts", (), parts)) == ["RandomStandardNormal"]


@pytest.mark.slow
def test_runs_that_differ_only_in_their_seed_share_a_process_without_random_ops(tmp_path):
    cache = tmp_path / "cache"
    run(small_config(tmp_path / "seed 4", "schedule.rounds=2", "schedule.seed=4",
                     f"computation_cache={cache}"))
    run(small_config(tmp_path / "seed 5", "schedule.rounds=2", "schedule.seed=5",
                     f"computation_cache={cache}"))
    run(small_config(tmp_path / "seed 5 traced", "schedule.rounds=2", "schedule.seed=5",
                     "computation_cache=null"))
    summaries = {name: json.loads((tmp_path / name / "summary.json").read_text())
                 for name in ("seed 4", "seed 5")}
    assert summaries["seed 5"]["learning_process"] == "from the cache"
    timings = ["round_seconds", "eval_seconds"]
    shared, traced, other_seed = (
        pd.read_csv(tmp_path / name / "metrics.csv").drop(columns=timings)
        for name in ("seed 5", "seed 5 traced", "seed 4"))
    # The seed's own initial model and clients.
    pd.testing.assert_frame_equal(shared, traced, check_exact=True)
    assert not np.allclose(shared["train_loss"], other_seed["train_loss"])


def dropout_model(input_shape, num_classes):
    """A model with dropout: its process keeps Keras' random ops (dropout, initialisers)."""
    return tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=tuple(input_shape)),
                                tf.keras.layers.Flatten(), tf.keras.layers.Dropout(0.5),
                                tf.keras.layers.Dense(num_classes)])


@pytest.mark.slow
def test_a_process_with_random_ops_is_traced_for_each_seed(tmp_path):
    cache = tmp_path / "cache"
    for seed in (4, 5):
        run(small_config(tmp_path / str(seed), "schedule.rounds=1", f"schedule.seed={seed}",
                         "model._target_=test_computation_cache.dropout_model",
                         f"computation_cache={cache}"))
    assert [json.loads((tmp_path / str(seed) / "summary.json").read_text())[
        "learning_process"] for seed in (4, 5)] == ["traced", "traced"]
    assert len(list((cache / PROCESSES).iterdir())) == 2


def test_the_cache_is_private_and_another_users_entries_are_not_loaded(tmp_path, caplog):
    cache = ProcessCache(tmp_path / "cache", fingerprint="f")
    built = []

    def build():
        built.append(1)
        return _process()

    cache.process(build, input_spec="a")
    for folder in (cache.directory, cache.directory / PROCESSES):
        assert folder.stat().st_mode & 0o777 == 0o700
    [entry] = (cache.directory / PROCESSES).iterdir()
    if os.getuid() != 0:
        pytest.skip("only root can give an entry to another user here")
    someone_else = os.getuid() + 4242
    for path in (entry, *entry.iterdir()):
        os.chown(path, someone_else, -1)
    with caplog.at_level(logging.INFO, logger="fedlab"):
        _, from_cache = cache.process(build, input_spec="a")
    assert not from_cache and built == [1, 1]
    assert f"cache entry {entry} was not written by this user" in caplog.text
    assert "loaded from the cache" not in caplog.text
