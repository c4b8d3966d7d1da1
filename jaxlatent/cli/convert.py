"""``jaxlatent convert IN OUT``: read any supported checkpoint (``jaxlatent.load``) and write a
converted directory (``jaxlatent.save``).
"""

from __future__ import annotations

import sys


import jaxlatent

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
