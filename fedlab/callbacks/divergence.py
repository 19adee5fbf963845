"""Stop when a round's training loss or aggregate update is not finite."""

import math

from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.errors import DivergenceError


class DivergenceStop(Callback):
    """Raise :class:`DivergenceError` on a non-finite round, before anything records it."""

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Check the round's training loss and TFF's ``update_non_finite`` flag."""
        if result is None:  # no client reported: nothing was trained or applied
            return
        loss = row["train_loss"]
        # TFF drops a non-finite aggregate update and reports it instead of applying it.
        update_non_finite = int(result.metrics["finalizer"].get("update_non_finite", 0))
        if math.isfinite(loss) and not update_non_finite:
            return
        kept = (f"rows of rounds 1-{round_num - 1} and the checkpoint of round "
                f"{context.last_checkpoint} are kept" if context.last_checkpoint
                else "no round had finished")
        raise DivergenceError(
            f"training diverged in round {round_num} (train loss {loss}, "
            f"{'non-finite' if update_non_finite else 'finite'} model update); {kept}; "
            "try a smaller learning rate"
        )
