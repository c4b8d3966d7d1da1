"""Concept effects of single latent dimensions (Li, Tao, Niu & Li, ICPR 2020).

Li et al. intervene on one latent variable at a time and measure the change of each concept's
classifier probability ``p_c``; the importance of dimensions "varies greatly". The paper's
formulas are not public; the measures below are ours (``docs/correlation.md``). For
dimension ``i``, concept ``c``, samples ``n`` and intervention values ``v`` (``z_i <- v``):

* sensitivity  ``I = mean_n max_v |p_c(z_n; i <- v) - p_c(z_n)|``
* effect       ``E = mean_n [p_c(z_n; i <- v_max) - p_c(z_n; i <- v_min)]`` (signed)
* correlation  Pearson's r between ``v`` and ``p_c(z_n; i <- v)`` over all pairs ``(n, v)``
* flip rate    the share of samples outside ``c`` (by argmax) that some value moves into ``c``

Confidence intervals: the percentile bootstrap over samples (Efron & Tibshirani 1993, ch. 13),
from an explicit key. Every measure is a ratio of sample sums, so a resample is a weight
vector of counts and all resamples are one matrix product.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.interventions import check_kind, intervention_probs, single_dim_grid
from jaxlatent.engine.jacobian import check_latents


class EffectIntervals(NamedTuple):
    """Bootstrap intervals, each (2, dims, concepts): ``[lower, upper]``."""

    sensitivity: jax.Array
    effect: jax.Array
    correlation: jax.Array
    flip_rate: jax.Array


class ConceptEffects(NamedTuple):
    """Effects of single-dimension interventions on each concept (a pytree).

    sensitivity: (dims, concepts) mean largest absolute change of ``p_c``.
    effect: (dims, concepts) mean signed change from the lowest to the highest value.
    correlation: (dims, concepts) Pearson's r between value and ``p_c``.
    flip_rate: (dims, concepts) share of samples outside ``c`` moved into ``c`` (NaN: none outside).
    intervals: :class:`EffectIntervals` of the four, or None without a bootstrap key.
    dims: (dims,) the latent dimensions measured. values: (V,) intervention values.
    base_probs: (N, concepts) probabilities of the unedited samples.
    """

    sensitivity: jax.Array
    effect: jax.Array
    correlation: jax.Array
    flip_rate: jax.Array
    intervals: EffectIntervals | None
    dims: jax.Array
    values: jax.Array
    base_probs: jax.Array


class SampleStats(NamedTuple):
    """Per-sample sums from which every measure is a ratio (sums run over values)."""

    sensitivity: jax.Array   # (N, K, C) max_v |dp|
    effect: jax.Array        # (N, K, C) p(v_max) - p(v_min)
    sum_p: jax.Array         # (N, K, C)
    sum_pp: jax.Array        # (N, K, C)
    sum_vp: jax.Array        # (N, K, C)
    flipped: jax.Array       # (N, K, C) 1 when outside c and some value lands in c
    outside: jax.Array       # (N, 1, C) 1 when outside c


def sample_stats(probs: jax.Array, base: jax.Array, values: jax.Array) -> SampleStats:
    """Per-sample statistics from intervention probabilities.

    Args:
      probs: (N, K, V, C) probabilities after each intervention.
      base: (N, C) probabilities of the unedited samples.
      values: (V,) intervention values.
    """
    values = jnp.asarray(values, probs.dtype)
    delta = probs - base[:, None, None, :]
    hi, lo = jnp.argmax(values), jnp.argmin(values)
    c = probs.shape[-1]
    outside = (jnp.argmax(base, axis=-1)[:, None] != jnp.arange(c)).astype(probs.dtype)  # (N, C)
    lands = jax.nn.one_hot(jnp.argmax(probs, axis=-1), c, dtype=probs.dtype).max(axis=2)  # (N, K, C)
    return SampleStats(
        sensitivity=jnp.max(jnp.abs(delta), axis=2),
        effect=probs[:, :, hi] - probs[:, :, lo],
        sum_p=probs.sum(axis=2),
        sum_pp=(probs * probs).sum(axis=2),
        sum_vp=jnp.einsum("nkvc,v->nkc", probs, values),
        flipped=lands * outside[:, None, :],
        outside=outside[:, None, :])


def measures(stats: SampleStats, values: jax.Array, weights: jax.Array) -> tuple[jax.Array, ...]:
    """(sensitivity, effect, correlation, flip_rate), each (..., K, C), for sample weights (..., N).

    Weights of ones give the estimates; counts of a resample give its bootstrap replicate.
    """
    values = jnp.asarray(values, stats.sum_p.dtype)
    w = jnp.asarray(weights, stats.sum_p.dtype)
    wsum = w.sum(axis=-1)[..., None, None]
    mean = lambda x: jnp.einsum("...n,nkc->...kc", w, x) / wsum
    nv = values.shape[0]
    mv, mvv = jnp.mean(values), jnp.mean(values * values)
    mp, mpp, mvp = mean(stats.sum_p) / nv, mean(stats.sum_pp) / nv, mean(stats.sum_vp) / nv
    cov = mvp - mv * mp
    var_p = jnp.maximum(mpp - mp * mp, 0.0)
    var_v = mvv - mv * mv
    denom = jnp.sqrt(var_p * var_v)
    # a concept whose probability does not vary at all has no correlation with anything: 0
    corr = jnp.where(denom > 0, cov / jnp.where(denom > 0, denom, 1.0), 0.0)
    outside = jnp.einsum("...n,nkc->...kc", w, stats.outside)
    flips = jnp.einsum("...n,nkc->...kc", w, stats.flipped)
    flip_rate = jnp.where(outside > 0, flips / jnp.where(outside > 0, outside, 1.0), jnp.nan)
    return mean(stats.sensitivity), mean(stats.effect), corr, flip_rate


def bootstrap_weights(key: jax.Array, num: int, n: int) -> jax.Array:
    """(num, n) counts of ``n`` draws with replacement from ``n`` samples, one row per resample."""
    idx = jax.random.randint(key, (num, n), 0, n)
    return jax.vmap(lambda i: jnp.zeros((n,), jnp.float32).at[i].add(1.0))(idx)


@jax.jit
def _estimates(probs, base, values):
    stats = sample_stats(probs, base, values)
    return stats, measures(stats, values, jnp.ones(probs.shape[0], probs.dtype))


@functools.partial(jax.jit, static_argnames=("num",))
def _intervals(stats, values, key, level, num):
    weights = bootstrap_weights(key, num, stats.sum_p.shape[0]).astype(values.dtype)
    reps = measures(stats, values, weights)
    q = jnp.stack([(1 - level) / 2, (1 + level) / 2])
    return EffectIntervals(*(jnp.nanquantile(r, q, axis=0) for r in reps))


def effects_from_probs(probs, base, values, dims, *, key: jax.Array | None = None,
                       num_bootstrap: int = 200, level: float = 0.95) -> ConceptEffects:
    """:class:`ConceptEffects` from intervention probabilities already computed.

    Args:
      probs: (N, K, V, C) probabilities after intervening on ``dims[k]`` at ``values[v]``.
      base: (N, C) unedited probabilities. values: (V,). dims: (K,).
      key: PRNG key of the bootstrap (None: no intervals).
      num_bootstrap: resamples. level: coverage of the percentile intervals.

    Returns:
      :class:`ConceptEffects` with (K, C) fields.
    """
    probs, base = jnp.asarray(probs), jnp.asarray(base)
    values = jnp.asarray(values, probs.dtype)
    if values.shape[0] < 2:
        raise ValueError(f"concept_effects: need at least two intervention values, found {values.shape[0]}")
    stats, (sens, eff, corr, flip) = _estimates(probs, base, values)
    intervals = None
    if key is not None:
        intervals = _intervals(stats, values, key, jnp.asarray(level, probs.dtype), num=int(num_bootstrap))
    return ConceptEffects(sensitivity=sens, effect=eff, correlation=corr, flip_rate=flip,
                          intervals=intervals, dims=jnp.asarray(dims, jnp.int32), values=values,
                          base_probs=base)


def concept_effects(g: Callable, classifier: Callable, z, *, dims=None, values=(-3.0, 3.0),
                    kind: str = "set", center=None, scale=None, key: jax.Array | None = None,
                    num_bootstrap: int = 200, level: float = 0.95, chunk_size: int | None = None,
                    mesh=None, use_pmap: bool = False, progress: bool | Callable = False) -> ConceptEffects:
    """Sensitivity, signed effect, correlation and flip rate of each latent dim on each concept.

    Li, Tao, Niu & Li, ICPR 2020: intervene on single latent variables of a fixed generator and
    score each concept by a classifier's probability; the measures are ours (module docstring).

    Args:
      g: batched generator ``(B, D) -> images`` in the space of ``z`` (Z, or W via
        ``model.fn("image", wrt="w")``).
      classifier: batched ``images -> logits (B, C)``.
      z: (N, D) latents the interventions start from.
      dims: (K,) dimensions to measure (default: all D).
      values: (V,) intervention values in standard units (``center + v * scale`` for ``set``,
        ``v * scale`` for ``shift``, the factor ``1 + v mean(z)`` for ``scale``).
      kind: ``"set"`` (default), ``"shift"`` or ``"scale"``.
      center, scale: (D,) standard units (default 0 and 1; for W pass the population's mean
        and standard deviation per dimension).
      key: PRNG key for the bootstrap intervals (None: no intervals).
      num_bootstrap: bootstrap resamples. level: interval coverage (0.95).
      chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.correlation.interventions.intervention_probs`.

    Returns:
      :class:`ConceptEffects`, measures of shape (K, C).
    """
    z = check_latents(z, "concept_effects")
    check_kind(kind, "concept_effects")
    d = z.shape[1]
    dims = np.arange(d) if dims is None else np.asarray(dims, np.int64).reshape(-1)
    if dims.size == 0 or dims.min() < 0 or dims.max() >= d:
        raise ValueError(f"concept_effects: dims must lie in [0, {d}), found {dims.tolist()}")
    values = jnp.asarray(values, jnp.float32).reshape(-1)
    mask, amount = single_dim_grid(d, dims, values, kind=kind, center=center, scale=scale)
    # row 0: no intervention (the base probabilities in the same call)
    mask = jnp.concatenate([jnp.zeros((1, d)), mask])
    amount = jnp.concatenate([jnp.zeros((1, d)), amount])
    probs = intervention_probs(g, classifier, z, mask, amount, kind=kind, chunk_size=chunk_size,
                               mesh=mesh, use_pmap=use_pmap, progress=progress)
    n, c = probs.shape[0], probs.shape[-1]
    grid = probs[:, 1:].reshape(n, dims.size, values.shape[0], c)
    return effects_from_probs(grid, probs[:, 0], values.astype(probs.dtype), dims, key=key,
                              num_bootstrap=num_bootstrap, level=level)
