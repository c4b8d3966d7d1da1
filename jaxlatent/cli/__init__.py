"""The ``jaxlatent`` command: one subcommand per library entry point.

Each command has its module, named for it (``local-basis`` -> :mod:`jaxlatent.cli.local_basis`),
which defines ``register(subparsers)``: it adds the command and sets ``func`` on its parser; the
command is a thin layer of argument parsing over library calls. BLAS threads are set at call time
as the library's own batched calls set them (:func:`jaxlatent.engine.threads.single_blas_thread`,
one per LAPACK call unless the user chose). The flags every command shares
(``--seeds``, ``--trunc``, ``--class``, ``--seed``, ``--chunk-size``, ``--out``) come from
:mod:`jaxlatent.cli._common`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jaxlatent.engine.threads import single_blas_thread

#: one module per command, named for it (``local-basis`` -> ``jaxlatent/cli/local_basis.py``)
COMMANDS = ("convert", "generate", "local-basis", "grassmann", "local-dim", "distortion", "geometry", "ganspace",
            "edit-fid", "correlation", "run", "report", "demo", "doctor")
_COMMAND_MODULES = tuple(f"jaxlatent.cli.{name.replace('-', '_')}" for name in COMMANDS)


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
        # every decomposition of the command, inside map_batched or not, with one BLAS thread
        with single_blas_thread():
            return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as err:
        # user-facing errors carry their own message (file, key, expected, found)
        print(f"jaxlatent {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
