"""The exact bits of a round, read from the built TFF computation.

See :mod:`fedlab.clients.communication`.
"""

import logging

from fedlab.callbacks.base import Callback, TrainingContext

log = logging.getLogger("fedlab")


class Communication(Callback):
    """Add ``bits_{down,up}_per_client`` and ``bits_{down,up}`` (all clients) per round.

    Every sampled client downloads the model (``clients_sampled`` of the row, when the clients
    are simulated); only the clients whose update is aggregated upload (``clients_reported``).
    """

    def on_train_start(self, context: TrainingContext) -> None:
        """Log what one client receives and sends in a round (``context.communication``)."""
        measured = context.communication
        log.info("%.2f MB down / %.2f MB up per client per round",
                 measured.broadcast_bits_per_client / 8e6,
                 measured.upload_bits_per_client / 8e6)

    def on_round_end(self, context: TrainingContext, round_num: int, result, row) -> None:
        """Add the round's bit columns."""
        row.update(context.communication.totals(
            row.get("clients_sampled", context.clients_per_round),
            row.get("clients_reported", context.clients_per_round)))
