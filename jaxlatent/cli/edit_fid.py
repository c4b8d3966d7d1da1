"""``jaxlatent edit-fid``: the Fréchet distance of GANSpace edits (Palaev et al. 2023, tables 1-3), one
random direction and strength per image, for each set of directions ``jaxlatent ganspace`` wrote.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxlatent.cli import _common
from jaxlatent.ganspace.fid import VARIANTS, edit_fid_table
from jaxlatent.workflows.features import features_for
from jaxlatent.workflows.spaces import check_space, key_latents, latent_space, model_options

__all__ = ["register", "features_from_flag"]

FID_SEED_OFFSET = 1_000_000   # edit-fid draws its latents apart from ganspace's population (same --seed)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "edit-fid", help="FID of GANSpace edits, one random direction per image (Palaev et al. 2023, tables 1-3)",
        description="FID between the features of N generated images and of the same images each edited "
                    "along one random direction of each DIRECTIONS file (or directory of them) with "
                    "a random strength; images from N(0, I) latents (BigGAN: --trunc x TN(0, 1; [-2, 2])), "
                    "row i from fold_in(key(1000000 + --seed), i); "
                    "strengths alpha ~ U[-3, 3] and U[-6, 6] (--variant paper) or "
                    "6 N(0, 1) pushed out to |alpha| >= 0.5 (--variant code).")
    _common.add_model_args(p, seeds=None, out_help="output directory (edit_fid.json)")
    p.add_argument("directions", nargs="+", metavar="DIRECTIONS",
                   help="directions_<method>.npz files written by 'jaxlatent ganspace', or their directory")
    p.add_argument("--n", type=int, default=1000, help="latents, one image each (default 1000, the paper's)")
    p.add_argument("--variant", default="paper", choices=VARIANTS, help="strength distribution (default paper)")
    p.add_argument("--features", default=None,
                   help="feature network: pytorch-fid's Inception weights file (pt_inception-2015-12-05-*.pth) "
                        "or a classifier directory; required except for the shipped digits model, whose "
                        "digit classifier is the default ('classifier')")
    p.add_argument("--layers", default=None, help="W+ layer range START:STOP of the edits (StyleGAN2 w only)")
    p.set_defaults(func=run_edit_fid)


def features_from_flag(model, checkpoint: str | None, text: str | None):
    """The feature callable named by ``--features`` (:func:`jaxlatent.workflows.features.features_for`)."""
    return features_for(model, checkpoint, text, flag="--features")


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
    opts = _common.model_kwargs(args)
    model_options(model, **opts)      # --trunc / --class that do not apply stop here, before any work
    features = features_from_flag(model, args.checkpoint, args.features)
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
    space = check_space(model, spaces.pop(), flag="DIRECTIONS (space)", where=args.checkpoint)
    layers = _common.layer_range(args.layers)
    if layers is not None and space != "w":
        raise ValueError(f"--layers: layer ranges apply to StyleGAN2 W+ edits; these directions are in {space}")
    os.makedirs(args.out, exist_ok=True)
    latents = key_latents(model, FID_SEED_OFFSET + args.seed, args.n, truncation_psi=args.truncation_psi)
    z = latents[:]
    edit_space = latent_space(model, space, layers=layers is not None, **opts)
    x, render = edit_space.points(z), edit_space.image
    table = edit_fid_table(render, features, x, sets, key=jax.random.PRNGKey(args.seed), variant=args.variant,
                           layers=layers,
                           chunk_size=args.chunk_size, progress=_common.progress("edit-fid"))
    _common.write_json(os.path.join(args.out, "edit_fid.json"), {
        "analysis": "edit_fid", "checkpoint": args.checkpoint, "features": args.features or "classifier",
        "latents": repr(latents), "layers": layers, "seed": args.seed, **table._asdict()})
    width = max(len(s) for s in table.strengths)
    print(f"edit FID, {table.n} images, variant {table.variant}, seed {args.seed}")
    print(" " * width + "".join(f"{m:>12}" for m in table.methods))
    for r, row in enumerate(table.strengths):
        print(f"{row:<{width}}" + "".join(f"{v:12.4f}" for v in table.fid[r]))
    print(f"wrote {args.out}/edit_fid.json")
    return 0
