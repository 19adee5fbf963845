"""hydra-optuna-sweeper's sweeper, made to survive: failed trials and continued studies.

Hydra imports every plugin module at every start, so this module stays light; the sweep loop
and Optuna (about a second to import) are in ``_impl``, imported when a sweep starts.
"""

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResilientOptunaSweeper(OptunaSweeper):
    """``hydra/sweeper=optuna`` with failed trials recorded and studies that continue."""

    def __init__(self, sampler, direction, storage, study_name, n_trials, n_jobs,
                 search_space, custom_search_space, params) -> None:
        """The plugin's settings, unchanged."""
        from hydra_plugins.fedlab_optuna_sweeper._impl import ResilientOptunaSweeperImpl

        self.sweeper = ResilientOptunaSweeperImpl(
            sampler, direction, storage, study_name, n_trials, n_jobs, search_space,
            custom_search_space, params)
