"""Benchmark: FedAvg round time against the Keras floor, lever by lever; start-up; memory.

    uv run python benchmarks/round_overhead.py [--rounds 20] [--long-rounds 300]
        [--cross-device-rounds 5] [--cross-device-only] [--startup-runs 3] [--model-passes]
        [--text-startup 3]
        [--memory-rounds 300 --subrounds 0 20] [--memory-only] [--isolation-rounds 20]
        [--text-rounds 10]

A "round" is what fedlab's ``round_seconds`` column measures: the round's client inputs plus
``process.next`` on a local TFF worker. Setups (``SETUPS``), each adding one lever:

- ``before``: TFF's defaults — ``DATASET_REDUCE`` client loop, a worker with no limit on
  concurrent computations and glibc's default malloc arenas, datasets sent from Python, the
  Keras-model path, tf.data's per-iterator graph rewrite;
- ``11-25``: fedlab until issue 15 — ``DATASET_ITERATOR``, one computation per core,
  ``MALLOC_ARENA_MAX=2``;
- ``+no tf.data rewrite``: client datasets without tf.data's static optimisations;
- ``+datasets in worker``: client datasets built in the worker from (id, seed, batches);
- ``+functional model``: + TFF's FunctionalModel;
- ``now``: + the worker reads the clients' arrays from a file instead of receiving them inside
  every round's computation (fedlab's defaults).

The "Keras floor" is plain ``model.fit`` of the same model on the same examples with the same
batch size, in this process; "epoch in fit" the epoch alone. Rounds and fits are interleaved
(one of each in turn) so a slow stretch of the machine hits all alike; medians are printed.

By default: 10 clients x 80 embedded-MNIST examples per round (batch 20). ``--cross-device-rounds
N``: 400 clients of 10 examples, 10/50/100/200 per round (batch 10), the ladder of setups, and
the per-client overhead (round - fit) / clients. ``--startup-runs N``: launches ``python -m
fedlab schedule.rounds=1`` N times with an empty computation cache and N times with a warm one
(interleaved) and prints when each start-up phase ended. ``--memory-rounds
N``: ``python -m fedlab`` with fedavg_cnn, 200 of 400 clients per round, N rounds per
``--subrounds`` value, sampling the resident memory of Python and its worker. ``--long-rounds
N``: N rounds of simple_cnn (mean, compression) and the worker's memory growth.
``--text-rounds N``: Shakespeare rounds of 10 roles with char_lstm and char_lstm_small
against Keras fit over the same sequences. ``--isolation-rounds N``: rounds through the
isolated worker (fedlab's default: its own network namespace, reached through a forwarding
Unix socket) against a worker reached on its TCP port directly, interleaved, at 10 x 80 and
200 x 10 clients. ``--model-passes``: FedAvg's
per-client model-sized work (delta, finiteness check, weighting,
sum) alone in one tf.function, the part of the per-client overhead the model's size sets. Prints
figures; asserts nothing.
"""

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402

from fedlab import (  # noqa: E402
    aggregators,
    algorithms,
    comms,
    models,
    runtime,
    tasks,
    trainers,
    worker,
)
from fedlab.clients.datasets import client_datasets  # noqa: E402
from fedlab.clients.sampling import RoundClients  # noqa: E402
from fedlab.data.mnist import load_mnist  # noqa: E402
from fedlab.data.shakespeare import load_shakespeare  # noqa: E402
from fedlab.tasks import next_token  # noqa: E402

BATCH = 20
CROSS_DEVICE_SIZES = (10, 50, 100, 200)  # clients per round, 10 examples each


# The two workers: TFF's defaults, and fedlab's (one computation per core, two malloc arenas).
WORKERS = {
    "tff": (-1, {k: v for k, v in os.environ.items() if k not in worker.WORKER_MALLOC_ENV}),
    "fedlab": (0, worker.worker_environment()),
}


@dataclass(frozen=True)
class Setup:
    """How a round runs: TFF's client loop, the worker, and where datasets and weights live."""

    loop: tff.learning.LoopImplementation
    worker: str  # a key of WORKERS
    tf_data_rewrite: bool = False  # tf.data's default per-iterator graph optimisations on
    datasets_in_worker: bool = True  # client datasets built in the worker from ids
    functional: bool = True  # the model as TFF's FunctionalModel (else the Keras-model path)
    arrays_file: bool = True  # the worker reads the clients' arrays from a file (else embedded)


_REDUCE, _ITERATOR = (tff.learning.LoopImplementation.DATASET_REDUCE,
                      tff.learning.LoopImplementation.DATASET_ITERATOR)
# Each setup adds one lever to the one above it; "now" is fedlab's default.
SETUPS = {
    "before": Setup(_REDUCE, "tff", tf_data_rewrite=True, datasets_in_worker=False,
                    functional=False),
    "11-25": Setup(_ITERATOR, "fedlab", tf_data_rewrite=True, datasets_in_worker=False,
                   functional=False),
    "+no tf.data rewrite": Setup(_ITERATOR, "fedlab", datasets_in_worker=False,
                                 functional=False),
    "+datasets in worker": Setup(_ITERATOR, "fedlab", functional=False, arrays_file=False),
    "+functional model": Setup(_ITERATOR, "fedlab", arrays_file=False),
    "now": Setup(_ITERATOR, "fedlab"),
}
LADDER = ("11-25", "+no tf.data rewrite", "+datasets in worker", "+functional model", "now")
# The arrays files of the setups that read them (removed when the script ends).
_ARRAYS_FOLDER = tempfile.TemporaryDirectory(prefix="fedlab-benchmark-arrays-")
_STORED: dict[Path, object] = {}  # arrays file -> the client data reading it
_REWRITE = tf.data.Options()
_REWRITE.experimental_optimization.apply_default_optimizations = True
_REWRITE.autotune.enabled = True


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process from /proc (VmRSS: resident now, VmHWM: peak), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def round_clients(data, setup: Setup, clients_per_round: int = 10, batch: int = BATCH):
    """Fedlab's per-round client sampling, and the datasets of the setup."""

    def preprocess(dataset, seed):
        dataset = trainers.client_dataset(dataset, local_epochs=1, batch_size=batch,
                                          shuffle_buffer=data.shuffle_buffer, seed=seed)
        return dataset.with_options(_REWRITE) if setup.tf_data_rewrite else dataset

    train = data.train
    if setup.arrays_file:  # as executor.client_arrays_from_file (an absolute name here)
        path = Path(_ARRAYS_FOLDER.name) / f"{len(train.client_ids)}-clients.records"
        if path not in _STORED:  # written once per data set, whatever the setups and sizes
            _STORED[path] = train.stored(path)
        train = _STORED[path]
    datasets = client_datasets(train, preprocess, graph_seed=0,
                               in_worker=setup.datasets_in_worker)
    spec = preprocess(data.train.create_tf_dataset_for_client(data.train.client_ids[0]),
                      0).element_spec
    return RoundClients(data.train.client_ids, datasets, clients_per_round, seed=0), (
        datasets, spec)


def benchmark_task(model_name: str, data) -> tasks.Task:
    """The task of ``model_name`` (an image model, or a next-token one) on ``data``."""
    builder = getattr(models, model_name, None) or getattr(next_token, model_name)
    return tasks.Task(builder, data.input_shape, data.num_classes, tasks.KINDS[data.task])


def build_process(model_name: str, data, inputs, aggregator, setup: Setup):
    """Fedlab's FedAvg process for ``model_name`` as the setup runs it.

    ``inputs``: the client datasets and their element spec from :func:`round_clients`.
    """
    datasets, spec = inputs
    model = benchmark_task(model_name, data)
    process = algorithms.FedAvg().build(
        model.tff_model(spec) if setup.functional else model.tff_model_fn(spec), aggregator,
        tff.learning.optimizers.build_sgdm(0.02), tff.learning.optimizers.build_sgdm(1.0),
        loop=setup.loop)
    return datasets.compose(process)


class FederatedRun:
    """One process on one worker context; ``step`` times one fedlab round."""

    def __init__(self, process, clients: RoundClients, context):
        self._process, self._clients, self._context = process, clients, context
        with tff.framework.get_context_stack().install(context):
            self._state = process.initialize()
        self._round = 0

    def step(self) -> float:
        """Seconds of the next round (client inputs + ``process.next``)."""
        self._round += 1
        with tff.framework.get_context_stack().install(self._context):
            started = time.perf_counter()
            self._state = self._process.next(self._state, self._clients(self._round).inputs).state
            return time.perf_counter() - started


class KerasFloor:
    """Plain Keras ``fit`` of the same model on the first round's 800 examples."""

    def __init__(self, model_name: str, data, clients: RoundClients, batch: int = BATCH):
        self._batch = batch
        arrays = [list(data.train.create_tf_dataset_for_client(c).as_numpy_iterator())
                  for c in clients.client_ids(1)]
        self._x = np.stack([e["x"] for client in arrays for e in client])
        self._y = np.array([e["y"] for client in arrays for e in client])
        task_of_model = benchmark_task(model_name, data)
        self._model = task_of_model.keras_model()
        self._model.compile(tf.keras.optimizers.SGD(0.02), task_of_model.loss())
        self.epoch_seconds: list[float] = []

    @property
    def examples(self) -> int:
        """How many examples (images, or token sequences) each ``fit`` runs over."""
        return len(self._y)

    def step(self) -> float:
        """Seconds of one ``fit`` call of one epoch; the epoch alone goes to epoch_seconds."""
        timer = _EpochTimer()
        started = time.perf_counter()
        self._model.fit(self._x, self._y, batch_size=self._batch, epochs=1, verbose=0,
                        callbacks=[timer])
        elapsed = time.perf_counter() - started
        self.epoch_seconds.append(timer.seconds)
        return elapsed


class _EpochTimer(tf.keras.callbacks.Callback):
    seconds = float("nan")

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self._started


def compare(model_name: str, data, contexts: dict, rounds: int, warmup: int = 2) -> dict:
    """Interleaved medians of every setup's rounds and the Keras floor (10 x 80 examples)."""
    runners, times = {}, {}
    for name in ("now", "11-25", "before"):
        clients, inputs = round_clients(data, SETUPS[name])
        process = build_process(model_name, data, inputs, tff.aggregators.MeanFactory(),
                                SETUPS[name])
        runners[name] = FederatedRun(process, clients, contexts[SETUPS[name].worker])
        times[name] = [runners[name].step()]
    runners["keras fit"] = KerasFloor(model_name, data, clients)
    times["keras fit"] = []
    for _ in range(warmup + rounds):
        for name, runner in runners.items():
            times[name].append(runner.step())
    medians = {name: statistics.median(t[-rounds:]) for name, t in times.items()}
    medians["epoch in fit"] = statistics.median(runners["keras fit"].epoch_seconds[-rounds:])
    return medians


def cross_device(data, contexts: dict, rounds: int, setups=LADDER,
                 warmup: int = 1) -> list[dict]:
    """Rounds of ``CROSS_DEVICE_SIZES`` clients x 10 examples (batch 10) vs the Keras floor.

    For each model and size, the setups' rounds and the fits interleaved; medians.
    """
    rows = []
    for model_name in ("fedavg_cnn", "simple_cnn"):
        for clients_per_round in CROSS_DEVICE_SIZES:
            runners = {}
            for name in setups:
                clients, inputs = round_clients(data, SETUPS[name], clients_per_round, batch=10)
                process = build_process(model_name, data, inputs,
                                        tff.aggregators.MeanFactory(), SETUPS[name])
                runners[name] = FederatedRun(process, clients, contexts[SETUPS[name].worker])
            runners["fit"] = KerasFloor(model_name, data, clients, batch=10)
            times = {name: [] for name in runners}
            for _ in range(warmup + rounds):
                for name, runner in runners.items():
                    times[name].append(runner.step())
            medians = {name: statistics.median(t[-rounds:]) for name, t in times.items()}
            rows.append({"model": model_name, "clients": clients_per_round, **medians,
                         "epoch in fit": statistics.median(
                             runners["fit"].epoch_seconds[-rounds:])})
    return rows


def long_run(data, context, worker_pid: int, rounds: int, aggregator) -> dict:
    """Median round and memory over ``rounds`` rounds of simple_cnn (now setup)."""
    clients, inputs = round_clients(data, SETUPS["now"])
    process = build_process("simple_cnn", data, inputs, aggregator, SETUPS["now"])
    with tff.framework.get_context_stack().install(context):
        bits = comms.measure_round_communication(process.next)
    runner = FederatedRun(process, clients, context)
    times, worker_rss = [], []
    for _ in range(rounds + 20):
        times.append(runner.step())
        worker_rss.append(memory_mib(worker_pid))
    return {
        "median round s": statistics.median(times[20:]),
        "worker RSS after warm-up MiB": worker_rss[19],
        "worker RSS at end MiB": worker_rss[-1],
        "growth": (worker_rss[-1] - worker_rss[19]) / worker_rss[19],
        "bits up per client": bits.upload_bits_per_client,
    }


def text_rounds(data, context, rounds: int, warmup: int = 2) -> list[dict]:
    """Shakespeare rounds of 10 roles (batch 10) against Keras ``fit`` on the same sequences."""
    rows = []
    for model_name in ("char_lstm_small", "char_lstm"):
        clients, inputs = round_clients(data, SETUPS["now"], 10, batch=10)
        process = build_process(model_name, data, inputs, tff.aggregators.MeanFactory(),
                                SETUPS["now"])
        # Roles differ in size by 500x: every round trains the first round's roles, the same
        # sequences the fit runs over.
        runner = FederatedRun(process, lambda _, sample=clients: sample(1), context)
        floor = KerasFloor(model_name, data, clients, batch=10)
        times = {"round": [], "fit": []}
        for _ in range(warmup + rounds):
            times["round"].append(runner.step())
            times["fit"].append(floor.step())
        rows.append({"model": model_name, "sequences": floor.examples,
                     **{k: statistics.median(v[warmup:]) for k, v in times.items()},
                     "epoch": statistics.median(floor.epoch_seconds[warmup:])})
    return rows


def isolation_cost(data, small, rounds: int, warmup: int = 2) -> list[dict]:
    """Rounds through the isolated worker's Unix socket vs straight to a worker's TCP port.

    Two workers of fedlab's settings: one isolated (fedlab's default: a network namespace of
    its own, reached through the forwarding Unix socket), one launched without isolation and
    reached on its TCP port directly (what every run did before). The same process and clients
    on both, rounds interleaved; medians.
    """
    rows = []
    with ExitStack() as stack:
        isolated = stack.enter_context(worker.launched_worker(
            Path("/tmp/fedlab_benchmark_isolated_worker.log")))
        exposed = stack.enter_context(worker.launched_worker(
            Path("/tmp/fedlab_benchmark_exposed_worker.log"), isolate=False))
        contexts = {"isolated (unix socket)": isolated.target,
                    "direct tcp (before)": f"localhost:{exposed.exposed_port}"}
        runtime.check_reachable(list(contexts.values()), 60)
        contexts = {name: runtime.remote_execution_context(target)
                    for name, target in contexts.items()}
        for model_name, source, clients_per_round, batch in (
                ("fedavg_cnn", data, 10, BATCH), ("simple_cnn", data, 10, BATCH),
                ("fedavg_cnn", small, 200, 10), ("simple_cnn", small, 200, 10)):
            clients, inputs = round_clients(source, SETUPS["now"], clients_per_round,
                                            batch=batch)
            process = build_process(model_name, source, inputs, tff.aggregators.MeanFactory(),
                                    SETUPS["now"])
            runners = {name: FederatedRun(process, clients, context)
                       for name, context in contexts.items()}
            times = {name: [] for name in runners}
            for _ in range(warmup + rounds):
                for name, runner in runners.items():
                    times[name].append(runner.step())
            rows.append({"model": model_name, "clients": clients_per_round,
                         **{name: statistics.median(t[warmup:]) for name, t in times.items()}})
    return rows


def launch_fedlab(*overrides: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    """``python -m fedlab OVERRIDES`` from the repository, its output (text) on ``stdout``."""
    return subprocess.Popen([sys.executable, "-m", "fedlab", *overrides],
                            cwd=Path(__file__).resolve().parents[1], stdout=stdout,
                            stderr=subprocess.STDOUT, text=True)


# Log lines of `python -m fedlab ... hydra.verbose=fedlab` that end each start-up phase.
STARTUP_PHASES = (
    ("imports", "start-up: TensorFlow and TFF imported"),
    ("data", "start-up: data loaded"),
    ("build/trace", "start-up: learning process ready"),  # traced, or loaded from the cache
    ("worker ready + initialize", "start-up: worker ready"),
    ("first round + its evaluation", "round 1/"),
)


def startup_launch(cache: Path, overrides: tuple[str, ...] = ()) -> dict:
    """Seconds from launching the default run (1 round) to the end of each start-up phase.

    The run keeps its computations in ``cache``. Each line it logs is timestamped here as it
    arrives; the first round's own end is the round-1 line minus its ``eval_seconds``.
    """
    with tempfile.TemporaryDirectory() as folder:
        launched = time.perf_counter()
        child = launch_fedlab("schedule.rounds=1", "hydra.verbose=fedlab",
                              f"hydra.run.dir={folder}/run", f"computation_cache={cache}",
                              *overrides)
        row, phases = {}, list(STARTUP_PHASES)
        for line in child.stdout:
            if phases and phases[0][1] in line:
                row[phases.pop(0)[0]] = time.perf_counter() - launched
        child.wait()
        row["exit"] = time.perf_counter() - launched
        metrics = pd.read_csv(Path(folder) / "run" / "metrics.csv")
        row["first round"] = (row["first round + its evaluation"]
                              - float(metrics["eval_seconds"].iloc[0]))
    return row


def startup_breakdown(repeats: int, overrides: tuple[str, ...] = ()) -> dict[str, list[dict]]:
    """:func:`startup_launch` ``repeats`` times cold and warm, interleaved.

    "cold": an empty computation cache (the run traces and compiles); "warm": one holding an
    earlier launch's computations.
    """
    rows = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as warm_cache:
        startup_launch(Path(warm_cache), overrides)  # fills the warm cache
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cold_cache:
                rows["cold"].append(startup_launch(Path(cold_cache), overrides))
            rows["warm"].append(startup_launch(Path(warm_cache), overrides))
    return rows


def model_sized_passes(model_name: str, repeats: int = 50, samples: int = 7) -> float:
    """Milliseconds of the work FedAvg does per client beyond training, in one tf.function.

    The delta (initial - trained weights), TFF's finiteness check of the whole update, the
    update times its weight, and its addition to the running sum: the model-sized passes a
    Keras ``fit`` step does not make. Median of ``samples`` means over ``repeats`` calls.
    """
    shapes = [w.shape for w in getattr(models, model_name)((28, 28, 1), 10).weights]
    initial, trained = ([tf.random.normal(s, seed=i) for s in shapes] for i in (1, 2))
    total = [tf.Variable(tf.zeros(s)) for s in shapes]

    @tf.function
    def client_extra(initial, trained, weight):
        delta = [a - b for a, b in zip(initial, trained, strict=True)]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(d)) for d in delta])
        for running, d in zip(total, delta, strict=True):
            running.assign_add(d * weight)
        return finite

    weight = tf.constant(10.0)
    client_extra(initial, trained, weight)
    means = []
    for _ in range(samples):
        started = time.perf_counter()
        for _ in range(repeats):
            client_extra(initial, trained, weight)
        means.append((time.perf_counter() - started) / repeats)
    return 1000 * statistics.median(means)


# The keys --sweep-jobs sweeps, and their values for N jobs.
SWEEPS = {
    "schedule.seed": lambda jobs: list(range(1, jobs + 1)),
    "clients.dropout": lambda jobs: [round(0.05 * j, 2) for j in range(jobs)],
    "optimizer.client.learning_rate": lambda jobs: [round(0.01 * (j + 1), 2)
                                                    for j in range(jobs)],
}


def sweep_startup(jobs: int, key: str) -> list[dict]:
    """Seconds from each job's start to its first round, in one basic-launcher sweep.

    ``python -m fedlab -m KEY=v1,...,vJOBS schedule.rounds=1`` with an empty computation cache
    (:data:`SWEEPS`: seeds and ``clients.dropout`` values share one process — the default has
    no random ops —, learning rates trace one each). The jobs run one after another in one
    process, so the later ones also reuse the imports.
    """
    values = SWEEPS[key](jobs)
    with tempfile.TemporaryDirectory() as folder:
        launched = time.perf_counter()
        child = launch_fedlab("-m", f"{key}={','.join(str(v) for v in values)}",
                              "schedule.rounds=1", f"hydra.sweep.dir={folder}/sweep",
                              f"computation_cache={folder}/cache")
        rows, job_started = [], None
        for line in child.stdout:
            now = time.perf_counter() - launched
            if f" : {key}=" in line:  # Hydra's "#k : <overrides>" line starts a job
                job_started = now
            elif "round 1/" in line and job_started is not None:
                rows.append({"job": len(rows), "started": job_started,
                             "first round after job start": now - job_started})
                job_started = None
        child.wait()
    return rows


def _rounds_done(metrics_csv: Path) -> int:
    """Rows in a run's metrics.csv so far (0 before it exists)."""
    try:
        return max(0, len(metrics_csv.read_bytes().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def memory_run(rounds: int, overrides: tuple[str, ...], every: float = 0.5) -> dict:
    """Resident memory of ``python -m fedlab`` and its TFF worker over a whole run.

    Samples both processes' VmRSS every ``every`` seconds, each tagged with the rounds finished
    by then. "warm" is the median over the samples taken while the second tenth of the rounds
    ran (at least rounds 5-9), "end" over those of the last tenth: medians, not single samples,
    so one sample's timing (an evaluation, the final save) does not make the growth figure.
    """
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        started = time.perf_counter()
        child = launch_fedlab(f"schedule.rounds={rounds}", f"hydra.run.dir={run_dir}",
                              *overrides, stdout=subprocess.DEVNULL)
        samples = []  # (rounds finished, python MiB, worker MiB)
        while child.poll() is None:
            workers = worker.worker_processes_alive(child.pid)
            python_mib = memory_mib(child.pid)
            worker_mib = memory_mib(workers[0]) if workers else 0.0
            if not np.isnan(python_mib) and worker_mib > 0:  # while both run
                samples.append((_rounds_done(run_dir / "metrics.csv"), python_mib, worker_mib))
            time.sleep(every)
        table = pd.read_csv(run_dir / "metrics.csv")
    tenth = max(5, rounds // 10)
    windows = {"warm": (tenth, 2 * tenth), "end": (rounds - tenth, rounds)}
    figures = {}
    for name, (first, last) in windows.items():
        inside = [s for s in samples if first <= s[0] < last]
        figures[f"{name} MiB"] = statistics.median(p + w for _, p, w in inside)
        figures[f"{name} python MiB"] = statistics.median(p for _, p, _ in inside)
        figures[f"{name} worker MiB"] = statistics.median(w for _, _, w in inside)
    return {"rounds": len(table), "wall s": time.perf_counter() - started,
            "median round s": float(table["round_seconds"].median()),
            "python peak MiB": max(s[1] for s in samples),
            "worker peak MiB": max(s[2] for s in samples),
            "sum peak MiB": max(s[1] + s[2] for s in samples), **figures,
            "windows": windows,
            "final eval accuracy": float(table["eval_accuracy"].dropna().iloc[-1])}


def main() -> None:
    """Measure and print the tables."""
    logging.getLogger("absl").setLevel(logging.ERROR)  # tf.data says each option it changes
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--long-rounds", type=int, default=0)
    parser.add_argument("--cross-device-rounds", type=int, default=0,
                        help="also time 10/50/100/200 clients x 10 examples per round "
                             "(400 clients), this many rounds per size")
    parser.add_argument("--model-passes", action="store_true",
                        help="time FedAvg's per-client model-sized passes (delta, finiteness "
                             "check, weighting, sum) alone, per model, and stop")
    parser.add_argument("--cross-device-only", action="store_true",
                        help="skip the 10 x 80 table")
    parser.add_argument("--memory-rounds", type=int, default=0,
                        help="run fedavg_cnn with 200 clients x 10 examples per round this many "
                             "rounds per --subrounds value, sampling both processes' memory")
    parser.add_argument("--subrounds", type=int, nargs="+", default=[0, 20],
                        help="executor.clients_per_subround values for --memory-rounds")
    parser.add_argument("--memory-override", action="append", default=[],
                        help="a further override of the --memory-rounds runs (repeatable), "
                             "e.g. executor.client_datasets_in_worker=false")
    parser.add_argument("--sweep-jobs", type=int, default=0,
                        help="a basic-launcher sweep of this many one-round jobs: each job's "
                             "time from its start to its first round")
    parser.add_argument("--memory-only", action="store_true",
                        help="stop after the memory, start-up and sweep figures")
    parser.add_argument("--text-rounds", type=int, default=0,
                        help="time this many Shakespeare rounds (10 roles per round, char_lstm "
                             "and char_lstm_small) against Keras fit, and stop")
    parser.add_argument("--isolation-rounds", type=int, default=0,
                        help="time this many rounds through the isolated worker's Unix socket "
                             "against a worker's TCP port directly, and stop")
    parser.add_argument("--text-startup", type=int, default=0,
                        help="launch a Shakespeare run (char_lstm, 1 round) this many times "
                             "cold and warm, then one of 20 rounds for its memory, and stop")
    parser.add_argument("--startup-runs", type=int, default=0,
                        help="launch the default run (1 round) this many times first and print "
                             "when each start-up phase ended")
    args = parser.parse_args()
    if args.model_passes:
        for model_name in ("fedavg_cnn", "simple_cnn"):
            print(f"{model_name}: delta + finiteness check + weighting + sum of one client's "
                  f"update: {model_sized_passes(model_name):.2f} ms", flush=True)
        return
    if args.text_rounds:
        print(f"Shakespeare by role: 10 roles per round, batch 10, {args.text_rounds} rounds "
              "per figure (interleaved with Keras fit over the first round's sequences, medians)")
        with ExitStack() as stack:
            target = stack.enter_context(runtime.local_worker(
                Path("/tmp/fedlab_benchmark_text_worker.log")))
            context = runtime.remote_execution_context(target)
            for r in text_rounds(load_shakespeare(), context, args.text_rounds):
                print(f"  {r['model']:<16} round {r['round']:.3f} s, fit {r['fit']:.3f} s, "
                      f"ratio {r['round'] / r['fit']:.2f}; epoch in fit {r['epoch']:.3f} s "
                      f"({r['sequences']} sequences)", flush=True)
        return
    if args.text_startup:
        text = ("dataset=shakespeare", "model=char_lstm")
        for cache, rows in startup_breakdown(args.text_startup, text).items():
            print(f"start-up of `python -m fedlab {' '.join(text)} schedule.rounds=1`, {cache} "
                  f"computation cache (s after launch; {args.text_startup} launches "
                  "interleaved, medians):")
            for phase in [p for p, _ in STARTUP_PHASES] + ["first round", "exit"]:
                values = [r[phase] for r in rows if phase in r]
                print(f"  {phase:<30} {statistics.median(values):6.2f}  "
                      f"({', '.join(f'{v:.2f}' for v in values)})", flush=True)
        r = memory_run(20, (*text, "schedule.eval_every=5"))
        print(f"memory of `python -m fedlab {' '.join(text)} schedule.rounds=20 "
              f"schedule.eval_every=5`: peak python {r['python peak MiB']:.0f} + worker "
              f"{r['worker peak MiB']:.0f} MiB, peak of the sum {r['sum peak MiB']:.0f} MiB; "
              f"median sum while rounds 6-10 ran {r['warm MiB']:.0f}, while rounds 16-20 ran "
              f"{r['end MiB']:.0f} (median round {r['median round s']:.2f} s)", flush=True)
        return
    if args.isolation_rounds:
        print(f"isolation: {args.isolation_rounds} rounds per figure (interleaved, medians)")
        for r in isolation_cost(load_mnist(num_clients=50), load_mnist(num_clients=400),
                                args.isolation_rounds):
            isolated, direct = r["isolated (unix socket)"], r["direct tcp (before)"]
            print(f"  {r['model']:<11} {r['clients']:>4} clients: isolated {isolated:.3f} s, "
                  f"direct tcp {direct:.3f} s, ratio {isolated / direct:.3f}", flush=True)
        return
    if args.memory_rounds:
        print("memory: python -m fedlab model=fedavg_cnn, 200 of 400 clients x 10 examples per "
              f"round, batch 10 {' '.join(args.memory_override)}")
        for per_subround in args.subrounds:
            r = memory_run(args.memory_rounds, (
                "dataset.num_clients=400", "schedule.clients_per_round=200",
                "schedule.batch_size=10", "schedule.eval_every=10", "schedule.checkpoint_every=50",
                f"executor.clients_per_subround={per_subround}", *args.memory_override))
            (w0, w1), (e0, e1) = r["windows"]["warm"], r["windows"]["end"]
            print(f"  clients_per_subround={per_subround}: {r['rounds']} rounds in "
                  f"{r['wall s']:.0f} s (median round {r['median round s']:.2f} s); peak python "
                  f"{r['python peak MiB']:.0f} + worker {r['worker peak MiB']:.0f} MiB, peak of "
                  f"the sum {r['sum peak MiB']:.0f} MiB; median sum while rounds "
                  f"{w0 + 1}-{w1} ran {r['warm MiB']:.0f} (python {r['warm python MiB']:.0f}, "
                  f"worker {r['warm worker MiB']:.0f}) -> while rounds {e0 + 1}-{e1} ran "
                  f"{r['end MiB']:.0f} "
                  f"(python {r['end python MiB']:.0f}, worker {r['end worker MiB']:.0f}) "
                  f"({r['end MiB'] / r['warm MiB'] - 1:+.1%}); final eval accuracy "
                  f"{r['final eval accuracy']:.3f}", flush=True)
    if args.startup_runs:
        by_cache = startup_breakdown(args.startup_runs)
        for cache, rows in by_cache.items():
            print(f"start-up of `python -m fedlab schedule.rounds=1`, {cache} computation cache "
                  f"(s after launch; {args.startup_runs} launches interleaved, medians):")
            for phase in [p for p, _ in STARTUP_PHASES] + ["first round", "exit"]:
                values = [r[phase] for r in rows if phase in r]
                print(f"  {phase:<30} {statistics.median(values):6.2f}  "
                      f"({', '.join(f'{v:.2f}' for v in values)})", flush=True)
    if args.sweep_jobs:
        for key in SWEEPS:
            print(f"basic-launcher sweep of {args.sweep_jobs} one-round jobs over {key} (s):")
            for row in sweep_startup(args.sweep_jobs, key):
                print(f"  job {row['job']}: started {row['started']:.2f} s after launch, first "
                      f"round {row['first round after job start']:.2f} s later", flush=True)
    if args.memory_only:
        return
    data = load_mnist(num_clients=50)
    with ExitStack() as stack:
        contexts, worker_pids = {}, {}
        for name, (concurrent_calls, environment) in WORKERS.items():
            before = set(worker.worker_processes_alive())
            target = stack.enter_context(runtime.local_worker(
                Path(f"/tmp/fedlab_benchmark_{name}_worker.log"), concurrent_calls, environment))
            worker_pids[name] = (set(worker.worker_processes_alive()) - before).pop()
            contexts[name] = runtime.remote_execution_context(target)
        print(f"usable cores: {worker.usable_cores()}; rounds per figure: {args.rounds} "
              "(interleaved, medians)")
        if not args.cross_device_only:
            print(f"\n{'model':<11} {'setup':<7} {'round s':>8} {'fit s':>7} {'ratio':>6} "
                  f"{'epoch-in-fit s':>15} {'ratio':>6}")
            for model_name in ("fedavg_cnn", "simple_cnn"):
                m = compare(model_name, data, contexts, args.rounds)
                for name in ("before", "11-25", "now"):
                    print(f"{model_name:<11} {name:<7} {m[name]:8.3f} {m['keras fit']:7.3f} "
                          f"{m[name] / m['keras fit']:6.2f} {m['epoch in fit']:15.3f} "
                          f"{m[name] / m['epoch in fit']:6.2f}", flush=True)
        if args.cross_device_rounds:
            print(f"\ncross-device: 400 clients x 10 examples, batch 10, "
                  f"{args.cross_device_rounds} rounds per size (medians)")
            print(f"{'model':<11} {'clients':>7} {'setup':<20} {'round s':>8} {'fit s':>7} "
                  f"{'ratio':>6} {'epoch s':>8} {'ratio':>6} {'ms/client over fit':>19}")
            small = load_mnist(num_clients=400)
            for r in cross_device(small, contexts, args.cross_device_rounds):
                for name in LADDER:
                    print(f"{r['model']:<11} {r['clients']:>7} {name:<20} {r[name]:8.3f} "
                          f"{r['fit']:7.3f} {r[name] / r['fit']:6.2f} {r['epoch in fit']:8.3f} "
                          f"{r[name] / r['epoch in fit']:6.2f} "
                          f"{1000 * (r[name] - r['fit']) / r['clients']:19.1f}", flush=True)
        if args.long_rounds:
            for name, factory in (("mean", tff.aggregators.MeanFactory()),
                                  ("compression", aggregators.compression_aggregator())):
                r = long_run(data, contexts["fedlab"], worker_pids["fedlab"], args.long_rounds,
                             factory)
                print(f"simple_cnn/{name}: {args.long_rounds} rounds, median "
                      f"{r['median round s']:.3f} s, worker RSS "
                      f"{r['worker RSS after warm-up MiB']:.0f} -> "
                      f"{r['worker RSS at end MiB']:.0f} MiB ({r['growth']:+.1%} after warm-up), "
                      f"{r['bits up per client']} bits up/client/round")
        print(f"peak resident: python {memory_mib(os.getpid(), 'VmHWM'):.0f} MiB, " + ", ".join(
            f"{name} worker {memory_mib(pid, 'VmHWM'):.0f} MiB"
            for name, pid in worker_pids.items()))


if __name__ == "__main__":
    main()
