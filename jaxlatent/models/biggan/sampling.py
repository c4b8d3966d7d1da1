"""BigGAN latents and class vectors as the package draws and builds them.

``pytorch-pretrained-biggan`` draws latents from a standard normal truncated to [-2, 2]
(``scipy.stats.truncnorm`` with a ``numpy.random.RandomState``), cast to float32 and multiplied by
the truncation; :func:`truncated_noise_sample` reproduces those draws bit for bit from a seed.
Classes are one-hot rows of ``num_classes`` (ImageNet: 1000); :func:`class_vectors` turns an
index, a list of indices, one-hot or dense vectors into that form.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy.stats import truncnorm

__all__ = ["truncated_noise_sample", "latents_from_seeds", "latent_std", "class_vectors"]


def truncated_noise_sample(batch_size: int = 1, dim_z: int = 128, truncation: float = 1.0,
                           seed: int | None = None) -> np.ndarray:
    """Latents ``truncation * TN(0, 1; [-2, 2])`` as the package's ``truncated_noise_sample``.

    Brock et al. 2019, section 3.1 (the truncation trick): BigGAN's latents are drawn from a
    truncated normal and scaled by the truncation, which also selects the batch-norm statistics
    (pass the same value to ``model.generate``).

    Args:
      batch_size: N. dim_z: latent size. truncation: the scale, in (0, 1].
      seed: seed of ``numpy.random.RandomState``; None draws from fresh entropy (not reproducible).

    Returns:
      z: (batch_size, dim_z) float32, equal to the package's draw for the same seed.
    """
    state = None if seed is None else np.random.RandomState(seed)
    values = truncnorm.rvs(-2, 2, size=(batch_size, dim_z), random_state=state).astype(np.float32)
    return truncation * values


def latents_from_seeds(seeds: Iterable[int], dim_z: int, truncation: float = 1.0) -> np.ndarray:
    """One latent per seed: row i is ``truncated_noise_sample(1, dim_z, truncation, seeds[i])``.

    Args:
      seeds: integer seeds. dim_z: latent size. truncation: the scale.

    Returns:
      z: (len(seeds), dim_z) float32.
    """
    rows = [truncated_noise_sample(1, dim_z, truncation, int(s))[0] for s in seeds]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim_z), np.float32)


def latent_std(truncation: float = 1.0) -> float:
    """Standard deviation of each coordinate of :func:`truncated_noise_sample`'s draws:
    ``truncation * sd(TN(0, 1; [-2, 2]))`` = ``truncation * 0.8796``; the standard unit in which
    interventions on BigGAN's latent are measured (a value of ``2 / 0.8796`` units reaches the
    truncation bound)."""
    return float(truncation) * float(truncnorm.std(-2, 2))


def class_vectors(c, num_classes: int, batch: int | None = None) -> np.ndarray:
    """Class vectors ``(N or 1, num_classes)`` float32 from the forms GANSpace and GAN-Geometry pass.

    Args:
      c: an integer class index (one class for every sample), integer indices (N,), a one-hot
        or dense vector (num_classes,) shared by every sample, or vectors (N, num_classes).
        Integer dtypes are indices; floating dtypes are vectors.
      num_classes: the generator's class count.
      batch: N, when known: checked against the rows of ``c``.

    Returns:
      float32 ``(1, num_classes)`` for a shared class, else ``(N, num_classes)``.
    """
    if c is None:
        raise ValueError("BigGAN is class-conditional: pass c= (a class index, indices (N,), "
                         f"or one-hot / dense class vectors (N, {num_classes}))")
    arr = np.asarray(c)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"BigGAN class: expected integer indices or float class vectors; found dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.ndim > 1:
            raise ValueError(f"BigGAN class indices must be a scalar or (N,); found shape {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"BigGAN class index out of range [0, {num_classes}): found {arr.ravel()[:8]}")
        vectors = np.eye(num_classes, dtype=np.float32)[arr.reshape(-1)]
    else:
        if arr.ndim not in (1, 2) or arr.shape[-1] != num_classes:
            raise ValueError(f"BigGAN class vectors must have shape ({num_classes},) or (N, {num_classes}); "
                             f"found {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("BigGAN class vectors hold NaN or infinite values")
        vectors = arr.reshape(-1, num_classes).astype(np.float32)
    if batch is not None and vectors.shape[0] not in (1, batch):
        raise ValueError(f"BigGAN class: {vectors.shape[0]} classes for a batch of {batch} latents "
                         "(give one class for all, or one per latent)")
    return vectors
