"""The analysis report: every analysis on one model -> ``report.html``, ``results.json`` and
``arrays.npz``. :func:`build_report` (in :mod:`jaxlatent.report.build`) writes it; the page writer is
:mod:`jaxlatent.report.page`, the sections :mod:`jaxlatent.report.sections`, the plots
:mod:`jaxlatent.report.plots`. :func:`build_run_report` (in :mod:`jaxlatent.report.from_run`) writes the
report of a run's store.
"""

from jaxlatent.report.build import QUICK, ReportOptions, build_report
from jaxlatent.report.from_run import build_run_report, run_summaries

__all__ = ["QUICK", "ReportOptions", "build_report", "build_run_report", "run_summaries"]
