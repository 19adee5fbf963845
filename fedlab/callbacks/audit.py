"""The empirical privacy audit's estimate: ``empirical_epsilon`` (``privacy_audit.canaries``)."""

import numpy as np

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.errors import ConfigError
from fedlab.privacy.accounting import DEFAULT_DELTA
from fedlab.runs.files import AUDIT_START_FILE


def trainable_vector(context: TrainingContext) -> np.ndarray:
    """The global model's trainable weights, flattened and concatenated (float64).

    Args:
      context: the training context, whose model weights are read.
    """
    return np.concatenate([np.asarray(w, np.float64).ravel()
                           for w in context.model_weights().trainable])


class EmpiricalPrivacy(Callback):
    """Andrew et al.'s one-shot estimate of epsilon from the canaries (:mod:`fedlab.privacy.audit`).

    ``empirical_epsilon`` every ``privacy_audit.every`` rounds and after the last (NaN between),
    at ``privacy_audit.delta`` (default: the DP aggregator's delta); summary.json gets the last
    estimate, the round it is of (``audit_round``), the cosines' means and spreads, K and
    delta. The model the run starts from is kept in ``audit_start_weights.npy``, so a resumed
    run measures the change from the same start. Nothing without canaries.
    """

    def on_train_start(self, context: TrainingContext) -> None:
        """Keep (or, resumed, read back) the starting weights; fix the delta."""
        self._audit = context.audit
        if self._audit is None:
            return
        start_file = context.run_dir / AUDIT_START_FILE
        if context.resumed_from == 0:
            np.save(start_file, trainable_vector(context))
        elif not start_file.is_file():
            raise ConfigError(
                f"{start_file} is missing: a resumed audit measures the model's change from the "
                "weights the run started from; restore the file or start a new run folder")
        self._start = np.load(start_file)
        self._delta = (self._audit.delta if self._audit.delta is not None
                       else context.privacy.delta if context.privacy is not None
                       else DEFAULT_DELTA)
        self._estimated_at = 0
        context.summary.update(audit_canaries=self._audit.canaries, audit_delta=self._delta,
                               audit_canary_norm=self._audit.canary_norm)

    def _estimate(self, context: TrainingContext, round_num: int) -> dict[str, float]:
        figures = self._audit.estimate(self._start - trainable_vector(context), self._delta)
        context.summary.update(figures, audit_round=round_num)
        self._estimated_at = round_num
        return figures

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add ``empirical_epsilon`` when due (NaN between estimates)."""
        if self._audit is None:
            return
        every = self._audit.every
        # The last round, every ``every`` rounds, and a round after which training stops early
        # (a budget or target stop: callbacks before this one in the list).
        due = ((every > 0 and round_num % every == 0) or round_num == context.rounds
               or "stopped_early" in context.summary)
        row["empirical_epsilon"] = (self._estimate(context, round_num)["empirical_epsilon"]
                                    if due else np.nan)

    def on_train_end(self, context: TrainingContext, last_round: int) -> None:
        """Estimate for the final model if training stopped before a due round."""
        if self._audit is not None and self._estimated_at != last_round:
            self._estimate(context, last_round)
