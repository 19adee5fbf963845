"""Benchmark: FedAvg round time against the Keras floor, start-up time, and memory.

    uv run python benchmarks/round_overhead.py [--rounds 30] [--long-rounds 300]

For each model: the median time of ``process.next`` for 10 clients x 80 MNIST examples (batch 20,
1 local epoch), and the "Keras floor" — plain ``model.fit`` of the same model on the same 800
examples with the same batch size, in the same process — and their ratio. Also the time from the
start of this script (before TensorFlow is imported) to the end of the first round, and the
resident memory of this process and of the TFF worker. With ``--long-rounds N``, simple_cnn runs
N rounds with ``mean`` and with ``compression`` and reports the worker's memory growth after a
20-round warm-up. Prints figures; asserts nothing.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402

from fedlab import aggregators, comms, federated, models, runtime  # noqa: E402
from fedlab.data.mnist import load_mnist  # noqa: E402
from fedlab.training import RoundClients  # noqa: E402

BATCH = 20


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(model_name: str, data, aggregator):
    """The FedAvg process of ``model_name`` and its per-round client datasets."""
    builder = getattr(models, model_name)

    def preprocess(dataset, seed):
        return federated.client_dataset(dataset, local_epochs=1, batch_size=BATCH,
                                        shuffle_buffer=data.shuffle_buffer, seed=seed)

    clients = RoundClients(data.train, preprocess, clients_per_round=10, seed=0)
    spec = preprocess(data.train.create_tf_dataset_for_client(data.train.client_ids[0]), 0)
    process = federated.build_fedavg(
        builder, data.input_shape, data.num_classes, spec.element_spec, aggregator,
        tff.learning.optimizers.build_sgdm(0.02), tff.learning.optimizers.build_sgdm(1.0),
    )
    return builder, clients, process


def keras_floor(builder, data, clients, rounds: int) -> float:
    """Median seconds of one epoch of Keras fit on the first round's 800 examples."""
    arrays = [list(data.train.create_tf_dataset_for_client(c).as_numpy_iterator())
              for c in clients.client_ids(1)]
    x = np.stack([e["x"] for client in arrays for e in client])
    y = np.array([e["y"] for client in arrays for e in client])
    model = builder(data.input_shape, data.num_classes)
    model.compile(tf.keras.optimizers.SGD(0.02), tf.keras.losses.SparseCategoricalCrossentropy())
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up (tracing)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def federated_rounds(process, clients, rounds: int, worker_pid: int, warmup: int = 2):
    """Median round seconds after warm-up, seconds to the first round, worker RSS per round."""
    state = process.initialize()
    times, worker_rss = [], []
    first_round_done = None
    for round_num in range(1, rounds + warmup + 1):
        started = time.perf_counter()
        state = process.next(state, clients(round_num)).state
        times.append(time.perf_counter() - started)
        worker_rss.append(rss_mib(worker_pid))
        if first_round_done is None:
            first_round_done = time.perf_counter() - STARTED
    return statistics.median(times[warmup:]), first_round_done, worker_rss


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--long-rounds", type=int, default=0)
    args = parser.parse_args()
    data = load_mnist(num_clients=50, seed=0)
    rows = []
    with runtime.local_worker(Path("/tmp/fedlab_benchmark_worker.log")) as target:
        worker_pid = runtime.worker_processes_alive()[0]
        with tff.framework.get_context_stack().install(runtime.remote_execution_context(target)):
            for model_name in ("fedavg_cnn", "simple_cnn"):
                builder, clients, process = build(model_name, data, tff.aggregators.MeanFactory())
                round_s, first_round, _ = federated_rounds(process, clients, args.rounds,
                                                           worker_pid)
                floor_s = keras_floor(builder, data, clients, args.rounds)
                rows.append((model_name, round_s, floor_s, first_round))
            print(f"\n{'model':<12} {'round s':>8} {'keras s':>8} {'ratio':>6} {'overhead s':>10}")
            for model_name, round_s, floor_s, _ in rows:
                print(f"{model_name:<12} {round_s:8.3f} {floor_s:8.3f} {round_s / floor_s:6.2f} "
                      f"{round_s - floor_s:10.3f}")
            print(f"start-up (script start, imports included, to the end of the first "
                  f"fedavg_cnn round): {rows[0][3]:.1f} s")
            print(f"python RSS {rss_mib(os.getpid()):.0f} MiB, worker RSS "
                  f"{rss_mib(worker_pid):.0f} MiB")
            for name, factory in (("mean", tff.aggregators.MeanFactory()),
                                  ("compression", aggregators.compression_aggregator())):
                if not args.long_rounds:
                    break
                _, clients, process = build("simple_cnn", data, factory)
                bits = comms.measure_round_communication(process.next)
                median_s, _, worker_rss = federated_rounds(process, clients, args.long_rounds,
                                                           worker_pid, warmup=20)
                growth = (worker_rss[-1] - worker_rss[19]) / worker_rss[19]
                print(f"simple_cnn/{name}: {args.long_rounds} rounds, median {median_s:.3f} s, "
                      f"worker RSS {worker_rss[19]:.0f} -> {worker_rss[-1]:.0f} MiB "
                      f"({growth:+.1%} after warm-up), python RSS {rss_mib(os.getpid()):.0f} "
                      f"MiB, {bits.upload_bits_per_client} bits up/client/round")


if __name__ == "__main__":
    main()
