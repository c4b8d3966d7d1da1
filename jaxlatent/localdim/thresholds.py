"""Where a singular-value spectrum stops being signal: the local-dimension rules.

Every threshold function here maps the spectra ``s: (..., m)`` of ``(out, in)`` matrices
(``m = min(out, in)``, all ``m`` values, descending) to one threshold per matrix; the values
above it count as signal. Local dimension (:mod:`jaxlatent.localdim.dimension`) picks one
by name with :func:`threshold_rule`:

* ``"paper"`` (the default, :func:`gavish_donoho_threshold`): the optimal hard threshold for an
  unknown noise level (Gavish and Donoho, "The Optimal Hard Threshold for Singular Values is
  4/sqrt(3)", IEEE Trans. Inf. Theory 60(8), 2014, eq. (4) and Section III.E),
  ``tau = omega(beta) * median(s)`` with the median over **all** ``m`` values,
  ``beta = m / max(out, in)``, ``omega(beta) = lambda*(beta) / sqrt(mu_beta)`` and ``mu_beta``
  the median of the Marchenko-Pastur law: the count Choi et al.'s denoised local dimension uses;
* ``"numerical"`` (:func:`rank_tolerance`): the numerical-rank tolerance
  ``s_1 * max(out, in) * eps`` of the spectrum's dtype (the rule of ``numpy.linalg.matrix_rank``):
  a value below it is float rounding. Every rule is floored by it: rounding never counts;
* ``"bulk"`` (:func:`optimal_threshold`): Gavish-Donoho where the spectrum shows the
  Marchenko-Pastur noise bulk its median estimate assumes (:func:`noise_bulk`), the numerical
  rank elsewhere;
* a relative cut ``rtol`` (:func:`relative_threshold`): values above ``rtol * s_1``.

``beta`` depends on shapes only, so omega and the Marchenko-Pastur tables are computed once in
float64 outside any trace. ``docs/methods-local-dimension.md`` gives the rules with worked
examples.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, optimize

ThresholdFn = Callable[[jax.Array, tuple], jax.Array]

#: The named local-dimension rules of :func:`threshold_rule`; the first is the default.
RULES = ("paper", "bulk", "numerical")

# Kolmogorov-Smirnov critical value at the 5% level is KS_COEFFICIENT / sqrt(count)
KS_COEFFICIENT = 1.36


@functools.lru_cache(maxsize=256)
def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law (unit variance), Gavish and Donoho's ``mu_beta``.

    The law of the eigenvalues of ``X X^T / n`` for an ``m x n`` matrix ``X`` of iid
    unit-variance entries, ``beta = m / n``.

    Args:
      beta: aspect ratio, ``0 < beta <= 1``.

    Returns:
      The median eigenvalue, a float.
    """
    beta = float(beta)
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"marchenko_pastur_median: beta must lie in (0, 1], found {beta}")
    lo, hi = (1 - math.sqrt(beta)) ** 2, (1 + math.sqrt(beta)) ** 2

    def density(x):  # 0 at x = 0 (the lower edge when beta = 1: older scipy's quad evaluates it)
        if x <= 0.0:
            return 0.0
        return math.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * math.pi * beta * x)

    def excess(x):
        return integrate.quad(density, lo, x, limit=200)[0] - 0.5

    return float(optimize.brentq(excess, lo, hi, xtol=1e-13))


@functools.lru_cache(maxsize=256)
def _marchenko_pastur_table(beta: float, points: int = 2049) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)): the CDF of the singular values ``x = sqrt(lambda)``, lambda Marchenko-Pastur(beta)."""
    lo, hi = abs(1 - math.sqrt(beta)), 1 + math.sqrt(beta)
    # Chebyshev spacing: dense at both edges, where the density has its square-root behaviour;
    # in x the density sqrt((hi^2 - x^2)(x^2 - lo^2)) / (pi beta x) stays finite at beta = 1
    x = lo + (hi - lo) * (1 - np.cos(np.pi * np.linspace(0.0, 1.0, points))) / 2
    dens = np.sqrt(np.maximum((hi**2 - x**2) * (x**2 - lo**2), 0.0)) / (np.pi * beta * np.maximum(x, 1e-300))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x))])
    return x, cdf / cdf[-1]


def optimal_coefficient(beta: float) -> float:
    """Gavish-Donoho ``omega(beta)`` for an unknown noise level (exact, float64).

    ``tau = omega(beta) * median singular value``; ``omega(1) = 2.858...``.

    Args:
      beta: aspect ratio ``min(out, in) / max(out, in)``.

    Returns:
      omega, a float.
    """
    beta = float(beta)
    lam = math.sqrt(2 * (beta + 1) + 8 * beta / ((beta + 1) + math.sqrt(beta**2 + 14 * beta + 1)))
    return lam / math.sqrt(marchenko_pastur_median(beta))


def optimal_coefficient_approx(beta):
    """Gavish and Donoho's cubic fit ``0.56 b^3 - 0.95 b^2 + 1.82 b + 1.43`` to ``omega(beta)``.

    Args:
      beta: aspect ratio(s), a float or an array.

    Returns:
      The fit, same shape as ``beta``; within 0.02 of :func:`optimal_coefficient`.
    """
    return 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43


def _check_spectrum(singular_values, shape, where):
    m = min(shape)
    if singular_values.shape[-1] != m:
        raise ValueError(
            f"{where} needs all {m} singular values of a {shape[0]}x{shape[1]} matrix, "
            f"found {singular_values.shape[-1]} (the median rule cannot work from a top-k spectrum)")
    return m, min(shape) / max(shape)


def rank_tolerance(singular_values: jax.Array, shape: tuple) -> jax.Array:
    """The numerical-rank tolerance ``s_1 * max(out, in) * eps`` (``numpy.linalg.matrix_rank``).

    Args:
      singular_values: (..., m) singular values; ``eps`` is their dtype's machine epsilon.
      shape: ``(out, in)``, the matrix shape (static).

    Returns:
      (...,) tolerances.
    """
    eps = float(jnp.finfo(singular_values.dtype).eps)
    return jnp.max(singular_values, axis=-1) * (max(shape) * eps)


def _median_above_tolerance(s, tol):
    """Median of the values above ``tol`` of descending spectra ``s (..., m)``; (...,) and the count."""
    count = jnp.sum(s > tol[..., None], axis=-1)

    def pick(i):
        return jnp.take_along_axis(s, jnp.clip(i, 0, s.shape[-1] - 1)[..., None], axis=-1)[..., 0]

    return 0.5 * (pick((count - 1) // 2) + pick(count // 2)), count


def gavish_donoho_threshold(singular_values: jax.Array, shape: tuple) -> jax.Array:
    """The Gavish-Donoho optimal hard threshold for an unknown noise level: the ``"paper"`` rule.

    ``tau = omega(beta) * median(s)`` (Gavish and Donoho 2014, Section III.E), the median over
    all ``m`` values as they state it. On an exactly rank-r spectrum with ``r < m / 2`` the
    median is float rounding, so ``tau`` falls below :func:`rank_tolerance` and the tolerance
    floor of local dimension gives the numerical rank; with ``r > m / 2`` the median is signal
    and the rule undercounts (their model has ``r << m``; docs/methods-local-dimension.md).

    Args:
      singular_values: (..., m) every singular value of each matrix, ``m = min(shape)``.
      shape: ``(out, in)``, the matrix shape (static).

    Returns:
      (...,) thresholds.
    """
    _, beta = _check_spectrum(singular_values, shape, "gavish_donoho_threshold")
    return optimal_coefficient(beta) * jnp.median(singular_values, axis=-1)


def noise_bulk(singular_values: jax.Array, shape: tuple) -> jax.Array:
    """Whether each spectrum shows the noise bulk that the Gavish-Donoho median estimate assumes.

    Gavish and Donoho (2014, Section III.E) estimate the noise level from the median singular
    value: the estimate holds when the spectrum is a Marchenko-Pastur bulk (iid noise over the
    whole matrix) with a few signal values above it, the signal only displacing the largest
    noise values. Two checks:

    * no value lies at or below :func:`rank_tolerance`: iid noise leaves no singular value at
      the level of float rounding, so an exactly rank-deficient spectrum is not of this model;
    * the values at or below :func:`gavish_donoho_threshold` (``k`` of them, at least 2) sit
      where the Marchenko-Pastur law, scaled to the noise level the median estimates, puts the
      bottom of an ``m``-value spectrum: the Kolmogorov-Smirnov distance between the two is at
      most ``1.36 / sqrt(k)`` (the test's 5% critical value; a true bulk is closer still, since
      random-matrix eigenvalues are more regular than independent samples).

    A smooth decay over decades (a deep network's Jacobian), an equal-valued spectrum (an
    isometry) and a spectrum whose median is signal fail the second check.

    Args:
      singular_values: (..., m) every singular value of each matrix, ``m = min(shape)``.
      shape: ``(out, in)``, the matrix shape (static).

    Returns:
      (...,) bool.
    """
    m, beta = _check_spectrum(singular_values, shape, "noise_bulk")
    s = -jnp.sort(-singular_values, axis=-1)
    # the median of the values above rounding: with a value at rounding level (count < m) there
    # is no bulk anyway, and the distance below then measures the values that are not rounding
    median, count = _median_above_tolerance(s, rank_tolerance(s, shape))
    tau = optimal_coefficient(beta) * median
    above = jnp.sum(s > tau[..., None], axis=-1)
    xs, cdf = _marchenko_pastur_table(beta)
    scale = median / math.sqrt(marchenko_pastur_median(beta))
    model = jnp.interp(s / jnp.where(scale > 0, scale, 1)[..., None], jnp.asarray(xs, s.dtype),
                       jnp.asarray(cdf, s.dtype))
    idx = jnp.arange(m)
    rank_up = (count[..., None] - idx).astype(s.dtype)           # ascending rank among the c values
    c = jnp.maximum(count, 1)[..., None].astype(s.dtype)
    gap = jnp.maximum(jnp.abs(model - rank_up / c), jnp.abs(model - (rank_up - 1) / c))
    candidate = (idx >= above[..., None]) & (idx < count[..., None])
    distance = jnp.max(jnp.where(candidate, gap, 0.0), axis=-1)
    k = count - above
    critical = KS_COEFFICIENT / jnp.sqrt(jnp.maximum(k, 1).astype(s.dtype))
    return (count == m) & (k >= 2) & (distance <= critical)


def optimal_threshold(singular_values: jax.Array, shape: tuple) -> jax.Array:
    """The ``"bulk"`` rule: Gavish-Donoho where the spectrum shows a noise bulk, else the numerical rank.

    :func:`gavish_donoho_threshold` where :func:`noise_bulk` holds, :func:`rank_tolerance`
    elsewhere (every value that is not rounding then counts: the numerical rank). Exact on
    exactly low-rank taps of any rank; on a trained network's smoothly decaying spectrum (no
    bulk) it gives the numerical rank, near full.

    Args:
      singular_values: (..., m) every singular value of each matrix, ``m = min(shape)``.
      shape: ``(out, in)``, the matrix shape (static).

    Returns:
      (...,) thresholds.
    """
    _check_spectrum(singular_values, shape, "optimal_threshold")
    return jnp.where(noise_bulk(singular_values, shape), gavish_donoho_threshold(singular_values, shape),
                     rank_tolerance(singular_values, shape))


def relative_threshold(rtol: float) -> ThresholdFn:
    """A numerical-rank cut at ``rtol * s_1``, for small or noiseless Jacobians.

    Args:
      rtol: fraction of the largest singular value.

    Returns:
      A threshold function ``(singular_values (..., m), shape) -> (...,)``.
    """

    def threshold(singular_values, shape):
        return rtol * jnp.max(singular_values, axis=-1)

    return threshold


def threshold_rule(rule) -> tuple[str, ThresholdFn]:
    """The local-dimension rule ``rule`` as ``(name, threshold function)``.

    Args:
      rule: ``"paper"`` (:func:`gavish_donoho_threshold`), ``"bulk"`` (:func:`optimal_threshold`),
        ``"numerical"`` (:func:`rank_tolerance`), a relative cut ``rtol`` in (0, 1) as a number,
        a numeric string or ``"rtol=R"`` (:func:`relative_threshold`), or any threshold function
        ``(singular_values (..., m), (out, in)) -> (...,)``.

    Returns:
      ``(name, fn)``: ``name`` is one of :data:`RULES`, ``"rtol=R"``, or for another function its
      ``__name__`` (``"custom"`` without one); ``threshold_rule(name)`` gives the rule back for
      every name but the last kind.
    """
    named = {"paper": gavish_donoho_threshold, "bulk": optimal_threshold, "numerical": rank_tolerance}
    if isinstance(rule, str):
        if rule in named:
            return rule, named[rule]
        text = rule[len("rtol="):] if rule.startswith("rtol=") else rule
        try:
            rtol = float(text)
        except ValueError:
            raise ValueError(f"local dimension rule: expected one of {list(RULES)}, a relative cut in (0, 1) "
                             f"or a threshold function, found {rule!r}") from None
        return threshold_rule(rtol)
    if isinstance(rule, (int, float, np.floating, np.integer)) and not isinstance(rule, bool):
        if not 0.0 < float(rule) < 1.0:
            raise ValueError(f"local dimension rule: a relative cut rtol must lie in (0, 1), found {rule}")
        return f"rtol={float(rule):g}", relative_threshold(float(rule))
    if callable(rule):
        for name, fn in named.items():
            if rule is fn:
                return name, fn
        return getattr(rule, "__name__", "custom"), rule
    raise TypeError(f"local dimension rule: expected one of {list(RULES)}, a relative cut in (0, 1) or a "
                    f"threshold function, found {type(rule).__name__} {rule!r}")
