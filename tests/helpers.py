"""Helpers shared by several test files (``from helpers import ...``; pytest puts tests/ on the path)."""

from __future__ import annotations

import numpy as np


def random_stylegan2(config, seed: int = 0):
    """A StyleGAN2 with standard-normal weights from numpy draws.

    Cheaper than ``StyleGAN2.init`` (one jax.random draw per leaf compiles a kernel each) on a
    busy 2-core CPU; the weights are plain arrays, as a converted checkpoint would give.
    """
    from jaxlatent.models.stylegan2 import StyleGAN2, expected_shapes

    rng = np.random.RandomState(seed)
    flat = {k: np.asarray(rng.randn(*s), np.float32) for k, s in expected_shapes(config).items()}
    return StyleGAN2.from_state_dict(config, flat)
