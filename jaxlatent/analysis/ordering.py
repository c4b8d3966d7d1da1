"""Run one LAPACK call after another inside a compiled program (a jaxlib CPU deadlock guard).

jaxlib 0.10's CPU QR kernel splits a batched factorisation over XLA's intra-op thread pool
and blocks its thread until the pieces finish. XLA's CPU runtime runs independent
operations of one program at the same time, on the same pool. When a batched QR runs
beside another decomposition (a second QR, an SVD), every pool thread can end up blocked
inside a kernel waiting for work that only a pool thread could do: the program never
finishes. On a 2-core machine (a pool of 2 threads) two independent ``(64, 512, 30)`` QRs
in one ``jit`` hang every time; the same QRs with a data dependence between them, or in
separate programs, never do. ``tests/test_ordering.py`` keeps both cases honest.

Two defences, used by ``grassmann`` (and through it by ``distortion`` and warpage):

- :func:`qr_each` factors a batch one matrix at a time (``lax.map``): a single-matrix QR never
  waits on the pool, so our QRs cannot hang whatever runs beside them in one program, ours or
  a caller's (measured: 64 QRs of 512 x 30 take 59 ms instead of 51 on 2 cores).
- A caller's ``vmap`` over our functions batches that QR again. ``principal_angles`` therefore
  also ties its cosine SVD to the sine's QR with :func:`after`, an explicit data dependence
  that ``vmap`` keeps. (``lax.optimization_barrier`` does not order the two calls on XLA's
  CPU runtime: measured, it still hangs.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def after(x: jax.Array, *deps: jax.Array) -> jax.Array:
    """``x`` unchanged, but computed only once every array in ``deps`` is.

    Adds ``0.0 * isnan(d)`` for one element ``d`` of each dependency (``0.0 * (d == 0)``
    for integers): always exactly 0, never NaN whatever ``d`` holds, and not folded away by
    XLA, which keeps ``0.0 * y`` for floats. No gradient flows through the tie.
    """
    x = jnp.asarray(x)
    tie = jnp.zeros((), x.dtype)
    for d in deps:
        d = jax.lax.stop_gradient(jnp.ravel(jnp.asarray(d))[:1])
        # a 0-or-1 stand-in for d that XLA cannot evaluate early: isnan(d), or d == 0 for integers
        v = jnp.isnan(jnp.real(d)) if jnp.issubdtype(d.dtype, jnp.inexact) else d == 0
        tie = tie + jnp.sum(v.astype(x.dtype)) * 0.0
    return x + tie


def qr_each(x: jax.Array, mode: str = "reduced"):
    """``jnp.linalg.qr(x, mode)`` for ``x: (..., m, n)``, one matrix at a time over the batch axes.

    Same results as the batched call (the same LAPACK routine per matrix); see the module
    docstring for why. ``mode``: ``"reduced"`` -> ``(q, r)``, ``"r"`` -> ``r``, as numpy.
    """
    x = jnp.asarray(x)
    batch = x.shape[:-2]
    if math.prod(batch) <= 1:
        return jnp.linalg.qr(x, mode=mode)
    flat = jnp.reshape(x, (-1,) + x.shape[-2:])
    out = jax.lax.map(lambda mat: jnp.linalg.qr(mat, mode=mode), flat)
    return jax.tree_util.tree_map(lambda a: jnp.reshape(a, batch + a.shape[1:]), out)
