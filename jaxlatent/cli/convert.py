"""``jaxlatent convert`` and ``jaxlatent generate``.

``convert IN OUT`` reads any supported checkpoint (``jaxlatent.load``) and writes a converted
directory (``jaxlatent.save``). ``generate CKPT --seeds 0-15 --out grid.png`` draws one latent
per seed as NVlabs ``gen_images.py`` does (``RandomState(seed).randn``) and writes an image grid.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
from tqdm import tqdm

import jaxlatent
from jaxlatent.report import plots as viz
from jaxlatent.cli import _common
from jaxlatent.engine.latents import parse_seeds

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a checkpoint (.pkl, .pt, .pth) into a jaxlatent directory",
        description="Read an NVlabs StyleGAN2 .pkl (no code from the file runs), a rosinality "
                    "stylegan2-pytorch .pt, a FastGAN .pth or a pytorch-pretrained-biggan folder "
                    "(pytorch_model.bin + config.json) and write config.json + an orbax "
                    "checkpoint of the params into OUT.")
    p.add_argument("input", metavar="IN", help="checkpoint file, converted directory, or a "
                                               "pytorch-pretrained-biggan folder or cache")
    p.add_argument("output", metavar="OUT", help="output directory (must be new or empty)")
    p.add_argument("--which", default=None,
                   help="network inside a training file: NVlabs G_ema (default) or G; "
                        "rosinality g_ema (default) or g; the model name in a BigGAN cache")
    p.add_argument("--overwrite", action="store_true", help="replace an existing converted OUT")
    p.set_defaults(func=run_convert)

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


def run_convert(args) -> int:
    model = jaxlatent.load(args.input, which=args.which)
    try:
        out = jaxlatent.save(model, args.output, overwrite=args.overwrite)
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    source = getattr(model, "source", None) or {}
    for note in source.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(f"converted {args.input} -> {out} ({model.config.family})")
    return 0


def run_generate(args) -> int:
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, found {args.chunk_size}")
    model = _common.load_model(args)
    seeds = parse_seeds(args.seeds)
    z = _common.seed_latents(model, seeds, args)
    batch = min(args.chunk_size, len(seeds))
    options = _common.model_options(model, args, batch=batch)
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
    path = viz.save_image_grid(np.concatenate(images), args.out, nrow=args.nrow)
    print(f"wrote {len(seeds)} images to {path}")
    return 0
