"""Handwritten digits for the shipped models: scikit-learn's ``load_digits``, no download.

1,797 grey 8x8 images of the digits 0-9 (values 0..16), upsampled bilinearly to 16x16 (or
32x32) and mapped to [-1, 1] with -1 for the background. The train / held-out split is a
fixed stratified split (the same for every call), so the classifier's held-out accuracy and
the Fréchet distances are reproducible.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxlatent.models.digits import NUM_CLASSES

HELD_OUT_PER_CLASS = 30  # 300 held-out digits, 1,497 for training
SPLIT_SEED = 0


class Digits(NamedTuple):
    """Images ``(N, 1, R, R)`` float32 in [-1, 1] and labels ``(N,)`` int32 in 0..9."""

    images: np.ndarray
    labels: np.ndarray


def upsample(images8: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear (half-pixel centred) upsampling of ``(N, 8, 8)`` images to ``(N, R, R)``.

    Written with numpy so the data are identical on every platform and JAX backend.
    """
    n, h, w = images8.shape
    if resolution % h or resolution < h:
        raise ValueError(f"resolution must be a multiple of {h}, got {resolution}")

    def weights(size_in, size_out):
        # source coordinate of each output pixel centre, clamped at the borders
        src = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
        src = np.clip(src, 0, size_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, size_in - 1)
        m = np.zeros((size_out, size_in))
        m[np.arange(size_out), lo] += 1 - (src - lo)
        m[np.arange(size_out), hi] += src - lo
        return m

    wy, wx = weights(h, resolution), weights(w, resolution)
    return np.einsum("yi,nij,xj->nyx", wy, images8.astype(np.float64), wx)


def load(resolution: int = 16) -> Digits:
    """All 1,797 digits at ``resolution`` (16 or 32), images in [-1, 1], in sklearn's order."""
    from sklearn.datasets import load_digits  # noqa: PLC0415  (sklearn is slow to import)

    raw = load_digits()
    images = raw.images.astype(np.float64) / 16.0  # 0 (background) .. 1 (ink)
    images = upsample(images, resolution) * 2.0 - 1.0
    return Digits(images[:, None].astype(np.float32), raw.target.astype(np.int32))


def split_indices(labels: np.ndarray, held_out_per_class: int = HELD_OUT_PER_CLASS,
                  seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split: ``(train_idx, held_out_idx)``, sorted index arrays.

    ``held_out_per_class`` digits of each class, drawn with numpy's PCG64 from ``seed``.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    held = []
    for k in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == k)
        held.append(rng.choice(idx, size=held_out_per_class, replace=False))
    held = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(len(labels)), held)
    return train, held


def load_split(resolution: int = 16) -> tuple[Digits, Digits]:
    """``(train, held_out)``: 1,497 training and 300 held-out digits (30 per class)."""
    data = load(resolution)
    train, held = split_indices(data.labels)
    return (Digits(data.images[train], data.labels[train]),
            Digits(data.images[held], data.labels[held]))
