"""``jaxlatent demo``: the full report on the digits StyleGAN2 that ships with the package.

The same report as ``jaxlatent report`` (:mod:`jaxlatent.cli.report`) on
``jaxlatent/assets/digits``, with its digit classifier naming the class of every traversal frame
and its ``quality.json`` as a table.
"""

from __future__ import annotations

import jaxlatent
from jaxlatent.cli import _common, report
from jaxlatent.models.digits import assets_dir, load_classifier
from jaxlatent.report.build import ReportOptions

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="full report on the digits StyleGAN2 that ships with the package",
        description="Analyse the shipped 16x16 digits StyleGAN2 (jaxlatent/assets/digits) and write "
                    "a report: samples, Local Basis traversals, spectra, local dimensions, Distortion, "
                    "Grassmannian distances. Its classifier names the digit of every traversal frame.")
    _common.add_run_args(p, seeds=None, out_default="demo-out", chunk_size=ReportOptions.chunk_size)
    report.add_report_args(p)
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    root = assets_dir()
    return report.run_and_print(jaxlatent.load(root), args, "jaxlatent/assets/digits (shipped digits StyleGAN2)",
                                load_classifier(), report.read_quality(root),
                                "jaxlatent demo: the shipped digits StyleGAN2")
