"""Differential privacy: the (epsilon, delta) guarantee of exactly the sampling fedlab simulates.

fedlab samples ``clients_per_round`` of ``num_clients`` clients uniformly without replacement
each round and adds Gaussian noise to the clipped sum of their updates: a client-level
guarantee. Each round is the ``dp_accounting`` event
``SampledWithoutReplacementDpEvent(num_clients, clients_per_round,
GaussianDpEvent(noise_multiplier))``, composed once per round under the ``REPLACE_ONE``
neighbouring relation (a neighbouring federation replaces one client's data), and accounted
with Rényi DP (``RdpAccountant``). dp-accounting's PLD accountant does not support sampling
without replacement, so no PLD figure is given.
"""

import math
from dataclasses import dataclass

import dp_accounting
from dp_accounting import rdp

from fedlab.errors import ConfigError

# Beyond this the updates drown in noise: a budget that needs more is treated as unmeetable.
MAX_NOISE_MULTIPLIER = 1e4
ACCOUNTANT = "RDP (dp_accounting.rdp.RdpAccountant), REPLACE_ONE, client level"


@dataclass(frozen=True)
class DpGuarantee:
    """What a DP run's guarantee depends on: the mechanism and the sampling."""

    noise_multiplier: float
    num_clients: int
    clients_per_round: int
    delta: float
    target_epsilon: float | None
    clipping: str


def new_accountant() -> rdp.RdpAccountant:
    """An empty Rényi-DP accountant for the replace-one (client-level) relation."""
    return rdp.RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)


def round_event(noise_multiplier: float, num_clients: int,
                clients_per_round: int) -> dp_accounting.DpEvent:
    """The DP event of one round: a uniform sample without replacement, Gaussian noise."""
    return dp_accounting.SampledWithoutReplacementDpEvent(
        num_clients, clients_per_round, dp_accounting.GaussianDpEvent(noise_multiplier))


def epsilon(rounds: int, noise_multiplier: float, num_clients: int, clients_per_round: int,
            delta: float) -> float:
    """Epsilon at ``delta`` after ``rounds`` rounds (RDP, replace-one, client level).

    Without noise there is no finite epsilon: ``inf``.
    """
    if rounds == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    accountant = new_accountant()
    accountant.compose(round_event(noise_multiplier, num_clients, clients_per_round), rounds)
    return float(accountant.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, rounds: int, num_clients: int,
                    clients_per_round: int, delta: float) -> float:
    """The smallest noise multiplier whose epsilon after ``rounds`` rounds is <= the target.

    Raises:
      ConfigError: no noise multiplier up to ``MAX_NOISE_MULTIPLIER`` meets the target.
    """
    def make_event(noise_multiplier):
        return dp_accounting.SelfComposedDpEvent(
            round_event(noise_multiplier, num_clients, clients_per_round), rounds)

    try:
        return float(dp_accounting.calibrate_dp_mechanism(
            new_accountant, make_event, target_epsilon, delta,
            dp_accounting.ExplicitBracketInterval(1e-3, MAX_NOISE_MULTIPLIER), tol=1e-4))
    except (ValueError, RuntimeError) as error:
        raise ConfigError(
            f"no noise multiplier up to {MAX_NOISE_MULTIPLIER:g} keeps epsilon <= "
            f"{target_epsilon} at delta {delta} over "
            f"{rounds} rounds of {clients_per_round} of {num_clients} clients ({error})"
        ) from error
