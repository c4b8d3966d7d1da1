"""Batched Jacobians of a tap, and the matrix-free products that stand in for them.

Convention (``docs/methods.md``, "Conventions"): ``f`` is a batched callable
``f(z: (N, in)) -> (N, *out_shape)`` whose samples are independent. The
per-sample map is ``g(z1) = f(z1[None])[0]``, flattened in C order, so the
Jacobian at each latent is ``J = dg/dz1`` of shape ``(prod(out_shape), in)``.

Forward mode pushes the ``in`` unit tangents through ``g`` (cost ~ ``in`` x one
evaluation), reverse mode pulls ``out`` cotangents back (cost ~ ``out`` x one
evaluation plus storing the forward pass); ``mode="auto"`` takes forward mode
when ``in <= out``. With a batch of latents both modes become batched matrix
products (for a dense layer, ``(N * in, width) @ (width, width)``), which is
what makes them fast.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from jaxlatent.engine.aligned import shape_view
from jaxlatent.engine.parallel import auto_chunk_size, map_batched, piece_size

MODES = ("auto", "fwd", "rev")


def per_sample(f: Callable) -> Callable:
    """The per-sample, flattened map ``g(z1: (in,)) -> (prod(out_shape),)`` of a batched ``f``."""

    def g(z1):
        return jnp.reshape(f(z1[None])[0], (-1,))

    return g


def check_latents(z, where: str = "jacobian") -> jax.Array:
    """Latents as a (N, in) array of floating dtype, or an error that says what was found."""
    z = jnp.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"{where}: expected latents of shape (N, in), found shape {tuple(z.shape)}")
    if z.shape[0] == 0:
        raise ValueError(f"{where}: the batch of latents is empty (shape {tuple(z.shape)})")
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.result_type(float))
    return z


def output_size(f: Callable, z: jax.Array) -> int:
    """``prod(out_shape)`` of the tap, found by tracing ``f`` on one latent (no computation)."""
    out = jax.eval_shape(shape_view(f), jax.ShapeDtypeStruct((1,) + z.shape[1:], z.dtype))
    return math.prod(out.shape[1:])


def _sub_jaxprs(eqn) -> list:
    """The jaxprs an equation calls (``jit``, ``custom_jvp``, control flow), ``ClosedJaxpr``s opened."""
    subs = [getattr(sub, "jaxpr", sub)
            for param in eqn.params.values()
            for sub in (param if isinstance(param, (tuple, list)) else (param,))]
    return [sub for sub in subs if hasattr(sub, "eqns")]


def _value_bytes(jaxpr) -> int:
    """Bytes of every value a jaxpr computes, no reuse assumed. A call counts as the values of
    its sub-jaxprs, whose outputs are its outputs."""
    total = 0
    for eqn in jaxpr.eqns:
        subs = _sub_jaxprs(eqn)
        if subs:
            total += sum(_value_bytes(sub) for sub in subs)
            continue
        for var in eqn.outvars:
            shape = getattr(var.aval, "shape", None)
            if shape is not None:
                total += math.prod(shape) * var.aval.dtype.itemsize
    return total


def _primitives(jaxpr) -> set[str]:
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in _sub_jaxprs(eqn):
            names |= _primitives(sub)
    return names


def has_convolution(f: Callable, z: jax.Array) -> bool:
    """Whether the tap computes a convolution (traced on one latent, no computation).

    Iterative solvers ask this on CPU, where XLA runs convolutions inside a compiled ``while``
    loop many times slower than outside one (:class:`jaxlatent.engine.parallel.HostLoop`).
    """
    jaxpr = jax.make_jaxpr(shape_view(f))(jax.ShapeDtypeStruct((1,) + z.shape[1:], z.dtype)).jaxpr
    return "conv_general_dilated" in _primitives(jaxpr)


def tangent_bytes(f: Callable, z: jax.Array, mode: str) -> int:
    """Bytes of intermediate values one latent's Jacobian program pushes: the tangents (``in``
    for ``"fwd"``, ``out`` for ``"rev"``) times the bytes the forward pass computes per sample.

    The per-sample bytes are those of a traced batch of two minus a batch of one (what does not
    grow with the batch, such as weights scaled at run time, cancels). Tracing only, no
    computation. :func:`jaxlatent.engine.parallel.piece_size` turns it into rows per program.
    """
    f = shape_view(f)

    def traced(n):
        return _value_bytes(jax.make_jaxpr(f)(jax.ShapeDtypeStruct((n,) + z.shape[1:], z.dtype)).jaxpr)

    per_sample_bytes = max(1, traced(2) - traced(1))
    tangents = z.shape[1] if mode == "fwd" else output_size(f, z)
    return per_sample_bytes * tangents


def resolve_mode(mode: str, n_in: int, n_out: int) -> str:
    """``"fwd"`` or ``"rev"``: ``"auto"`` picks forward mode when inputs are no more than outputs."""
    if mode not in MODES:
        raise ValueError(f"jacobian: mode must be one of {MODES}, found {mode!r}")
    if mode == "auto":
        return "fwd" if n_in <= n_out else "rev"
    return mode


def _jacobian_rows(f: Callable, mode: str, z: jax.Array) -> jax.Array:
    n, n_in = z.shape
    flat = lambda x: jnp.reshape(f(x), (n, -1))  # noqa: E731
    if mode == "rev":
        # reverse mode on the whole batch too: cotangent e_i in every row pulls back row i of
        # every sample's Jacobian (f is only ever called on the batch, so callables carrying
        # per-latent inputs work unchanged)
        out, pull = jax.vjp(flat, z)
        back = lambda u: pull(jnp.broadcast_to(u, out.shape))[0]  # noqa: E731
        return jax.vmap(back, in_axes=0, out_axes=1)(jnp.eye(out.shape[1], dtype=out.dtype))
    # forward mode on the whole batch: tangent e_j in every row gives column j of every
    # sample's Jacobian (samples are independent). One vmap over the in tangents, not a vmap
    # over samples around jacfwd: XLA 0.10 on CPU computed the latter wrong for batches of 8
    # or more on a StyleGAN2 mapping network (every row but the first off by ~10 %)
    push = lambda t: jax.jvp(flat, (z,), (jnp.broadcast_to(t, z.shape),))[1]  # noqa: E731
    return jax.vmap(push, in_axes=0, out_axes=2)(jnp.eye(n_in, dtype=z.dtype))


def batched_jacobian(f: Callable, mode: str) -> jax.tree_util.Partial:
    """The batched Jacobian of ``f`` as a pytree callable ``z (n, in) -> (n, prod(out_shape), in)``.

    The building block that :func:`jacobian`, Local Basis and traversal hand to
    :func:`jaxlatent.engine.parallel.map_batched` (alone or as the first stage of a pipeline).
    It is a ``jax.tree_util.Partial``: the array leaves of ``f`` (a model's weights)
    reach the compiled program as inputs, and equal ``(f, mode)`` share one compilation.

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``.
      mode: ``"fwd"`` (vmapped ``jax.jacfwd``) or ``"rev"`` (vmapped ``jax.jacrev``); see
        :func:`resolve_mode`.

    Returns:
      A callable ``z: (n, in) -> (n, prod(out_shape), in)``.
    """
    if mode not in ("fwd", "rev"):
        raise ValueError(f"batched_jacobian: mode must be 'fwd' or 'rev', found {mode!r}")
    return jax.tree_util.Partial(_jacobian_rows, f, mode)


def jacobian(f: Callable, z, *, mode: str = "auto", chunk_size: int | None = None, mesh=None,
             use_pmap: bool = False, progress: bool | Callable = False) -> jax.Array:
    """Jacobian of the tap ``f`` at every latent: ``J[n] = d f(z)[n] / d z[n]``.

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``, outputs flattened in C order.
      z: ``(N, in)`` latents (float32 or float64; the dtype ``f`` computes in is kept).
      mode: ``"fwd"`` (vmapped ``jacfwd``), ``"rev"`` (vmapped ``jacrev``) or ``"auto"``
        (forward when ``in <= out``).
      chunk_size: latents per compiled call; memory is O(chunk_size * out * in) whatever N.
        Default: chosen from the Jacobian's size and the memory at hand
        (:func:`jaxlatent.engine.parallel.auto_chunk_size`), and on CPU from the tangents' working
        set (:func:`tangent_bytes`, :func:`jaxlatent.engine.parallel.piece_size`).
      mesh: a :func:`jaxlatent.engine.parallel.batch_mesh` to split each chunk over its devices.
      use_pmap: split each chunk over devices with ``pmap`` instead of ``shard_map``.
      progress: ``True`` for a progress bar over chunks, or a wrapper of the chunk iterator.

    Returns:
      ``(N, prod(out_shape), in)``.
    """
    z = check_latents(z)
    n_out = output_size(f, z)
    mode = resolve_mode(mode, z.shape[1], n_out)
    if chunk_size is None:
        chunk_size = auto_chunk_size(z.dtype.itemsize * n_out * z.shape[1], z.shape[0], mesh=mesh,
                                     use_pmap=use_pmap)
        chunk_size = piece_size(tangent_bytes(f, z, mode), chunk_size, mesh=mesh, use_pmap=use_pmap)
    return map_batched(batched_jacobian(f, mode), z, chunk_size=chunk_size, mesh=mesh,
                       use_pmap=use_pmap, progress=progress)


def _flat_batch(f: Callable, z: jax.Array) -> Callable:
    n = z.shape[0]
    return lambda x: jnp.reshape(f(x), (n, -1))


def jvp_operator(f: Callable, z) -> Callable:
    """Matrix-free ``v -> J v`` at every latent (forward mode).

    z: (N, in). The returned function maps ``v: (N, in)`` or ``(N, in, p)``
    to ``(N, out)`` or ``(N, out, p)``. The batched tap is linearised once at all of ``z``
    (samples are independent, so row ``n`` of a product is ``J_n v_n``) and a block's columns
    are mapped over, never the samples: the structure of :func:`batched_jacobian`. Repeated
    products cost one Jacobian-vector pass each.
    """
    z = check_latents(z, "jvp_operator")
    _, lin = jax.linearize(_flat_batch(f, z), z)

    def apply(v):
        if v.ndim == 3:
            return jax.vmap(lin, in_axes=2, out_axes=2)(v)
        return lin(v)

    return apply


def vjp_operator(f: Callable, z) -> Callable:
    """Matrix-free ``u -> J^T u`` at every latent (reverse mode).

    z: (N, in). The returned function maps ``u: (N, out)`` or ``(N, out, p)``
    to ``(N, in)`` or ``(N, in, p)``; the batch's forward pass is stored once.
    """
    z = check_latents(z, "vjp_operator")
    _, pull = jax.vjp(_flat_batch(f, z), z)

    def apply(u):
        if u.ndim == 3:
            return jax.vmap(lambda c: pull(c)[0], in_axes=2, out_axes=2)(u)
        return pull(u)[0]

    return apply


def gram_operator(f: Callable, z) -> Callable:
    """Matrix-free ``v -> J^T J v`` at every latent (the pull-back metric of the tap).

    z: (N, in); ``v: (N, in)`` or ``(N, in, p)``, same shape returned. Its
    eigenvalues are the squared singular values of ``J``.
    """
    jv = jvp_operator(f, z)
    vj = vjp_operator(f, z)
    return lambda v: vj(jv(v))
