"""``jaxlatent local-basis`` and ``jaxlatent grassmann`` (seed 003).

Both load a checkpoint, draw latents from seeds (NVlabs convention,
``np.random.RandomState(seed).randn(z_dim)``), compute the Local Basis of one
tap at each latent and write arrays (``.npz``), numbers (``.json``) and plots
into ``--out``.
"""

from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local-basis", help="Local Basis (Jacobian SVD) of a tap at each latent (seed 003)",
        description="Singular values, Local Basis vectors in the tap's space and latent directions "
                    "of the tap Jacobian at each latent.")
    _common(p)
    p.add_argument("--k", type=int, default=None, help="triplets kept per latent (default: all)")
    p.add_argument("--solver", default="svd", choices=["svd", "gram"],
                   help="dense SVD (default) or eigenvectors of the Gram matrix (faster, leading values only)")
    p.set_defaults(func=run_local_basis)

    p = subparsers.add_parser(
        "grassmann", help="pairwise Grassmannian distances of Local Bases and the warpage curves (seed 003)",
        description="Distances between the k-dimensional Local Bases at every pair of latents, and "
                    "seed 003's warpage experiment (random pairs, eps-neighbours, GANSpace global "
                    "basis, Haar-random baseline) for subspace dimensions 1..k.")
    _common(p)
    p.add_argument("--k", type=int, default=10, help="subspace dimension (default 10)")
    p.add_argument("--metric", default="geodesic",
                   help="geodesic (default), proj, proj_f, chordal, chordal_2, fubini_study, "
                        "binet_cauchy or max_angle")
    p.add_argument("--eps", type=float, default=0.1, help="neighbour distance for warpage (default 0.1)")
    p.add_argument("--key", type=int, default=0, help="PRNG seed for neighbours and Haar bases (default 0)")
    p.set_defaults(func=run_grassmann)


def _common(p) -> None:
    p.add_argument("checkpoint", help="checkpoint file or converted directory (anything jaxlatent.load reads)")
    p.add_argument("--tap", default="w", help="tap name (default w); see model.taps()")
    p.add_argument("--seeds", default="0-63", help="latent seeds, e.g. 0-63 or 1,5,9-12 (default 0-63)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--chunk-size", type=int, default=16, help="latents per compiled batch (default 16)")
    p.add_argument("--truncation-psi", type=float, default=None,
                   help="truncation psi for the tap (StyleGAN2; default: none)")


def _setup(args):
    import jaxlatent
    from jaxlatent.seeds import latents_from_seeds, parse_seeds

    model = jaxlatent.load(args.checkpoint)
    taps = list(model.taps())
    if args.tap not in taps:
        raise ValueError(f"{args.checkpoint}: unknown tap {args.tap!r}; this model has {taps}")
    seeds = parse_seeds(args.seeds)
    z_dim = getattr(model, "z_dim", None) or model.config.z_dim
    options = {} if args.truncation_psi is None else {"truncation_psi": args.truncation_psi}
    os.makedirs(args.out, exist_ok=True)
    return model.fn(args.tap, **options), seeds, latents_from_seeds(seeds, int(z_dim))


def _progress(desc):
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, unit="chunk")


def _write_json(path, obj) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2)


def run_local_basis(args) -> int:
    from jaxlatent import viz
    from jaxlatent.analysis.local_basis import local_basis

    f, seeds, z = _setup(args)
    res = local_basis(f, z, k=args.k, chunk_size=args.chunk_size, solver=args.solver,
                      progress=_progress("local-basis"))
    arrays = {name: np.asarray(v) for name, v in res._asdict().items()}
    np.savez_compressed(os.path.join(args.out, "local_basis.npz"), seeds=np.asarray(seeds), z=z, **arrays)
    s = arrays["singular_values"]
    _write_json(os.path.join(args.out, "local_basis.json"), {
        "analysis": "local_basis", "checkpoint": args.checkpoint, "tap": args.tap, "seeds": seeds,
        "k": int(s.shape[1]), "solver": args.solver,
        "mean_singular_values": [float(x) for x in s.mean(axis=0)]})
    viz.plot_spectra(s, os.path.join(args.out, "spectrum.png"),
                     title=f"Local Basis singular values at {args.tap} ({len(seeds)} latents)")
    top = ", ".join(f"{x:.4g}" for x in s.mean(axis=0)[:5])
    print(f"{args.tap}: {len(seeds)} latents, Jacobian {res.basis.shape[1]}x{res.directions.shape[1]}, "
          f"mean leading singular values {top}")
    print(f"wrote {args.out}/local_basis.npz, local_basis.json, spectrum.png")
    return 0


def run_grassmann(args) -> int:
    import jax

    from jaxlatent import viz
    from jaxlatent.analysis.grassmann import METRICS, pairwise_grassmann, warpage
    from jaxlatent.analysis.local_basis import local_basis

    if args.metric not in METRICS:
        raise ValueError(f"--metric must be one of {METRICS}, found {args.metric!r}")
    f, seeds, z = _setup(args)
    if len(seeds) < 2:
        raise ValueError(f"--seeds: the Grassmannian comparison needs at least 2 latents, found {len(seeds)}")
    bases = local_basis(f, z, k=args.k, chunk_size=args.chunk_size, progress=_progress("local-basis")).basis
    dist = np.asarray(pairwise_grassmann(bases, args.metric))
    warp = warpage(f, z, jax.random.PRNGKey(args.key), dims=range(1, args.k + 1), eps=args.eps,
                   metric=args.metric, chunk_size=args.chunk_size)
    curves = {name: np.asarray(getattr(warp, name)) for name in ("random_pairs", "neighbours", "to_global", "haar")}
    np.savez_compressed(os.path.join(args.out, "grassmann.npz"), seeds=np.asarray(seeds), distances=dist,
                        dims=np.asarray(warp.dims), **{f"warpage/{k}": v for k, v in curves.items()})
    off = dist[~np.eye(len(seeds), dtype=bool)]
    summary = {name: {"mean": [float(x) for x in v.mean(axis=0)], "std": [float(x) for x in v.std(axis=0)]}
               for name, v in curves.items()}
    _write_json(os.path.join(args.out, "grassmann.json"), {
        "analysis": "grassmann", "checkpoint": args.checkpoint, "tap": args.tap, "seeds": seeds,
        "k": args.k, "metric": args.metric, "eps": args.eps, "key": args.key,
        "pairwise_mean": float(off.mean()), "pairwise_std": float(off.std()),
        "warpage": {"dims": [int(d) for d in np.asarray(warp.dims)], **summary}})
    viz.plot_heatmap(dist, os.path.join(args.out, "distances.png"), colorbar_label=args.metric,
                     title=f"{args.metric} distance between {args.k}-dim Local Bases at {args.tap}")
    dims = np.asarray(warp.dims)
    viz.plot_lines(dims, {k: v.mean(axis=0) for k, v in curves.items()}, os.path.join(args.out, "warpage.png"),
                   title=f"warpage at {args.tap}", xlabel="subspace dimension d", ylabel=args.metric,
                   bands={k: (v.mean(0) - v.std(0), v.mean(0) + v.std(0)) for k, v in curves.items()})
    print(f"{args.tap}: {args.metric} distance between {args.k}-dim Local Bases, {len(seeds)} latents: "
          f"mean {off.mean():.4f} (std {off.std():.4f})")
    print("warpage at d = %d: " % args.k + ", ".join(f"{k} {v[:, -1].mean():.4f}" for k, v in curves.items()))
    print(f"wrote {args.out}/grassmann.npz, grassmann.json, distances.png, warpage.png")
    return 0
