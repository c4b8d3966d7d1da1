"""Grassmannian geometry of local bases: principal angles, distances, warpage.

A k-dimensional subspace of R^n is represented by an orthonormal basis
``A: (n, k)`` (any basis of the same span gives the same results). Between two
subspaces the principal angles ``0 <= theta_1 <= ... <= theta_p <= pi/2``
(``p = min(k_a, k_b)``) are the invariants every distance below is built from
(Edelman, Arias and Smith 1998, "The geometry of algorithms with orthogonality
constraints", table 4.3). Seed 003 (Local Basis, section on the Grassmannian
metric) uses the geodesic and the projection (2-norm) distances on the first
``d`` basis vectors; see ``docs/methods.md``.

Principal angles are computed stably (Knyazev and Argentati 2002): cosines
from the SVD of ``A^T B`` are accurate for large angles, sines from the SVD of
``(I - A A^T) B`` for small ones; each angle takes whichever is accurate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.analysis.ordering import after, qr_each
from jaxlatent.parallel import pad_rows

METRICS = ("geodesic", "proj", "proj_f", "chordal", "chordal_2", "fubini_study", "binet_cauchy",
           "max_angle")


def singular_values(x: jax.Array) -> jax.Array:
    """Singular values of ``x: (..., m, n)``, descending, (..., min(m, n)).

    A tall or wide matrix is first reduced to its ``min(m, n)``-square triangular factor by a
    QR decomposition (same singular values, to float rounding). Calling
    ``jnp.linalg.svd(x, compute_uv=False)`` directly makes XLA's CPU SVD allocate an
    ``max(m, n)^2`` workspace per matrix: 1 GB for four 8192 x 30 bases.
    """
    x = jnp.asarray(x)
    m, n = x.shape[-2:]
    if m > n:
        x = qr_each(x, mode="r")
    elif n > m:
        x = qr_each(jnp.swapaxes(x, -1, -2), mode="r")
    return jnp.linalg.svd(x, compute_uv=False)


@jax.jit
def principal_angles(a: jax.Array, b: jax.Array) -> jax.Array:
    """Principal angles between span(a) and span(b), ascending, in radians.

    a: (..., n, k_a), b: (..., n, k_b), orthonormal columns, batch axes broadcast.
    Returns (..., min(k_a, k_b)). Accurate for angles near 0 (sine formula) and
    near pi/2 (cosine formula) alike.
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    if a.shape[-2] != b.shape[-2]:
        raise ValueError(f"principal_angles: bases live in different spaces: a is {a.shape}, b is {b.shape} "
                         "(axis -2 must match)")
    p = min(a.shape[-1], b.shape[-1])
    m = jnp.swapaxes(a, -1, -2) @ b
    resid = b - a @ m                                                 # (I - A A^T) B
    sin = singular_values(resid)[..., ::-1][..., :p]                  # ascending
    # the cosine SVD waits for the sine's QR: side by side they can deadlock jaxlib (ordering.py)
    cos = jnp.linalg.svd(after(m, sin), compute_uv=False)[..., :p]    # descending
    cos = jnp.clip(cos, 0.0, 1.0)
    sin = jnp.clip(sin, 0.0, 1.0)
    return jnp.where(cos * cos < 0.5, jnp.arccos(cos), jnp.arcsin(sin))


def distance_from_angles(theta: jax.Array, metric: str = "geodesic", equal_dims: bool = True) -> jax.Array:
    """A Grassmannian distance from principal angles ``theta: (..., p)`` -> (...).

    metric (Edelman, Arias and Smith 1998, table 4.3):
      ``geodesic``      ||theta||_2, the arc length (seed 003's ``geodesic``);
      ``proj``          ||sin theta||_inf = ||A A^T - B B^T||_2 (seed 003's ``proj``; 1 when dims differ);
      ``proj_f``        ||sin theta||_2 = ||A A^T - B B^T||_F / sqrt(2) (projection Frobenius);
      ``chordal``       ||2 sin(theta/2)||_2 = min over rotations ||A Q_a - B Q_b||_F (Procrustes);
      ``chordal_2``     ||2 sin(theta/2)||_inf;
      ``fubini_study``  arccos(prod cos theta);
      ``binet_cauchy``  sqrt(1 - prod cos^2 theta);
      ``max_angle``     theta_p.
    """
    if metric == "geodesic":
        return jnp.linalg.norm(theta, axis=-1)
    if metric == "proj":
        d = jnp.max(jnp.sin(theta), axis=-1)
        return d if equal_dims else jnp.ones_like(d)
    if metric == "proj_f":
        return jnp.linalg.norm(jnp.sin(theta), axis=-1)
    if metric == "chordal":
        return jnp.linalg.norm(2 * jnp.sin(theta / 2), axis=-1)
    if metric == "chordal_2":
        return jnp.max(2 * jnp.sin(theta / 2), axis=-1)
    if metric == "fubini_study":
        return jnp.arccos(jnp.clip(jnp.prod(jnp.cos(theta), axis=-1), 0.0, 1.0))
    if metric == "binet_cauchy":
        return jnp.sqrt(jnp.clip(1 - jnp.prod(jnp.cos(theta) ** 2, axis=-1), 0.0, 1.0))
    if metric == "max_angle":
        return jnp.max(theta, axis=-1)
    raise ValueError(f"grassmann metric must be one of {METRICS}, found {metric!r}")


# jitted: one compiled program per (shapes, metric, d) instead of one per array operation
@functools.partial(jax.jit, static_argnames=("metric", "d"))
def grassmann_distance(a: jax.Array, b: jax.Array, metric: str = "geodesic", d: int | None = None) -> jax.Array:
    """Grassmannian distance between span(a[..., :d]) and span(b[..., :d]).

    a: (..., n, k_a), b: (..., n, k_b) orthonormal bases (e.g. ``LocalBasis.basis``),
    batch axes broadcast. d: use the first ``d`` columns of each (seed 003's
    ``subspace_dim``; default all). metric: see :func:`distance_from_angles`.
    Returns (...).
    """
    if metric not in METRICS:
        raise ValueError(f"grassmann_distance: metric must be one of {METRICS}, found {metric!r}")
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    if d is not None:
        if not 1 <= d <= min(a.shape[-1], b.shape[-1]):
            raise ValueError(f"grassmann_distance: d must lie in [1, {min(a.shape[-1], b.shape[-1])}] "
                             f"for bases of shapes {a.shape} and {b.shape}, found {d}")
        a, b = a[..., :d], b[..., :d]
    theta = principal_angles(a, b)
    return distance_from_angles(theta, metric, equal_dims=a.shape[-1] == b.shape[-1])


@jax.jit
def _angles_block(rows, bases):
    return principal_angles(rows[:, None], bases[None, :])


def pairwise_grassmann(bases: jax.Array, metric: str = "geodesic", d: int | None = None,
                       chunk_size: int | None = None, memory_bytes: float = 2 ** 28) -> jax.Array:
    """Distances between every pair of N subspaces: (N, n, k) -> (N, N), zero diagonal.

    Rows are computed ``chunk_size`` at a time (default: as many as keep the
    O(rows * N * n * k) intermediate of the sine formula under ``memory_bytes``),
    one compilation for all chunks.
    """
    bases = jnp.asarray(bases)
    if bases.ndim != 3:
        raise ValueError(f"pairwise_grassmann: expected bases of shape (N, n, k), found {bases.shape}")
    if d is not None:
        bases = bases[..., :d]
    n_items, n, k = bases.shape
    if chunk_size is None:
        chunk_size = max(1, int(memory_bytes // (n_items * n * k * bases.dtype.itemsize)))
    chunk = min(chunk_size, n_items)
    blocks = []
    for start in range(0, n_items, chunk):
        rows = bases[start:start + chunk]
        blocks.append(_angles_block(pad_rows(rows, chunk), bases)[: rows.shape[0]])
    return _pairwise_from_angles(jnp.concatenate(blocks), metric)


@functools.partial(jax.jit, static_argnames=("metric",))
def _pairwise_from_angles(theta, metric):
    # the sine formula leaves ~1e-7 rad on the diagonal; identical subspaces are at distance 0
    theta = jnp.where(jnp.eye(theta.shape[0], dtype=bool)[..., None], 0.0, theta)
    return distance_from_angles(theta, metric)


def random_orthonormal(key: jax.Array, n: int, d: int, batch: tuple[int, ...] | int = (),
                       dtype=jnp.float32) -> jax.Array:
    """Haar-random orthonormal bases: (*batch, n, d), uniform on the Stiefel manifold.

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q
    (Mezzadri 2007), so that span and basis are both Haar distributed. Seed
    003's baseline draws ``scipy.stats.ortho_group`` matrices, of which the
    first ``d`` columns have this distribution.
    """
    if not 1 <= d <= n:
        raise ValueError(f"random_orthonormal: need 1 <= d <= n, found n={n}, d={d}")
    batch = (int(batch),) if isinstance(batch, int) else tuple(int(b) for b in batch)
    return _haar(key, int(n), int(d), batch, jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("n", "d", "batch", "dtype"))
def _haar(key, n, d, batch, dtype):
    g = jax.random.normal(key, batch + (n, d), dtype)
    q, r = qr_each(g)
    sign = jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))
    return q * jnp.where(sign == 0, 1.0, sign)[..., None, :]


class Warpage(NamedTuple):
    """Seed 003's warpage experiment: distances (n_pairs, D), one column per subspace dimension ``dims``.

    random_pairs: local bases at two independent latents.
    neighbours: local bases at ``z`` and at ``z + eps u`` (u a random unit vector).
    to_global: local basis at ``z`` against one global basis (GANSpace PCA by default).
    haar: two Haar-random bases (the baseline of no structure at all).
    """

    dims: jax.Array
    random_pairs: jax.Array
    neighbours: jax.Array
    to_global: jax.Array
    haar: jax.Array


@functools.partial(jax.jit, static_argnames=("k",))
def pca_basis(values: jax.Array, k: int) -> jax.Array:
    """GANSpace's global basis: top-k principal axes of tap values (N, *out) -> (out, k), orthonormal."""
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
    for d in dims:   # one after another: independent batched SVDs in one program can deadlock (ordering.py)
        out.append(grassmann_distance(after(a, *out[-1:]), b, metric=metric, d=d))
    return jnp.stack(out, axis=-1)


def warpage(f: Callable, z, key: jax.Array, dims=range(1, 51), eps: float = 0.1, metric: str = "geodesic",
            global_basis: jax.Array | None = None, population=None, chunk_size: int | None = None,
            solver: str = "svd") -> Warpage:
    """How warped is the tap's latent space? Seed 003's Grassmannian experiment as one function.

    f: batched tap ``(N, in) -> (N, *out_shape)``; z: (N, in), N >= 2 (split into
    N // 2 random pairs; the first N // 2 latents also serve the neighbour and
    global comparisons). key: PRNG key (neighbour directions, Haar bases).
    dims: subspace dimensions d (the reference sweeps 1..50): each distance
    uses the first d Local Basis vectors. eps: neighbour distance (reference
    0.1). global_basis: (out, >= max(dims)) orthonormal; default the GANSpace
    PCA of ``f(population)`` (default population: ``z``). metric: see
    :func:`grassmann_distance` (the reference reports ``geodesic`` and ``proj``).
    Returns :class:`Warpage`; each field's mean over axis 0 is one curve of the
    paper's figure.
    """
    from jaxlatent.analysis.distortion import neighbours
    from jaxlatent.analysis.local_basis import local_basis

    z = jnp.asarray(z)
    dim_list = tuple(int(d) for d in dims)
    dims = jnp.asarray(dim_list, jnp.int32)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"warpage: expected latents of shape (N >= 2, in), found {z.shape}")
    k = int(jnp.max(dims))
    m = z.shape[0] // 2
    k_near, k_haar = jax.random.split(key)
    bases = local_basis(f, z[:2 * m], k=k, chunk_size=chunk_size, solver=solver).basis
    near = local_basis(f, neighbours(k_near, z[:m], eps), k=k, chunk_size=chunk_size, solver=solver).basis
    if global_basis is None:
        pop = z if population is None else jnp.asarray(population)
        global_basis = pca_basis(f(pop), k)
    global_basis = jnp.asarray(global_basis, bases.dtype)
    if global_basis.shape[0] != bases.shape[1] or global_basis.shape[1] < k:
        raise ValueError(f"warpage: global_basis must be ({bases.shape[1]}, >= {k}), found {global_basis.shape}")
    n_out = bases.shape[1]
    ha = random_orthonormal(k_haar, n_out, k, (2, m), bases.dtype)
    return Warpage(dims=dims,
                   random_pairs=_curves(bases[:m], bases[m:2 * m], dim_list, metric),
                   neighbours=_curves(bases[:m], near, dim_list, metric),
                   to_global=_curves(bases[:m], global_basis[None, :, :k], dim_list, metric),
                   haar=_curves(ha[0], ha[1], dim_list, metric))
