"""The ``jaxlatent`` command: one subcommand per library entry point.

Each module listed in ``_COMMAND_MODULES`` defines ``register(subparsers)``, which adds its
subcommands and sets ``func`` on each parser; the command is a thin layer of argument parsing
over library calls. The flags every command shares (``--seeds``, ``--trunc``, ``--class``,
``--seed``, ``--chunk-size``, ``--out``) come from :mod:`jaxlatent.cli._common`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# jaxlib's CPU SVD/eigh call scipy's OpenBLAS, whose worker threads fight XLA's own pool: one
# OpenBLAS thread per call halves the time of the report's SVDs on 2 cores (512^2: 4 s -> 80 ms
# in benchmarks/local_basis.py). Set before jax loads; an explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_COMMAND_MODULES = (
    "jaxlatent.cli.convert",    # convert, generate
    "jaxlatent.cli.geometry",   # local-basis, grassmann
    "jaxlatent.cli.dimension",  # local-dim, distortion
    "jaxlatent.cli.ganspace",   # ganspace, edit-fid
    "jaxlatent.cli.run",        # run ANALYSIS (long runs into a resumable store)
    "jaxlatent.cli.report",     # report
    "jaxlatent.cli.demo",       # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxlatent",
        description="Analyse the latent space of a pretrained GAN with JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as err:
        # user-facing errors carry their own message (file, key, expected, found)
        print(f"jaxlatent {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
