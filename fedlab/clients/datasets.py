"""How a round's client datasets reach TFF: built inside the worker from ids, or sent from Python.

Sending every sampled client's ``tf.data`` graph from Python each round costs serialisation in
Python and a fresh graph per client in the worker. When the federation's ``ClientData`` can
trace its datasets (``serializable_dataset_fn``), fedlab instead composes one TFF computation
``(client id, shuffle seed, batches) -> preprocessed dataset`` with the learning process's
``next`` (as ``tff.simulation.compose_dataset_computation_with_learning_process`` does for a
bare client id): a round then sends only ids and seeds, and the worker builds the datasets.
Both paths give the same batches in the same order, so the same weights.
"""

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import tensorflow_federated as tff

from fedlab.data import ArrayClientData

log = logging.getLogger("fedlab")
Preprocess = Callable[[tf.data.Dataset, "int | tf.Tensor"], tf.data.Dataset]
ALL_BATCHES = -1


@dataclass(frozen=True)
class ClientWork:
    """What one client trains on in a round: its data, shuffled with its seed, cut to batches."""

    client_id: str
    shuffle_seed: int
    batches: int = ALL_BATCHES  # local batches to train; ALL_BATCHES: the whole local work


class PythonDatasets:
    """Client datasets built in Python and sent to the worker with every round."""

    def __init__(self, client_data: tff.simulation.datasets.ClientData, preprocess: Preprocess):
        """``preprocess(dataset, shuffle_seed)`` turns a raw client dataset into batches."""
        self._client_data, self._preprocess = client_data, preprocess

    def dataset(self, work: ClientWork) -> tf.data.Dataset:
        """The preprocessed dataset of one client's work."""
        dataset = self._preprocess(
            self._client_data.create_tf_dataset_for_client(work.client_id), work.shuffle_seed)
        return dataset if work.batches == ALL_BATCHES else dataset.take(work.batches)

    def compose(self, process: tff.learning.templates.LearningProcess):
        """The process itself: its ``next`` takes the datasets."""
        return process

    def __call__(self, work: Sequence[ClientWork]) -> list[tf.data.Dataset]:
        """The client argument of ``process.next`` for a round's work."""
        return [self.dataset(w) for w in work]


class WorkerDatasets:
    """Client datasets built inside the TFF worker from (client id, shuffle seed, batches).

    ``graph_seed`` is the graph-level seed the shuffle is paired with: the global seed that
    Python-built datasets would take (``run`` seeds TensorFlow with ``schedule.seed``).

    Raises:
      TypeError, KeyError, ValueError: the client data's datasets cannot be traced.
    """

    def __init__(self, client_data: tff.simulation.datasets.ClientData, preprocess: Preprocess,
                 graph_seed: int):
        """Trace the dataset computation once."""
        dataset_fn = client_data.serializable_dataset_fn

        @tff.tensorflow.computation(tf.string, tf.int64, tf.int64)
        def client_dataset(client_id, shuffle_seed, batches):
            tf.random.set_seed(graph_seed)  # this graph's seed, as eager datasets get the global
            return preprocess(dataset_fn(client_id), shuffle_seed).take(batches)

        self.computation = client_dataset

    def compose(self, process: tff.learning.templates.LearningProcess
                ) -> tff.learning.templates.LearningProcess:
        """``process`` whose ``next`` takes the clients' work and builds their datasets.

        A process with stateful clients keeps its third argument, the clients' states.
        """
        next_fn = process.next
        parameters = next_fn.type_signature.parameter
        work_type = tff.FederatedType(self.computation.type_signature.parameter, tff.CLIENTS)
        if len(parameters) == 3:  # clients' states beside their data (fedlab.clients.states)

            @tff.federated_computation(parameters[0], work_type, parameters[2])
            def next_with_states(state, work, client_states):
                return next_fn(state, tff.federated_map(self.computation, work), client_states)

            return process.with_next(next_with_states)
        if len(parameters) == 4:  # each client's starting weights and scale (FedBuff)

            @tff.federated_computation(parameters[0], work_type, parameters[2], parameters[3])
            def next_with_weights(state, work, client_weights, scales):
                return next_fn(state, tff.federated_map(self.computation, work), client_weights,
                               scales)

            return process.with_next(next_with_weights)

        @tff.federated_computation(parameters[0], work_type)
        def next_from_work(state, work):
            return next_fn(state, tff.federated_map(self.computation, work))

        return tff.learning.templates.LearningProcess(
            process.initialize, next_from_work, process.get_model_weights,
            process.set_model_weights)

    def __call__(self, work: Sequence[ClientWork]) -> list[tuple[str, int, int]]:
        """The client argument of the composed ``next`` for a round's work."""
        return [(w.client_id, w.shuffle_seed, w.batches) for w in work]


def client_datasets(client_data: tff.simulation.datasets.ClientData, preprocess: Preprocess,
                    graph_seed: int, in_worker: bool = True) -> WorkerDatasets | PythonDatasets:
    """Datasets built in the worker when ``in_worker`` and the data can be traced, else Python."""
    if in_worker:
        try:
            return WorkerDatasets(client_data, preprocess, graph_seed)
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            log.info("client datasets are built in Python: the data's datasets cannot be "
                     "traced into the worker (%s: %s)", type(error).__name__, error)
    return PythonDatasets(client_data, preprocess)


@contextlib.contextmanager
def worker_readable(client_data: tff.simulation.datasets.ClientData,
                    arrays_file: tuple[Path, str] | None) -> Iterator[
                        tff.simulation.datasets.ClientData]:
    """``client_data`` reading its arrays from a file while the block runs (then removed).

    ``arrays_file``: where to write the file and the name the worker opens it by (the
    executor's ``client_arrays_file``); None, or data that are not in-memory arrays, leave
    ``client_data`` as it is. A file that cannot be written costs one warning: the arrays then
    travel inside the computations.
    """
    if arrays_file is None or not isinstance(client_data, ArrayClientData):
        yield client_data
        return
    path, worker_path = arrays_file
    try:
        stored = client_data.stored(path, worker_path)
    except (OSError, ValueError) as error:
        log.warning("the clients' arrays travel inside every round's computation: cannot "
                    "write them for the worker to read (%s)", error)
        path.unlink(missing_ok=True)
        yield client_data
        return
    try:
        yield stored
    finally:
        path.unlink(missing_ok=True)
