"""The privacy guarantee of a DP run after every round, and the budget that stops it."""

import logging
import math

import dp_accounting
from dp_accounting import rdp

from fedlab import privacy
from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.errors import ConfigError

log = logging.getLogger("fedlab")


class DpAccounting(Callback):
    """``dp_epsilon`` per round for runs whose aggregator adds DP noise (``context.privacy``).

    Composes one round event per round (``fedlab.privacy``) and reports epsilon at the
    aggregator's ``target_delta``. With a ``target_epsilon``, training stops after the last round
    whose epsilon stays within it (the summary says so); final epsilon, delta, noise multiplier
    and clipping go to summary.json.
    """

    def __init__(self):
        """Active only when the run's aggregator gives a DP guarantee."""
        self._accountant: rdp.RdpAccountant | None = None
        self._event = None

    def on_train_start(self, context: TrainingContext) -> None:
        """Account for the rounds before a resume; refuse a budget the first round exceeds.

        Raises:
          ConfigError: even one round takes epsilon past ``target_epsilon``.
        """
        guarantee = context.privacy
        if guarantee is None:
            return
        context.summary.update(
            dp_delta=guarantee.delta, dp_noise_multiplier=guarantee.noise_multiplier,
            dp_clipping=guarantee.clipping, dp_target_epsilon=guarantee.target_epsilon,
            dp_accountant=privacy.ACCOUNTANT)
        if guarantee.noise_multiplier == 0:
            return  # clipping without noise: no finite epsilon (dp_epsilon is inf)
        self._event = privacy.round_event(guarantee.noise_multiplier, guarantee.num_clients,
                                          guarantee.clients_per_round)
        self._accountant = rdp.RdpAccountant(
            neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
        if context.resumed_from:
            self._accountant.compose(self._event, context.resumed_from)
        if guarantee.target_epsilon is not None and context.resumed_from == 0:
            first = self._epsilon_after(1, guarantee.delta)
            if first > guarantee.target_epsilon:
                raise ConfigError(
                    f"one round already takes epsilon to {first:.3f} > aggregator.target_epsilon"
                    f"={guarantee.target_epsilon}; raise the noise multiplier or the target")

    def _epsilon_after(self, more_rounds: int, delta: float) -> float:
        accountant = rdp.RdpAccountant(
            neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
        accountant.compose(self._accountant.ledger)
        accountant.compose(self._event, more_rounds)
        return float(accountant.get_epsilon(delta))

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> bool:
        """Add ``dp_epsilon``; ask to stop when the next round would exceed the budget."""
        guarantee = context.privacy
        if guarantee is None:
            return False
        if self._accountant is None:
            row["dp_epsilon"] = context.summary["dp_epsilon"] = math.inf
            return False
        self._accountant.compose(self._event)
        epsilon = float(self._accountant.get_epsilon(guarantee.delta))
        row["dp_epsilon"] = epsilon
        context.summary["dp_epsilon"] = epsilon
        if guarantee.target_epsilon is None or round_num >= context.rounds:
            return False
        following = self._epsilon_after(1, guarantee.delta)
        if following <= guarantee.target_epsilon:
            return False
        context.summary["stopped_early"] = (
            f"privacy budget: round {round_num + 1} would take epsilon to {following:.3f} > "
            f"target {guarantee.target_epsilon}")
        log.info("stopping after round %d: %s", round_num, context.summary["stopped_early"])
        return True
