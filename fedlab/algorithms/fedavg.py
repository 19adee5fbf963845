"""FedAvg: TFF's federated averaging."""

import tensorflow_federated as tff

from fedlab.algorithms.base import DEFAULT_LOOP, Algorithm, ModelFn, Optimizer


def client_weighting(unweighted: bool) -> tff.learning.ClientWeighting:
    """How TFF's builders weigh clients: uniformly for unweighted aggregators, else by examples."""
    return (tff.learning.ClientWeighting.UNIFORM if unweighted
            else tff.learning.ClientWeighting.NUM_EXAMPLES)


class FedAvg(Algorithm):
    """Federated averaging (McMahan et al. 2017)."""

    name = "fedavg"
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_fed_avg)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_fed_avg)

    def client_work(self, model_fn: ModelFn, client_optimizer: Optimizer, unweighted: bool,
                    loop: tff.learning.LoopImplementation = DEFAULT_LOOP):
        """TFF's model-delta client work, as ``build_weighted_fed_avg`` composes it."""
        if isinstance(model_fn, tff.learning.models.FunctionalModel):
            return tff.learning.templates.build_functional_model_delta_client_work(
                model=model_fn, optimizer=client_optimizer,
                client_weighting=client_weighting(unweighted), loop_implementation=loop)
        return tff.learning.templates.build_model_delta_client_work(
            model_fn=model_fn, optimizer=client_optimizer,
            client_weighting=client_weighting(unweighted), loop_implementation=loop)
