"""The exact bits of a round, read from the built TFF computation (``fedlab.comms``)."""

import logging

from fedlab import comms
from fedlab.callbacks.base import Callback, TrainingContext

log = logging.getLogger("fedlab")


class Communication(Callback):
    """Add ``bits_{down,up}_per_client`` and ``bits_{down,up}`` (all sampled clients) per round."""

    def __init__(self):
        """Measured when training starts."""
        self._bits: dict[str, int] = {}

    def on_train_start(self, context: TrainingContext) -> None:
        """Measure what one client receives and sends in a round of ``context.process``."""
        measured = comms.measure_round_communication(context.process.next)
        self._bits = measured.totals(context.clients_per_round)
        log.info("%.2f MB down / %.2f MB up per client per round",
                 measured.broadcast_bits_per_client / 8e6,
                 measured.upload_bits_per_client / 8e6)

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add the round's bit columns."""
        row.update(self._bits)
