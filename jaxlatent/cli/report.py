"""``jaxlatent report CKPT --out DIR``: every analysis of the library on one checkpoint, as a page.

It runs :func:`jaxlatent.report.build.build_report` (samples, Jacobian spectra and local dimensions,
Distortion, Grassmannian distances and warpage, Local Basis traversals, then the sections of
:mod:`jaxlatent.report.sections`) and writes ``report.html`` with its figures, ``results.json``,
``arrays.npz`` and the interactive ``explorer.html`` (whose weight it prints). ``jaxlatent demo``
(:mod:`jaxlatent.cli.demo`) is the same on the shipped model; both take the options of
:func:`add_report_args`.
``jaxlatent report --run DIR --out OUT`` builds the report of a run's store instead
(:func:`jaxlatent.report.from_run.build_run_report`: no model, nothing recomputed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

from jaxlatent.cli import _common
from jaxlatent.models.digits import load_classifier
from jaxlatent.workflows.spaces import model_options
from jaxlatent.report.build import QUICK, ReportOptions, build_class_reports, build_report
from jaxlatent.report.from_run import build_run_report

__all__ = ["register", "add_report_args", "report_options", "read_quality", "run_and_print"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="full analysis report on any checkpoint",
        description="Run every analysis of jaxlatent on one checkpoint and write report.html, "
                    "results.json and arrays.npz into --out; or, with --run DIR instead of CKPT, the "
                    "report of a run's store (jaxlatent run), without recomputing.")
    p.add_argument("checkpoint", metavar="CKPT", nargs="?", default=None,
                   help="checkpoint file (.pkl, .pt, .pth) or converted directory (not with --run)")
    p.add_argument("--which", default=None, metavar="NAME",
                   help="network inside a training file: NVlabs G_ema (default) or G; rosinality g_ema (default) or g")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="build the report of the run in DIR (jaxlatent run ... --out DIR) from its store")
    _common.add_run_args(p, seeds=None, chunk_size=ReportOptions.chunk_size, classes=True)
    p.add_argument("--classifier", default=None, metavar="DIR",
                   help="classifier directory (jaxlatent.models.digits format) trained on the model's images: "
                        "names traversal frames, gives the geometry's feature metric, the edit FID and the "
                        "correlation section's concepts (default: classifier/ beside a converted checkpoint, when "
                        "present; without one those parts are skipped with a note)")
    add_report_args(p)
    p.set_defaults(func=run_report)


def add_report_args(p: argparse.ArgumentParser) -> None:
    """The report's own options (``--taps``, ``--n``, ``--rule``, ``--quick``...)."""
    p.add_argument("--taps", default=None, metavar="LIST",
                   help="comma-separated taps to analyse (default: mapping layers, w and small "
                        "feature maps; see docs/taps.md)")
    p.add_argument("--traversal-taps", default=None, metavar="LIST",
                   help="comma-separated taps to traverse (default: a middle mapping layer, w, a feature map)")
    p.add_argument("--n", type=int, default=None,
                   help=f"population size N, latents of seeds {ReportOptions.population_seed}.. (default "
                        f"{ReportOptions.n_latents}; --quick {QUICK.n_latents})")
    _common.add_rule_arg(p)
    p.add_argument("--rtol", dest="rule", type=_common.rule_name, metavar="R", default=argparse.SUPPRESS,
                   help="the same as --rule R: local dimension = singular values above R * s_1")
    p.add_argument("--quick", action="store_true",
                   help="a small report in seconds, every section in its quick variant (smoke runs, tests)")
    p.add_argument("--no-explorer", action="store_true",
                   help="do not write the interactive explorer.html (every method's directions side by side)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def report_options(args: argparse.Namespace) -> ReportOptions:
    """:class:`ReportOptions` from the flags (:data:`QUICK` with ``--quick``)."""
    opts = QUICK if args.quick else ReportOptions()
    change = {}
    if args.taps:
        change["taps"] = _common.split_list(args.taps)
    if args.traversal_taps:
        change["traversal_taps"] = _common.split_list(args.traversal_taps)
    if args.n is not None:
        change["n_latents"] = args.n
        change["n_grassmann"] = min(opts.n_grassmann, args.n)
    if args.truncation_psi is not None:
        change["truncation_psi"] = args.truncation_psi
    if args.class_idx is not None:
        classes = args.class_idx if isinstance(args.class_idx, tuple) else (args.class_idx,)
        change["class_idx"] = classes[0]
    if args.seed is not None:
        change["seed"] = args.seed
    if args.chunk_size is not None:
        change["chunk_size"] = args.chunk_size
    if args.rule != opts.rule:
        change["rule"] = args.rule
    if args.no_explorer:
        change["explorer"] = False
    return dataclasses.replace(opts, **change)


def read_quality(directory: str) -> dict | None:
    """``quality.json`` of a model directory, when it has one."""
    path = os.path.join(directory, "quality.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def run_and_print(model, args, source: str, classifier, quality, title: str) -> int:
    """Build the report into ``--out`` and print its local dimensions and Distortions."""
    t0 = time.perf_counter()
    classes = args.class_idx if isinstance(args.class_idx, tuple) else None
    if classes is not None and len(classes) > 1:
        results = build_class_reports(model, args.out, classes, report_options(args), title=title, source=source,
                                      classifier=classifier, quality=quality, progress=not args.no_progress)
        print(f"{source}: classes {', '.join(map(str, classes))}, {time.perf_counter() - t0:.1f} s")
        for c, res in results["classes"].items():
            _print_taps(res, f"class {c}: ")
        print(f"wrote {os.path.join(args.out, 'report.html')} (one report per class in class_<c>/)")
        return 0
    results = build_report(model, args.out, report_options(args), title=title, source=source,
                           classifier=classifier, quality=quality, progress=not args.no_progress)
    print(f"{source}: {len(results.get('local_dimension', {}))} taps, {results['options']['n_latents']} latents, "
          f"{time.perf_counter() - t0:.1f} s")
    if "local_dimension_rule" in results:
        print(f"  local dimension by the {results['local_dimension_rule']} rule (mean +- std), numerical rank "
              f"(mean), Distortion with k the median local dimension")
    _print_taps(results, "")
    for name, why in results.get("skipped", {}).items():
        print(f"  skipped {name}: {why}")
    print(f"wrote {os.path.join(args.out, 'report.html')} (results.json, arrays.npz, figures beside it)")
    ex = results.get("explorer")
    if ex:
        b, m = ex["budget"], ex["methods"]
        print(f"wrote {os.path.join(args.out, ex['file'])}: {ex['bytes'] / 1024:.0f} KB ({len(m)} methods, "
              f"{len(ex['seeds'])} latents x {m[0]['directions']} directions x {ex['steps']} strengths; frames "
              f"{b['frame_bytes'] / 1024:.0f} KB, largest {b['largest_strip'] / 1024:.1f} KB per latent and "
              f"direction of a budget of {b['strip_budget'] / 1024:.1f} KB; page budget "
              f"{b['page_budget'] / 1024:.0f} KB{'' if ex['within_budget'] else ': OVER BUDGET'})")
    return 0


def _print_taps(results: dict, prefix: str) -> None:
    for tap, d in results.get("local_dimension", {}).items():
        dist = results.get("distortion", {}).get(tap)
        print(f"  {prefix}{tap:<22s} local dim {d['mean_dimension']:6.2f} +- {d['std_dimension']:.2f}   "
              f"numerical rank {d['numerical_rank_mean']:6.2f}"
              + (f"   Distortion {dist['distortion']:.3f} (k {dist['k']})" if dist else ""))


def run_report(args) -> int:
    if (args.run is None) == (args.checkpoint is None):
        raise ValueError("jaxlatent report: give a checkpoint CKPT, or --run DIR for the report of a run (not both)")
    if args.run is not None:
        results = build_run_report(args.run, args.out)
        print(f"{args.run}: {results['run']['analysis']}, {results['run']['n']} latents; "
              f"wrote {os.path.join(args.out, 'report.html')} (results.json, arrays.npz beside it)")
        return 0
    model = _common.load_model(args)
    directory = args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(args.checkpoint)
    if args.classifier and not os.path.isdir(args.classifier):
        raise FileNotFoundError(f"--classifier {args.classifier}: no such directory")
    options = report_options(args)
    for c in (args.class_idx if isinstance(args.class_idx, tuple) else (options.class_idx,)):
        # every flag and class checked against the model before any work
        model_options(model, truncation_psi=options.truncation_psi, class_idx=c, where=args.checkpoint)
    clf_dir = args.classifier or os.path.join(directory, "classifier")
    classifier = load_classifier(clf_dir) if os.path.isdir(clf_dir) else None
    quality = read_quality(directory) if os.path.isdir(args.checkpoint) else None
    name = os.path.basename(os.path.normpath(args.checkpoint))
    return run_and_print(model, args, name, classifier, quality, f"jaxlatent report: {name}")
