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


def svd_triplets(jac: jax.Array, k: int | None = None) -> LocalBasis:
    """Top-k singular triplets of Jacobians ``(..., out, in)``, descending, signs fixed by :func:`fix_signs`."""
    u, s, vt = jnp.linalg.svd(jac, full_matrices=False)
    v = jnp.swapaxes(vt, -1, -2)
    if k is not None:
        u, s, v = u[..., :k], s[..., :k], v[..., :k]
    u, v = fix_signs(u, v)
    return LocalBasis(singular_values=s, basis=u, directions=v)


@dataclasses.dataclass(frozen=True)
class _BatchLocalBasis:
    """Hashable ``z (n, in) -> LocalBasis`` so that every chunk and every call with the same f compiles once."""

    f: Callable
    mode: str
    k: int | None

    def __call__(self, z):
        return svd_triplets(_BatchJacobian(self.f, self.mode)(z), self.k)


def _check_k(k, n_out, n_in, where):
    m = min(n_out, n_in)
    if k is not None and not 1 <= k <= m:
        raise ValueError(f"{where}: k must lie in [1, {m}] for a {n_out}x{n_in} Jacobian, found {k}")
    return k


def local_basis(f: Callable, z, k: int | None = None, mode: str = "auto", chunk_size: int | None = None,
                mesh=None, use_pmap: bool = False, progress: Callable | None = None) -> LocalBasis:
    """Local Basis of the tap ``f`` at each latent, from the full Jacobian and a dense SVD.

    f: batched callable ``(N, in) -> (N, *out_shape)`` (outputs flattened in C order).
    z: (N, in). k: number of leading triplets kept (default ``min(out, in)``).
    mode: Jacobian mode (``"auto"``, ``"fwd"``, ``"rev"``). chunk_size: latents per
    compiled call; peak memory O(chunk_size * out * in). mesh / use_pmap / progress:
    see :func:`jaxlatent.parallel.map_batched`.
    Returns :class:`LocalBasis` with (N, k), (N, out, k), (N, in, k). For wide taps
    (images) whose Jacobian does not fit, use :func:`local_basis_topk`.
    """
    z = check_latents(z, "local_basis")
    n_out = output_size(f, z)
    _check_k(k, n_out, z.shape[1], "local_basis")
    mode = resolve_mode(mode, z.shape[1], n_out)
    return map_batched(_BatchLocalBasis(f, mode, k), z, chunk_size=chunk_size, mesh=mesh,
                       use_pmap=use_pmap, progress=progress)


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
