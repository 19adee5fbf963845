"""``python -m fedlab [overrides]``: compose the configuration and run it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF 2.14 prints CUDA-plugin noise at import

import logging  # noqa: E402
import sys  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from fedlab.config import register_schemas  # noqa: E402
from fedlab.errors import FedlabError  # noqa: E402

log = logging.getLogger("fedlab")
register_schemas()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one configuration; a fedlab error ends it with one line (and exit code 1)."""
    from fedlab.run import run  # imported here so --help and --cfg stay fast

    logging.getLogger("absl").setLevel(logging.WARNING)  # TFF/TF chatter per traced model

    try:
        return run(cfg)
    except FedlabError as error:
        log.error("error: %s", error)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra records the job as failed and goes on with the sweep
        sys.exit(1)


if __name__ == "__main__":
    main()
