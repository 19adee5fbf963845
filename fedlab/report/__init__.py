"""Compare runs: ``python -m fedlab.report`` (:mod:`fedlab.report.cli`) and ``fedlab.select``.

Modules by job: :mod:`~fedlab.report.collect` (find and load run folders, varying columns),
:mod:`~fedlab.report.stats` (summaries, paired t intervals, Holm's correction),
:mod:`~fedlab.report.methods` (methods at their own tuned settings, paired by seed),
:mod:`~fedlab.report.plots`, :mod:`~fedlab.report.markdown` (report.md),
:mod:`~fedlab.report.samples` (``--samples``), :mod:`~fedlab.report.select`.
Importing this package loads pandas, not matplotlib or TensorFlow.
"""

from fedlab.report.collect import load_runs

__all__ = ["load_runs"]
