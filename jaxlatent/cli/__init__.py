"""The ``jaxlatent`` command: one subcommand per library entry point.

Each module listed in ``_COMMAND_MODULES`` defines ``register(subparsers)``, which adds its
subcommands and sets ``func`` on each parser; the command is a thin layer of argument parsing
over library calls. BLAS threads are set at call time as the library's own batched calls set
them (:func:`jaxlatent.engine.threads.single_blas_thread`, one per LAPACK call unless the user chose). The flags every command shares
(``--seeds``, ``--trunc``, ``--class``, ``--seed``, ``--chunk-size``, ``--out``) come from
:mod:`jaxlatent.cli._common`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jaxlatent.engine.threads import single_blas_thread

_COMMAND_MODULES = (
    "jaxlatent.cli.convert",    # convert, generate
    "jaxlatent.cli.local_basis",   # local-basis, grassmann
    "jaxlatent.cli.local_dim",  # local-dim, distortion
    "jaxlatent.cli.geometry",     # geometry (Riemannian metric of the image manifold)
    "jaxlatent.cli.ganspace",   # ganspace, edit-fid
    "jaxlatent.cli.correlation",  # correlation
    "jaxlatent.cli.run",        # run ANALYSIS (long runs into a resumable store)
    "jaxlatent.cli.report",     # report
    "jaxlatent.cli.demo",       # demo
    "jaxlatent.cli.doctor",     # doctor (versions, devices, batched Jacobians)
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
        # every decomposition of the command, inside map_batched or not, with one BLAS thread
        with single_blas_thread():
            return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as err:
        # user-facing errors carry their own message (file, key, expected, found)
        print(f"jaxlatent {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
