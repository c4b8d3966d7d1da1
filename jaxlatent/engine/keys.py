"""PRNG keys as every function takes them: keyword ``key``, a typed key (``jax.random.key``) or a
legacy ``uint32`` key (``jax.random.PRNGKey``), normalised here once."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["as_key"]


def as_key(key, where: str = "key") -> jax.Array:
    """``key`` as a legacy ``uint32`` key array ``(..., 2)`` (the same random stream either way).

    Accepts a typed key from ``jax.random.key`` (threefry, the default implementation) or a
    legacy one from ``jax.random.PRNGKey``, single or batched; anything else is a ``ValueError``
    naming ``where``.
    """
    if key is None:
        raise ValueError(f"{where}: a PRNG key is required (key=jax.random.key(0))")
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
    else:
        data = jnp.asarray(key)
    if data.dtype != jnp.uint32 or data.ndim < 1 or data.shape[-1] != 2:
        raise ValueError(f"{where}: expected a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
                         f"found an array of dtype {data.dtype} and shape {tuple(data.shape)}")
    return data
