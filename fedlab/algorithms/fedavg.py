"""FedAvg: TFF's federated averaging."""

import tensorflow_federated as tff

from fedlab.algorithms.base import Algorithm


class FedAvg(Algorithm):
    """Federated averaging (McMahan et al. 2017)."""

    name = "fedavg"
    weighted_builder = staticmethod(tff.learning.algorithms.build_weighted_fed_avg)
    unweighted_builder = staticmethod(tff.learning.algorithms.build_unweighted_fed_avg)
