"""Pictures for people: image grids and the plots the analyses report.

Everything here takes plain arrays (numpy or JAX) and writes a PNG; nothing
here computes an analysis. Matplotlib runs on the non-interactive Agg backend,
so these work on headless machines and in CI.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

__all__ = [
    "to_uint8",
    "image_grid",
    "save_image_grid",
    "save_image_grids",
    "plot_spectra",
    "plot_heatmap",
    "plot_lines",
    "plot_bars",
]


def to_uint8(images) -> np.ndarray:
    """Images ``(N, C, H, W)`` in [-1, 1] -> ``(N, H, W, C)`` uint8 in [0, 255].

    Values outside [-1, 1] are clipped, as NVlabs ``generate.py`` does; one
    channel stays one channel (grey).
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), found shape {x.shape}")
    x = np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


def image_grid(images, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into one ``(H', W', C)`` uint8 array.

    ``nrow`` is the number of images per row (default: about a square grid).
    """
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    if n == 0:
        raise ValueError("image_grid needs at least one image, found none")
    ncol = nrow or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncol))
    grid = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8
    )
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = tiles[i]
    return grid


def save_image_grid(images, path: str | os.PathLike, nrow: int | None = None, padding: int = 2,
                    upscale: int | None = None) -> str:
    """Write ``(N, C, H, W)`` images in [-1, 1] as one PNG grid; returns the path.

    ``nrow`` images per row (default: about square). ``upscale`` enlarges small images by an
    integer factor (nearest neighbour) so that 16x16 samples are visible; by default images
    under 64 pixels are enlarged to at least 64. ``(k, S, C, H, W)`` images (e.g. S steps along
    each of k eigen-axes) are drawn one row of S per axis.
    """
    images = np.asarray(images)
    if images.ndim == 5:
        nrow = images.shape[1]
        images = images.reshape((-1,) + images.shape[2:])
    return _write_png(image_grid(_upscale(images, upscale, 64), nrow=nrow, padding=padding), path)


def save_image_grids(grids: Mapping[str, object], path: str | os.PathLike, nrow: int, gap: int = 12,
                     upscale: int | None = None) -> str:
    """One PNG of several grids side by side, left to right (e.g. PCA | ICA edit grids).

    ``grids``: name -> ``(N, C, H, W)`` images in [-1, 1], each tiled with ``nrow`` per row;
    ``gap`` white pixels between grids; ``upscale`` as in :func:`save_image_grid` (default: to
    at least 48 pixels).
    """
    tiles = [image_grid(_upscale(np.asarray(images), upscale, 48), nrow=nrow) for images in grids.values()]
    if not tiles:
        raise ValueError("save_image_grids needs at least one grid, found none")
    height = max(t.shape[0] for t in tiles)
    spacer = np.full((height, gap, tiles[0].shape[2]), 255, np.uint8)
    parts = []
    for t in tiles:
        pad = np.full((height - t.shape[0],) + t.shape[1:], 255, np.uint8)
        parts += [np.concatenate([t, pad]), spacer]
    return _write_png(np.concatenate(parts[:-1], axis=1), path)


def _upscale(images: np.ndarray, factor: int | None, min_size: int) -> np.ndarray:
    h = images.shape[-2] if images.ndim == 4 else 0
    if factor is None:
        factor = max(1, int(math.ceil(min_size / max(h, 1))))
    if factor > 1:
        images = images.repeat(factor, axis=-2).repeat(factor, axis=-1)
    return images


def _write_png(grid: np.ndarray, path: str | os.PathLike) -> str:
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    _ensure_parent(path)
    Image.fromarray(grid).save(path)
    return str(path)


def plot_spectra(spectra, path: str | os.PathLike, title: str = "singular values",
                 log: bool = True, ylabel: str = "singular value", xlabel: str = "index") -> str:
    """Plot spectra as a mean curve with a 5-95 percentile band.

    ``spectra``: ``(N, k)`` array (one spectrum per latent, descending), or a
    mapping ``name -> (N, k)`` drawn as one curve each (e.g. one per layer).
    This is the summary GAN-Geometry and the Local Basis papers draw.
    """
    plt = _pyplot()
    series = spectra if isinstance(spectra, Mapping) else {None: spectra}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, s in series.items():
        s = np.atleast_2d(np.asarray(s, dtype=np.float64))
        idx = np.arange(1, s.shape[1] + 1)
        lo, hi = np.percentile(s, [5, 95], axis=0)
        line, = ax.plot(idx, s.mean(axis=0), label=name)
        if s.shape[0] > 1:
            ax.fill_between(idx, lo, hi, alpha=0.25, color=line.get_color(), linewidth=0)
    if log:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(series) > 1 or None not in series:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_heatmap(matrix, path: str | os.PathLike, title: str = "", labels: Sequence[str] | None = None,
                 colorbar_label: str = "", cmap: str = "viridis") -> str:
    """Draw a square or rectangular matrix (e.g. pairwise Grassmannian distances)."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    im = ax.imshow(m, cmap=cmap, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(colorbar_label)
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize="small")
        ax.set_yticks(range(len(labels)), labels, fontsize="small")
    ax.set_title(title)
    return _save(fig, path)


def plot_lines(x, ys: Mapping[str, object], path: str | os.PathLike, title: str = "",
               xlabel: str = "", ylabel: str = "", bands: Mapping[str, tuple] | None = None,
               log: bool = False, xticklabels: Sequence[str] | None = None) -> str:
    """Line plot of named series over a shared x, with optional (low, high) bands."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, y in ys.items():
        line, = ax.plot(x, np.asarray(y, dtype=np.float64), marker="o", label=name)
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(x, lo, hi, alpha=0.25, color=line.get_color(), linewidth=0)
    if xticklabels is not None:
        ax.set_xticks(list(x), list(xticklabels), rotation=45, ha="right", fontsize="small")
    if log:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(ys) > 1:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_bars(names: Sequence[str], values, path: str | os.PathLike, title: str = "",
              ylabel: str = "", errors=None) -> str:
    """Bar chart of one value per name (e.g. Distortion per layer), optional error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 4.2))
    ax.bar(range(len(names)), np.asarray(values, dtype=np.float64),
           yerr=None if errors is None else np.asarray(errors, dtype=np.float64), capsize=3)
    ax.set_xticks(range(len(names)), list(names), rotation=45, ha="right", fontsize="small")
    ax.set(title=title, ylabel=ylabel)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _ensure_parent(path) -> None:
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def _save(fig, path) -> str:
    _ensure_parent(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)
