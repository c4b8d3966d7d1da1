"""``jaxlatent local-dim`` and ``jaxlatent distortion``: Local Dimension Estimation and the
Distortion metric of Choi et al. (Local Dimension Estimation of GANs, 2022).

Both load a checkpoint, draw latents from seeds, run the analysis on each named tap and write
``results.json`` (numbers), ``results.npz`` (arrays) and a plot into ``--out``.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from jaxlatent.report import plots as viz
from jaxlatent.localdim.distortion import layer_distortions
from jaxlatent.localdim.dimension import local_dimension, numerical_rank, summarize_dimensions
from jaxlatent.cli import _common

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local-dim", help="local dimension of each tap over a population of latents "
                          "(Choi et al. 2022, Local Dimension Estimation)",
        description="Estimate the local dimension (singular values of the tap Jacobian above the "
                    "Gavish-Donoho optimal hard threshold, omega(beta) times the median singular value, "
                    "never below the numerical-rank tolerance; --rule for the others) at each latent, "
                    "and summarise it per tap (Choi et al. 2022, Local Dimension Estimation).")
    _common.add_model_args(p, prng=False)
    _taps_arg(p)
    _common.add_rule_arg(p)
    p.set_defaults(func=run_local_dim)

    p = subparsers.add_parser(
        "distortion", help="Distortion of each tap's tangent spaces over a population "
                           "(Choi et al. 2022, Local Dimension Estimation)",
        description="Mean Grassmannian distance between estimated tangent spaces of distinct latents, "
                    "over the same between each latent and an eps-neighbour (the Distortion metric "
                    "of Choi et al. 2022, Local Dimension Estimation).")
    _common.add_model_args(p)
    _taps_arg(p)
    p.add_argument("--k", type=int, default=None,
                   help="tangent-space dimension (default: median estimated local dimension per tap, "
                        "by --rule)")
    p.add_argument("--eps", type=float, default=0.1, help="neighbour distance in latent space (default 0.1)")
    _common.add_metric_arg(p)
    _common.add_rule_arg(p)
    p.set_defaults(func=run_distortion)


def _taps_arg(p) -> None:
    p.add_argument("--taps", default=None, metavar="LIST",
                   help="comma-separated tap names, e.g. mapping.fc0,mapping.fc1,w "
                        "(default: every mapping tap and w); see docs/taps.md")


def _setup(args):
    model, seeds, z = _common.load_model_and_latents(args)
    if args.taps:
        taps = _common.check_taps(model, _common.split_list(args.taps))
    else:
        taps = [t for t in model.taps() if t.startswith("mapping.") or t == "w"]
        if not taps:
            raise ValueError(f"{args.checkpoint}: this {model.config.family} model has no mapping taps "
                             f"(the default); pass --taps from {model.taps()}")
    fns = {t: _common.tap_fn(model, t, args) for t in taps}
    return fns, seeds, z


def run_local_dim(args) -> int:
    fns, seeds, z = _setup(args)
    table, arrays, spectra = {}, {}, {}
    for name, fn in tqdm(fns.items(), desc="local-dim", unit="tap"):
        est = local_dimension(fn, z, args.rule, chunk_size=args.chunk_size)
        summary = summarize_dimensions(est.dimension)
        s = np.asarray(est.singular_values)
        table[name] = {k: v for k, v in summary._asdict().items() if k != "dimension"}
        table[name]["numerical_rank_mean"] = float(np.mean(numerical_rank(est)))
        table[name]["noise_bulk_share"] = float(np.mean(np.asarray(est.noise_bulk)))
        for field, value in est.arrays().items():
            arrays[f"{name}/{field}"] = np.asarray(value)
        spectra[name] = s
    np.savez_compressed(os.path.join(args.out, "results.npz"), seeds=np.asarray(seeds), **arrays)
    _common.write_json(os.path.join(args.out, "results.json"), {
        "analysis": "local_dimension", "checkpoint": args.checkpoint, "seeds": seeds,
        "truncation_psi": args.truncation_psi, "rule": args.rule, "taps": table})
    names = list(table)
    means = np.array([table[n]["mean"] for n in names])
    stds = np.array([table[n]["std"] for n in names])
    viz.plot_lines(range(len(names)), {"mean": means, "median": [table[n]["median"] for n in names]},
                   os.path.join(args.out, "local_dimension.png"), title=f"local dimension per tap (rule {args.rule})",
                   ylabel="estimated local dimension", bands={"mean": (means - stds, means + stds)},
                   xticklabels=names)
    viz.plot_spectra(spectra, os.path.join(args.out, "spectra.png"), title="tap Jacobian singular values")
    print(f"local dimension, rule {args.rule}; numerical rank and noise-bulk share beside it")
    for n in names:
        t = table[n]
        print(f"{n:>16s}  mean {t['mean']:7.2f}  std {t['std']:6.2f}  median {t['median']:6.1f}  "
              f"range [{t['min']}, {t['max']}]  numerical rank {t['numerical_rank_mean']:6.2f}  "
              f"bulk share {t['noise_bulk_share']:.2f}")
    print(f"wrote {args.out}/results.json, results.npz, local_dimension.png, spectra.png")
    return 0


def run_distortion(args) -> int:
    fns, seeds, z = _setup(args)
    results = layer_distortions(fns, z, _common.prng_key(args), k=args.k, eps=args.eps, metric=args.metric,
                                rule=args.rule, chunk_size=args.chunk_size,
                                progress=lambda it: tqdm(it, desc="distortion", unit="tap"))
    table, arrays = {}, {}
    for name, res in results.items():
        table[name] = {"distortion": res.distortion, "far": res.far, "near": res.near,
                       "baseline": res.baseline, "k": res.k,
                       "mean_dimension": float(np.mean(np.asarray(res.dimension)))}
        for field in ("dimension", "far_distances", "near_distances"):
            arrays[f"{name}/{field}"] = np.asarray(getattr(res, field))
    np.savez_compressed(os.path.join(args.out, "results.npz"), seeds=np.asarray(seeds), **arrays)
    _common.write_json(os.path.join(args.out, "results.json"), {
        "analysis": "distortion", "checkpoint": args.checkpoint, "seeds": seeds,
        "truncation_psi": args.truncation_psi, "eps": args.eps, "metric": args.metric,
        "rule": args.rule if args.k is None else None, "seed": args.seed, "taps": table})
    names = list(table)
    viz.plot_bars(names, [float(table[n]["distortion"]) for n in names],
                  os.path.join(args.out, "distortion.png"), title="Distortion per tap (far / near)",
                  ylabel="Distortion")
    for n in names:
        t = table[n]
        print(f"{n:>16s}  Distortion {float(t['distortion']):8.3f}  far {float(t['far']):.4f}  "
              f"near {float(t['near']):.4f}  k {int(t['k'])}")
    print(f"wrote {args.out}/results.json, results.npz, distortion.png")
    return 0
