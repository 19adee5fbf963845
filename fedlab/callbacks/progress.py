"""One log line per round: losses, accuracy, upload, timings, the estimated time left."""

import logging
import math
import statistics

from fedlab.callbacks.base import Callback, TrainingContext

log = logging.getLogger("fedlab")


class ProgressLine(Callback):
    """Log each round's row in one line, with an ETA from the median round so far."""

    def __init__(self):
        """No settings: it prints what the row holds."""
        self._seconds: list[float] = []

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Log the round."""
        self._seconds.append(row["round_seconds"] + _number(row.get("eval_seconds")))
        left = statistics.median(self._seconds) * (context.rounds - round_num)
        parts = [f"round {round_num:>{len(str(context.rounds))}}/{context.rounds}",
                 f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"]
        if "bits_up_per_client" in row:
            parts.append(f"up {row['bits_up_per_client'] / 8e6:.2f} MB/client")
        parts.append(f"{row['round_seconds']:.2f} s")
        if "clients_reported" in row:
            parts.append(f"{row['clients_reported']}/{row['clients_sampled']} reported")
        if "sim_round_seconds" in row:
            parts.append(f"sim {row['sim_round_seconds']:.1f} s")
        if math.isfinite(_number(row.get("eval_accuracy"), math.nan)):
            parts.append(f"eval acc {row['eval_accuracy']:.4f} ({row['eval_seconds']:.2f} s)")
        if "dp_epsilon" in row:
            parts.append(f"epsilon {row['dp_epsilon']:.2f}")
        if math.isfinite(_number(row.get("client_accuracy_p10"), math.nan)):
            parts.append(f"client acc p10 {row['client_accuracy_p10']:.4f}")
        parts.append(f"ETA {left:.0f} s")
        log.info(" | ".join(parts))


def _number(value, default: float = 0.0) -> float:
    return default if value is None or not math.isfinite(value) else float(value)
