"""Benchmark: FedAvg round time against the Keras floor, before/after, start-up, and memory.

    uv run python benchmarks/round_overhead.py [--rounds 20] [--long-rounds 300]
                                               [--cross-device-rounds 5]

For each model, 10 clients x 80 embedded-MNIST examples per round (batch 20, 1 local epoch,
``mean`` aggregator). A "round" is what fedlab's ``round_seconds`` column measures: building the
round's client datasets plus ``process.next`` on fedlab's own local TFF worker. Two setups run:

- ``before``: TFF's defaults that fedlab used until the optimisation — the ``DATASET_REDUCE``
  client loop on a worker with no limit on concurrent computations and glibc's default
  malloc arenas;
- ``after``: fedlab's defaults now — the ``DATASET_ITERATOR`` loop on a worker running one
  computation per usable CPU core, with ``MALLOC_ARENA_MAX=2``.

The "Keras floor" is plain ``model.fit`` of the same model on the same 800 examples with the same
batch size, in this process. Rounds of both setups and the fits are interleaved (one of each in
turn), so a slow stretch of the machine hits all three alike; medians are printed, with the
ratio round / floor. "Epoch in fit" is the stricter floor: the epoch alone, without ``fit``'s
per-call set-up.

Also: start-up (from the first line of this script, imports included, to the end of the first
round), and with ``--long-rounds N`` simple_cnn runs N rounds with ``mean`` and ``compression``
(after setup) and reports the worker's memory growth after a 20-round warm-up and the peak
resident memory of both processes. With ``--cross-device-rounds N``: 400 clients of 10 examples,
10/50/100/200 of them per round (batch 10), each model's rounds interleaved with the Keras fit of
the same examples, and the per-client overhead (round - fit) / clients. Prints figures; asserts
nothing.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402

from fedlab import aggregators, algorithms, comms, models, runtime, task, trainers  # noqa: E402
from fedlab.data.mnist import load_mnist  # noqa: E402
from fedlab.training import RoundClients  # noqa: E402

BATCH = 20
CROSS_DEVICE_SIZES = (10, 50, 100, 200)  # clients per round, 10 examples each
SETUPS = {  # name: (client loop, worker's concurrent computations (0: one per core), env)
    "before": (tff.learning.LoopImplementation.DATASET_REDUCE, -1,
               {k: v for k, v in os.environ.items() if k not in runtime.WORKER_MALLOC_ENV}),
    "after": (tff.learning.LoopImplementation.DATASET_ITERATOR, 0, runtime.worker_environment()),
}


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process from /proc (VmRSS: resident now, VmHWM: peak), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def round_clients(data, clients_per_round: int = 10, batch: int = BATCH) -> RoundClients:
    """Fedlab's per-round client sampling and preprocessing."""

    def preprocess(dataset, seed):
        return trainers.client_dataset(dataset, local_epochs=1, batch_size=batch,
                                       shuffle_buffer=data.shuffle_buffer, seed=seed)

    return RoundClients(data.train, preprocess, sample_size=clients_per_round, seed=0)


def build_process(model_name: str, data, clients: RoundClients, aggregator, loop):
    """Fedlab's FedAvg process for ``model_name`` with the given client loop."""
    spec = clients(1).datasets[0].element_spec
    model = task.Task(getattr(models, model_name), data.input_shape, data.num_classes)
    return algorithms.FedAvg().build(
        model.tff_model_fn(spec), aggregator, tff.learning.optimizers.build_sgdm(0.02),
        tff.learning.optimizers.build_sgdm(1.0), loop=loop)


class FederatedRun:
    """One process on one worker context; ``step`` times one fedlab round."""

    def __init__(self, process, clients: RoundClients, context):
        self._process, self._clients, self._context = process, clients, context
        with tff.framework.get_context_stack().install(context):
            self._state = process.initialize()
        self._round = 0

    def step(self) -> float:
        """Seconds of the next round (client datasets + ``process.next``)."""
        self._round += 1
        with tff.framework.get_context_stack().install(self._context):
            started = time.perf_counter()
            self._state = self._process.next(self._state, self._clients(self._round).datasets).state
            return time.perf_counter() - started


class KerasFloor:
    """Plain Keras ``fit`` of the same model on the first round's 800 examples."""

    def __init__(self, model_name: str, data, clients: RoundClients, batch: int = BATCH):
        self._batch = batch
        arrays = [list(data.train.create_tf_dataset_for_client(c).as_numpy_iterator())
                  for c in clients.client_ids(1)]
        self._x = np.stack([e["x"] for client in arrays for e in client])
        self._y = np.array([e["y"] for client in arrays for e in client])
        self._model = getattr(models, model_name)(data.input_shape, data.num_classes)
        self._model.compile(tf.keras.optimizers.SGD(0.02),
                            task.loss())
        self.epoch_seconds: list[float] = []

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
    """Interleaved medians of the before/after rounds and the Keras floor."""
    clients = round_clients(data)
    runners, times = {}, {}
    for name in ("after", "before"):  # "after" first: its first round ends the start-up
        process = build_process(model_name, data, clients, tff.aggregators.MeanFactory(),
                                SETUPS[name][0])
        runners[name] = FederatedRun(process, clients, contexts[name])
        times[name] = [runners[name].step()]
        if name == "after":
            first_round_done = time.perf_counter() - STARTED
    runners["keras fit"] = KerasFloor(model_name, data, clients)
    times["keras fit"] = []
    for _ in range(warmup + rounds):
        for name, runner in runners.items():
            times[name].append(runner.step())
    medians = {name: statistics.median(t[-rounds:]) for name, t in times.items()}
    medians["epoch in fit"] = statistics.median(runners["keras fit"].epoch_seconds[-rounds:])
    medians["first round"] = first_round_done
    return medians


def cross_device(data, context, rounds: int, warmup: int = 1) -> list[dict]:
    """Rounds of ``CROSS_DEVICE_SIZES`` clients x 10 examples (batch 10) vs the Keras floor.

    fedlab's "after" setup; each size's rounds and fits interleaved; medians.
    """
    rows = []
    for model_name in ("fedavg_cnn", "simple_cnn"):
        for clients_per_round in CROSS_DEVICE_SIZES:
            clients = round_clients(data, clients_per_round, batch=10)
            process = build_process(model_name, data, clients, tff.aggregators.MeanFactory(),
                                    SETUPS["after"][0])
            runners = {"round": FederatedRun(process, clients, context),
                       "fit": KerasFloor(model_name, data, clients, batch=10)}
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
    """Median round and memory over ``rounds`` rounds of simple_cnn (after setup)."""
    clients = round_clients(data)
    process = build_process("simple_cnn", data, clients, aggregator, SETUPS["after"][0])
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


def main() -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--long-rounds", type=int, default=0)
    parser.add_argument("--cross-device-rounds", type=int, default=0,
                        help="also time 10/50/100/200 clients x 10 examples per round "
                             "(400 clients), this many rounds per size")
    args = parser.parse_args()
    data = load_mnist(num_clients=50)
    with ExitStack() as stack:
        contexts, worker_pids = {}, {}
        for name, (_, concurrent_calls, environment) in SETUPS.items():
            before = set(runtime.worker_processes_alive())
            target = stack.enter_context(runtime.local_worker(
                Path(f"/tmp/fedlab_benchmark_{name}_worker.log"), concurrent_calls, environment))
            worker_pids[name] = (set(runtime.worker_processes_alive()) - before).pop()
            contexts[name] = runtime.remote_execution_context(target)
        print(f"usable cores: {runtime.usable_cores()}; rounds per figure: {args.rounds} "
              "(interleaved, medians)")
        print(f"\n{'model':<11} {'setup':<7} {'round s':>8} {'fit s':>7} {'ratio':>6} "
              f"{'epoch-in-fit s':>15} {'ratio':>6}")
        first_round = None
        for model_name in ("fedavg_cnn", "simple_cnn"):
            m = compare(model_name, data, contexts, args.rounds)
            first_round = first_round or m["first round"]
            for name in SETUPS:
                print(f"{model_name:<11} {name:<7} {m[name]:8.3f} {m['keras fit']:7.3f} "
                      f"{m[name] / m['keras fit']:6.2f} {m['epoch in fit']:15.3f} "
                      f"{m[name] / m['epoch in fit']:6.2f}")
        print(f"\nstart-up (script start, imports included, to the end of the first round): "
              f"{first_round:.1f} s")
        print(f"resident now: python {memory_mib(os.getpid()):.0f} MiB, after-worker "
              f"{memory_mib(worker_pids['after']):.0f} MiB")
        if args.cross_device_rounds:
            print(f"\ncross-device: 400 clients x 10 examples, batch 10, "
                  f"{args.cross_device_rounds} rounds per size (medians)")
            print(f"{'model':<11} {'clients':>7} {'round s':>8} {'fit s':>7} {'ratio':>6} "
                  f"{'epoch s':>8} {'ratio':>6} {'ms/client over fit':>19}")
            small = load_mnist(num_clients=400)
            for r in cross_device(small, contexts["after"], args.cross_device_rounds):
                print(f"{r['model']:<11} {r['clients']:>7} {r['round']:8.3f} {r['fit']:7.3f} "
                      f"{r['round'] / r['fit']:6.2f} {r['epoch in fit']:8.3f} "
                      f"{r['round'] / r['epoch in fit']:6.2f} "
                      f"{1000 * (r['round'] - r['fit']) / r['clients']:19.1f}", flush=True)
            print(f"peak resident so far: python {memory_mib(os.getpid(), 'VmHWM'):.0f} MiB, "
                  f"after-worker {memory_mib(worker_pids['after'], 'VmHWM'):.0f} MiB")
        if args.long_rounds:
            for name, factory in (("mean", tff.aggregators.MeanFactory()),
                                  ("compression", aggregators.compression_aggregator())):
                r = long_run(data, contexts["after"], worker_pids["after"], args.long_rounds,
                             factory)
                print(f"simple_cnn/{name}: {args.long_rounds} rounds, median "
                      f"{r['median round s']:.3f} s, worker RSS "
                      f"{r['worker RSS after warm-up MiB']:.0f} -> "
                      f"{r['worker RSS at end MiB']:.0f} MiB ({r['growth']:+.1%} after warm-up), "
                      f"{r['bits up per client']} bits up/client/round")
            print(f"peak resident: python {memory_mib(os.getpid(), 'VmHWM'):.0f} MiB, "
                  f"after-worker {memory_mib(worker_pids['after'], 'VmHWM'):.0f} MiB")


if __name__ == "__main__":
    main()
