"""DP-FedAvg's aggregator (``aggregator=dp``): clipping, seeded Gaussian noise, the guarantee."""

import logging

from tensorflow_federated.python.learning import model_update_aggregator

from fedlab.config.choices import Accountant, Sampling
from fedlab.errors import ConfigError
from fedlab.privacy import noise as noise_queries
from fedlab.privacy.accounting import (
    DEFAULT_DELTA,
    DpGuarantee,
    calibrate_noise,
    check_accountant,
)

log = logging.getLogger("fedlab")


def parse_noise_multiplier(noise_multiplier: str | float) -> float | None:
    """``aggregator.noise_multiplier`` as a number >= 0, or ``None`` for ``auto``.

    Args:
      noise_multiplier: the configured value.

    Raises:
      ConfigError: neither a number >= 0 nor ``auto`` (one line).
    """
    if str(noise_multiplier).strip().lower() == "auto":
        return None
    try:
        value = float(noise_multiplier)
    except ValueError:
        raise ConfigError("aggregator.noise_multiplier must be a number or 'auto', got "
                          f"{noise_multiplier!r}") from None
    if value < 0:
        raise ConfigError(f"aggregator.noise_multiplier must be >= 0, got {value}")
    return value


class DpAggregator:
    """DP-FedAvg's aggregator: clipping plus Gaussian noise, and the guarantee it gives.

    Built for a federation (:meth:`for_federation`), since calibrating the noise to a privacy
    budget needs the number of clients, the clients per round and the rounds. ``clipping``:
    ``adaptive`` (``DifferentiallyPrivateFactory.gaussian_adaptive``: the clipping norm follows
    the ``target_unclipped_quantile`` of update norms, learned at ``clip_learning_rate`` from
    ``initial_l2_norm_clip`` with a noised count of clipped clients) or ``fixed``
    (``gaussian_fixed`` with norm ``clip``). The noise is drawn from ``seed``
    (``fedlab.privacy.noise``), so runs reproduce. DP-FedAvg weights clients uniformly, so fedlab
    builds the algorithm's unweighted process for it.

    The noise multiplier is the total one the guarantee is accounted for. With adaptive
    clipping TFF raises the noise on the updates a little so that, combined with the noise on
    the clipped count (``clipped_count_stddev``; default max(0.05 x clients per round, noise
    multiplier)), the mechanism has exactly this multiplier.
    """

    def __init__(self, noise_multiplier: str | float = 0.1, clients_per_round: int = 10,
                 target_epsilon: float | None = None, target_delta: float = DEFAULT_DELTA,
                 clipping: str = "adaptive", clip: float = 0.1, zeroing: bool = True,
                 initial_l2_norm_clip: float = 0.1, target_unclipped_quantile: float = 0.5,
                 clip_learning_rate: float = 0.2, clipped_count_stddev: float | None = None,
                 seed: int = 0, accountant: Accountant = Accountant.rdp):
        """Check every value; ``noise_multiplier="auto"`` calibrates it to ``target_epsilon``.

        Args:
          noise_multiplier: the total noise multiplier the guarantee is accounted for, or
            ``auto``: the smallest one that keeps epsilon <= ``target_epsilon`` after
            ``schedule.rounds`` rounds.
          clients_per_round: clients sampled per round: the sampling the guarantee is accounted
            for (training refuses any other than ``schedule.clients_per_round``).
          target_epsilon: the privacy budget: with a fixed noise multiplier, training stops after
            the last round whose epsilon stays within it (null: no budget).
          target_delta: the delta at which epsilon is reported (``dp_epsilon``).
          clipping: ``adaptive`` (the clipping norm follows a quantile of the update norms) or
            ``fixed`` (norm ``clip``).
          clip: the fixed clipping norm (``clipping=fixed``).
          zeroing: zero out updates whose norm is far above the others' (TFF's adaptive zeroing)
            before clipping.
          initial_l2_norm_clip: adaptive clipping's initial norm.
          target_unclipped_quantile: adaptive clipping: the share of updates left unclipped that
            the norm is steered to.
          clip_learning_rate: adaptive clipping: the learning rate of the norm.
          clipped_count_stddev: adaptive clipping: the noise on the count of clipped clients
            (null: max(0.05 x clients per round, noise multiplier)).
          seed: the seed the Gaussian noise is drawn from, so runs reproduce.
          accountant: ``rdp`` (Rényi DP), ``pld`` (privacy loss distributions: tighter; needs
            ``schedule.sampling`` poisson or epoch) or ``both`` (``dp_epsilon`` is PLD's, with
            ``dp_epsilon_rdp`` and ``dp_epsilon_pld`` beside it). A budget is kept, and noise
            calibrated, with PLD's epsilon when it is given.

        Raises:
          ConfigError: a value out of range, or ``auto`` without a target.
        """
        self.noise_multiplier = parse_noise_multiplier(noise_multiplier)
        self.auto = self.noise_multiplier is None
        if clients_per_round < 1:
            raise ConfigError(f"aggregator.clients_per_round must be >= 1, got {clients_per_round}")
        if not 0 < target_delta < 1:
            raise ConfigError(f"aggregator.target_delta must be in (0, 1), got {target_delta}")
        if target_epsilon is not None and target_epsilon <= 0:
            raise ConfigError(f"aggregator.target_epsilon must be > 0, got {target_epsilon}")
        if self.auto and target_epsilon is None:
            raise ConfigError("aggregator.noise_multiplier=auto needs aggregator.target_epsilon")
        if target_epsilon is not None and self.noise_multiplier == 0:
            raise ConfigError("aggregator.target_epsilon cannot be met with noise_multiplier=0 "
                              "(no noise: no finite epsilon)")
        if clipping not in ("adaptive", "fixed"):
            raise ConfigError(
                f"aggregator.clipping must be 'adaptive' or 'fixed', got {clipping!r}")
        if clip <= 0 or initial_l2_norm_clip <= 0:
            raise ConfigError("aggregator.clip and aggregator.initial_l2_norm_clip must be > 0")
        self.clients_per_round, self.target_epsilon = clients_per_round, target_epsilon
        self.target_delta, self.clipping, self.clip, self.zeroing = (
            target_delta, clipping, clip, zeroing)
        self.adaptive = {"initial_l2_norm_clip": initial_l2_norm_clip,
                         "target_unclipped_quantile": target_unclipped_quantile,
                         "learning_rate": clip_learning_rate}
        self.clipped_count_stddev = clipped_count_stddev
        self.seed = seed
        self.accountant = Accountant(accountant)

    def for_federation(self, num_clients: int, rounds: int,
                       sampling: Sampling = Sampling.uniform):
        """The TFF aggregator and the guarantee it gives over ``rounds`` of ``num_clients``.

        Args:
          num_clients: the federation's size.
          rounds: the rounds to train (calibration to a budget).
          sampling: how clients are drawn (``schedule.sampling``): the accounting follows it.

        Returns:
          ``(factory, guarantee)``: a ``tff.aggregators.UnweightedAggregationFactory`` and a
          :class:`fedlab.privacy.accounting.DpGuarantee`.

        Raises:
          ConfigError: no noise multiplier meets the target, or TFF refuses the settings.
        """
        check_accountant(sampling, self.accountant)
        noise = self.noise_multiplier
        if self.auto:
            noise = calibrate_noise(self.target_epsilon, rounds, num_clients,
                                    self.clients_per_round, self.target_delta, sampling,
                                    self.accountant)
            log.info("noise multiplier %.4f: the smallest that keeps epsilon <= %s at delta %s "
                     "over %d rounds", noise, self.target_epsilon, self.target_delta, rounds)
        try:
            if self.clipping == "fixed":
                factory = noise_queries.gaussian_fixed(noise, self.clients_per_round, self.clip,
                                                  self.seed)
            else:
                count_stddev = self.clipped_count_stddev
                if count_stddev is None:
                    count_stddev = max(0.05 * self.clients_per_round, noise)
                factory = noise_queries.gaussian_adaptive(
                    noise, self.clients_per_round, self.seed,
                    clipped_count_stddev=count_stddev, **self.adaptive)
        except ValueError as error:
            raise ConfigError(f"cannot build the DP aggregator: {error}") from None
        if self.zeroing:
            factory = model_update_aggregator._default_zeroing(factory)  # noqa: SLF001
        guarantee = DpGuarantee(
            noise_multiplier=noise, num_clients=num_clients,
            clients_per_round=self.clients_per_round, delta=self.target_delta,
            target_epsilon=self.target_epsilon,
            clipping=(f"fixed, norm {self.clip}" if self.clipping == "fixed"
                      else "adaptive, quantile {target_unclipped_quantile}".format(
                          **self.adaptive)),
            sampling=Sampling(sampling), accountant=self.accountant)
        return factory, guarantee
