"""Checks of a sweep's launcher before any job starts (a Hydra callback, free of TensorFlow)."""

import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fedlab.errors import ConfigError

RAY_LAUNCHER = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"


def connect_ray(init: dict[str, Any], timeout_seconds: float = 10.0) -> None:
    """Connect to the Ray cluster at ``init['address']`` with the launcher's ``init`` settings.

    A ``host:port`` (or ``ray://host:port``) that does not accept a TCP connection within
    ``timeout_seconds`` is refused at once (Ray itself retries for minutes). The connection is
    kept: hydra-ray-launcher then uses it instead of calling ``ray.init`` again — whose
    ``object_store_memory`` default Ray refuses when connecting to an existing cluster.

    Raises:
      ConfigError: the address cannot be reached, or Ray refuses the connection.
    """
    address = str(init["address"])
    if address != "auto":
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout_seconds):
                pass
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"cannot reach the Ray cluster at {address}: "
                              f"{getattr(error, 'strerror', None) or error}") from None
    import ray

    try:
        ray.init(**init)
    except (ConnectionError, ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {reason}") from None


class LauncherCheck(Callback):
    """Hydra callback: with the Ray launcher and a cluster address, connect before any job."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Stop with one line (exit code 1) when the Ray cluster cannot be reached."""
        if OmegaConf.select(config, "hydra.launcher._target_") != RAY_LAUNCHER:
            return
        init = OmegaConf.to_container(config.hydra.launcher.ray.init, resolve=True)
        if init.get("address") is None:
            return  # a local Ray instance, started by the launcher
        try:
            connect_ray(init)
        except ConfigError as error:
            sys.stderr.write(f"error: {error}\n")
            sys.exit(1)
