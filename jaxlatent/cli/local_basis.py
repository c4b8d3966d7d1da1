"""``jaxlatent local-basis``: the Local Basis (Choi et al., ICLR 2022) of one tap at each latent.

Loads a checkpoint, draws latents from seeds, and writes the singular values, Local Basis and
latent directions (``local_basis.npz``), numbers (``local_basis.json``) and the spectrum plot.
"""

from __future__ import annotations

import os

import numpy as np

from jaxlatent.cli import _common
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.report import plots

__all__ = ["register"]

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local-basis", help="Local Basis (Jacobian SVD) of a tap at each latent (Choi et al. 2022)",
        description="Singular values, Local Basis vectors in the tap's space and latent directions "
                    "of the tap Jacobian at each latent (Choi et al., ICLR 2022, Local Basis).")
    _common.add_model_args(p, prng=False)
    _common.add_tap_arg(p)
    p.add_argument("--k", type=int, default=None, help="triplets kept per latent (default: all)")
    p.add_argument("--method", default="svd", choices=["svd", "gram"],
                   help="dense SVD (default) or eigenvectors of the Gram matrix (faster, leading values only)")
    p.set_defaults(func=run_local_basis)


def run_local_basis(args) -> int:
    f, seeds, z = _common.load_tap(args)
    res = local_basis(f, z, k=args.k, chunk_size=args.chunk_size, method=args.method,
                      progress=_common.progress("local-basis"))
    arrays = {name: np.asarray(v) for name, v in res._asdict().items()}
    np.savez_compressed(os.path.join(args.out, "local_basis.npz"), seeds=np.asarray(seeds), z=z, **arrays)
    s = arrays["singular_values"]
    _common.write_json(os.path.join(args.out, "local_basis.json"), {
        "analysis": "local_basis", "checkpoint": args.checkpoint, "tap": args.tap, "seeds": seeds,
        "truncation_psi": args.truncation_psi, "k": int(s.shape[1]), "method": args.method,
        "mean_singular_values": s.mean(axis=0)})
    plots.plot_spectra(s, os.path.join(args.out, "spectrum.png"),
                     title=f"Local Basis singular values at {args.tap} ({len(seeds)} latents)")
    top = ", ".join(f"{x:.4g}" for x in s.mean(axis=0)[:5])
    print(f"{args.tap}: {len(seeds)} latents, Jacobian {res.basis.shape[1]}x{res.directions.shape[1]}, "
          f"mean leading singular values {top}")
    print(f"wrote {args.out}/local_basis.npz, local_basis.json, spectrum.png")
    return 0
