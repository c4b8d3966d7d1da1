"""``jaxlatent generate CKPT --seeds 0-15 --out grid.png``: one image per seed, the latent drawn as
NVlabs ``gen_images.py`` does (``RandomState(seed).randn``), written as one PNG grid.
"""

from __future__ import annotations

import jax
import numpy as np
from tqdm import tqdm

from jaxlatent.cli import _common
from jaxlatent.engine.latents import parse_seeds
from jaxlatent.report import plots
from jaxlatent.workflows.spaces import model_options

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate an image grid from seeds",
        description="Generate one image per seed (z = RandomState(seed).randn(z_dim), as NVlabs "
                    "gen_images.py) and save them as one PNG grid.")
    _common.add_model_args(p, seeds="0-15", out_help="output PNG path", prng=False, chunk_size=8)
    p.add_argument("--trunc-cutoff", type=int, default=None,
                   help="truncate only the first N ws (StyleGAN2; default: all)")
    p.add_argument("--noise-mode", default=None, choices=("const", "random", "none"),
                   help="noise inputs: StyleGAN2 const (default), random or none; FastGAN "
                        "random (default, keyed by the first seed) or none")
    p.add_argument("--batchnorm", default=None, choices=("running", "batch"),
                   help="FastGAN batch norm: running statistics (default; each image independent of "
                        "the batch) or batch statistics (what the official eval.py computes)")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default: about square)")
    p.set_defaults(func=run_generate)


def run_generate(args) -> int:
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, found {args.chunk_size}")
    model = _common.load_model(args)
    seeds = parse_seeds(args.seeds)
    z = _common.seed_latents(model, seeds, args)
    batch = min(args.chunk_size, len(seeds))
    options = model_options(model, batch=batch, **_common.model_kwargs(args))
    if model.config.family == "biggan":
        given = [flag for flag, value in (("--batchnorm", args.batchnorm), ("--trunc-cutoff", args.trunc_cutoff),
                                          ("--noise-mode", args.noise_mode)) if value is not None]
        if given:
            raise ValueError(f"{args.checkpoint}: {', '.join(given)} do not apply to BigGAN models")
    elif model.config.family == "stylegan2":
        if args.batchnorm is not None:
            raise ValueError(f"{args.checkpoint}: --batchnorm applies to FastGAN models only")
        options.update(truncation_cutoff=args.trunc_cutoff, noise_mode=args.noise_mode or "const")
    else:
        if args.trunc_cutoff is not None:
            raise ValueError(f"{args.checkpoint}: --trunc-cutoff applies to StyleGAN2 models only, "
                             f"not {model.config.family}")
        options.update(noise_mode=args.noise_mode or "random", batchnorm=args.batchnorm or "running")

    images = []
    for start in tqdm(range(0, len(seeds), batch), desc="generate", unit="batch",
                      disable=len(seeds) <= batch):
        zb = z[start:start + batch]
        pad = batch - len(zb)
        if pad:  # one compiled shape: the last batch is padded and cut back
            zb = np.concatenate([zb, np.zeros((pad, zb.shape[1]), zb.dtype)])
        if options.get("noise_mode") == "random":
            options["key"] = jax.random.fold_in(jax.random.key(seeds[0]), start)
        images.append(np.asarray(model.generate(zb, **options))[: batch - pad])
    path = plots.save_image_grid(np.concatenate(images), args.out, nrow=args.nrow)
    print(f"wrote {len(seeds)} images to {path}")
    return 0
