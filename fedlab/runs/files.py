"""Every file name of a run folder, written once (``docs/reference/columns.yaml`` explains each).

This module imports nothing: the report, the resume guard and the callbacks all name files
from here.
"""

RUN_CONFIG_FILE = "run_config.yaml"  # the resolved configuration the run started with
METRICS_FILE = "metrics.csv"  # one row per round
SUMMARY_FILE = "summary.json"  # final and best figures, status, provenance
MODEL_FILE = "model.keras"  # the final model
CHECKPOINTS_DIR = "checkpoints"  # round_<N>/ folders
CLIENT_STATES_FILE = "client_states.npz"  # in a checkpoint's folder, with stateful clients
CLIENT_LABELS_FILE = "client_labels.csv"  # each client's examples per class
CLIENT_SIZES_FILE = "client_sizes.csv"  # each client's number of examples
CLIENT_PROFILES_FILE = "client_profiles.csv"  # simulated devices' speeds and links
MALICIOUS_CLIENTS_FILE = "malicious_clients.csv"  # with clients.attack: who is malicious
CANARY_CLIENTS_FILE = "canary_clients.csv"  # with privacy_audit.canaries: the canary clients
AUDIT_START_FILE = "audit_start_weights.npy"  # with privacy_audit.canaries: w_0, flattened
CLIENT_EVAL_FILE = "client_eval.csv"  # client-level evaluation, per client
PERSONALIZED_FILE = "personalized_eval.csv"  # personalized evaluation, per client
WORKER_LOG = "worker.log"  # the local TFF worker's output
CLIENT_ARRAYS_FILE = "client_arrays.records"  # in-memory clients' arrays (removed after a run)
MLFLOW_RUN_FILE = "mlflow_run.json"  # the MLflow run this run folder is logged to
HYDRA_CONFIG_FILE = ".hydra/config.yaml"  # Hydra's record: marks a run folder
SWEEP_RECORD_FILE = "sweep_config.yaml"  # in a sweep folder: the sweep's configuration
SWEEP_MARKER = "multirun.yaml"  # in a sweep folder: Hydra's record of the sweep
