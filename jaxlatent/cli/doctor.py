"""``jaxlatent doctor``: versions, devices, and a few-second check that batched Jacobians are right."""

from __future__ import annotations

from jaxlatent.health import doctor

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor", help="check this installation: versions, devices, batched Jacobians",
        description="Print the Python, jax and jaxlib versions and the devices, then compare batched "
                    "forward- and reverse-mode Jacobians of a StyleGAN2 with an 8 x 512 mapping network "
                    "(and of a known trigger written as user code) with one-latent-at-a-time Jacobians on "
                    "the default backend. Exit status 0 when everything agrees, 1 otherwise.")
    p.add_argument("--latents", type=int, default=16, help="latents per batched transform (default 16)")
    p.set_defaults(func=run_doctor)


def run_doctor(args) -> int:
    if args.latents < 2:
        raise ValueError(f"--latents must be at least 2 (the fault shows from the second latent), got {args.latents}")
    return 0 if doctor(batch=args.latents).ok else 1
