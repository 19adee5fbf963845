"""Mime Lite: TFF's builder."""

import tensorflow_federated as tff

from fedlab.algorithms.base import Algorithm, Optimizer


class MimeLite(Algorithm):
    """Mime Lite (Karimireddy et al. 2021): clients step with the server optimizer's state.

    The client optimizer of the ``optimizer`` group is Mime's base optimizer. Each round a
    client iterates its data twice (the full-batch gradient, then local training), both passes
    in the same seeded order, so runs reproduce; with ``schedule.local_epochs > 1`` every local
    epoch also uses that order.
    """

    name = "mime_lite"
    reshuffle_each_iteration = False
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_mime_lite)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_mime_lite)

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """Mime's base optimizer and server optimizer."""
        return {"base_optimizer": client_optimizer, "server_optimizer": server_optimizer}
