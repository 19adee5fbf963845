"""``python -m fedlab [overrides]``: compose the configuration and run it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF 2.14 prints CUDA-plugin noise at import
# Under `uv run`, Ray would rebuild the environment in every worker from the working folder;
# fedlab's Ray jobs use this environment's interpreter as it is (hydra/launcher=ray).
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import contextlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from fedlab import run as assembler  # noqa: E402
from fedlab.config.schemas import CONF_DIR, register_schemas  # noqa: E402
from fedlab.errors import ConfigError, FedlabError, Interrupted  # noqa: E402
from fedlab.runs.folder import ensure_writable  # noqa: E402

log = logging.getLogger("fedlab")
register_schemas()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one configuration and return its ``objective`` (for a sweeper).

    A run folder that already holds this configuration's completed run is not run again (a
    re-run sweep skips its finished jobs without importing TensorFlow). A fedlab error ends the
    run with one line (exit code 1); in a multirun Hydra records the job as failed, and under
    fedlab's Optuna sweeper records the trial as failed.
    """
    if assembler.already_completed(cfg):
        log.info("skipped: %s already holds this configuration's completed run", cfg.run_dir)
        return assembler.objective(cfg)
    with contextlib.ExitStack() as stack:
        executor = assembler.launch_executor_early(cfg, stack)
        return _run(cfg, executor)


def _run(cfg: DictConfig, executor) -> float:
    from fedlab.executors import contexts  # imported here so --help and --cfg stay fast

    log.debug("start-up: TensorFlow and TFF imported")

    for chatty in ("absl", "tensorflow"):  # TFF/TF chatter per traced model and checkpoint
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # TFF's secure aggregator leaves unused tf.debugging asserts; TF reports each at ERROR.
    logging.getLogger("tensorflow").addFilter(
        lambda record: "Object was never used" not in record.getMessage()
    )
    contexts.drop_default_context()

    try:
        assembler.run(cfg, executor)
    except Interrupted as error:
        log.error("stopped: %s", error)
        error.resend()  # ends the process as the signal would have (a sweep stops too)
        raise
    except FedlabError as error:
        log.error("error: %s", error)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra records the job as failed (Optuna: the trial) and goes on
        sys.exit(1)
    return assembler.objective(cfg)


def _requested_output_root(argv: list[str]) -> Path:
    """The folder Hydra will create the run (or sweep) folder in, up to any interpolation."""
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    requested = next((a[len(key):] for a in argv if a.startswith(key)), None)
    if requested is None:
        return Path("multirun" if multirun else "outputs")
    return Path(requested.split("${", 1)[0] or ".")


def _check_output_root(argv: list[str]) -> None:
    """Fail with one line when the output folder cannot be written (Hydra would print a trace)."""
    informational = ("--cfg", "-c", "--help", "-h", "--info", "--hydra-help")
    if any(arg.startswith(informational) for arg in argv):
        return
    try:
        multirun = any(arg in ("-m", "--multirun") for arg in argv)
        ensure_writable(_requested_output_root(argv), "output folder",
                        key="hydra.sweep.dir" if multirun else "hydra.run.dir")
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(1)


def _exit_at_once(status: int | str | None) -> None:
    """End the process now, as ``sys.exit(status)`` would, skipping the interpreter's teardown.

    Everything fedlab writes is closed by then and the worker stopped; what remains is
    tearing down TensorFlow's, TFF's and gRPC's threads and finalizers, which took 1.5-2 s
    after the ``done`` line. Exit handlers still run, and logs and standard streams are
    flushed. (Single runs only: see the entry point.)
    """
    import atexit

    if isinstance(status, str):
        sys.stderr.write(f"{status}\n")
        status = 1
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status or 0)


def cli() -> None:
    """``python -m fedlab`` and the ``fedlab`` console script: Hydra's command line."""
    os.umask(0o077)  # run and sweep folders, and every file in them, private to the user
    _check_output_root(sys.argv[1:])
    if any(arg in ("-m", "--multirun") for arg in sys.argv[1:]):
        # A sweep ends as Python ends: launchers' pools (joblib's loky) stop in the
        # interpreter's own shutdown, which exit handlers alone do not replace.
        main()
    else:
        try:
            main()
        except SystemExit as exit_request:
            _exit_at_once(exit_request.code)
        _exit_at_once(0)


if __name__ == "__main__":
    cli()
