"""The sweep loop of :class:`~hydra_plugins.fedlab_optuna_sweeper.sweeper.ResilientOptunaSweeper`.

hydra-optuna-sweeper's sweeper, made to survive: failed trials and continued studies.

hydra-optuna-sweeper 1.2.0 re-raises the first failed trial, ending the search, and a study
continued from its storage restarts its sampler from the same seed, so the continuation
proposes the points it proposed before. This sweeper records a failed job (or a non-finite
objective) as a FAIL trial and goes on, and reseeds the sampler from (seed, trials already in
the study), so running the same command again adds new trials to the same study — after
finishing, from their checkpoints, the trials a killed sweep left running.
"""

import logging
import math
import sys
from typing import Any

import numpy as np
import optuna
from hydra.core.utils import JobStatus
from hydra.errors import HydraException
from omegaconf import OmegaConf

from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)

log = logging.getLogger(__name__)


class ResilientOptunaSweeperImpl(OptunaSweeperImpl):
    """The plugin's implementation with a sweep loop that records failures and continues."""

    def sweep(self, arguments: list[str]) -> None:
        """Ask ``n_trials`` trials in batches of ``n_jobs``, launch them, tell their results."""
        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config() + list(arguments)
        distributions, fixed = create_params_from_overrides(params_conf)
        for name in fixed:
            distributions.pop(name, None)
        try:
            self._check_search_space(distributions, fixed)
        except HydraException as error:  # one line, not Hydra's traceback of the sweeper
            sys.stderr.write(f"error: {error}\n")
            sys.exit(1)
        directions = self._get_directions()
        study = optuna.create_study(study_name=self.study_name, storage=self.storage,
                                    sampler=self.sampler, directions=directions,
                                    load_if_exists=True)
        earlier = len(study.trials)
        if earlier:
            reseed(self.sampler, earlier)
            log.info("continuing study %s: %d trials so far", study.study_name, earlier)
            self._finish_interrupted(study, len(directions))
        to_go = self.n_trials
        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            trials = [study.ask() for _ in range(batch)]
            overrides = self._configure_trials(trials, distributions, fixed)
            returns = self.launcher.launch(overrides, initial_job_idx=earlier + self.job_idx)
            self.job_idx += len(returns)
            for trial, job in zip(trials, returns, strict=True):
                values = _values(job, len(directions))
                if values is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    log.warning("trial %d failed: %s", trial.number, _reason(job))
                else:
                    study.tell(trial, values=values)
            to_go -= batch
        self._save_results(study, directions)

    def _finish_interrupted(self, study: optuna.Study, objectives: int) -> None:
        """Run again, in its own job folder, every trial a killed sweep left running.

        The job resumes from its last checkpoint (same overrides, same folder: the trial's
        number), and the trial gets its result; these runs do not count against ``n_trials``.
        """
        for trial in study.get_trials(deepcopy=False,
                                      states=(optuna.trial.TrialState.RUNNING,)):
            overrides = tuple(f"{name}={value}" for name, value in
                              {**trial.params, **trial.user_attrs}.items())
            log.info("resuming trial %d, left running by an earlier sweep", trial.number)
            job, = self.launcher.launch([overrides], initial_job_idx=trial.number)
            values = _values(job, objectives)
            if values is None:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, _reason(job))
            else:
                study.tell(trial.number, values=values)

    def _check_search_space(self, distributions: dict, fixed: dict) -> None:
        """Compose one point of the search space: an unknown key stops the search at once.

        (Instead of failing every trial.)

        Raises:
          HydraException: the configuration does not take the search space's keys or values.
        """
        point = [f"{name}={_a_value(distribution)}"
                 for name, distribution in distributions.items()]
        point += [f"{name}={value}" for name, value in fixed.items()]
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, point)
        except Exception as error:  # Hydra's composition errors, whatever their type
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise HydraException(f"the search space does not fit the configuration: {reason} "
                                 f"(search space: {', '.join(distributions)})") from None

    def _save_results(self, study: optuna.Study, directions: list[str]) -> None:
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        results: dict[str, Any] = {"name": "optuna", "trials": len(study.trials),
                                   "completed_trials": len(completed)}
        if completed and len(directions) == 1:
            results.update(best_params=study.best_trial.params,
                           best_value=study.best_trial.value)
            log.info("Best parameters: %s", study.best_trial.params)
            log.info("Best value: %s", study.best_trial.value)
        elif completed:
            results["solutions"] = [{"params": t.params, "values": t.values}
                                    for t in study.best_trials]
        OmegaConf.save(OmegaConf.create(results),
                       f"{self.config.hydra.sweep.dir}/optimization_results.yaml")


def _a_value(distribution) -> Any:
    """A value of ``distribution`` (its lower bound or first choice)."""
    if hasattr(distribution, "choices"):
        return distribution.choices[0]
    return distribution.low


def _values(job, objectives: int) -> list[float] | None:
    """The job's finite objective value(s), or None for a failed job or a non-finite value."""
    if job.status != JobStatus.COMPLETED:
        return None
    returned = job.return_value
    try:
        values = ([float(returned)] if objectives == 1 else [float(v) for v in returned])
    except (TypeError, ValueError):
        return None
    if len(values) != objectives or not all(math.isfinite(v) for v in values):
        return None
    return values


def _reason(job) -> str:
    if job.status != JobStatus.COMPLETED:
        return f"{type(job._return_value).__name__}: {job._return_value}"
    return f"objective {job.return_value!r} is not a finite number"


def reseed(sampler: optuna.samplers.BaseSampler, trials_so_far: int) -> None:
    """Reseed ``sampler`` from its seed and the number of trials in the study (deterministic).

    Optuna 2.10's samplers keep their seed only as a ``numpy.random.RandomState``; TPE also
    holds a random sampler for its start-up trials. Both are replaced.
    """
    base = getattr(sampler, "_fedlab_seed", None)
    if base is None:
        base = int(sampler._rng.randint(2**31)) if hasattr(sampler, "_rng") else 0
        sampler._fedlab_seed = base
    seed = int(np.random.SeedSequence([base, trials_so_far]).generate_state(1)[0])
    for owner in (sampler, getattr(sampler, "_random_sampler", None)):
        if owner is not None and hasattr(owner, "_rng"):
            owner._rng = np.random.RandomState(seed)
