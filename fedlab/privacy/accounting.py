"""Differential privacy: the (epsilon, delta) guarantee of exactly the sampling fedlab simulates.

DP-FedAvg adds Gaussian noise to the clipped sum of the round's client updates: a client-level
guarantee, accounted with Rényi DP (``RdpAccountant``). The ``dp_accounting`` event and the
neighbouring relation follow ``schedule.sampling``:

- ``uniform``: each round is ``SampledWithoutReplacementDpEvent(num_clients,
  clients_per_round, GaussianDpEvent(noise_multiplier))``, composed once per round, under
  ``REPLACE_ONE`` (a neighbouring federation replaces one client's data; the event needs it);
- ``poisson``: each round is ``PoissonSampledDpEvent(clients_per_round / num_clients,
  GaussianDpEvent(noise_multiplier))``, composed once per round, under
  ``ADD_OR_REMOVE_ONE`` (a neighbouring federation has one client more or fewer: the relation
  Poisson sampling is accounted under, and the one dp-accounting supports for it);
- ``epoch``: a client trains in one round per epoch, so each epoch begun is one
  ``GaussianDpEvent(noise_multiplier)`` (no amplification by sampling), composed once per
  epoch of ``ceil(num_clients / clients_per_round)`` rounds, under ``REPLACE_ONE``.

DP-FTRL (``aggregator=dp_ftrl``, :mod:`fedlab.privacy.ftrl`) is the mechanism ``tree``: each
epoch begun is one ``SingleEpochTreeAggregationDpEvent(noise_multiplier, rounds of that
epoch)``, under ``REPLACE_SPECIAL`` (the relation dp-accounting defines it for).

``aggregator.accountant=pld`` accounts the same events with dp-accounting's privacy loss
distributions (``PLDAccountant``, tighter than RDP's bound); ``both`` gives both. The PLD
accountant has no event for sampling without replacement, so PLD is refused with ``uniform``.
"""

import math
from dataclasses import dataclass

import dp_accounting
from dp_accounting import pld, rdp

from fedlab.config.choices import Accountant, Sampling
from fedlab.errors import ConfigError

# The delta epsilon is reported at, unless a run sets another (aggregator.target_delta).
DEFAULT_DELTA = 1e-5
# Beyond this the updates drown in noise: a budget that needs more is treated as unmeetable.
MAX_NOISE_MULTIPLIER = 1e4
TREE = "tree"  # DP-FTRL's tree aggregation (fedlab.privacy.ftrl)
RELATIONS = {Sampling.uniform: dp_accounting.NeighboringRelation.REPLACE_ONE,
             Sampling.poisson: dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
             Sampling.epoch: dp_accounting.NeighboringRelation.REPLACE_ONE}


@dataclass(frozen=True)
class DpGuarantee:
    """What a DP run's guarantee depends on: the mechanism and the sampling."""

    noise_multiplier: float
    num_clients: int
    clients_per_round: int
    delta: float
    target_epsilon: float | None
    clipping: str
    sampling: Sampling = Sampling.uniform
    accountant: Accountant = Accountant.rdp
    mechanism: str = "gaussian"  # or TREE (DP-FTRL)


ACCOUNTANT_NAMES = {Accountant.rdp: "RDP (dp_accounting.rdp.RdpAccountant)",
                    Accountant.pld: "PLD (dp_accounting.pld.PLDAccountant)",
                    Accountant.both: "PLD (dp_accounting.pld.PLDAccountant), RDP beside it"}


def relation(sampling: Sampling, mechanism: str = "gaussian"):
    """The neighbouring relation a guarantee is accounted under (module doc)."""
    if mechanism == TREE:
        return dp_accounting.NeighboringRelation.REPLACE_SPECIAL
    return RELATIONS[Sampling(sampling)]


def accountant_name(sampling: Sampling = Sampling.uniform,
                    accountant: Accountant = Accountant.rdp, mechanism: str = "gaussian") -> str:
    """How a guarantee under ``sampling`` is accounted, for ``summary.json``."""
    return (f"{ACCOUNTANT_NAMES[Accountant(accountant)]}, "
            f"{relation(sampling, mechanism).name}, client level")


def check_accountant(sampling: Sampling, accountant: Accountant) -> None:
    """Refuse an accountant that has no event for the sampling.

    Raises:
      ConfigError: PLD with ``uniform`` sampling (one line).
    """
    if Accountant(accountant) is not Accountant.rdp and Sampling(sampling) is Sampling.uniform:
        raise ConfigError(
            f"aggregator.accountant={Accountant(accountant).value}: dp-accounting's PLD "
            "accountant has no event for sampling without replacement (schedule.sampling="
            "uniform); use schedule.sampling=poisson or epoch, or aggregator.accountant=rdp")


def new_accountant(sampling: Sampling = Sampling.uniform, accountant: Accountant = Accountant.rdp,
                   mechanism: str = "gaussian"):
    """An empty accountant for the guarantee's neighbouring relation (module doc).

    Args:
      sampling: the client sampling (it sets the neighbouring relation).
      accountant: ``rdp``, or ``pld`` (``both`` also gives PLD's).
      mechanism: ``gaussian`` or ``tree``.
    """
    neighbours = relation(sampling, mechanism)
    if Accountant(accountant) is Accountant.rdp:
        return rdp.RdpAccountant(neighboring_relation=neighbours)
    return pld.PLDAccountant(neighboring_relation=neighbours)


def round_event(noise_multiplier: float, num_clients: int, clients_per_round: int,
                sampling: Sampling = Sampling.uniform) -> dp_accounting.DpEvent:
    """The DP event of one round of ``uniform`` or ``poisson`` sampling, with Gaussian noise.

    Args:
      noise_multiplier: the Gaussian noise's standard deviation over the clipping norm.
      num_clients: the federation's size N.
      clients_per_round: K (``poisson``: expected).
      sampling: ``uniform`` (K of N without replacement) or ``poisson`` (rate K / N).
    """
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if Sampling(sampling) is Sampling.poisson:
        return dp_accounting.PoissonSampledDpEvent(clients_per_round / num_clients, gaussian)
    return dp_accounting.SampledWithoutReplacementDpEvent(num_clients, clients_per_round,
                                                          gaussian)


def training_event(rounds: int, noise_multiplier: float, num_clients: int,
                   clients_per_round: int, sampling: Sampling = Sampling.uniform,
                   mechanism: str = "gaussian") -> dp_accounting.DpEvent:
    """The DP event of ``rounds`` rounds (module doc: one event per round, or per epoch).

    Args:
      rounds: rounds trained.
      noise_multiplier: the Gaussian noise's standard deviation over the clipping norm.
      num_clients: the federation's size N.
      clients_per_round: K.
      sampling: ``uniform``, ``poisson`` or ``epoch``.
      mechanism: ``gaussian``, or ``tree`` (DP-FTRL, epoch sampling).
    """
    if mechanism == TREE:
        period = math.ceil(num_clients / clients_per_round)
        return dp_accounting.ComposedDpEvent([
            dp_accounting.SingleEpochTreeAggregationDpEvent(
                noise_multiplier, min(period, rounds - start))
            for start in range(0, rounds, period)])
    if Sampling(sampling) is Sampling.epoch:
        epochs = math.ceil(rounds / math.ceil(num_clients / clients_per_round))
        return dp_accounting.SelfComposedDpEvent(
            dp_accounting.GaussianDpEvent(noise_multiplier), epochs)
    return dp_accounting.SelfComposedDpEvent(
        round_event(noise_multiplier, num_clients, clients_per_round, sampling), rounds)


def epsilon(rounds: int, noise_multiplier: float, num_clients: int, clients_per_round: int,
            delta: float, sampling: Sampling = Sampling.uniform,
            accountant: Accountant = Accountant.rdp, mechanism: str = "gaussian") -> float:
    """Epsilon at ``delta`` after ``rounds`` rounds (RDP, replace-one, client level).

    Without noise there is no finite epsilon: ``inf``.

    Args:
      rounds: rounds trained.
      noise_multiplier: the Gaussian noise's standard deviation over the clipping norm.
      num_clients: the federation's size N.
      clients_per_round: K.
      delta: the delta epsilon is reported at.
      sampling: ``uniform``, ``poisson`` or ``epoch``.
      accountant: ``rdp``, or ``pld`` (``both``: PLD's).
      mechanism: ``gaussian``, or ``tree`` (DP-FTRL).
    """
    if rounds == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    composed = new_accountant(sampling, accountant, mechanism)
    composed.compose(training_event(rounds, noise_multiplier, num_clients, clients_per_round,
                                    sampling, mechanism))
    return float(composed.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, rounds: int, num_clients: int,
                    clients_per_round: int, delta: float,
                    sampling: Sampling = Sampling.uniform,
                    accountant: Accountant = Accountant.rdp,
                    mechanism: str = "gaussian") -> float:
    """The smallest noise multiplier whose epsilon after ``rounds`` rounds is <= the target.

    Args:
      target_epsilon: the budget.
      rounds: rounds to train.
      num_clients: the federation's size N.
      clients_per_round: K.
      delta: the delta epsilon is reported at.
      sampling: ``uniform``, ``poisson`` or ``epoch``.
      accountant: ``rdp``, or ``pld`` (``both``: PLD's).
      mechanism: ``gaussian``, or ``tree`` (DP-FTRL).

    Raises:
      ConfigError: no noise multiplier up to ``MAX_NOISE_MULTIPLIER`` meets the target.
    """
    def make_event(noise_multiplier):
        return training_event(rounds, noise_multiplier, num_clients, clients_per_round,
                              sampling, mechanism)

    try:
        return float(dp_accounting.calibrate_dp_mechanism(
            lambda: new_accountant(sampling, accountant, mechanism), make_event, target_epsilon,
            delta,
            dp_accounting.ExplicitBracketInterval(1e-3, MAX_NOISE_MULTIPLIER), tol=1e-4))
    except (ValueError, RuntimeError) as error:
        raise ConfigError(
            f"no noise multiplier up to {MAX_NOISE_MULTIPLIER:g} keeps epsilon <= "
            f"{target_epsilon} at delta {delta} over "
            f"{rounds} rounds of {clients_per_round} of {num_clients} clients ({error})"
        ) from error
