"""How warped is a tap's latent space: the Grassmannian experiment of the Local Basis paper.

Choi et al., "Do Not Escape From the Manifold: Discovering the Local Coordinates on the Latent
Space of GANs" (ICLR 2022), section on the Grassmannian metric: the distance between the Local
Bases of random pairs of latents, of neighbouring latents, to one global basis (GANSpace's PCA,
Harkonen et al. 2020) and between Haar-random subspaces, as a function of the subspace
dimension. A flat latent space has the neighbour curve near 0 and the random-pair curve close to
it; a warped one has random pairs far apart, towards the Haar baseline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.aligned import take_rows
from jaxlatent.localbasis.grassmann import grassmann_distance
from jaxlatent.engine.keys import as_key
from jaxlatent.engine.linalg import after
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.engine.sampling import neighbours, random_orthonormal


class Warpage(NamedTuple):
    """The warpage curves: distances (n_pairs, D), one column per subspace dimension in ``ks``.

    ks: (D,) int32 subspace dimensions k.
    random_pairs: (n_pairs, D) Local Bases at two independent latents.
    neighbours: (n_pairs, D) Local Bases at ``z`` and at ``z + eps u`` (u a random unit vector).
    to_global: (n_pairs, D) Local Basis at ``z`` against one global basis (GANSpace PCA by default).
    haar: (n_pairs, D) two Haar-random bases (the baseline of no structure at all).
    """

    ks: jax.Array
    random_pairs: jax.Array
    neighbours: jax.Array
    to_global: jax.Array
    haar: jax.Array


@functools.partial(jax.jit, static_argnames=("k",))
def pca_basis(values: jax.Array, k: int) -> jax.Array:
    """GANSpace's global basis (Harkonen et al. 2020): the top-k principal axes of tap values.

    Args:
      values: (N, *out_shape) tap values, flattened per sample.
      k: number of axes, at most N.

    Returns:
      (prod(out_shape), k) orthonormal principal axes, by decreasing variance.
    """
    x = jnp.reshape(values, (values.shape[0], -1))
    x = x - jnp.mean(x, axis=0)
    _, _, vt = jnp.linalg.svd(x, full_matrices=False)
    if vt.shape[0] < k:
        raise ValueError(f"pca_basis: {x.shape[0]} samples give at most {vt.shape[0]} principal axes, "
                         f"{k} requested")
    return vt[:k].T


@functools.partial(jax.jit, static_argnames=("dims", "metric"))
def _curves(a, b, dims, metric):
    out = []
    for d in dims:   # one dimension after another (linalg module docstring)
        out.append(grassmann_distance(after(a, *out[-1:]), b, metric=metric, k=d))
    return jnp.stack(out, axis=-1)


def warpage(f: Callable, z, *, key: jax.Array, ks=range(1, 51), eps: float = 0.1, metric: str = "geodesic",
            global_basis: jax.Array | None = None, population=None, method: str = "svd",
            chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
            progress: bool | Callable = False) -> Warpage:
    """The warpage curves of the tap ``f`` (Local Basis paper's Grassmannian experiment).

    Args:
      f: batched tap ``(N, in) -> (N, *out_shape)``.
      z: (N, in) latents, N >= 2: split into N // 2 random pairs; the first N // 2 latents also
        serve the neighbour and global comparisons.
      key: PRNG key (neighbour directions, Haar bases), typed or legacy.
      ks: subspace dimensions k (the reference sweeps 1..50); each distance uses the first k
        Local Basis vectors.
      eps: neighbour distance (reference 0.1).
      metric: see :func:`jaxlatent.localbasis.grassmann.grassmann_distance` (the reference reports
        ``geodesic`` and ``proj``).
      global_basis: (prod(out_shape), >= max(ks)) orthonormal; default the GANSpace PCA of
        ``f(population)``.
      population: (P, in) latents of the default global basis (default ``z``).
      method: Local Basis method, ``"svd"`` or ``"gram"``.
      chunk_size, mesh, use_pmap, progress: of the Local Basis calls
        (:func:`jaxlatent.localbasis.basis.local_basis`).

    Returns:
      :class:`Warpage`; each field's mean over axis 0 is one curve of the paper's figure.
    """
    z = jnp.asarray(z)
    dim_list = tuple(int(d) for d in ks)
    ks = jnp.asarray(dim_list, jnp.int32)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"warpage: expected latents of shape (N >= 2, in), found {z.shape}")
    k = int(jnp.max(ks))
    m = z.shape[0] // 2
    k_near, k_haar = jax.random.split(as_key(key, "warpage"))
    run = dict(k=k, method=method, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    # per-latent inputs of f (labels) follow the latents each call takes
    bases = local_basis(take_rows(f, np.arange(2 * m)), z[:2 * m], **run).basis
    near = local_basis(take_rows(f, np.arange(m)), neighbours(z[:m], key=k_near, eps=eps), **run).basis
    if global_basis is None:
        pop = z if population is None else jnp.asarray(population)
        global_basis = pca_basis(f(pop), k)
    global_basis = jnp.asarray(global_basis, bases.dtype)
    if global_basis.shape[0] != bases.shape[1] or global_basis.shape[1] < k:
        raise ValueError(f"warpage: global_basis must be ({bases.shape[1]}, >= {k}), found {global_basis.shape}")
    n_out = bases.shape[1]
    ha = random_orthonormal(key=k_haar, n=n_out, k=k, batch=(2, m), dtype=bases.dtype)
    return Warpage(ks=ks,
                   random_pairs=_curves(bases[:m], bases[m:2 * m], dim_list, metric),
                   neighbours=_curves(bases[:m], near, dim_list, metric),
                   to_global=_curves(bases[:m], global_basis[None, :, :k], dim_list, metric),
                   haar=_curves(ha[0], ha[1], dim_list, metric))
