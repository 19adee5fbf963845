"""Federated SGD: TFF's builder."""

import tensorflow_federated as tff

from fedlab.algorithms.base import Algorithm, Optimizer


class FedSgd(Algorithm):
    """Federated SGD: each client sends the gradient of its whole local data, the server steps.

    The client optimizer is unused (clients take no local steps); TFF's ``build_fed_sgd`` takes
    only example-weighted aggregators.
    """

    name = "fedsgd"
    weighted_builder = staticmethod(tff.learning.algorithms.build_fed_sgd)

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """The server optimizer alone."""
        return {"server_optimizer_fn": server_optimizer}
