"""What the federated loop shares with its callbacks, and the hooks it calls."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow_federated as tff

from fedlab.data import FederatedData
from fedlab.tasks import Task


@dataclass
class TrainingContext:
    """The state of one federated training run, as callbacks see and change it.

    ``state`` is the server state after the last finished round; ``next_round`` the first round
    still to train (a callback restoring a checkpoint moves it); ``history`` the metrics rows of
    the rounds before ``next_round`` that a resumed run keeps (as written, strings).
    """

    process: tff.learning.templates.LearningProcess
    state: Any
    rounds: int
    clients_per_round: int
    run_dir: Path
    data: FederatedData
    task: Task
    next_round: int = 1
    resumed_from: int = 0  # the round restored before training (0: a fresh start)
    last_checkpoint: int = 0
    history: list[dict[str, str]] = field(default_factory=list)
    # What one client receives and sends per round
    # (fedlab.clients.communication.RoundCommunication).
    communication: Any = None
    # The DP guarantee of the aggregator (fedlab.privacy.DpGuarantee), if it adds DP noise.
    privacy: Any = None
    # Each client's state between rounds (fedlab.clients.states.ClientStateStore), if the
    # algorithm keeps any; saved with every checkpoint.
    client_states: Any = None
    # The malicious clients' behaviour (fedlab.attacks.Attack), if any client misbehaves.
    attack: Any = None
    # The empirical privacy audit (fedlab.privacy.audit.PrivacyAudit), if canaries are inserted.
    audit: Any = None
    # Entries callbacks add to summary.json (final epsilon, why training stopped early...).
    summary: dict[str, Any] = field(default_factory=dict)
    _weights: tuple[int, Any] | None = field(default=None, repr=False)

    def model_weights(self) -> tff.learning.models.ModelWeights:
        """The global model's weights in ``state`` (fetched once per state)."""
        if self._weights is None or self._weights[0] != id(self.state):
            self._weights = (id(self.state), self.process.get_model_weights(self.state))
        return self._weights[1]


class Callback:
    """A piece of the federated loop. Every hook is optional.

    The loop calls ``on_restore`` of every callback, then ``on_train_start`` of every callback,
    then, after each round, ``on_round_end`` of every callback in the configured order (so a
    callback sees the columns added by those before it), and ``on_train_end`` at the end.
    """

    def on_restore(self, context: TrainingContext) -> None:
        """Bring back saved state before training starts (e.g. from a checkpoint)."""

    def on_train_start(self, context: TrainingContext) -> None:
        """Prepare, knowing the round training starts from (``context.next_round``)."""

    def on_round_end(self, context: TrainingContext, round_num: int, result: Any,
                     row: dict[str, float]) -> bool | None:
        """React to a finished round: add columns to ``row``, write, or return True to stop.

        ``result`` is TFF's ``LearningProcessOutput`` of the round; ``context.state`` already
        holds its state. Raising a ``FedlabError`` ends the run with that message at once; a
        callback that cannot go on but should lose nothing (a tracker gone away) calls
        :func:`stop_with_error` and returns True: the round is still recorded and
        checkpointed by the callbacks after it, then the run ends with the message.
        """

    def on_train_end(self, context: TrainingContext, last_round: int) -> None:
        """Finish after ``last_round`` (the schedule's last, or the round a callback stopped)."""


def stop_with_error(context: TrainingContext, message: str) -> bool:
    """Record that the run must end with ``message`` after this round; returns True (stop).

    The run's summary gets ``status: failed`` and the message; ``python -m fedlab`` prints it
    as one ``error:`` line and exits with 1, every finished round kept and checkpointed.
    """
    context.summary.setdefault("failed", message)
    return True
