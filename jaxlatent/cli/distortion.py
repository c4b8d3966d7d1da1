"""``jaxlatent distortion``: the Distortion metric (Choi et al., Local Dimension Estimation of GANs,
2022) of each named tap over latents from seeds; writes ``results.json``, ``results.npz`` and a
plot into ``--out``.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from jaxlatent.cli import _common
from jaxlatent.localdim.distortion import layer_distortions
from jaxlatent.report import plots

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "distortion", help="Distortion of each tap's tangent spaces over a population "
                           "(Choi et al. 2022, Local Dimension Estimation)",
        description="Mean Grassmannian distance between estimated tangent spaces of distinct latents, "
                    "over the same between each latent and an eps-neighbour (the Distortion metric "
                    "of Choi et al. 2022, Local Dimension Estimation).")
    _common.add_model_args(p)
    _common.add_taps_arg(p)
    p.add_argument("--k", type=int, default=None,
                   help="tangent-space dimension (default: median estimated local dimension per tap, "
                        "by --rule)")
    p.add_argument("--eps", type=float, default=0.1, help="neighbour distance in latent space (default 0.1)")
    _common.add_metric_arg(p)
    _common.add_rule_arg(p)
    p.set_defaults(func=run_distortion)


def run_distortion(args) -> int:
    fns, seeds, z = _common.load_taps(args)
    results = layer_distortions(fns, z, key=_common.prng_key(args), k=args.k, eps=args.eps, metric=args.metric,
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
    plots.plot_bars(names, [float(table[n]["distortion"]) for n in names],
                  os.path.join(args.out, "distortion.png"), title="Distortion per tap (far / near)",
                  ylabel="Distortion")
    for n in names:
        t = table[n]
        print(f"{n:>16s}  Distortion {float(t['distortion']):8.3f}  far {float(t['far']):.4f}  "
              f"near {float(t['near']):.4f}  k {int(t['k'])}")
    print(f"wrote {args.out}/results.json, results.npz, distortion.png")
    return 0
