"""Statistics of metric tensors over many latents: spectra, anisotropy, homogeneity, global axes.

Wang & Ponce, "The Geometry of Deep Generative Image Models and its Applications" (ICLR 2021),
sections 3-4. All functions take :class:`jaxlatent.geometry.metric.Metric` eigenpairs at N
latents (the whole spectrum, or the top k of it):

* :func:`spectrum_summary`: the mean spectrum and its 5-95 percentile band (their figure 1);
* :func:`anisotropy`: how many eigen-dimensions hold 99 % and 99.9 % of the trace, and the
  power-law slope of the spectrum (the space is anisotropic when few dimensions hold most of it);
* :func:`hessian_corr` and :func:`vector_hessian_corr`: homogeneity, the same quantities as
  GAN-Geometry's ``compute_hess_corr`` and ``compute_vector_hess_corr``; :func:`offdiag_summary`
  their off-diagonal mean and median;
* :func:`average_metric`: the metric averaged over latents, whose eigenvectors are global axes
  (their ``average_H``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxlatent.geometry.metric import Metric, metric_matrix
from jaxlatent.localbasis.basis import fix_signs


class SpectrumSummary(NamedTuple):
    """Spectrum over N latents, ordered by the mean (descending).

    mean: (k,) mean of ``|l_i|``; low, high: (k,) its 5th and 95th percentiles per index.
    """

    mean: jax.Array
    low: jax.Array
    high: jax.Array


class Anisotropy(NamedTuple):
    """How concentrated each spectrum is.

    dims: (N, F) number of leading eigenvalues whose sum reaches each fraction of the trace.
    fractions: (F,) the fractions (default 0.99 and 0.999).
    slope: (N,) least-squares slope of ``log10 l_i`` on ``log10 i`` over the positive
      eigenvalues (a power law ``l_i ~ i^slope``; more negative decays faster).
    """

    dims: jax.Array
    fractions: jax.Array
    slope: jax.Array


class HessianCorr(NamedTuple):
    """Homogeneity matrices (N, N); entry [i, j] compares latent i's eigenvectors with H_j (not symmetric).

    log: correlation of ``log10 diag(V_i^T H_j V_i)`` with ``log10 l_j`` over the pairs where
      both are finite (positive).
    lin: the same correlation without logarithms.
    """

    log: jax.Array
    lin: jax.Array


@jax.jit
def spectrum_summary(eigenvalues: jax.Array) -> SpectrumSummary:
    """Mean spectrum and 5-95 percentile band of ``|l|`` over latents (Wang & Ponce 2021, fig. 1).

    Args:
      eigenvalues: (N, k), one spectrum per latent.

    Returns:
      :class:`SpectrumSummary` of (k,) arrays, ordered by decreasing mean.
    """
    ev = jnp.abs(jnp.asarray(eigenvalues))
    mean = jnp.nanmean(ev, axis=0)
    low, high = jnp.percentile(ev, jnp.array([5.0, 95.0]), axis=0)
    order = jnp.argsort(-mean)
    return SpectrumSummary(mean[order], low[order], high[order])


@functools.partial(jax.jit, static_argnames=("fractions",))
def anisotropy(eigenvalues: jax.Array, *, fractions: Sequence[float] = (0.99, 0.999)) -> Anisotropy:
    """Eigen-dimensions holding given fractions of the trace, and the spectrum's decay.

    Args:
      eigenvalues: (N, k), descending (negative rounding noise counts as 0).
      fractions: fractions of the trace (sum of the eigenvalues); a tuple (a static argument).

    Returns:
      :class:`Anisotropy`: dims (N, F), fractions (F,), slope (N,).
    """
    ev = jnp.maximum(jnp.asarray(eigenvalues), 0)
    frac = jnp.asarray(tuple(fractions), ev.dtype)
    cum = jnp.cumsum(ev, axis=1) / jnp.sum(ev, axis=1, keepdims=True)
    # the first index where the cumulative share reaches the fraction, counted from 1
    dims = jnp.sum(cum[:, None, :] < frac[None, :, None] * (1 - 1e-12), axis=2) + 1
    idx = jnp.log10(jnp.arange(1, ev.shape[1] + 1, dtype=ev.dtype))
    ok = ev > 0
    logv = jnp.log10(jnp.where(ok, ev, 1))
    cnt = jnp.sum(ok, axis=1)
    mx = jnp.sum(jnp.where(ok, idx, 0), axis=1) / cnt
    my = jnp.sum(jnp.where(ok, logv, 0), axis=1) / cnt
    dx = jnp.where(ok, idx - mx[:, None], 0)
    slope = jnp.sum(dx * (logv - my[:, None]), axis=1) / jnp.sum(dx * dx, axis=1)
    return Anisotropy(dims.astype(jnp.int32), frac, slope)


def _pearson(x, y, mask):
    """Pearson correlation over the last axis, counting only entries where ``mask`` holds."""
    w = mask.astype(x.dtype)
    n = jnp.sum(w, axis=-1, keepdims=True)
    xc = (x - jnp.sum(w * x, axis=-1, keepdims=True) / n) * w
    yc = (y - jnp.sum(w * y, axis=-1, keepdims=True) / n) * w
    return jnp.sum(xc * yc, axis=-1) / jnp.sqrt(jnp.sum(xc * xc, axis=-1) * jnp.sum(yc * yc, axis=-1))


def _safe_log10(x):
    ok = jnp.isfinite(x) & (x > 0)
    return jnp.log10(jnp.where(ok, x, 1)), ok


@jax.jit
def hessian_corr(metric: Metric) -> HessianCorr:
    """Homogeneity: how well latent i's eigenvectors predict H_j's spectrum (GAN-Geometry ``compute_hess_corr``).

    For every pair (i, j): ``a = diag(V_i^T H_j V_i)``, the metric H_j measured along latent
    i's eigenvectors, with ``H_j = V_j diag(l_j) V_j^T`` rebuilt from the eigenpairs; entry
    [i, j] is the correlation of ``a`` with ``l_j`` (on log10 scale, over the entries where
    both logarithms are finite; and on linear scale). A homogeneous space has entries near 1.

    Args:
      metric: :class:`Metric` with eigenvalues (N, k) and eigenvectors (N, in, k).

    Returns:
      :class:`HessianCorr` of two (N, N) matrices (diagonal 1 up to rounding).
    """
    vals, vecs = metric.eigenvalues, metric.eigenvectors
    log_l, ok_l = _safe_log10(vals)                             # (N, k)

    def row(vi):                                                # vi: (in, k)
        inner = jnp.einsum("ua,jub->jab", vi, vecs)             # (N, k_i, k_j): V_i^T V_j
        a = jnp.einsum("jab,jb->ja", inner * inner, vals)       # (N, k): diag(V_i^T H_j V_i)
        log_a, ok_a = _safe_log10(a)
        lin = _pearson(a, vals, jnp.ones_like(ok_a))
        log = _pearson(log_a, log_l, ok_a & ok_l)
        return log, lin

    log, lin = jax.lax.map(row, vecs)
    return HessianCorr(log, lin)


@jax.jit
def vector_hessian_corr(metric: Metric) -> jax.Array:
    """Correlation of the flattened metrics H_i and H_j (GAN-Geometry ``compute_vector_hess_corr``).

    Args:
      metric: :class:`Metric` with eigenvalues (N, k) and eigenvectors (N, in, k); H is
        rebuilt from them (:func:`jaxlatent.geometry.metric.metric_matrix`).

    Returns:
      (N, N) symmetric matrix of Pearson correlations over the ``in * in`` entries.
    """
    h = jnp.reshape(metric_matrix(metric), (metric.eigenvalues.shape[0], -1))
    hc = h - jnp.mean(h, axis=1, keepdims=True)
    hc = hc / jnp.linalg.norm(hc, axis=1, keepdims=True)
    return hc @ hc.T


@jax.jit
def offdiag_summary(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and median of the off-diagonal entries of an (N, N) matrix, ignoring NaN.

    Args:
      matrix: (N, N), e.g. :attr:`HessianCorr.log`.

    Returns:
      (mean, median), two scalars: the summary GAN-Geometry prints for its homogeneity matrices.
    """
    m = jnp.asarray(matrix)
    off = jnp.where(jnp.eye(m.shape[0], dtype=bool), jnp.nan, m)
    return jnp.nanmean(off), jnp.nanmedian(off)


@jax.jit
def average_metric(metric: Metric) -> Metric:
    """The metric averaged over latents and its eigenpairs: global axes (GAN-Geometry ``average_H``).

    Args:
      metric: :class:`Metric` at N latents (eigenpairs (N, k), (N, in, k)).

    Returns:
      :class:`Metric` with a batch of one: eigenvalues (1, in) descending, eigenvectors
      (1, in, in) (signs as :func:`jaxlatent.geometry.metric.metric_tensor`), matrix (1, in, in).
    """
    h = jnp.mean(metric_matrix(metric), axis=0)
    h = 0.5 * (h + h.T)
    vals, vecs = jnp.linalg.eigh(h)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    vecs = fix_signs(vecs, vecs)[1]
    return Metric(vals[None], vecs[None], h[None])
