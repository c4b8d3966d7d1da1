"""Latents from seeds, the NVlabs way (``gen_images.py``): one ``RandomState(seed)`` per latent.

Every command and the report name their latents by seeds, so that any number they print can be
recomputed with the library: ``z = latents_from_seeds(parse_seeds("0-15"), model.z_dim)``.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

__all__ = ["parse_seeds", "latents_from_seeds"]

_RANGE = re.compile(r"^(-?\d+)-(-?\d+)$")


def parse_seeds(text: str) -> list[int]:
    """Seed list ``"0-3,7,10-12"`` -> ``[0, 1, 2, 3, 7, 10, 11, 12]``.

    Ranges are inclusive; order and repeats are kept as written; seeds lie in [0, 2**32).
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        match = _RANGE.match(part)
        try:
            if match:
                lo, hi = int(match.group(1)), int(match.group(2))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(
                f"--seeds: expected integers or ranges like 0-15 separated by commas, found {part!r}"
            ) from None
    for seed in seeds:
        if not 0 <= seed < 2**32:
            raise ValueError(f"--seeds: seed {seed} outside [0, 2**32)")
    return seeds


def latents_from_seeds(seeds: Iterable[int], z_dim: int) -> np.ndarray:
    """``z: (len(seeds), z_dim)`` float32; row i is ``RandomState(seeds[i]).randn(z_dim)``."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("latents_from_seeds: no seeds given")
    return np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32)
