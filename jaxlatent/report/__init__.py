"""The analysis report: every analysis on one model -> ``report.html``, ``results.json`` and
``arrays.npz``. :func:`build_report` (in :mod:`jaxlatent.report.build`) writes it; the page writer is
:mod:`jaxlatent.report.page`, the sections :mod:`jaxlatent.report.sections`, the plots
:mod:`jaxlatent.report.plots`.
"""

from jaxlatent.report.build import QUICK, ReportOptions, build_report

__all__ = ["QUICK", "ReportOptions", "build_report"]
