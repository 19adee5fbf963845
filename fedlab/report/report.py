"""The report's entry points under their former module name, for callers not yet moved.

The report is split by job into :mod:`fedlab.report.collect`, :mod:`~fedlab.report.stats`,
:mod:`~fedlab.report.methods`, :mod:`~fedlab.report.plots`, :mod:`~fedlab.report.markdown`,
:mod:`~fedlab.report.samples` and :mod:`~fedlab.report.cli`; import from those.
"""

from fedlab.report.cli import main, make_report
from fedlab.report.collect import ReportError, collect_runs, load_run, load_runs
from fedlab.report.samples import decode_tokens, draw_samples
from fedlab.report.stats import paired_comparisons, pareto_front, summarize

__all__ = ["ReportError", "collect_runs", "decode_tokens", "draw_samples", "load_run",
           "load_runs", "main", "make_report", "paired_comparisons", "pareto_front", "summarize"]
