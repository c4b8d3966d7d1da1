"""``jaxlatent ganspace`` and ``jaxlatent edit-fid``: GANSpace with PCA or ICA, and the FID of its edits.

``ganspace`` fits PCA (Härkönen et al., NeurIPS 2020) and/or FastICA (Palaev, Lukmanov and Khan,
ICLR 2023 Tiny Papers) to a tap's population and writes one ``directions_<method>.npz`` per
method plus edit grids (rows: directions; columns: strengths; methods side by side).
``edit-fid`` scores direction files with the paper's protocol (tables 1-3).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.ganspace.fid import VARIANTS, edit_fid_table
from jaxlatent.ganspace.population import KeyLatents
from jaxlatent.cli import _common
from jaxlatent.models.digits import FORMAT_NAME as CLASSIFIER_FORMAT
from jaxlatent.models.digits import load_classifier
from jaxlatent.feature_networks import load_inception
from jaxlatent.report.sections.ganspace import (METHODS, default_tap, direction_images, edit_space, fit_directions,
                                         save_side_by_side)
from jaxlatent.engine.latents import parse_seeds, latents_from_seeds

__all__ = ["register"]

FID_SEED_OFFSET = 1_000_000   # edit-fid draws its latents apart from ganspace's population (same --seed)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ganspace", help="GANSpace directions by PCA or ICA of a tap's population (Härkönen et al. 2020; "
                         "Palaev et al. 2023)",
        description="Fit PCA and/or FastICA to a tap over N latents (row i: N(0, I) from "
                    "fold_in(key(--seed), i)), write the directions (.npz) and edit grids of the "
                    "leading ones for the --seeds latents.")
    _common.add_model_args(p, seeds="0-2", out_help="output directory (directions_<method>.npz, grids)")
    p.add_argument("--method", default="pca,ica", help="pca, ica or both, comma-separated (default pca,ica)")
    p.add_argument("--tap", default=None, help="tap fitted (default: w for StyleGAN2, else the first feature "
                                               "map; non-latent taps are lifted to z by least squares)")
    p.add_argument("--components", type=int, default=20, help="components per method (default 20)")
    p.add_argument("--n", type=int, default=100000, help="population size (default 100000)")
    p.add_argument("--fun", default="logcosh", choices=["logcosh", "exp", "cube"], help="ICA contrast")
    p.add_argument("--algorithm", default="parallel", choices=["parallel", "deflation"], help="ICA algorithm")
    p.add_argument("--max-iter", type=int, default=200, help="ICA iteration limit (default 200)")
    p.add_argument("--tol", type=float, default=1e-4, help="ICA tolerance (default 1e-4)")
    p.add_argument("--grid-directions", type=int, default=5, help="directions drawn per grid (default 5)")
    p.add_argument("--strength", type=float, default=6.0, help="grid strengths span -S..S (default 6)")
    p.add_argument("--steps", type=int, default=7, help="strengths per grid row (default 7)")
    p.add_argument("--layers", default=None, help="W+ layer range START:STOP for the grids (StyleGAN2 w only)")
    p.set_defaults(func=run_ganspace)

    p = subparsers.add_parser(
        "edit-fid", help="FID of GANSpace edits, one random direction per image (Palaev et al. 2023, tables 1-3)",
        description="FID between the features of N generated images and of the same images each edited "
                    "along one random direction of each DIRECTIONS file (or directory of them) with "
                    "a random strength; images from N(0, I) latents, row i from fold_in(key(1000000 + "
                    "--seed), i); "
                    "strengths alpha ~ U[-3, 3] and U[-6, 6] (--variant paper) or "
                    "6 N(0, 1) pushed out to |alpha| >= 0.5 (--variant code).")
    _common.add_model_args(p, seeds=None, out_help="output directory (edit_fid.json)")
    p.add_argument("directions", nargs="+", metavar="DIRECTIONS",
                   help="directions_<method>.npz files written by 'jaxlatent ganspace', or their directory")
    p.add_argument("--n", type=int, default=1000, help="images (default 1000, the paper's)")
    p.add_argument("--variant", default="paper", choices=VARIANTS, help="strength distribution (default paper)")
    p.add_argument("--features", default="classifier",
                   help="feature network: 'classifier' (the shipped digits classifier), a classifier "
                        "directory, or pytorch-fid's Inception weights file (pt_inception-2015-12-05-*.pth)")
    p.add_argument("--layers", default=None, help="W+ layer range START:STOP of the edits (StyleGAN2 w only)")
    p.set_defaults(func=run_edit_fid)


def _layers(text):
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--layers: expected START:STOP (e.g. 0:4), found {text!r}") from None
    return start, stop


def _options(model, args):
    options = _common.model_options(model, args)
    if "c" in options:
        options["c"] = np.asarray(options["c"], np.float32)
    return options


def run_ganspace(args) -> int:
    model = _common.load_model(args)
    options = _options(model, args)
    methods = _common.split_list(args.method)
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise ValueError(f"--method: expected pca, ica or pca,ica, found {args.method!r}")
    tap = args.tap or default_tap(model)
    _common.check_taps(model, [tap], flag="--tap")
    os.makedirs(args.out, exist_ok=True)
    latents = KeyLatents(args.seed, args.n, int(model.z_dim))
    key = _common.prng_key(args)
    fits = {}
    for m in methods:
        fit = fit_directions(model, tap, m, latents, args.components, key, model_options=options,
                             ica_options=dict(fun=args.fun, algorithm=args.algorithm, max_iter=args.max_iter,
                                              tol=args.tol),
                             chunk_size=args.chunk_size, progress=_common.progress(f"{m} population"))
        fits[m] = fit
        arrays = {name: np.asarray(v) for name, v in fit.result._asdict().items()}
        path = os.path.join(args.out, f"directions_{m}.npz")
        np.savez(path, directions=fit.directions, method=m, tap=tap, space=fit.space,
                 checkpoint=os.path.abspath(args.checkpoint), n=args.n, seed=args.seed,
                 residual=fit.residual, **{f"result/{k}": v for k, v in arrays.items()})
        note = "" if m == "pca" else (f", {int(fit.result.n_iter)} iterations, "
                                      + ("converged" if bool(fit.result.converged) else "NOT converged"))
        print(f"{m}: {args.components} components of {tap} over {args.n} latents{note}; wrote {path}")
    layers = _layers(args.layers)
    space = fits[methods[0]].space
    alphas = np.linspace(-args.strength, args.strength, args.steps).astype(np.float32)
    z = latents_from_seeds(parse_seeds(args.seeds), int(model.z_dim))
    x0, render = edit_space(model, space, z, layers=layers, model_options=options)
    for i, seed in enumerate(parse_seeds(args.seeds)):
        grids = {m: direction_images(render, x0[i:i + 1], f.directions[:args.grid_directions], alphas, layers)
                 for m, f in fits.items()}
        path = save_side_by_side(os.path.join(args.out, f"grid_seed{seed:04d}.png"), grids, ncol=args.steps)
        print(f"seed {seed}: {' | '.join(grids)} edit grid -> {path}")
    _common.write_json(os.path.join(args.out, "ganspace.json"), {
        "analysis": "ganspace", "checkpoint": args.checkpoint, "tap": tap, "space": space, "n": args.n,
        "seed": args.seed, "components": args.components, "methods": list(methods), "layers": layers,
        "grid_strengths": alphas, "grid_seeds": parse_seeds(args.seeds),
        "pca_explained_variance_ratio": fits["pca"].result.explained_variance_ratio if "pca" in fits else None,
        "ica": {"n_iter": int(fits["ica"].result.n_iter), "converged": bool(fits["ica"].result.converged)}
        if "ica" in fits else None})
    return 0


def _gray_to_rgb(features, images):
    return features(images if images.shape[1] == 3 else jnp.repeat(images, 3, axis=1))


def features_from_flag(text: str):
    """The feature callable named by ``--features`` (classifier, a classifier directory, an Inception file)."""
    if text == "classifier":
        return load_classifier().features
    if text == "inception":
        raise ValueError("--features inception: give the path of pytorch-fid's weights file "
                         "(pt_inception-2015-12-05-6726825d.pth) instead; none can be downloaded here")
    if os.path.isdir(text):
        if not os.path.exists(os.path.join(text, "config.json")):
            raise ValueError(f"--features {text}: a directory must be a classifier ({CLASSIFIER_FORMAT}) "
                             "with config.json")
        return load_classifier(text).features
    if not os.path.exists(text):
        raise FileNotFoundError(f"--features {text}: no such file or directory")
    return jax.tree_util.Partial(_gray_to_rgb, load_inception(text))


def _direction_files(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p)
                            if f.startswith("directions_") and f.endswith(".npz"))
        else:
            files.append(p)
    if not files:
        raise FileNotFoundError(f"DIRECTIONS: no directions_*.npz in {list(paths)}")
    return files


def run_edit_fid(args) -> int:
    model = _common.load_model(args)
    options = _options(model, args)
    features = features_from_flag(args.features)
    sets, spaces = {}, set()
    for path in _direction_files(args.directions):
        with np.load(path) as data:
            for key in ("directions", "method", "space"):
                if key not in data:
                    raise ValueError(f"{path}: key {key!r} missing; expected a file written by 'jaxlatent ganspace'")
            d = np.asarray(data["directions"], np.float32)
            sets[f"{str(data['method']).upper()} {d.shape[0]}"] = d
            spaces.add(str(data["space"]))
    if len(spaces) != 1:
        raise ValueError(f"DIRECTIONS: the files mix latent spaces {sorted(spaces)}; score one space at a time")
    os.makedirs(args.out, exist_ok=True)
    layers = _layers(args.layers)
    z = KeyLatents(FID_SEED_OFFSET + args.seed, args.n, int(model.z_dim))[:]
    x, render = edit_space(model, spaces.pop(), z, layers=layers, model_options=options)
    table = edit_fid_table(render, features, x, sets, seed=args.seed, variant=args.variant, layers=layers,
                           chunk_size=args.chunk_size, progress=_common.progress("edit-fid"))
    _common.write_json(os.path.join(args.out, "edit_fid.json"), {
        "analysis": "edit_fid", "checkpoint": args.checkpoint, "features": args.features,
        "latents": f"KeyLatents({FID_SEED_OFFSET + args.seed}, {args.n})", "layers": layers, **table._asdict()})
    width = max(len(s) for s in table.strengths)
    print(f"edit FID, {table.n} images, variant {table.variant}, seed {table.seed}")
    print(" " * width + "".join(f"{m:>12}" for m in table.methods))
    for r, row in enumerate(table.strengths):
        print(f"{row:<{width}}" + "".join(f"{v:12.4f}" for v in table.fid[r]))
    print(f"wrote {args.out}/edit_fid.json")
    return 0
