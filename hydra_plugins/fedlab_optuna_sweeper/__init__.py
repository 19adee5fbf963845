"""fedlab's Optuna sweeper (a Hydra plugin: Hydra only loads plugins from ``hydra_plugins``)."""
