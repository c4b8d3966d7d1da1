"""Local Basis (Choi et al., ICLR 2022): the singular vectors of a tap's Jacobian at each latent.

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

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.engine.jacobian import batched_jacobian, check_latents, output_size, resolve_mode, tangent_bytes
from jaxlatent.engine.spectral import TopSingular, top_singular
from jaxlatent.engine.parallel import Pieces, auto_chunk_size, map_batched, piece_size


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


def decomposition_bytes(n_out: int, n_in: int, itemsize: int = 4) -> int:
    """Peak bytes per latent of :func:`local_basis`: the ``(out, in)`` Jacobian, LAPACK's
    column-major copy of it, both factors and the divide-and-conquer workspace (~4 m^2, m = min)."""
    m = min(n_out, n_in)
    return itemsize * (2 * n_out * n_in + n_out * m + m * n_in + 4 * m * m)


def _check_k(k, n_out, n_in, where):
    m = min(n_out, n_in)
    if k is not None and not 1 <= k <= m:
        raise ValueError(f"{where}: k must lie in [1, {m}] for a {n_out}x{n_in} Jacobian, found {k}")
    return k


def local_basis(f: Callable, z, *, k: int | None = None, mode: str = "auto", method: str = "svd",
                chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                progress: bool | Callable = False) -> LocalBasis:
    """Local Basis of the tap ``f`` at each latent, from the full Jacobian and a dense SVD.

    Choi et al., Local Basis (ICLR 2022), section 3: ``J(z) = U S V^T``; ``U`` is the Local
    Basis, ``V`` the latent directions, ``S`` the singular values, all descending. Called
    with no options this is the fast path: the chunk size comes from the Jacobian's size and
    the memory at hand, and LAPACK runs with one BLAS thread per call (``docs/performance.md``).

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)`` (outputs flattened in C order).
      z: ``(N, in)`` latents.
      k: number of leading triplets kept (default ``min(out, in)``).
      mode: Jacobian mode, ``"auto"`` (forward when ``in <= out``), ``"fwd"`` or ``"rev"``.
      method: ``"svd"`` (dense SVD, as the reference's ``torch.svd``; accurate to float
        rounding: the default) or ``"gram"`` (eigenvectors of the smaller Gram matrix, see
        :func:`gram_triplets`: relative error ``~eps * (s_1 / s_i)^2`` on the i-th value).
      chunk_size: latents per compiled call; peak memory ``chunk_size *``
        :func:`decomposition_bytes`. Default :func:`jaxlatent.engine.parallel.auto_chunk_size`.
      mesh: a :func:`jaxlatent.engine.parallel.batch_mesh` to split each chunk over its devices.
      use_pmap: split each chunk with ``pmap`` instead of ``shard_map``.
      progress: ``True`` for a progress bar over chunks, or a wrapper of the chunk iterator.

    Returns:
      :class:`LocalBasis` with ``singular_values (N, k)``, ``basis (N, out, k)``,
      ``directions (N, in, k)``. For wide taps (images) whose Jacobian does not fit, use
      :func:`local_basis_topk`.
    """
    z = check_latents(z, "local_basis")
    n_out = output_size(f, z)
    _check_k(k, n_out, z.shape[1], "local_basis")
    if method not in SOLVERS:
        raise ValueError(f"local_basis: method must be one of {SOLVERS}, found {method!r}")
    decompose = jax.tree_util.Partial(svd_triplets if method == "svd" else gram_triplets, k=k)
    return decompose_jacobians(f, z, decompose, resolve_mode(mode, z.shape[1], n_out), chunk_size=chunk_size,
                               mesh=mesh, use_pmap=use_pmap, progress=progress)


def decompose_jacobians(f: Callable, z: jax.Array, decompose: Callable, mode: str, *,
                        chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                        progress: bool | Callable = False):
    """``decompose`` applied to the tap's Jacobians, chunk by chunk, as two compiled programs per
    chunk (faster on CPU than one fused program).

    With ``chunk_size=None`` the chunk holds :func:`decomposition_bytes` per latent
    (:func:`jaxlatent.engine.parallel.auto_chunk_size`) and, on CPU, the Jacobians are formed a few
    latents at a time (:func:`jaxlatent.engine.parallel.piece_size`) while the decomposition sees the
    whole chunk. Shared by :func:`local_basis` and
    :func:`jaxlatent.localdim.dimension.jacobian_spectrum`.

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``.
      z: ``(N, in)`` latents, checked.
      decompose: ``(n, out, in) Jacobians -> pytree with leading axis n`` (hashable, e.g. a
        ``jax.tree_util.Partial``).
      mode: ``"fwd"`` or ``"rev"``.
      chunk_size, mesh, use_pmap, progress: execution options (:func:`local_basis`).

    Returns:
      ``decompose``'s pytree, leading axis N.
    """
    jac = batched_jacobian(f, mode)
    if chunk_size is None:
        chunk_size = auto_chunk_size(decomposition_bytes(output_size(f, z), z.shape[1], z.dtype.itemsize),
                                     z.shape[0], mesh=mesh, use_pmap=use_pmap)
        jac = Pieces(jac, piece_size(tangent_bytes(f, z, mode), chunk_size, mesh=mesh, use_pmap=use_pmap))
    return map_batched((jac, decompose), z, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap,
                       progress=progress)


class LocalBasisTopK(TopSingular):
    """Local Basis from :func:`local_basis_topk` and how far its solver converged (a pytree).

    The fields of :class:`jaxlatent.engine.spectral.TopSingular` (the same names in the same
    order), with the Local Basis sign convention applied:

    singular_values: (N, k), descending. basis: (N, out, k). directions: (N, in, k).
    residual: (N,) ``max_i ||J^T u_i - s_i v_i|| / s_i`` over the k triplets (``J v_i = s_i u_i``
        holds by construction), which bounds each value's relative error.
    iterations: (N,) solver rounds run. converged: (N,) bool, ``residual <= tol``.
    """

    __slots__ = ()


def local_basis_topk(f: Callable, z, *, k: int, key: jax.Array, tol: float = 1e-4, max_iter: int = 200,
                     block_size: int | None = None, oversample: int | None = None, loop: str = "auto",
                     chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                     progress: bool | Callable = False) -> LocalBasisTopK:
    """Local Basis from the top-k singular triplets found matrix-free (never forms the Jacobian).

    The same triplets as ``local_basis(f, z, k)`` (signs fixed the same way), each singular
    value to relative ``tol`` (residual-based, see :func:`jaxlatent.engine.spectral.top_singular`,
    which does the work). Use it for taps whose Jacobian ``(out, in)`` is too large to hold
    (feature maps, images), or when only the leading directions matter.

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``.
      z: ``(N, in)`` latents.
      k: triplets wanted.
      key: PRNG key for the random start blocks (one per latent: results do not depend on
        chunking or devices).
      tol, max_iter, block_size, oversample, loop: the solver's, see
        :func:`jaxlatent.engine.spectral.top_singular`.
      chunk_size, mesh, use_pmap, progress: execution options, as in :func:`local_basis`.

    Returns:
      :class:`LocalBasisTopK`: ``singular_values (N, k)``, ``basis (N, out, k)``,
      ``directions (N, in, k)``, and ``residual``, ``converged``, ``iterations`` (N,). A
      ``RuntimeWarning`` says when some latent stopped short of ``tol``.
    """
    z = check_latents(z, "local_basis_topk")
    _check_k(k, output_size(f, z), z.shape[1], "local_basis_topk")
    top = top_singular(f, z, k=k, key=key, tol=tol, max_iter=max_iter, block_size=block_size,
                       oversample=oversample, loop=loop, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    u, v = fix_signs(top.basis, top.directions)
    return LocalBasisTopK(singular_values=top.singular_values, basis=u, directions=v,
                          residual=top.residual, converged=top.converged, iterations=top.iterations)
