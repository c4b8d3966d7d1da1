"""``jaxlatent demo`` (the shipped digits model) and ``jaxlatent report CKPT --out DIR``.

Both run :func:`jaxlatent.report.build_report`: samples, Jacobian spectra and local
dimensions, Distortion, Grassmannian distances and warpage, Local Basis traversals, written
as ``report.html`` with its figures, ``results.json`` and ``arrays.npz``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="full report on the digits StyleGAN2 that ships with the package",
        description="Analyse the shipped 16x16 digits StyleGAN2 (jaxlatent/assets/digits) and write "
                    "a report: samples, Local Basis traversals, spectra, local dimensions, Distortion, "
                    "Grassmannian distances. Its classifier names the digit of every traversal frame.")
    p.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    _options(p)
    p.set_defaults(func=run_demo)

    p = subparsers.add_parser(
        "report", help="full analysis report on any checkpoint",
        description="Run every analysis of jaxlatent on one checkpoint and write report.html, "
                    "results.json and arrays.npz into --out.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or converted directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--which", default=None, help="network inside a training file (see convert)")
    p.add_argument("--classifier", default=None,
                   help="digit classifier directory naming traversal frames (default: classifier/ "
                        "beside a converted checkpoint, when present)")
    _options(p)
    p.set_defaults(func=run_report)


def _options(p) -> None:
    p.add_argument("--taps", default=None,
                   help="comma-separated taps to analyse (default: mapping layers, w and small "
                        "feature maps; see docs/taps.md)")
    p.add_argument("--traversal-taps", default=None,
                   help="comma-separated taps to traverse (default: a middle mapping layer, w, a feature map)")
    p.add_argument("--latents", type=int, default=None, help="population size (default 128)")
    p.add_argument("--trunc", type=float, default=None, help="truncation psi (default 1)")
    p.add_argument("--class", dest="class_index", type=int, default=None,
                   help="label of a conditional model (default 0)")
    p.add_argument("--seed", type=int, default=None, help="PRNG seed of neighbours and baselines (default 0)")
    p.add_argument("--rtol", type=float, default=None,
                   help="local dimension = singular values above rtol * s_1 (default: Gavish-Donoho "
                        "optimal hard threshold)")
    p.add_argument("--quick", action="store_true", help="a small report in seconds (smoke runs, tests)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _report_options(args):
    from jaxlatent.report import QUICK, ReportOptions

    opts = QUICK if args.quick else ReportOptions()
    change = {}
    split = lambda s: tuple(t.strip() for t in s.split(",") if t.strip())  # noqa: E731
    if args.taps:
        change["taps"] = split(args.taps)
    if args.traversal_taps:
        change["traversal_taps"] = split(args.traversal_taps)
    if args.latents is not None:
        change["n_latents"] = args.latents
        change["n_grassmann"] = min(opts.n_grassmann, args.latents)
    if args.trunc is not None:
        change["truncation_psi"] = args.trunc
    if args.class_index is not None:
        change["class_index"] = args.class_index
    if args.seed is not None:
        change["seed"] = args.seed
    if args.rtol is not None:
        if not 0 < args.rtol < 1:
            raise ValueError(f"--rtol must lie in (0, 1), found {args.rtol}")
        change["rtol"] = args.rtol
    return dataclasses.replace(opts, **change)


def _read_quality(directory):
    path = os.path.join(directory, "quality.json")
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _run(model, args, source, classifier, quality, title) -> int:
    from jaxlatent.report import build_report

    t0 = time.perf_counter()
    results = build_report(model, args.out, _report_options(args), title=title, source=source,
                           classifier=classifier, quality=quality, progress=not args.no_progress)
    dims = results["local_dimension"]
    print(f"{source}: {len(dims)} taps, {results['options']['n_latents']} latents, "
          f"{time.perf_counter() - t0:.1f} s")
    for tap, d in dims.items():
        print(f"  {tap:<22s} local dim {d['mean_dimension']:6.2f} +- {d['std_dimension']:.2f}   "
              f"Distortion {results['distortion'][tap]['distortion']:.3f}")
    print(f"wrote {os.path.join(args.out, 'report.html')} (results.json, arrays.npz, figures beside it)")
    return 0


def run_demo(args) -> int:
    import jaxlatent
    from jaxlatent.digits import load_classifier
    from jaxlatent.digits import assets_dir

    root = assets_dir()
    model = jaxlatent.load(root)
    return _run(model, args, "jaxlatent/assets/digits (shipped digits StyleGAN2)", load_classifier(),
                _read_quality(root), "jaxlatent demo: the shipped digits StyleGAN2")


def run_report(args) -> int:
    import jaxlatent

    model = jaxlatent.load(args.checkpoint, which=args.which)
    classifier = None
    directory = args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(args.checkpoint)
    clf_dir = args.classifier or os.path.join(directory, "classifier")
    if args.classifier and not os.path.isdir(args.classifier):
        raise FileNotFoundError(f"--classifier {args.classifier}: no such directory")
    if os.path.isdir(clf_dir):
        from jaxlatent.digits import load_classifier

        classifier = load_classifier(clf_dir)
    quality = _read_quality(directory) if os.path.isdir(args.checkpoint) else None
    return _run(model, args, os.path.basename(os.path.normpath(args.checkpoint)), classifier, quality,
                f"jaxlatent report: {os.path.basename(os.path.normpath(args.checkpoint))}")
