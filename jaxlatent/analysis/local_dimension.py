"""Local dimension of an intermediate latent space (seed 000).

Choi, Hwang, Cho and Kang, "Analyzing the Latent Space of GAN through Local
Dimension Estimation" (arXiv 2205.13182) estimate, at each latent, the number
of directions along which a layer's output really varies: the rank of a
*denoised* local model of the latent manifold (their Figure 1). The copies of
the paper within reach do not show their exact rule, so the rule here is our
documented choice (``docs/methods-local-dimension.md``): the tap's Jacobian
``J(z)`` is read as signal plus noise and its singular values are cut at the
Gavish-Donoho optimal hard threshold for an unknown noise level,

    tau(z) = omega(beta) * median(sigma(z)),   beta = min(out, in) / max(out, in),
    dim(z) = #{ i : sigma_i(z) > tau(z) },

Gavish and Donoho, "The Optimal Hard Threshold for Singular Values is
4/sqrt(3)", IEEE Trans. Inf. Theory 60(8), 2014, eq. (4) and Section III.E.
``omega(beta) = lambda*(beta) / sqrt(mu_beta)`` with ``mu_beta`` the median of
the Marchenko-Pastur law; ``beta`` depends on shapes only, so it is computed
once in float64 outside any trace.

The rule assumes that most singular values form a noise bulk: it needs many
of them (tens or more) and a signal rank well under ``min(out, in) / 2``. For
tiny or noiseless Jacobians pass ``threshold_fn=relative_threshold(rtol)``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LocalDimension",
    "LayerDimensions",
    "marchenko_pastur_median",
    "optimal_coefficient",
    "optimal_coefficient_approx",
    "optimal_threshold",
    "optimal_rank",
    "relative_threshold",
    "jacobian_spectrum",
    "local_dimension",
    "layer_dimensions",
]

ThresholdFn = Callable[[jax.Array, tuple], jax.Array]


class LocalDimension(NamedTuple):
    """Per-latent local dimension estimates (a pytree).

    dimension: (N,) int32, the estimated local dimension at each latent.
    threshold: (N,) the singular-value cut used at each latent.
    singular_values: (N, m) the tap Jacobian's singular values, descending,
        ``m = min(out, in)``.
    """

    dimension: jax.Array
    threshold: jax.Array
    singular_values: jax.Array


class LayerDimensions(NamedTuple):
    """Summary of the local dimension of one tap over a population of latents.

    The paper's per-layer table for the mapping network reports these
    statistics of the per-latent estimates.
    """

    mean: float
    std: float
    median: float
    min: int
    max: int
    dimension: np.ndarray  # (N,) the per-latent estimates


@functools.lru_cache(maxsize=256)
def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law with aspect ratio ``0 < beta <= 1`` (unit variance).

    The law of the eigenvalues of ``X X^T / n`` for an ``m x n`` matrix of iid
    unit-variance entries, ``beta = m / n``; Gavish and Donoho's ``mu_beta``.
    """
    from scipy import integrate, optimize

    beta = float(beta)
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"marchenko_pastur_median: beta must lie in (0, 1], found {beta}")
    lo, hi = (1 - math.sqrt(beta)) ** 2, (1 + math.sqrt(beta)) ** 2

    def density(x):
        return math.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * math.pi * beta * x)

    def excess(x):
        return integrate.quad(density, lo, x, limit=200)[0] - 0.5

    return float(optimize.brentq(excess, lo, hi, xtol=1e-13))


def optimal_coefficient(beta: float) -> float:
    """Gavish-Donoho ``omega(beta)`` for an unknown noise level (exact, float64).

    ``tau = omega(beta) * median singular value``; ``omega(1) = 2.858...``.
    """
    beta = float(beta)
    lam = math.sqrt(2 * (beta + 1) + 8 * beta / ((beta + 1) + math.sqrt(beta**2 + 14 * beta + 1)))
    return lam / math.sqrt(marchenko_pastur_median(beta))


def optimal_coefficient_approx(beta):
    """Gavish and Donoho's cubic fit ``0.56 b^3 - 0.95 b^2 + 1.82 b + 1.43`` to ``omega(beta)``."""
    return 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43


def optimal_threshold(singular_values: jax.Array, shape: tuple) -> jax.Array:
    """Optimal hard threshold for the singular values of ``shape``-d matrices, unknown noise.

    singular_values: (..., m) every singular value of each matrix, ``m = min(shape)``.
    shape: ``(out, in)``, the matrix shape (static). Returns (...,) thresholds.
    """
    m = min(shape)
    if singular_values.shape[-1] != m:
        raise ValueError(
            f"optimal_threshold needs all {m} singular values of a {shape[0]}x{shape[1]} matrix, "
            f"found {singular_values.shape[-1]} (the median rule cannot work from a top-k spectrum)"
        )
    omega = optimal_coefficient(m / max(shape))
    return omega * jnp.median(singular_values, axis=-1)


def relative_threshold(rtol: float) -> ThresholdFn:
    """A numerical-rank cut ``rtol * sigma_max``, for small or noiseless Jacobians."""

    def threshold(singular_values, shape):
        return rtol * jnp.max(singular_values, axis=-1)

    return threshold


def optimal_rank(singular_values: jax.Array, shape: tuple) -> jax.Array:
    """Number of singular values above :func:`optimal_threshold`: (..., m) -> (...,) int32."""
    tau = optimal_threshold(singular_values, shape)
    return jnp.sum(singular_values > tau[..., None], axis=-1).astype(jnp.int32)


def jacobian_spectrum(f, z: jax.Array, keep: int | None = 0, chunk_size: int | None = None,
                      mode: str = "auto"):
    """Singular values (and optionally the leading left singular vectors) of the tap Jacobian.

    z: (N, in). Returns ``(singular_values (N, m), basis (N, out, keep) or None, shape)``
    where ``shape = (out, in)``. ``keep=0`` skips the vectors, ``keep=None`` keeps all ``m``.
    Work runs ``chunk_size`` latents at a time so that memory is bounded by the chunk,
    not by N (an image tap's Jacobian is ``out = C*H*W`` rows per latent).
    """
    from jaxlatent.analysis.jacobian import check_latents, jacobian

    z = check_latents(z, "jacobian_spectrum")
    n = z.shape[0]
    step = n if chunk_size is None else max(1, int(chunk_size))
    values, bases, shape = [], [], None
    # our own loop over chunks (not jacobian's): only the spectrum and `keep` vectors of a
    # chunk outlive it, so memory is O(chunk * out * in + N * out * keep)
    for start in range(0, n, step):
        jac = jacobian(f, z[start : start + step], mode=mode)
        shape = tuple(jac.shape[1:])
        if keep == 0:
            values.append(_singular_values(jac))
        else:
            lb = _svd(jac)
            values.append(lb.singular_values)
            bases.append(lb.basis if keep is None else lb.basis[..., :keep])
    s_all = jnp.concatenate(values)
    return s_all, (jnp.concatenate(bases) if bases else None), shape


@jax.jit
def _singular_values(jac):
    from jaxlatent.analysis.grassmann import singular_values

    return singular_values(jac)


@jax.jit
def _svd(jac):
    from jaxlatent.analysis.local_basis import svd_triplets

    # the Local Basis's own SVD and sign convention, so bases match local_basis()
    return svd_triplets(jac)


def dimension_from_spectrum(singular_values: jax.Array, shape: tuple,
                            threshold_fn: ThresholdFn = optimal_threshold) -> LocalDimension:
    """Estimates from precomputed spectra: (N, m) singular values of (out, in) Jacobians."""
    tau = threshold_fn(singular_values, shape)
    dim = jnp.sum(singular_values > tau[..., None], axis=-1).astype(jnp.int32)
    return LocalDimension(dimension=dim, threshold=tau, singular_values=singular_values)


def local_dimension(f, z: jax.Array, threshold_fn: ThresholdFn = optimal_threshold,
                    chunk_size: int | None = None, mode: str = "auto") -> LocalDimension:
    """Local dimension of the tap ``f`` at each latent (seed 000's estimate; our rule, see module doc).

    f: batched callable ``(N, in) -> (N, *out_shape)`` (outputs flattened in C order).
    z: (N, in) latents. threshold_fn: ``(singular_values (N, m), (out, in)) -> (N,)``,
    default the Gavish-Donoho optimal hard threshold for unknown noise.
    Returns :class:`LocalDimension` with ``dimension`` (N,), ``threshold`` (N,) and
    ``singular_values`` (N, m).
    """
    s, _, shape = jacobian_spectrum(f, z, keep=0, chunk_size=chunk_size, mode=mode)
    return dimension_from_spectrum(s, shape, threshold_fn)


def summarize_dimensions(dimension) -> LayerDimensions:
    """Mean, std, median, min and max of per-latent estimates (N,)."""
    d = np.asarray(dimension)
    return LayerDimensions(mean=float(d.mean()), std=float(d.std()), median=float(np.median(d)),
                           min=int(d.min()), max=int(d.max()), dimension=d)


def layer_dimensions(model_fns: Mapping[str, Callable], z: jax.Array,
                     threshold_fn: ThresholdFn = optimal_threshold, chunk_size: int | None = None,
                     mode: str = "auto", progress: Callable | None = None) -> dict[str, LayerDimensions]:
    """Per-layer local dimension over a population: the paper's table for the mapping network.

    model_fns: ``name -> f`` (e.g. ``{t: model.fn(t) for t in ["mapping.fc0", ..., "w"]}``).
    z: (N, in) latents shared by every tap. ``progress`` wraps the tap iteration
    (e.g. ``tqdm``). Returns ``name -> LayerDimensions`` in the order given.
    """
    items = list(model_fns.items())
    if progress is not None:
        items = progress(items)
    out = {}
    for name, fn in items:
        est = local_dimension(fn, z, threshold_fn=threshold_fn, chunk_size=chunk_size, mode=mode)
        out[name] = summarize_dimensions(est.dimension)
    return out
