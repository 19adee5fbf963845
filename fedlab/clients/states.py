"""Clients that keep state between rounds: the store, and the process that reads and writes it.

An algorithm with stateful clients (``client_state = True``, e.g. SCAFFOLD's control variates)
builds a :class:`StatefulClientsProcess`: its ``next`` takes each sampled client's state beside
its data and returns the clients' new states. fedlab keeps the states in a
:class:`ClientStateStore` (per client id, created on the client's first selection), saved with
every checkpoint, so a resumed run continues with exactly the states the uninterrupted run had.
The loop does not know: :class:`StoreBackedProcess` looks like a TFF ``LearningProcess`` whose
``next`` takes ``(client id, client input)`` pairs, and :func:`with_client_ids` makes the cohort.
"""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tensorflow_federated as tff

from fedlab.clients.sampling import Cohort

ClientState = list[np.ndarray]


class StatefulOutput(NamedTuple):
    """A round of a process with stateful clients: server state, metrics, new client states."""

    state: Any
    metrics: Any
    client_states: Any


@dataclasses.dataclass(frozen=True)
class StatefulClientsProcess:
    """A learning process whose clients keep state between rounds.

    ``next(state, client_data, client_states)`` takes each client's state beside its data (both
    CLIENTS-placed, in one order) and returns :class:`StatefulOutput`. ``initial_client_state()``
    is a client's state before its first round (NumPy arrays). ``initialize``,
    ``get_model_weights`` and ``set_model_weights`` are those of a TFF ``LearningProcess``.
    """

    initialize: Any
    next: Any
    get_model_weights: Any
    set_model_weights: Any
    initial_client_state: Callable[[], ClientState]

    def with_next(self, next_fn) -> "StatefulClientsProcess":
        """The same process with another ``next`` (e.g. one that builds the clients' data)."""
        return dataclasses.replace(self, next=next_fn)


class ClientStateStore:
    """Each client's state by client id: created on first selection, kept across rounds."""

    def __init__(self, initial: Callable[[], ClientState]):
        """``initial()`` is a client's state before its first round."""
        self._initial = initial
        self._states: dict[str, ClientState] = {}

    def get(self, client_ids: Sequence[str]) -> list[ClientState]:
        """The clients' states, a fresh initial one for a client never selected before."""
        for client_id in client_ids:
            if client_id not in self._states:
                self._states[client_id] = self._initial()
        return [self._states[c] for c in client_ids]

    def put(self, client_ids: Sequence[str], states: Sequence[Sequence[Any]]) -> None:
        """Replace the clients' states (in the order of ``client_ids``)."""
        if len(states) != len(client_ids):
            raise ValueError(f"{len(states)} client states for {len(client_ids)} clients")
        for client_id, state in zip(client_ids, states, strict=True):
            self._states[client_id] = [np.asarray(t) for t in state]

    def __len__(self) -> int:
        """How many clients have a state."""
        return len(self._states)

    @property
    def nbytes(self) -> int:
        """Bytes held by all the clients' states."""
        return sum(t.nbytes for state in self._states.values() for t in state)

    def keep(self, client_ids) -> None:
        """Drop every state but those of ``client_ids``."""
        kept = set(client_ids)
        self._states = {c: s for c, s in self._states.items() if c in kept}

    def save(self, path: Path) -> None:
        """Write every state to ``path`` (NumPy ``.npz``, exact)."""
        ids = sorted(self._states)
        arrays = {f"s{i}_{k}": t for i, c in enumerate(ids) for k, t in enumerate(self._states[c])}
        with open(path, "wb") as file:
            np.savez(file, client_ids=np.array(ids, dtype=str),
                     widths=np.array([len(self._states[c]) for c in ids], dtype=np.int64),
                     **arrays)

    def load(self, path: Path) -> None:
        """Replace every state with those saved in ``path`` (unchanged if it cannot be read)."""
        with np.load(path, allow_pickle=False) as saved:
            ids = [str(c) for c in saved["client_ids"]]
            states = {c: [saved[f"s{i}_{k}"] for k in range(int(width))]
                      for i, (c, width) in enumerate(zip(ids, saved["widths"], strict=True))}
        self._states = states


class StoreBackedProcess:
    """A :class:`StatefulClientsProcess` as the loop sees a ``LearningProcess``.

    ``next(state, inputs)`` takes ``(client id, client input)`` pairs, hands the process the
    clients' stored states, stores the states it returns and returns TFF's
    ``LearningProcessOutput``.
    """

    def __init__(self, process: StatefulClientsProcess, store: ClientStateStore):
        """Run ``process`` with its clients' states kept in ``store``."""
        self._process, self.store = process, store
        self.initialize = process.initialize
        self.get_model_weights = process.get_model_weights
        self.set_model_weights = process.set_model_weights

    def next(self, state, inputs: Sequence[tuple[str, Any]]):
        """One round; the sampled clients' states are read from and written to the store."""
        client_ids = [client_id for client_id, _ in inputs]
        output = self._process.next(state, [data for _, data in inputs],
                                    self.store.get(client_ids))
        self.store.put(client_ids, output.client_states)
        return tff.learning.templates.LearningProcessOutput(output.state, output.metrics)


def with_client_ids(round_clients: Callable[[int], Cohort]) -> Callable[[int], Cohort]:
    """The cohort with each client's input paired with its id (for :class:`StoreBackedProcess`)."""

    def cohort(round_num: int) -> Cohort:
        clients = round_clients(round_num)
        return dataclasses.replace(
            clients, inputs=list(zip(clients.client_ids, clients.inputs, strict=True)))

    return cohort
