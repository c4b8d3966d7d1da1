"""Principal component analysis: GANSpace's global directions (Härkönen et al., NeurIPS 2020).

GANSpace takes the principal axes of a tap's population (StyleGAN2's ``w`` over 10^5 latents,
a BigGAN or FastGAN feature map) as edit directions. Three ways to the same result:

* :func:`pca` on an array ``x: (N, d)`` in memory, the result fields of
  ``sklearn.decomposition.PCA(k)`` (``components_``, ``mean_``, ``explained_variance_``, ...).
  It decomposes the smaller Gram matrix with ``eigh``: ``X_c^T X_c`` (d x d) when N >= d,
  otherwise ``X_c X_c^T`` (N x N) with ``components = X_c^T v / s``. (XLA's CPU SVD of a tall
  matrix allocates an N x N workspace; the Gram route squares the condition number, which
  costs accuracy only on components whose variance is below ``eps * lambda_1``.)
* :func:`pca_from_moments` from float64 :class:`~jaxlatent.ganspace.population.Moments`
  streamed over a population (:func:`population_pca` does both steps).
* :func:`pca_randomized`: a streamed randomized subspace iteration (Halko, Martinsson and
  Tropp 2011, algorithm 4.4) for wide taps whose d x d covariance does not fit: each pass
  regenerates the population chunk by chunk and accumulates ``C Q`` in float64.

Sign convention: each component is flipped so that its entry of largest magnitude is
positive, as ``sklearn.utils.extmath.svd_flip(u_based_decision=False)`` does in sklearn
>= 1.5; our components then equal sklearn's with their signs, not only up to sign.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.ganspace.population import Moments, moments, stream

__all__ = ["PCA", "pca", "pca_from_moments", "population_pca", "pca_randomized", "transform",
           "flip_signs"]


class PCA(NamedTuple):
    """A principal component analysis (a pytree; the fields of sklearn's fitted ``PCA``).

    components: (k, d) principal axes, rows orthonormal, by decreasing variance.
    mean: (d,) population mean. explained_variance: (k,) variance along each axis
    (eigenvalues of the ``n - 1`` covariance). explained_variance_ratio: (k,) share of the
    total variance. singular_values: (k,) ``sqrt((n - 1) * explained_variance)``.
    """

    components: jax.Array
    mean: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array
    singular_values: jax.Array


def flip_signs(components):
    """Flip each row of ``components: (k, d)`` so that its largest-magnitude entry is positive."""
    xp = jnp if isinstance(components, jax.Array) else np
    idx = xp.argmax(xp.abs(components), axis=1)
    sign = xp.sign(xp.take_along_axis(components, idx[:, None], axis=1))
    return components * xp.where(sign == 0, 1, sign).astype(components.dtype)


def _check_k(k, n, d, where):
    if not 1 <= int(k) <= min(n, d):
        raise ValueError(f"{where}: k must lie in [1, {min(n, d)}] for {n} samples of dimension {d}, "
                         f"found {k}")
    return int(k)


@functools.partial(jax.jit, static_argnames=("k",))
def _pca(x, k):
    n, d = x.shape
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    total = jnp.sum(xc * xc) / (n - 1)
    if n >= d:
        evals, evecs = jnp.linalg.eigh(xc.T @ xc)
        evals, comps = evals[::-1][:k], evecs[:, ::-1][:, :k].T
    else:
        evals, evecs = jnp.linalg.eigh(xc @ xc.T)
        evals, v = evals[::-1][:k], evecs[:, ::-1][:, :k]
        comps = (xc.T @ v).T
        comps = comps / jnp.linalg.norm(comps, axis=1, keepdims=True)
        evals = jnp.sum((xc @ comps.T) ** 2, axis=0)  # Rayleigh quotients, as accurate as the axes
    evals = jnp.maximum(evals, 0)
    var = evals / (n - 1)
    return PCA(flip_signs(comps), mean, var, var / total, jnp.sqrt(evals))


def pca(x, *, k: int) -> PCA:
    """Top-k principal components of the rows of ``x``.

    Args:
        x: (N, d) samples (N >= 2); float64 inputs stay float64 when x64 is enabled.
        k: number of components, 1 <= k <= min(N, d).

    Returns:
        :class:`PCA` with components (k, d), mean (d,), explained_variance (k,),
        explained_variance_ratio (k,), singular_values (k,): sklearn's ``PCA(k).fit(x)``
        fields (with its sign convention, see the module docstring).
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"pca: expected samples of shape (N >= 2, d), found {x.shape}")
    return _pca(x, _check_k(k, x.shape[0], x.shape[1], "pca"))


def pca_from_moments(m: Moments, *, k: int) -> PCA:
    """Top-k principal components from float64 population moments (eigh of the scatter, numpy float64).

    Args:
        m: :class:`~jaxlatent.ganspace.population.Moments` of N >= 2 samples of dimension d.
        k: number of components, 1 <= k <= d (and <= N - 1 for nonzero variances).

    Returns:
        :class:`PCA` (numpy float64 fields), as :func:`pca` on the population itself.
    """
    d = m.mean.shape[0]
    _check_k(k, m.count, d, "pca_from_moments")
    evals, evecs = np.linalg.eigh(m.scatter)
    evals, comps = np.maximum(evals[::-1][:k], 0), evecs[:, ::-1][:, :k].T
    var = evals / (m.count - 1)
    total = np.trace(m.scatter) / (m.count - 1)
    return PCA(flip_signs(comps), m.mean, var, var / total, np.sqrt(evals))


def population_pca(f: Callable, latents, *, k: int, chunk_size: int | None = None, mesh=None,
                   use_pmap: bool = False, progress: bool | Callable = False) -> PCA:
    """GANSpace PCA of a tap's population from streamed float64 moments.

    Args:
        f: batched callable ``(n, in) -> (n, ...)`` (e.g. ``model.fn("w")``); outputs flattened.
        latents: (N, in) array-like or :class:`~jaxlatent.ganspace.population.SeedLatents`.
        k: number of components.
        chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`PCA` over the d = prod(tap shape) values; holds a d x d float64 matrix, so for
        wide taps use :func:`pca_randomized`.
    """
    m = moments(f, latents, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    return pca_from_moments(m, k=k)


@jax.jit
def _times_cov(x, count, mean, q):
    """``X_c^T (X_c Q)`` over the first ``count`` rows of x: (chunk, d), centred on ``mean``."""
    mask = (jnp.arange(x.shape[0]) < count).astype(x.dtype)[:, None]
    xc = (x - mean.astype(x.dtype)) * mask
    return xc.T @ (xc @ q.astype(x.dtype)), jnp.sum(xc * xc)


def _pass(f, latents, mean, q, kw):
    acc, total = 0.0, 0.0
    for ch in stream(f, latents, **kw):
        x = jnp.reshape(ch.x, (ch.x.shape[0], -1))
        y, sq = _times_cov(x, jnp.asarray(ch.count, jnp.int32), jnp.asarray(mean), jnp.asarray(q))
        acc = acc + np.asarray(y, np.float64)
        total += float(sq)
    return acc, total


def pca_randomized(f: Callable, latents, *, k: int, key: jax.Array, oversample: int = 10, steps: int = 3,
                   chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                   progress: bool | Callable = False) -> PCA:
    """Top-k principal components by a streamed randomized subspace iteration, for wide taps.

    Never forms the d x d covariance C: a first pass accumulates the mean, then ``steps``
    passes each compute ``Y = C Q`` chunk by chunk (float64 accumulation on the host) and
    re-orthonormalise ``Q = qr(Y)``; a last pass gives the Rayleigh-Ritz projection
    ``Q^T C Q``, whose eigenvectors rotate Q into the principal axes (Halko et al. 2011,
    algorithms 4.4 and 5.3). Memory: one chunk and a few (d, k + oversample) blocks.

    Args:
        f: batched callable ``(n, in) -> (n, ...)``; outputs flattened to d values.
        latents: (N, in) array-like or :class:`~jaxlatent.ganspace.population.SeedLatents`
            (regenerated in every pass, so N latents cost ``steps + 2`` passes of ``f``).
        k: number of components. key: PRNG key of the random start block.
        oversample: extra columns of the subspace (accuracy of the k-th axis grows with the
            gap between eigenvalues k and k + oversample). steps: power iterations.
        chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`PCA` (numpy float64 fields), equal to :func:`pca` to the tolerance the
        spectrum's gaps allow.
    """
    kw = dict(chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    n, mean = 0, None
    for ch in stream(f, latents, **kw):
        x = np.asarray(jnp.reshape(ch.x, (ch.x.shape[0], -1))[:ch.count], np.float64)
        s = x.sum(axis=0)
        mean, n = (s if mean is None else mean + s), n + ch.count
    mean = mean / n
    d = mean.shape[0]
    k = _check_k(k, n, d, "pca_randomized")
    width = min(k + int(oversample), d, n)
    q = np.linalg.qr(np.asarray(jax.random.normal(key, (d, width)), np.float64))[0]
    for _ in range(int(steps)):
        y, _ = _pass(f, latents, mean, q, kw)
        q = np.linalg.qr(y)[0]
    y, total = _pass(f, latents, mean, q, kw)
    evals, v = np.linalg.eigh(q.T @ y)
    evals, comps = np.maximum(evals[::-1][:k], 0), (q @ v[:, ::-1][:, :k]).T
    var = evals / (n - 1)
    return PCA(flip_signs(comps), mean, var, var / (total / (n - 1)), np.sqrt(evals))


def transform(result, x):
    """Component activations of samples (sklearn's ``PCA.transform`` without whitening, ``FastICA.transform``).

    Args:
        result: a :class:`PCA` or :class:`~jaxlatent.ganspace.ica.ICA` (components (k, d), mean (d,)).
        x: (N, ...) samples, flattened to (N, d).

    Returns:
        (N, k) activations ``(x - mean) @ components^T``.
    """
    x = jnp.asarray(x)
    x = x.reshape(x.shape[0], -1)
    return (x - jnp.asarray(result.mean, x.dtype)) @ jnp.asarray(result.components, x.dtype).T
