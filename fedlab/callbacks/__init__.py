"""The federated loop's callbacks: each round is handed to them in the configured order.

Evaluation, checkpointing, metrics release, the progress line, the divergence and target stops are
callbacks (``conf/callbacks/``); a new capability is a new callback and its config entry.
"""

from fedlab.callbacks.audit import EmpiricalPrivacy
from fedlab.callbacks.backdoor import BackdoorEvaluation
from fedlab.callbacks.base import Callback, TrainingContext
from fedlab.callbacks.checkpointing import Checkpointing
from fedlab.callbacks.communication import Communication
from fedlab.callbacks.divergence import DivergenceStop
from fedlab.callbacks.evaluation import ClientEvaluation, HeldOutEvaluation
from fedlab.callbacks.metrics import MetricsRelease, MetricsSink
from fedlab.callbacks.personalization import PersonalizedEvaluation
from fedlab.callbacks.preemption import Preemption
from fedlab.callbacks.privacy import DpAccounting
from fedlab.callbacks.progress import ProgressLine
from fedlab.callbacks.target import TargetStop

__all__ = ["BackdoorEvaluation", "Callback", "Checkpointing", "ClientEvaluation", "Communication",
           "DivergenceStop", "DpAccounting", "EmpiricalPrivacy", "HeldOutEvaluation",
           "MetricsRelease", "MetricsSink", "PersonalizedEvaluation", "Preemption", "ProgressLine",
           "TargetStop", "TrainingContext"]
