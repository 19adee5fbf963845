"""The privacy guarantee of a DP run after every round, and the budget that stops it."""

import logging

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.config.choices import Accountant
from fedlab.errors import ConfigError
from fedlab.privacy import accounting

log = logging.getLogger("fedlab")


class DpAccounting(Callback):
    """``dp_epsilon`` per round for runs whose aggregator adds DP noise (``context.privacy``).

    Epsilon after round r is ``fedlab.privacy.epsilon`` of r rounds at the aggregator's
    ``target_delta`` (``inf`` without noise). With a ``target_epsilon``, training stops after the
    last round whose epsilon stays within it (the summary says so); final epsilon, delta, noise
    multiplier and clipping go to summary.json.
    """

    def on_train_start(self, context: TrainingContext) -> None:
        """Record the mechanism; refuse a budget the first round already exceeds.

        Raises:
          ConfigError: even one round takes epsilon past ``target_epsilon``.
        """
        guarantee = context.privacy
        if guarantee is None:
            return
        context.summary.update(
            dp_delta=guarantee.delta, dp_noise_multiplier=guarantee.noise_multiplier,
            dp_clipping=guarantee.clipping, dp_target_epsilon=guarantee.target_epsilon,
            dp_accountant=accounting.accountant_name(guarantee.sampling, guarantee.accountant,
                                                     guarantee.mechanism),
            dp_sampling=guarantee.sampling.value)
        if guarantee.target_epsilon is not None and context.resumed_from == 0:
            first = _epsilon(guarantee, 1)
            if first > guarantee.target_epsilon:
                raise ConfigError(
                    f"one round already takes epsilon to {first:.3f} > aggregator.target_epsilon"
                    f"={guarantee.target_epsilon}; raise the noise multiplier or the target")

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> bool:
        """Add ``dp_epsilon``; ask to stop when the next round would exceed the budget."""
        guarantee = context.privacy
        if guarantee is None:
            return False
        row["dp_epsilon"] = context.summary["dp_epsilon"] = _epsilon(guarantee, round_num)
        if guarantee.accountant is Accountant.both:
            for name in (Accountant.rdp, Accountant.pld):
                row[f"dp_epsilon_{name.value}"] = context.summary[f"dp_epsilon_{name.value}"] = (
                    _epsilon(guarantee, round_num, name))
        if guarantee.target_epsilon is None or round_num >= context.rounds:
            return False
        following = _epsilon(guarantee, round_num + 1)
        if following <= guarantee.target_epsilon:
            return False
        context.summary["stopped_early"] = (
            f"privacy budget: round {round_num + 1} would take epsilon to {following:.3f} > "
            f"target {guarantee.target_epsilon}")
        log.info("stopping after round %d: %s", round_num, context.summary["stopped_early"])
        return True


def _epsilon(guarantee: accounting.DpGuarantee, rounds: int,
             accountant: Accountant | None = None) -> float:
    return accounting.epsilon(rounds, guarantee.noise_multiplier, guarantee.num_clients,
                              guarantee.clients_per_round, guarantee.delta, guarantee.sampling,
                              guarantee.accountant if accountant is None else accountant,
                              guarantee.mechanism)
