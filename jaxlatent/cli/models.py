"""``jaxlatent convert`` and ``jaxlatent generate``.

``convert IN OUT`` reads any supported checkpoint (``jaxlatent.load``) and writes
a converted directory (``jaxlatent.save``). ``generate CKPT --seeds 0-15`` draws
one latent per seed like NVlabs ``gen_images.py`` (``RandomState(seed).randn``)
and writes an image grid.
"""

from __future__ import annotations

import sys

import numpy as np

from jaxlatent.seeds import latents_from_seeds, parse_seeds

__all__ = ["register", "parse_seeds", "latents_from_seeds", "run_convert", "run_generate"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a checkpoint (.pkl, .pt, .pth) into a jaxlatent directory",
        description="Read an NVlabs StyleGAN2 .pkl (no code from the file runs), a rosinality "
                    "stylegan2-pytorch .pt or a FastGAN .pth and write config.json + an orbax "
                    "checkpoint of the params into OUT.")
    p.add_argument("input", metavar="IN", help="checkpoint file (or converted directory)")
    p.add_argument("output", metavar="OUT", help="output directory (must be new or empty)")
    p.add_argument("--which", default=None,
                   help="network inside a training file: NVlabs G_ema (default) or G; "
                        "rosinality g_ema (default) or g")
    p.add_argument("--overwrite", action="store_true", help="replace an existing converted OUT")
    p.set_defaults(func=run_convert)

    p = subparsers.add_parser(
        "generate", help="generate an image grid from seeds",
        description="Generate one image per seed (z = RandomState(seed).randn(z_dim), as NVlabs "
                    "gen_images.py) and save them as one PNG grid.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or converted directory")
    p.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-15 or 0-3,7,10-12 (default 0-15)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (default 1)")
    p.add_argument("--trunc-cutoff", type=int, default=None,
                   help="truncate only the first N ws (default: all)")
    p.add_argument("--noise-mode", default=None, choices=("const", "random", "none"),
                   help="noise inputs: StyleGAN2 const (default), random or none; FastGAN "
                        "random (default, keyed by the first seed) or none")
    p.add_argument("--batchnorm", default=None, choices=("running", "batch"),
                   help="FastGAN batch norm: running statistics (default; each image independent of "
                        "the batch) or batch statistics (what the official eval.py computes)")
    p.add_argument("--class", dest="class_idx", type=int, default=None,
                   help="class label for a conditional model")
    p.add_argument("--out", required=True, help="output PNG path")
    p.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default: about square)")
    p.add_argument("--which", default=None, help="network inside a training file (see convert)")
    p.set_defaults(func=run_generate)


def run_convert(args) -> int:
    import jaxlatent

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


def _labels(model, class_idx, n, path):
    c_dim = int(getattr(model.config, "c_dim", 0) or 0)
    if c_dim == 0:
        if class_idx is not None:
            print("warning: --class ignored: the model is unconditional", file=sys.stderr)
        return None
    if class_idx is None or not 0 <= class_idx < c_dim:
        raise ValueError(f"{path}: conditional model with {c_dim} classes: pass --class 0..{c_dim - 1}")
    labels = np.zeros((n, c_dim), np.float32)
    labels[:, class_idx] = 1.0
    return labels


def run_generate(args) -> int:
    import jax
    from tqdm import tqdm

    import jaxlatent
    from jaxlatent import viz

    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    model = jaxlatent.load(args.checkpoint, which=args.which)
    seeds = parse_seeds(args.seeds)
    z_dim = getattr(model, "z_dim", None) or model.config.z_dim
    z = latents_from_seeds(seeds, int(z_dim))
    batch = min(args.batch, len(seeds))
    if model.config.family == "stylegan2":
        if args.batchnorm is not None:
            raise ValueError(f"{args.checkpoint}: --batchnorm applies to FastGAN models only")
        options = dict(c=_labels(model, args.class_idx, batch, args.checkpoint),
                       truncation_psi=args.trunc, truncation_cutoff=args.trunc_cutoff,
                       noise_mode=args.noise_mode or "const")
    else:
        if args.trunc != 1.0 or args.trunc_cutoff is not None or args.class_idx is not None:
            raise ValueError(f"{args.checkpoint}: --trunc/--trunc-cutoff/--class apply to "
                             f"StyleGAN2 models only, not {model.config.family}")
        options = dict(noise_mode=args.noise_mode or "random", batchnorm=args.batchnorm or "running")

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
