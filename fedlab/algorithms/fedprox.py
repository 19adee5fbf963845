"""FedProx: FedAvg with a proximal term, TFF's builder."""

import tensorflow_federated as tff
from tensorflow_federated.python.learning.templates import proximal_client_work

from fedlab.algorithms.base import DEFAULT_LOOP, Algorithm, ModelFn, Optimizer
from fedlab.algorithms.fedavg import client_weighting
from fedlab.errors import ConfigError


class FedProx(Algorithm):
    """FedProx (Li et al. 2020): FedAvg with a proximal term ``proximal_strength/2 ||w - w_0||²``.

    With ``proximal_strength=0`` it computes what FedAvg does.
    """

    name = "fedprox"
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_fed_prox)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_fed_prox)

    def __init__(self, proximal_strength: float = 0.01):
        """The proximal term's weight.

        Args:
          proximal_strength: the weight mu of the proximal term mu/2 ||w - w_0||^2 (>= 0; 0
            computes what FedAvg does).

        Raises:
          ConfigError: a negative strength.
        """
        if proximal_strength < 0:
            raise ConfigError(
                f"algorithm.proximal_strength must be >= 0, got {proximal_strength}")
        self.proximal_strength = proximal_strength

    def arguments(self, client_optimizer: Optimizer, server_optimizer: Optimizer) -> dict:
        """FedAvg's arguments and the proximal strength."""
        return {**super().arguments(client_optimizer, server_optimizer),
                "proximal_strength": self.proximal_strength}

    def client_work(self, model_fn: ModelFn, client_optimizer: Optimizer, unweighted: bool,
                    loop: tff.learning.LoopImplementation = DEFAULT_LOOP):
        """TFF's proximal client work, as ``build_weighted_fed_prox`` composes it."""
        if isinstance(model_fn, tff.learning.models.FunctionalModel):
            return proximal_client_work.build_functional_model_delta_client_work(
                model=model_fn, optimizer=client_optimizer,
                client_weighting=client_weighting(unweighted),
                delta_l2_regularizer=self.proximal_strength)
        return proximal_client_work.build_model_delta_client_work(
            model_fn=model_fn, optimizer=client_optimizer,
            client_weighting=client_weighting(unweighted),
            delta_l2_regularizer=self.proximal_strength, loop_implementation=loop)
