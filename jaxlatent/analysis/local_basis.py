"""Local Basis (seed 003): the singular vectors of a tap's Jacobian at each latent.

Choi et al., "Do Not Escape From the Manifold: Discovering the Local
Coordinates on the Latent Space of GANs" (ICLR 2022), section 3: at a latent
``z`` the tap ``w = g(z)`` has Jacobian ``J = U S V^T``. The columns of ``U``
(left singular vectors, in the tap's space) are the *Local Basis* of the image
of the latent neighbourhood; the columns of ``V`` (right singular vectors, in
the latent space) are the latent directions that move ``w`` along them, the
singular values ``S`` how fast. The reference code (``get_random_local_basis``)
returns all of them from one full SVD, descending.

Sign convention (ours; singular vectors are defined up to a joint sign flip of
``u_i`` and ``v_i``): each pair is flipped so that the entry of largest
magnitude of the latent direction ``v_i`` is positive, which makes results
deterministic across runs, devices and batch compositions.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.analysis.jacobian import _BatchJacobian, check_latents, output_size, resolve_mode
from jaxlatent.parallel import map_batched


class LocalBasis(NamedTuple):
    """Local Basis at N latents (a pytree; every field batched on axis 0).

    singular_values: (N, k), descending.
    basis: (N, out, k), left singular vectors: the Local Basis in the tap's space.
    directions: (N, in, k), right singular vectors: the matching latent directions.
    """

    singular_values: jax.Array
    basis: jax.Array
    directions: jax.Array


def fix_signs(u: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Flip pairs ``(u_i, v_i)`` so that the largest-magnitude entry of each ``v_i`` is positive.

    u: (..., out, k), v: (..., in, k); returns both with the same shapes.
    """
    idx = jnp.argmax(jnp.abs(v), axis=-2, keepdims=True)
    sign = jnp.sign(jnp.take_along_axis(v, idx, axis=-2))
    sign = jnp.where(sign == 0, 1.0, sign).astype(v.dtype)
    return u * sign, v * sign


SOLVERS = ("svd", "gram")


def svd_triplets(jac: jax.Array, k: int | None = None) -> LocalBasis:
    """Top-k singular triplets of Jacobians ``(..., out, in)`` by a dense SVD, descending, signs fixed."""
    u, s, vt = jnp.linalg.svd(jac, full_matrices=False)
    v = jnp.swapaxes(vt, -1, -2)
    if k is not None:
        u, s, v = u[..., :k], s[..., :k], v[..., :k]
    u, v = fix_signs(u, v)
    return LocalBasis(singular_values=s, basis=u, directions=v)


def gram_triplets(jac: jax.Array, k: int | None = None) -> LocalBasis:
    """Top-k singular triplets from the symmetric eigenproblem of the smaller Gram matrix.

    ``J^T J = V S^2 V^T`` (or ``J J^T`` when ``out < in``); the other side is
    ``J v_i / ||J v_i||`` and ``s_i = ||J v_i||``, which is more accurate than
    ``sqrt(lambda_i)``. Several times cheaper than a dense SVD on CPUs, but a
    singular value is only resolved to about ``eps * (s_1 / s_i)^2`` relative
    error (squared condition): in float32, ~1e-6 for ``s_i > 0.05 s_1`` and
    ~1e-2 at ``s_i ~ 0.002 s_1``. See ``docs/methods.md`` ("Jacobian engine").
    """
    transpose = jac.shape[-2] < jac.shape[-1]
    a = jnp.swapaxes(jac, -1, -2) if transpose else jac
    _, vecs = jnp.linalg.eigh(jnp.swapaxes(a, -1, -2) @ a)
    vecs = vecs[..., ::-1]
    if k is not None:
        vecs = vecs[..., :k]
    av = a @ vecs
    s = jnp.linalg.norm(av, axis=-2)
    order = jnp.argsort(-s, axis=-1)
    s = jnp.take_along_axis(s, order, axis=-1)
    vecs = jnp.take_along_axis(vecs, order[..., None, :], axis=-1)
    av = jnp.take_along_axis(av, order[..., None, :], axis=-1)
    other = av / jnp.where(s > 0, s, 1)[..., None, :]
    u, v = (vecs, other) if transpose else (other, vecs)
    u, v = fix_signs(u, v)
    return LocalBasis(singular_values=s, basis=u, directions=v)


@functools.partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=["k", "solver"])
@dataclasses.dataclass(frozen=True)
class _Decompose:
    """Hashable ``jac (n, out, in) -> LocalBasis``: every chunk and call with the same k compiles once."""

    k: int | None
    solver: str

    def __call__(self, jac):
        decompose = svd_triplets if self.solver == "svd" else gram_triplets
        return decompose(jac, self.k)


def _check_k(k, n_out, n_in, where):
    m = min(n_out, n_in)
    if k is not None and not 1 <= k <= m:
        raise ValueError(f"{where}: k must lie in [1, {m}] for a {n_out}x{n_in} Jacobian, found {k}")
    return k


def local_basis(f: Callable, z, k: int | None = None, mode: str = "auto", chunk_size: int | None = None,
                solver: str = "svd", mesh=None, use_pmap: bool = False,
                progress: Callable | None = None) -> LocalBasis:
    """Local Basis of the tap ``f`` at each latent, from the full Jacobian and a dense SVD.

    f: batched callable ``(N, in) -> (N, *out_shape)`` (outputs flattened in C order).
    z: (N, in). k: number of leading triplets kept (default ``min(out, in)``).
    mode: Jacobian mode (``"auto"``, ``"fwd"``, ``"rev"``). chunk_size: latents per
    compiled call; peak memory O(chunk_size * out * in). solver: ``"svd"`` (dense
    SVD, as the reference's ``torch.svd``; accurate to float rounding) or ``"gram"``
    (eigenvectors of the smaller Gram matrix, see :func:`gram_triplets`: faster,
    accurate only for the leading values). mesh / use_pmap / progress:
    see :func:`jaxlatent.parallel.map_batched`.
    Returns :class:`LocalBasis` with (N, k), (N, out, k), (N, in, k). For wide taps
    (images) whose Jacobian does not fit, use :func:`local_basis_topk`.
    """
    z = check_latents(z, "local_basis")
    n_out = output_size(f, z)
    _check_k(k, n_out, z.shape[1], "local_basis")
    if solver not in SOLVERS:
        raise ValueError(f"local_basis: solver must be one of {SOLVERS}, found {solver!r}")
    mode = resolve_mode(mode, z.shape[1], n_out)
    # Jacobian and decomposition as two programs per chunk (faster on CPU than one fused program)
    return map_batched((_BatchJacobian(f, mode), _Decompose(k, solver)), z, chunk_size=chunk_size,
                       mesh=mesh, use_pmap=use_pmap, progress=progress)


def local_basis_topk(f: Callable, z, k: int, key: jax.Array, **kwargs) -> LocalBasis:
    """Local Basis from the top-k singular triplets found matrix-free (never forms the Jacobian).

    Same result as ``local_basis(f, z, k)`` up to the tolerance of
    :func:`jaxlatent.analysis.spectral.top_singular` (keyword arguments are passed
    on: ``oversample``, ``iters``, ``tol``, ``chunk_size``, ``mesh``, ...). Use it for
    taps whose Jacobian ``(out, in)`` is too large to hold (feature maps, images).
    key: PRNG key for the random start block.
    """
    from jaxlatent.analysis.spectral import top_singular

    z = check_latents(z, "local_basis_topk")
    _check_k(k, output_size(f, z), z.shape[1], "local_basis_topk")
    s, u, v = top_singular(f, z, k, key, **kwargs)[:3]
    u, v = fix_signs(u, v)
    return LocalBasis(singular_values=s, basis=u, directions=v)
