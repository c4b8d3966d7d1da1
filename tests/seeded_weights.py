"""Seeded weights for ported feature networks: the same arrays from a name, a shape and a seed.

The FID Inception (24M parameters) and the LPIPS backbones are too large to commit as golden
weights; their parity goldens (tests/golden/featurenets) store inputs and outputs only, and both
the golden maker and the tests rebuild the weights with this recipe. Each array depends only on
(seed, name, shape), never on the order in which names are visited.
"""

from __future__ import annotations

import zlib

import numpy as np


def seeded_array(name: str, shape, seed: int = 0) -> np.ndarray:
    """A float32 array for state-dict entry ``name`` that keeps a random ReLU network's activations O(1)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    shape = tuple(int(s) for s in shape)
    normal = rng.standard_normal(shape, dtype=np.float32)
    if name.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if name.endswith("running_mean") or name.endswith("bias"):
        return 0.1 * normal
    if name.endswith("bn.weight"):
        return 1.0 + 0.1 * normal
    if ".model.1.weight" in name:  # LPIPS lin layers are non-negative
        return 0.1 * np.abs(normal)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return normal * np.float32(np.sqrt(2.0 / fan_in))


def seeded_state_dict(shapes: dict, seed: int = 0) -> dict:
    """``{name: shape}`` -> ``{name: seeded_array(name, shape, seed)}``."""
    return {name: seeded_array(name, shape, seed) for name, shape in shapes.items()}
