"""Pictures of the metric's eigen-axes: image strips along each eigenvector (Wang & Ponce 2021, fig. 2)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jaxlatent.report.plots import image_grid

__all__ = ["save_eigen_strips"]


def save_eigen_strips(images, path: str | os.PathLike, padding: int = 2, scale: int = 1) -> str:
    """Save images along eigen-axes as one grid: a row per axis, a column per step.

    Args:
      images: (k, S, C, H, W) in [-1, 1]: S images along each of k axes (e.g. ``g`` of
        :func:`jaxlatent.geometry.metric.eigen_axis_latents` for one latent); the middle
        column is the reference image when S is odd.
      path: PNG file to write.
      padding: pixels between images.
      scale: integer upscaling (nearest) of the whole grid, for tiny images.

    Returns:
      The path written.
    """
    x = np.asarray(images)
    if x.ndim != 5:
        raise ValueError(f"save_eigen_strips: expected images of shape (k, S, C, H, W), found {x.shape}")
    k, s = x.shape[:2]
    grid = image_grid(x.reshape((k * s,) + x.shape[2:]), nrow=s, padding=padding)
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    if grid.shape[2] == 1:
        grid = grid[:, :, 0]
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    Image.fromarray(grid).save(path)
    return str(path)
