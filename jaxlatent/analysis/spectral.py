"""Matrix-free top-k singular triplets of tap Jacobians.

When the Jacobian ``J (out, in)`` of a tap is too large to form (a feature map
or an image: ``out`` in the millions), its leading singular triplets are found
from products alone: ``J V`` (one forward-mode pass carrying a block of
tangents) and ``J^T Q`` (one reverse-mode pass). We use randomized block
subspace iteration with Rayleigh-Ritz extraction (Halko, Martinsson and Tropp
2011, algorithm 4.4, with a re-orthonormalisation at every half step):

    V_0 random (in, l),  l = k + oversample
    repeat:  Y = J V;  Q = qr(Y);  Z = J^T Q = P S R^T (thin SVD)
             U = Q R,  V = P      (J ~ U S V^T on the current subspace)

The residual ``||J v_i - s_i u_i|| / s_1`` of the previous estimate is free
(it is ``Y`` against ``U S``); iteration stops when every one of the top k is
below ``tol`` or after ``iters`` rounds. The error of the i-th value shrinks
like ``(s_{l+1} / s_i)^(2t)`` after t rounds, so oversampling matters when
the spectrum decays slowly.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.analysis.jacobian import check_latents, output_size, per_sample
from jaxlatent.parallel import map_batched


class TopSingular(NamedTuple):
    """Top-k singular triplets per latent (descending) and how far they converged.

    singular_values: (N, k); left: (N, out, k); right: (N, in, k);
    residual: (N,) max over the k of ``||J v_i - s_i u_i|| / s_1`` at the last check;
    iterations: (N,) rounds run.
    """

    singular_values: jax.Array
    left: jax.Array
    right: jax.Array
    residual: jax.Array
    iterations: jax.Array


def _subspace_iteration(g, z1, key_data, k, block, iters, tol):
    _, jvp_lin = jax.linearize(g, z1)
    _, vjp_fn = jax.vjp(g, z1)
    jmat = jax.vmap(jvp_lin, in_axes=1, out_axes=1)                 # (in, l) -> (out, l)
    jtmat = jax.vmap(lambda c: vjp_fn(c)[0], in_axes=1, out_axes=1)  # (out, l) -> (in, l)

    n_in = z1.shape[0]
    dtype = z1.dtype
    v0 = jax.random.normal(jax.random.wrap_key_data(key_data), (n_in, block), dtype)
    v0 = jnp.linalg.qr(v0)[0]
    y0 = jmat(v0)
    n_out = y0.shape[0]

    def rayleigh_ritz(y):
        q = jnp.linalg.qr(y)[0]
        p, s, rt = jnp.linalg.svd(jtmat(q), full_matrices=False)
        return q @ rt.T, s, p

    def running(state):
        return (state[4] > tol) & (state[5] < iters)

    def body(state):
        v, u, s, y, _, it = state
        u_new, s_new, v_new = rayleigh_ritz(y)
        y_new = jmat(v_new)
        scale = jnp.maximum(s_new[0], jnp.finfo(dtype).tiny)
        res = jnp.linalg.norm(y_new[:, :k] - u_new[:, :k] * s_new[:k], axis=0) / scale
        new = (v_new, u_new, s_new, y_new, jnp.max(res), it + 1)
        # under vmap the loop runs until every latent is done: freeze the finished ones so that
        # a latent's result does not depend on which others share its chunk
        go = running(state)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(go, a, b), new, state)

    cond = running

    init = (v0, jnp.zeros((n_out, block), dtype), jnp.zeros((block,), dtype), y0,
            jnp.asarray(jnp.inf, dtype), jnp.asarray(0, jnp.int32))
    v, u, s, _, res, it = jax.lax.while_loop(cond, body, init)
    return s[:k], u[:, :k], v[:, :k], res, it


@functools.partial(jax.tree_util.register_dataclass, data_fields=["f"], meta_fields=["k", "block", "iters", "tol"])
@dataclasses.dataclass(frozen=True)
class _BatchTopK:
    f: Callable
    k: int
    block: int
    iters: int
    tol: float

    def __call__(self, batch):
        z, key_data = batch
        run = lambda z1, kd: _subspace_iteration(per_sample(self.f), z1, kd, self.k, self.block,
                                                 self.iters, self.tol)
        return TopSingular(*jax.vmap(run)(z, key_data))


def top_singular(f: Callable, z, k: int, key: jax.Array, oversample: int = 10, iters: int = 100,
                 tol: float = 1e-4, chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                 progress: Callable | None = None) -> TopSingular:
    """Top-k singular triplets of the tap Jacobian at each latent, without forming it.

    f: batched callable ``(N, in) -> (N, *out_shape)``; z: (N, in); k: triplets wanted.
    key: PRNG key (one start block per latent, split from it, so results do not
    depend on chunking or devices). oversample: extra block columns (block
    ``l = min(k + oversample, in, out)``). iters: maximum rounds. tol: stop when
    ``max_i ||J v_i - s_i u_i|| / s_1 < tol`` over the top k. Each round costs one
    forward pass with ``l`` tangents and one backward pass with ``l`` cotangents.
    Returns :class:`TopSingular` (values descending; signs arbitrary, see
    :func:`jaxlatent.analysis.local_basis.local_basis_topk` for the fixed convention).
    """
    z = check_latents(z, "top_singular")
    n_in, n_out = z.shape[1], output_size(f, z)
    if not 1 <= k <= min(n_in, n_out):
        raise ValueError(f"top_singular: k must lie in [1, {min(n_in, n_out)}] for a {n_out}x{n_in} "
                         f"Jacobian, found {k}")
    block = min(k + max(0, int(oversample)), n_in, n_out)
    keys = jax.random.key_data(jax.random.split(key, z.shape[0]))
    fn = _BatchTopK(f, int(k), int(block), int(iters), float(tol))
    return map_batched(fn, (z, keys), chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap,
                       progress=progress)
