"""``jaxlatent grassmann``: Grassmannian distances between the Local Bases of one tap at pairs of
latents, and the warpage curves (Choi et al., ICLR 2022), written to ``--out``.
"""

from __future__ import annotations

import os

import numpy as np

from jaxlatent.cli import _common
from jaxlatent.engine.jacobian import output_size
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localbasis.grassmann import pairwise_grassmann
from jaxlatent.localbasis.warpage import warpage
from jaxlatent.report import plots

__all__ = ["register"]

_CURVES = ("random_pairs", "neighbours", "to_global", "haar")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "grassmann", help="Grassmannian distances between Local Bases and the warpage curves "
                          "(Choi et al. 2022)",
        description="Distances between the k-dimensional Local Bases at every pair of latents, and "
                    "the warpage experiment of Choi et al. (ICLR 2022): random pairs, eps-neighbours, "
                    "the GANSpace global basis and a Haar-random baseline, for subspace dimensions 1..k.")
    _common.add_model_args(p)
    _common.add_tap_arg(p)
    p.add_argument("--k", type=int, default=None,
                   help="subspace dimension (default 10, or min(tap size, z_dim, number of latents) if smaller)")
    _common.add_metric_arg(p)
    p.add_argument("--eps", type=float, default=0.1, help="neighbour distance for warpage (default 0.1)")
    p.set_defaults(func=run_grassmann)


def run_grassmann(args) -> int:
    f, seeds, z = _common.load_tap(args)
    if len(seeds) < 2:
        raise ValueError(f"--seeds: the Grassmannian comparison needs at least 2 latents, found {len(seeds)}")
    # the warpage's global basis is a PCA of the tap over these latents: at most N axes
    bound = min(output_size(f, z), z.shape[1], len(seeds))
    if args.k is None:
        args.k = min(10, bound)
    elif not 1 <= args.k <= bound:
        raise ValueError(f"--k {args.k}: the subspace dimension must lie in [1, {bound}] (the tap's Jacobian "
                         f"rank bound and the {len(seeds)} latents of the global PCA basis); pass a smaller --k "
                         "or more --seeds")
    bases = local_basis(f, z, k=args.k, chunk_size=args.chunk_size,
                        progress=_common.progress("local-basis")).basis
    dist = np.asarray(pairwise_grassmann(bases, metric=args.metric))
    warp = warpage(f, z, key=_common.prng_key(args), ks=range(1, args.k + 1), eps=args.eps,
                   metric=args.metric, chunk_size=args.chunk_size)
    curves = {name: np.asarray(getattr(warp, name)) for name in _CURVES}
    dims = np.asarray(warp.ks)
    np.savez_compressed(os.path.join(args.out, "grassmann.npz"), seeds=np.asarray(seeds), distances=dist,
                        dims=dims, **{f"warpage/{k}": v for k, v in curves.items()})
    off = dist[~np.eye(len(seeds), dtype=bool)]
    summary = {name: {"mean": v.mean(axis=0), "std": v.std(axis=0)} for name, v in curves.items()}
    _common.write_json(os.path.join(args.out, "grassmann.json"), {
        "analysis": "grassmann", "checkpoint": args.checkpoint, "tap": args.tap, "seeds": seeds,
        "truncation_psi": args.truncation_psi, "k": args.k, "metric": args.metric, "eps": args.eps,
        "seed": args.seed, "pairwise_mean": off.mean(), "pairwise_std": off.std(),
        "warpage": {"dims": dims, **summary}})
    plots.plot_heatmap(dist, os.path.join(args.out, "distances.png"), colorbar_label=args.metric,
                     title=f"{args.metric} distance between {args.k}-dim Local Bases at {args.tap}")
    plots.plot_lines(dims, {k: v.mean(axis=0) for k, v in curves.items()}, os.path.join(args.out, "warpage.png"),
                   title=f"warpage at {args.tap}", xlabel="subspace dimension d", ylabel=args.metric,
                   bands={k: (v.mean(0) - v.std(0), v.mean(0) + v.std(0)) for k, v in curves.items()})
    print(f"{args.tap}: {args.metric} distance between {args.k}-dim Local Bases, {len(seeds)} latents: "
          f"mean {off.mean():.4f} (std {off.std():.4f})")
    print(f"warpage at d = {args.k}: " + ", ".join(f"{k} {v[:, -1].mean():.4f}" for k, v in curves.items()))
    print(f"wrote {args.out}/grassmann.npz, grassmann.json, distances.png, warpage.png")
    return 0
