"""Random draws the analyses compare against: neighbouring latents and Haar-random subspaces."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlatent.engine.keys import as_key
from jaxlatent.engine.linalg import qr_each


@jax.jit
def neighbours(z: jax.Array, *, key: jax.Array, eps: float = 0.1) -> jax.Array:
    """One neighbour per latent, ``z + eps * u`` with ``u`` uniform on the unit sphere.

    The neighbour test of the Local Basis code (Choi et al., ICLR 2022), eps = 0.1 there.

    Args:
      z: (N, in) latents.
      key: PRNG key (typed or legacy).
      eps: distance of each neighbour from its latent.

    Returns:
      (N, in) neighbours, each exactly ``eps`` from its latent (to float rounding).
    """
    u = jax.random.normal(as_key(key, "neighbours"), z.shape, dtype=z.dtype)
    return z + eps * u / jnp.linalg.norm(u, axis=-1, keepdims=True)


def random_orthonormal(*, key: jax.Array, n: int, k: int, batch: tuple[int, ...] | int = (),
                       dtype=jnp.float32) -> jax.Array:
    """Haar-random orthonormal bases, uniform on the Stiefel manifold.

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q (Mezzadri 2007), so
    that span and basis are both Haar distributed; the first ``k`` columns of a
    ``scipy.stats.ortho_group`` matrix (the Local Basis code's baseline) have this distribution.

    Args:
      key: PRNG key (typed or legacy).
      n: dimension of the space.
      k: number of basis vectors, ``1 <= k <= n``.
      batch: leading batch shape (an int for one axis).
      dtype: floating dtype of the result.

    Returns:
      (*batch, n, k) orthonormal columns.
    """
    if not 1 <= k <= n:
        raise ValueError(f"random_orthonormal: need 1 <= k <= n, found n={n}, k={k}")
    batch = (int(batch),) if isinstance(batch, int) else tuple(int(b) for b in batch)
    return _haar(as_key(key, "random_orthonormal"), int(n), int(k), batch, jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("n", "d", "batch", "dtype"))
def _haar(key, n, d, batch, dtype):
    g = jax.random.normal(key, batch + (n, d), dtype)
    q, r = qr_each(g)
    sign = jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))
    return q * jnp.where(sign == 0, 1.0, sign)[..., None, :]
