"""``jaxlatent local-dim`` and ``jaxlatent distortion`` (seed 000).

Both load a checkpoint, draw latents from seeds (NVlabs convention:
``np.random.RandomState(seed).randn(z_dim)``), run the analysis on each named
tap and write ``results.json`` (numbers), ``results.npz`` (arrays) and a plot
into ``--out``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from jaxlatent.seeds import latents_from_seeds, parse_seeds

__all__ = ["register", "parse_seeds", "latents_from_seeds"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local-dim", help="local dimension of each tap over a population of latents (seed 000)",
        description="Estimate the local dimension (rank of the tap Jacobian at the Gavish-Donoho "
                    "optimal hard threshold) at each latent, and summarise it per tap.")
    _common(p)
    p.set_defaults(func=run_local_dim)

    p = subparsers.add_parser(
        "distortion", help="Distortion of each tap's tangent spaces over a population (seed 000)",
        description="Mean Grassmannian distance between estimated tangent spaces of distinct latents, "
                    "over the same between each latent and an eps-neighbour.")
    _common(p)
    p.add_argument("--k", type=int, default=None,
                   help="tangent-space dimension (default: median estimated local dimension per tap)")
    p.add_argument("--eps", type=float, default=0.1, help="neighbour distance in latent space (default 0.1)")
    p.add_argument("--metric", default="geodesic", help="Grassmannian metric (default geodesic)")
    p.add_argument("--key", type=int, default=0, help="PRNG seed for neighbours and baseline (default 0)")
    p.set_defaults(func=run_distortion)


def _common(p) -> None:
    p.add_argument("checkpoint", help="checkpoint file or converted directory (anything jaxlatent.load reads)")
    p.add_argument("--taps", default=None,
                   help="comma-separated tap names, e.g. mapping.fc0,mapping.fc1,w "
                        "(default: every mapping tap and w); see model.taps()")
    p.add_argument("--seeds", default="0-63", help="latent seeds, e.g. 0-63 or 1,5,9-12 (default 0-63)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--chunk-size", type=int, default=16, help="latents per Jacobian batch (default 16)")
    p.add_argument("--truncation-psi", type=float, default=None,
                   help="truncation psi for the taps (StyleGAN2; default: none)")


def _setup(args):
    import jaxlatent

    model = jaxlatent.load(args.checkpoint)
    available = list(model.taps())
    if args.taps:
        taps = [t.strip() for t in args.taps.split(",") if t.strip()]
        unknown = [t for t in taps if t not in available]
        if unknown:
            raise ValueError(f"{args.checkpoint}: unknown tap(s) {unknown}; this model has {available}")
    else:
        taps = [t for t in available if t.startswith("mapping.") or t == "w"]
    seeds = parse_seeds(args.seeds)
    z_dim = getattr(model, "z_dim", None) or model.config.z_dim
    z = latents_from_seeds(seeds, int(z_dim))
    options = {} if args.truncation_psi is None else {"truncation_psi": args.truncation_psi}
    fns = {t: model.fn(t, **options) for t in taps}
    os.makedirs(args.out, exist_ok=True)
    return fns, seeds, z


def _write_json(path, obj) -> None:
    from jaxlatent.report_page import to_jsonable

    with open(path, "w") as fh:
        json.dump(to_jsonable(obj), fh, indent=2)


def run_local_dim(args) -> int:
    from tqdm import tqdm

    from jaxlatent import viz
    from jaxlatent.analysis.local_dimension import local_dimension, summarize_dimensions

    fns, seeds, z = _setup(args)
    table, arrays, spectra = {}, {}, {}
    for name, fn in tqdm(fns.items(), desc="local-dim", unit="tap"):
        est = local_dimension(fn, z, chunk_size=args.chunk_size)
        summary = summarize_dimensions(est.dimension)
        table[name] = {k: v for k, v in summary._asdict().items() if k != "dimension"}
        arrays[f"{name}/dimension"] = np.asarray(est.dimension)
        arrays[f"{name}/threshold"] = np.asarray(est.threshold)
        arrays[f"{name}/singular_values"] = np.asarray(est.singular_values)
        spectra[name] = np.asarray(est.singular_values)
    np.savez_compressed(os.path.join(args.out, "results.npz"), seeds=np.asarray(seeds), **arrays)
    _write_json(os.path.join(args.out, "results.json"), {
        "analysis": "local_dimension", "checkpoint": args.checkpoint, "seeds": seeds,
        "threshold": "Gavish-Donoho optimal hard threshold, unknown noise", "taps": table})
    names = list(table)
    means = np.array([table[n]["mean"] for n in names])
    stds = np.array([table[n]["std"] for n in names])
    viz.plot_lines(range(len(names)), {"mean": means, "median": [table[n]["median"] for n in names]},
                   os.path.join(args.out, "local_dimension.png"), title="local dimension per tap",
                   ylabel="estimated local dimension", bands={"mean": (means - stds, means + stds)},
                   xticklabels=names)
    viz.plot_spectra(spectra, os.path.join(args.out, "spectra.png"), title="tap Jacobian singular values")
    for n in names:
        t = table[n]
        print(f"{n:>16s}  mean {t['mean']:7.2f}  std {t['std']:6.2f}  median {t['median']:6.1f}  "
              f"range [{t['min']}, {t['max']}]")
    print(f"wrote {args.out}/results.json, results.npz, local_dimension.png, spectra.png")
    return 0


def run_distortion(args) -> int:
    import jax
    from tqdm import tqdm

    from jaxlatent import viz
    from jaxlatent.analysis.distortion import distortion

    fns, seeds, z = _setup(args)
    key = jax.random.PRNGKey(args.key)
    table, arrays = {}, {}
    for name, fn in tqdm(fns.items(), desc="distortion", unit="tap"):
        res = distortion(fn, z, key, k=args.k, eps=args.eps, metric=args.metric, chunk_size=args.chunk_size)
        table[name] = {"distortion": res.distortion, "far": res.far, "near": res.near,
                       "baseline": res.baseline, "k": res.k,
                       "mean_dimension": float(np.mean(np.asarray(res.dimension)))}
        for field in ("dimension", "far_distances", "near_distances"):
            arrays[f"{name}/{field}"] = np.asarray(getattr(res, field))
    np.savez_compressed(os.path.join(args.out, "results.npz"), seeds=np.asarray(seeds), **arrays)
    _write_json(os.path.join(args.out, "results.json"), {
        "analysis": "distortion", "checkpoint": args.checkpoint, "seeds": seeds, "eps": args.eps,
        "metric": args.metric, "key": args.key, "taps": table})
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
