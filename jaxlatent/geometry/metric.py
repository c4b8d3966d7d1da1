"""The Riemannian metric of a generator's image manifold, at many latents at once.

Wang & Ponce, "The Geometry of Deep Generative Image Models and its Applications" (ICLR 2021),
section 2: for a generator ``g`` and an image distance ``d``, the metric at ``z0`` is the Hessian

    H(z0) = d^2/dz^2  d(g(z0), g(z))  at z = z0          (no factor 1/2, as their ``hessian_compute``)

Because ``d(x0, x) >= 0 = d(x0, x0)``, the gradient of ``x -> d(x0, x)`` vanishes at ``x = x0``,
so the chain rule leaves only the Gauss-Newton term

    H(z0) = J^T M J,    J = dg/dz (z0)  (out x in),    M = d^2/dx^2 d(x0, x) at x = x0  (out x out),

exact for every twice-differentiable distance. For the default distance, the mean squared
difference over the ``n`` values of an image, ``M = (2/n) I`` and ``H = (2/n) J^T J``.

Two ways to get the eigenpairs (descending):

* ``"full"``: ``J`` by forward mode (``in`` tangents through ``g``; reverse mode when the image has
  fewer values than the latent), ``M J`` by forward-over-reverse through the distance only (its
  gradient's directional derivative along each column of ``J``), then ``J^T (M J)`` and one
  ``eigh``. The generator is differentiated once, never twice.
* ``"lobpcg"``: the top ``k`` by LOBPCG (``jax.experimental.sparse.linalg.lobpcg_standard``) on
  the matrix-free product ``v -> J^T M (J v)``: one linearised forward pass, the distance's
  Hessian-vector product and the transposed linear map per block; ``J`` is never formed.

Eigen-axis strips (:func:`eigen_axis_latents`) step along each eigenvector by equal metric length.

Signs: each eigenvector is flipped so that its entry of largest magnitude is positive.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental.sparse.linalg import lobpcg_standard

from jaxlatent.engine.aligned import attach, detach, shape_view
from jaxlatent.engine.jacobian import batched_jacobian, check_latents, output_size, tangent_bytes
from jaxlatent.localbasis.basis import fix_signs
from jaxlatent.engine.spectral import (KrylovState, krylov_active, krylov_device_loop, krylov_start, krylov_step,
                                         resolve_loop, solver_sizes)
from jaxlatent.engine.parallel import HostLoop, Pieces, map_batched, piece_size

METHODS = ("auto", "full", "krylov", "lobpcg")
# "auto" forms J when one latent's Jacobian has at most this many entries (256 MB in float32)
FULL_LIMIT = 2 ** 26
# default chunk of "full": as many latents as keep their Jacobians within this many bytes
CHUNK_BYTES = 2 ** 30


class Metric(NamedTuple):
    """The metric tensor at N latents (a pytree; every field batched on axis 0).

    eigenvalues: (N, k), descending.
    eigenvectors: (N, in, k), orthonormal columns, largest-magnitude entry positive.
    matrix: (N, in, in), the whole H (``method="full"``), or None (top-k methods).
    """

    eigenvalues: jax.Array
    eigenvectors: jax.Array
    matrix: jax.Array | None


def mse_distance(x0: jax.Array, x: jax.Array) -> jax.Array:
    """Mean squared difference over all values of each image: the default image distance.

    Args:
      x0: (N, ...) reference images.
      x: (N, ...) images, same shape.

    Returns:
      (N,) distances; the metric it induces is ``(2/n) J^T J`` with ``n = prod(x.shape[1:])``.
    """
    diff = jnp.reshape(x - x0, (x.shape[0], -1))
    return jnp.mean(diff * diff, axis=1)


def _distance_hvp(distance: Callable, x0: jax.Array) -> Callable:
    """``U (N, *image) -> M_n u_n`` for every sample at once: the directional derivative of the
    gradient of ``sum_n distance(x0_n, x_n)`` at ``x = x0`` (samples independent)."""
    grad = jax.grad(lambda x: jnp.sum(distance(x0, x)))
    return lambda u: jax.jvp(grad, (x0,), (u,))[1]


def _metric_operator(g: Callable, distance: Callable | None, mse: bool, z: jax.Array) -> Callable:
    """``V (N, in, p) -> H_n V_n`` at every latent of a batch, matrix-free, with the batch
    linearised once and the columns of a block mapped over (never the samples; see
    :func:`jaxlatent.engine.jacobian.jvp_operator`)."""
    x0, jvp_lin = jax.linearize(g, z)
    vjp_lin = jax.linear_transpose(jvp_lin, z)
    if mse:
        m_apply = lambda u: u * (2.0 / math.prod(x0.shape[1:]))  # noqa: E731
    else:
        m_apply = _distance_hvp(distance, x0)
    return jax.vmap(lambda v: vjp_lin(m_apply(jvp_lin(v)))[0], in_axes=2, out_axes=2)


def _krylov_rows(g, distance, mse, sizes, batch):
    """Top-k eigenpairs of H by the block Krylov solver, its rounds in one program."""
    z, key_data = batch
    apply = _metric_operator(g, distance, mse, z)
    state = krylov_start(apply, z.shape[1], z.dtype, key_data, *sizes)
    return _krylov_metric(sizes[0], krylov_device_loop(apply, state, *sizes))


def _krylov_start_rows(g, distance, mse, sizes, batch):
    z, key_data = batch
    return krylov_start(_metric_operator(g, distance, mse, z), z.shape[1], z.dtype, key_data, *sizes)


def _krylov_step_rows(g, distance, mse, sizes, batch_state):
    (z, _), state = batch_state
    return krylov_step(_metric_operator(g, distance, mse, z), state, *sizes)


def _krylov_finish_rows(k, batch_state):
    return _krylov_metric(k, batch_state[1])


def _krylov_metric(k, state: KrylovState):
    """The top k Ritz pairs (descending, signs fixed) and each latent's worst relative residual."""
    vecs = state.v[..., :k]
    return Metric(state.theta[..., :k], fix_signs(vecs, vecs)[1], None), jnp.max(state.res[..., :k], axis=-1)


def _is_mse(distance) -> bool:
    return distance is None or distance is mse_distance


@functools.partial(jax.tree_util.register_dataclass, data_fields=["g", "distance"],
                   meta_fields=["mode", "mse"])
@dataclasses.dataclass(frozen=True)
class _MetricMatrix:
    """Hashable ``z (n, in) -> H (n, in, in)``: the full metric, ``J^T M J``, per latent."""

    g: Callable
    distance: Callable | None
    mode: str
    mse: bool

    def __call__(self, z):
        shape = jax.eval_shape(shape_view(self.g), z[:1]).shape[1:]
        jac = batched_jacobian(self.g, self.mode)(z)                   # (n, out, in)
        if self.mse:
            mj = jac * (2.0 / jac.shape[1])
        else:   # M J column by column, every sample at once
            hvp = _distance_hvp(self.distance, self.g(z))
            mj = jax.vmap(lambda col: jnp.reshape(hvp(jnp.reshape(col, (z.shape[0],) + shape)), (z.shape[0], -1)),
                          in_axes=2, out_axes=2)(jac)
        h = jnp.swapaxes(jac, 1, 2) @ mj
        return 0.5 * (h + jnp.swapaxes(h, 1, 2))


@functools.partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=["k"])
@dataclasses.dataclass(frozen=True)
class _Eigh:
    """Hashable ``H (n, in, in) -> Metric``: one batched ``eigh`` (the only LAPACK call of its program)."""

    k: int | None

    def __call__(self, h):
        vals, vecs = jnp.linalg.eigh(h)
        vals, vecs = vals[..., ::-1], vecs[..., ::-1]
        if self.k is not None:
            vals, vecs = vals[..., :self.k], vecs[..., :self.k]
        return Metric(vals, fix_signs(vecs, vecs)[1], h)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["g", "distance"],
                   meta_fields=["k", "iters", "tol", "mse"])
@dataclasses.dataclass(frozen=True)
class _TopK:
    """Hashable ``(z (n, in), start (n, in, k)) -> Metric`` by LOBPCG, vmapped over latents.

    LOBPCG's decompositions depend on one another within an iteration, so the batched calls run
    one after another (``tests/test_geometry.py`` checks the compiled program).
    """

    g: Callable
    distance: Callable | None
    k: int
    iters: int
    tol: float | None
    mse: bool

    def __call__(self, batch):
        z, start = batch
        g, rows = detach(self.g)    # per-latent inputs of g go with their latent into the vmap

        def one(z1, x_init, rows1):   # LOBPCG's loop runs one latent at a time: a batch of one
            g1 = attach(g, jax.tree_util.tree_map(lambda a: a[None], rows1))
            h_times = _metric_operator(g1, self.distance, self.mse, z1[None])
            theta, vecs, _ = lobpcg_standard(lambda v: h_times(v[None])[0], x_init, m=self.iters, tol=self.tol)
            return theta, vecs

        vals, vecs = jax.vmap(one)(z, start, rows)
        return Metric(vals, fix_signs(vecs, vecs)[1], None)


def resolve_method(method: str, n_in: int, n_out: int, k: int | None) -> str:
    """``"full"``, ``"krylov"`` or ``"lobpcg"``: "auto" forms the metric unless only a few of
    many directions are wanted, and then takes ``"krylov"``.

    Args:
      method: "auto", "full", "krylov" or "lobpcg".
      n_in: latent size. n_out: values per image. k: eigenpairs wanted (None: all).

    Returns:
      "krylov" for "auto" when ``k`` is given, ``5 k < in`` and the Jacobian of one latent has
      more than ``FULL_LIMIT`` entries; "full" otherwise.
    """
    if method not in METHODS:
        raise ValueError(f"metric_tensor: method must be one of {METHODS}, found {method!r}")
    if method != "auto":
        return method
    if k is not None and 5 * k < n_in and n_in * n_out > FULL_LIMIT:
        return "krylov"
    return "full"


def metric_tensor(g: Callable, z, *, distance: Callable | None = None, k: int | None = None,
                  method: str = "auto", key: jax.Array | None = None, max_iter: int = 200,
                  tol: float | None = None, loop: str = "auto", chunk_size: int | None = None, mesh=None,
                  use_pmap: bool = False, progress: bool | Callable = False) -> Metric:
    """The Riemannian metric H(z0) of the image manifold at each latent (Wang & Ponce 2021, eq. 2).

    H(z0) is the Hessian of ``z -> distance(g(z0), g(z))`` at ``z = z0``, computed as
    ``J^T M J`` (module docstring): for the default distance ``H = (2/n) J^T J``.

    Args:
      g: batched generator ``(N, in) -> (N, C, H, W)`` (any output shape), e.g.
        ``model.fn("image", wrt="w")``.
      z: (N, in) latents; float64 in, float64 out (when ``g`` computes in float64).
      distance: ``distance(x0, x) -> (N,)`` on batches of images, twice differentiable, with
        ``distance(x0, x0) = 0``; default :func:`mse_distance`.
      k: eigenpairs kept (default: all ``in``; required for the top-k methods, which need
        ``5 k < in``).
      method: ``"full"`` (form H, dense ``eigh``), ``"krylov"`` (top ``k`` matrix-free by the
        thick-restart block Krylov solver of :mod:`jaxlatent.engine.spectral`, to a relative
        residual ``tol``), ``"lobpcg"`` (top ``k`` matrix-free by
        ``jax.experimental.sparse.linalg.lobpcg_standard``) or ``"auto"`` (see
        :func:`resolve_method`).
      key: PRNG key for the random start blocks of the top-k methods (one block per latent,
        split from it, so results do not depend on chunking); required for them.
      max_iter: the top-k methods' maximum iterations (rounds).
      tol: "krylov": the relative residual ``||H v - l v|| / l`` every one of the top k must
        reach (default 1e-4; a ``RuntimeWarning`` says when a latent stopped short).
        "lobpcg": a pair converges when ``|H v - l v| < tol * 10 * in * (l + |H v|)`` (default:
        the float epsilon of the dtype); the iteration stops when all ``k`` have.
      loop: "krylov": where its rounds run (see :func:`jaxlatent.engine.spectral.top_singular`;
        "auto" drives them from the host on CPU when the generator has convolutions).
      chunk_size: latents per compiled call; "full" holds ``chunk_size * out * in`` values
        (default: as many latents as fit ``CHUNK_BYTES``, 1 GiB, of Jacobians, whose Jacobians
        are formed a few at a time on CPU, :func:`jaxlatent.engine.parallel.piece_size`; top-k: all).
      mesh, use_pmap, progress: see :func:`jaxlatent.engine.parallel.map_batched`.

    Returns:
      :class:`Metric` with eigenvalues (N, k) descending, eigenvectors (N, in, k) and the
      matrix (N, in, in) for "full" (None for the top-k methods).
    """
    z = check_latents(z, "metric_tensor")
    n_in, n_out = z.shape[1], output_size(g, z)
    if k is not None and not 1 <= k <= n_in:
        raise ValueError(f"metric_tensor: k must lie in [1, {n_in}] for a {n_in}-dimensional latent, found {k}")
    method = resolve_method(method, n_in, n_out, k)
    options = dict(chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    mse = _is_mse(distance)
    dist = None if mse else distance
    if method == "full":
        mode = "fwd" if n_in <= n_out else "rev"
        matrix = _MetricMatrix(g, dist, mode, mse)
        if chunk_size is None:
            options["chunk_size"] = max(1, CHUNK_BYTES // (n_in * n_out * z.dtype.itemsize))
            # the Jacobians a few latents at a time (CPU caches), one eigh for the whole chunk
            matrix = Pieces(matrix, piece_size(tangent_bytes(g, z, mode), options["chunk_size"],
                                               mesh=mesh, use_pmap=use_pmap))
        return map_batched((matrix, _Eigh(k)), z, **options)
    if k is None or not 5 * k < n_in:
        raise ValueError(f"metric_tensor: method {method!r} needs k with 5 k < {n_in} (the latent size), "
                         f"found k={k}; use method='full' for more eigenpairs")
    if key is None:
        raise ValueError(f"metric_tensor: method {method!r} needs an explicit jax.random key (key=...)")
    if method == "krylov":
        block, basis = solver_sizes(k, n_in, n_out)
        sizes = (int(k), int(block), int(basis), int(max_iter), 1e-4 if tol is None else float(tol))
        keys = jax.random.key_data(jax.random.split(key, z.shape[0]))
        if resolve_loop(loop, g, z, mesh) == "host":
            fn = HostLoop(jax.tree_util.Partial(_krylov_start_rows, g, dist, mse, sizes),
                          jax.tree_util.Partial(_krylov_step_rows, g, dist, mse, sizes),
                          jax.tree_util.Partial(_krylov_finish_rows, int(k)), krylov_active)
        else:
            fn = jax.tree_util.Partial(_krylov_rows, g, dist, mse, sizes)
        metric, worst = map_batched(fn, (z, keys), **options)
        short = int(jnp.sum(worst > sizes[-1]))
        if short:
            warnings.warn(f"metric_tensor: {short} of {z.shape[0]} latents stopped after max_iter={max_iter} rounds "
                          f"with a relative residual up to {float(jnp.max(worst)):.1e} > tol={sizes[-1]:g}",
                          RuntimeWarning, stacklevel=2)
        return metric
    start = jax.vmap(lambda kk: jax.random.normal(kk, (n_in, k), z.dtype))(jax.random.split(key, z.shape[0]))
    fn = _TopK(g, dist, int(k), int(max_iter), None if tol is None else float(tol), mse)
    return map_batched(fn, (z, start), **options)


@jax.jit
def metric_matrix(metric: Metric) -> jax.Array:
    """``V diag(l) V^T`` from a Metric's eigenpairs: the whole H, or its rank-k part for top-k metrics.

    Args:
      metric: :class:`Metric` with eigenvalues (N, k) and eigenvectors (N, in, k).

    Returns:
      (N, in, in).
    """
    v = metric.eigenvectors
    return (v * metric.eigenvalues[..., None, :]) @ jnp.swapaxes(v, -1, -2)


@functools.partial(jax.jit, static_argnames=("n_side",))
def equal_distance_steps(eigenvalues: jax.Array, *, length: float, n_side: int,
                         max_step: float | None = None) -> jax.Array:
    """Step sizes along each eigenvector that space images by equal metric length.

    Near ``z0`` the distance along ``t v_i`` is ``d ~ 1/2 l_i t^2`` (H is the Hessian of ``d``),
    so the metric length ``sqrt(d)`` grows as ``sqrt(l_i / 2) |t|``; steps
    ``t_j = j * length / sqrt(l_i / 2)`` for ``j = -n_side .. n_side`` move every axis by the same
    length per step: the eigen-axis strips of Wang & Ponce 2021 (figure 2), where a flat axis
    needs long steps to change the image as much as a steep one.

    Args:
      eigenvalues: (N, k) metric eigenvalues.
      length: metric length per step (``sqrt`` of the distance's units).
      n_side: steps on each side of ``z0``.
      max_step: largest ``|t|`` (latent units) allowed; None: no limit (infinite for zero eigenvalues).

    Returns:
      (N, k, 2 n_side + 1) signed step sizes, 0 in the middle.
    """
    vals = jnp.maximum(jnp.asarray(eigenvalues), 0)
    unit = length / jnp.sqrt(vals / 2)
    j = jnp.arange(-n_side, n_side + 1, dtype=unit.dtype)
    t = unit[..., None] * j
    return t if max_step is None else jnp.clip(t, -max_step, max_step)


@functools.partial(jax.jit, static_argnames=("n_side",))
def eigen_axis_latents(z: jax.Array, metric: Metric, *, length: float, n_side: int,
                       max_step: float | None = None) -> jax.Array:
    """Latents along each eigenvector of the metric, equally spaced in metric length.

    Args:
      z: (N, in) the latents the metric was computed at (or (in,) with a batch-1 metric).
      metric: :class:`Metric` with eigenvalues (N, k) and eigenvectors (N, in, k) (a batch of one,
        such as an average metric, applies to every latent).
      length, n_side, max_step: see :func:`equal_distance_steps`.

    Returns:
      (N, k, 2 n_side + 1, in): ``z + t_ij v_i``.
    """
    z = jnp.atleast_2d(jnp.asarray(z))
    t = equal_distance_steps(metric.eigenvalues, length=length, n_side=n_side, max_step=max_step)     # (N|1, k, S)
    moves = jnp.einsum("nik,nks->nksi", metric.eigenvectors, t)
    return z[:, None, None, :] + moves
