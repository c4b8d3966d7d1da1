"""Bilinear resizing of NCHW images with PyTorch's exact sampling rules.

``torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=...)`` without
antialiasing, written as one interpolation matrix per axis (``y = A_h x A_w^T``), so the result
matches PyTorch to float rounding for up- and downsampling alike. ``jax.image.resize`` differs
when shrinking (it antialiases) and has no ``align_corners=True``.

* ``align_corners=False`` (the FID Inception's resize to 299, LPIPS' spatial map): output pixel
  ``i`` samples the input at ``(i + 0.5) * in / out - 0.5``, clamped below at 0.
* ``align_corners=True`` (GAN-Geometry's resize to 256): output pixel ``i`` samples
  ``i * (in - 1) / (out - 1)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["interpolation_matrix", "resize_bilinear"]


def interpolation_matrix(n_in: int, n_out: int, align_corners: bool = False) -> np.ndarray:
    """The (n_out, n_in) matrix of 1-D linear interpolation, PyTorch's sampling positions."""
    i = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros_like(i)
    else:
        src = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    a = np.zeros((n_out, n_in))
    np.add.at(a, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(a, (np.arange(n_out), hi), frac)
    return a


def resize_bilinear(x, size, align_corners: bool = False):
    """Resize images ``x: (N, C, H, W)`` to ``size = (H', W')`` -> ``(N, C, H', W')``.

    Equal to ``torch.nn.functional.interpolate(x, size, mode="bilinear",
    align_corners=align_corners)`` (no antialiasing). Differentiable; the matrices are constants.
    """
    h, w = x.shape[-2:]
    size = (size, size) if isinstance(size, int) else tuple(size)
    if (h, w) == size:
        return x
    ah = jnp.asarray(interpolation_matrix(h, size[0], align_corners), x.dtype)
    aw = jnp.asarray(interpolation_matrix(w, size[1], align_corners), x.dtype)
    return jnp.einsum("ph,nchw,qw->ncpq", ah, x, aw)
