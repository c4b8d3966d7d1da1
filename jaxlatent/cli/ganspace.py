"""``jaxlatent ganspace`` and ``jaxlatent edit-fid``: GANSpace with PCA or ICA, and the FID of its edits.

``ganspace`` fits PCA (Härkönen et al., NeurIPS 2020) and/or FastICA (Palaev, Lukmanov and Khan,
ICLR 2023 Tiny Papers) to a tap's population and writes one ``directions_<method>.npz`` per
method plus edit grids (rows: directions; columns: strengths; methods side by side).
``edit-fid`` scores direction files with the paper's protocol (tables 1-3).
"""

from __future__ import annotations

import os

import numpy as np

from jaxlatent.cli import _common
from jaxlatent.engine.latents import parse_seeds
from jaxlatent.report import plots
from jaxlatent.workflows.ganspace import METHODS, direction_images, edit_space_of, fit_directions
from jaxlatent.workflows.spaces import key_latents, latent_space, model_options, seed_latents
from jaxlatent.workflows.taps import default_edit_tap

__all__ = ["register"]

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ganspace", help="GANSpace directions by PCA or ICA of a tap's population (Härkönen et al. 2020; "
                         "Palaev et al. 2023)",
        description="Fit PCA and/or FastICA to a tap over N latents (row i: N(0, I) from "
                    "fold_in(key(--seed), i); BigGAN: --trunc x TN(0, 1; [-2, 2])), write the directions "
                    "(.npz) and edit grids of the "
                    "leading ones for the --seeds latents.")
    _common.add_model_args(p, seeds="0-2", out_help="output directory (directions_<method>.npz, grids)")
    p.add_argument("--method", default="pca,ica", help="pca, ica or both, comma-separated (default pca,ica)")
    p.add_argument("--tap", default=None, help="tap fitted (default: w for StyleGAN2, else the first feature "
                                               "map; non-latent taps are lifted to z by least squares)")
    p.add_argument("--k", type=int, default=20, help="components (directions) per method (default 20)")
    p.add_argument("--n", type=int, default=100000, help="latents in the fitted population (default 100000)")
    p.add_argument("--fun", default="logcosh", choices=["logcosh", "exp", "cube"], help="ICA contrast")
    p.add_argument("--algorithm", default="parallel", choices=["parallel", "deflation"], help="ICA algorithm")
    p.add_argument("--max-iter", type=int, default=200, help="ICA iteration limit (default 200)")
    p.add_argument("--tol", type=float, default=1e-4, help="ICA tolerance (default 1e-4)")
    p.add_argument("--grid-directions", type=int, default=5, help="directions drawn per grid (default 5)")
    p.add_argument("--max-strength", type=float, default=6.0, help="grid strengths span -S..S (default 6)")
    p.add_argument("--strengths", type=int, default=7, help="strengths per grid row (default 7)")
    p.add_argument("--layers", default=None, help="W+ layer range START:STOP for the grids (StyleGAN2 w only)")
    p.set_defaults(func=run_ganspace)


def run_ganspace(args) -> int:
    methods = _common.split_list(args.method)
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise ValueError(f"--method: expected pca, ica or pca,ica, found {args.method!r}")
    model = _common.load_model(args)
    opts = _common.model_kwargs(args)
    model_options(model, **opts)      # --trunc / --class that do not apply stop here, before any work
    if args.tap is None:
        print(f"--tap {default_edit_tap(model)} (the default for {model.config.family})")
    tap = args.tap or default_edit_tap(model)
    _common.check_taps(model, [tap], flag="--tap")
    layers = _common.layer_range(args.layers)
    if layers is not None and edit_space_of(model, tap) != "w":
        raise ValueError(f"--layers: layer ranges apply to edits in StyleGAN2's W+ (--tap w); directions of "
                         f"tap {tap!r} are lifted to z, where every layer moves together: leave --layers out")
    os.makedirs(args.out, exist_ok=True)
    latents = key_latents(model, args.seed, args.n, truncation_psi=args.truncation_psi)
    key = _common.prng_key(args)
    fits = {}
    for m in methods:
        fit = fit_directions(model, tap, m, latents, k=args.k, key=key, **opts,
                             ica_options=dict(fun=args.fun, algorithm=args.algorithm, max_iter=args.max_iter,
                                              tol=args.tol),
                             chunk_size=args.chunk_size, progress=_common.progress(f"{m} population"))
        fits[m] = fit
        arrays = {name: np.asarray(v) for name, v in fit.result._asdict().items()}
        path = os.path.join(args.out, f"directions_{m}.npz")
        np.savez(path, directions=fit.directions, method=m, tap=tap, space=fit.space,
                 checkpoint=os.path.abspath(args.checkpoint), n=args.n, seed=args.seed,
                 residual=fit.residual, **{f"result/{k}": v for k, v in arrays.items()})
        note = "" if m == "pca" else (f", {int(fit.result.iterations)} iterations, "
                                      + ("converged" if bool(fit.result.converged) else "NOT converged"))
        print(f"{m}: {args.k} components of {tap} over {args.n} latents{note}; wrote {path}")
    space = fits[methods[0]].space
    strengths = np.linspace(-args.max_strength, args.max_strength, args.strengths).astype(np.float32)
    z = seed_latents(model, parse_seeds(args.seeds), truncation_psi=args.truncation_psi)
    edit_space = latent_space(model, space, layers=layers is not None, **opts)
    x0, render = edit_space.points(z), edit_space.image
    for i, seed in enumerate(parse_seeds(args.seeds)):
        grids = {m: direction_images(render, x0[i:i + 1], f.directions[:args.grid_directions], strengths, layers)
                 for m, f in fits.items()}
        path = plots.save_image_grids(grids, os.path.join(args.out, f"grid_seed{seed:04d}.png"), nrow=args.strengths)
        print(f"seed {seed}: {' | '.join(grids)} edit grid -> {path}")
    _common.write_json(os.path.join(args.out, "ganspace.json"), {
        "analysis": "ganspace", "checkpoint": args.checkpoint, "tap": tap, "space": space, "n": args.n,
        "class_idx": args.class_idx, "truncation_psi": args.truncation_psi,
        "seed": args.seed, "k": args.k, "methods": list(methods), "layers": layers,
        "grid_strengths": strengths, "grid_seeds": parse_seeds(args.seeds),
        "pca_explained_variance_ratio": fits["pca"].result.explained_variance_ratio if "pca" in fits else None,
        "ica": {"iterations": int(fits["ica"].result.iterations), "converged": bool(fits["ica"].result.converged)}
        if "ica" in fits else None})
    return 0
