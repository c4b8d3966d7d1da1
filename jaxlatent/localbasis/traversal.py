"""Traversals of the latent space along Local Basis directions (Choi et al., Local Basis).

``linear_traversal`` moves in a straight line, ``z + t v``. The paper's
*iterative curve traversal* (Choi et al., "Do Not Escape From the Manifold",
section 3.2; reference ``get_iter_trvs_latent`` in ``notebooks/localbasis_utils.py``)
follows the direction field instead: from ``z`` it takes ``steps // 2``
small steps each way along the chosen right singular vector, recomputing the
Local Basis after every step, so that the curve stays on the image of the
latent neighbourhood where a straight line would leave it.

Step rule (as the reference): step length ``2 sigma / steps``, divided by
the current singular value when ``scale_by_singular_value`` (so that the tap
moves by about ``2 sigma / steps`` per step). After each recomputation the
new direction's sign is aligned with the previous one (flipped when their
inner product is negative). With ``follow_basis`` the followed index may
change: it becomes the index of the new tap-space basis vector most parallel
(in absolute cosine) to the previous one, as the reference's
``compare_basis`` option does. Both directions (+ and -) run as one batch.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.aligned import repeat_rows
from jaxlatent.engine.jacobian import batched_jacobian, check_latents, output_size, resolve_mode
from jaxlatent.ganspace.edits import edit_grid
from jaxlatent.localbasis.basis import decomposition_bytes, svd_triplets
from jaxlatent.engine.spectral import resolve_loop
from jaxlatent.engine.parallel import HostLoop, auto_chunk_size, map_batched


def linear_traversal(z, direction, *, strengths) -> jax.Array:
    """Straight lines ``z + t v`` through each latent (the baseline the curve traversal improves on).

    The GANSpace edit (:func:`jaxlatent.ganspace.edits.edit_grid`) along one direction per latent.

    Args:
      z: ``(N, in)`` start latents.
      direction: ``(N, in)`` one direction per latent, or ``(in,)`` shared by all.
      strengths: ``(T,)`` signed step lengths ``t``.

    Returns:
      ``(N, T, in)``: ``z[n] + strengths[i] * direction[n]``.
    """
    return jnp.swapaxes(edit_grid(z, jnp.asarray(direction)[None], strengths=strengths)[0], 0, 1)


class Traversal(NamedTuple):
    """Result of :func:`iterative_traversal` (a pytree, batched on axis 0).

    latents: (N, frames, in) frames along the curve, from the negative end through
        ``z`` (the middle frame) to the positive end.
    values: (N, frames, *out_shape) the tap at those frames (what the reference returns).
    path: (N, 2 * (steps // 2) + 1, in) every step of the curve, same order.
    index: (N, 2 * (steps // 2) + 1) the basis index followed at each step.
    """

    latents: jax.Array
    values: jax.Array
    path: jax.Array
    index: jax.Array


def frame_steps(num_frames: int, num_steps: int) -> list[int]:
    """Step counts (from ``z``, each way) at which frames are taken, as the reference picks them."""
    each = num_frames // 2
    return [int(i / each * (num_steps // 2)) for i in range(1, each + 1)]


def _take(a, i):
    return jnp.take_along_axis(a, i[:, None, None], axis=-1)[..., 0]


def _start(f, mode, keep, inputs):
    """The first Local Basis of both halves of a chunk's curves: the carry of the steps.

    Rows interleave the halves, ``(z_0, +), (z_0, -), (z_1, +), ...`` (``2 n`` rows), so that a
    chunk split over devices keeps each latent's halves on its device."""
    z, index = inputs
    zz = jnp.repeat(z, 2, axis=0)
    lb = svd_triplets(batched_jacobian(repeat_rows(f, 2), mode)(zz), keep)   # per-latent inputs: both halves
    idx0 = jnp.repeat(index, 2).astype(jnp.int32)
    return (zz, _take(lb.directions, idx0), _take(lb.basis, idx0),
            jnp.take_along_axis(lb.singular_values, idx0[:, None], axis=-1)[:, 0], idx0)


def _step(f, mode, sigma, num_steps, scale, follow, keep, carry):
    """One step of every curve (both halves): move, recompute the Local Basis, pick and align."""
    zc, v, u, s, idx = carry
    sign = jnp.tile(jnp.asarray([1.0, -1.0], zc.dtype), zc.shape[0] // 2)
    size = 2.0 * sigma / num_steps / s if scale else jnp.full_like(s, 2.0 * sigma / num_steps)
    zn = zc + (sign * size)[:, None] * v
    new = svd_triplets(batched_jacobian(repeat_rows(f, 2), mode)(zn), keep)
    if follow:
        cos = jnp.abs(jnp.einsum("bo,bok->bk", u, new.basis))
        idx = jnp.argmax(cos, axis=-1).astype(jnp.int32)
    vn, un = _take(new.directions, idx), _take(new.basis, idx)
    flip = jnp.where(jnp.sum(v * vn, axis=-1) < 0, -1.0, 1.0).astype(zc.dtype)[:, None]
    sn = jnp.take_along_axis(new.singular_values, idx[:, None], axis=-1)[:, 0]
    return (zn, vn * flip, un * flip, sn, idx)


def _assemble(z, idx0, zs, idxs):
    """``path (n, 2 steps + 1, in)`` and ``index`` from the interleaved steps ``zs (2n, steps, in)``."""
    pos, neg = zs[0::2], zs[1::2]
    path = jnp.concatenate([neg[:, ::-1], z[:, None], pos], axis=1)
    index = jnp.concatenate([idxs[1::2, ::-1], idx0[0::2, None], idxs[0::2]], axis=1)
    return path, index


def _traverse(f, mode, sigma, num_steps, scale, follow, keep, inputs):
    """Both halves of the curves of a chunk, the steps inside the program (``lax.scan``):
    inputs ``(z (n, in), index (n,) int32)``."""
    carry = _start(f, mode, keep, inputs)
    idx0 = carry[-1]

    def step(carry, _):
        new = _step(f, mode, sigma, num_steps, scale, follow, keep, carry)
        return new, (new[0], new[-1])

    _, (zs, idxs) = jax.lax.scan(step, carry, None, length=num_steps // 2)
    return _assemble(inputs[0], idx0, jnp.swapaxes(zs, 0, 1), jnp.swapaxes(idxs, 0, 1))


# the host loop (parallel.HostLoop): each step its own compiled call; the state keeps a latent's
# rows together on axis 0, ``(n, 2, ...)``, so that map_batched may split it like the inputs
def _pairs(a):
    return jnp.reshape(a, (a.shape[0] // 2, 2) + a.shape[1:])


def _flat_pairs(a):
    return jnp.reshape(a, (a.shape[0] * 2,) + a.shape[2:])


def _host_start(f, mode, sigma, num_steps, scale, follow, keep, inputs):
    carry = _start(f, mode, keep, inputs)
    n2, steps = carry[0].shape[0], num_steps // 2
    zs = jnp.zeros((n2, steps) + carry[0].shape[1:], carry[0].dtype)
    idxs = jnp.zeros((n2, steps), jnp.int32)
    done = jnp.zeros((n2 // 2,), jnp.int32)
    return tuple(_pairs(a) for a in carry) + (_pairs(zs), _pairs(idxs), _pairs(carry[-1]), done)


def _host_step(f, mode, sigma, num_steps, scale, follow, keep, inputs_state):
    _, state = inputs_state
    carry = tuple(_flat_pairs(a) for a in state[:5])
    zs, idxs, idx0, done = _flat_pairs(state[5]), _flat_pairs(state[6]), state[7], state[8]
    new = _step(f, mode, sigma, num_steps, scale, follow, keep, carry)
    at = done[0]                      # every row of a chunk takes the same number of steps
    zs = jax.lax.dynamic_update_slice_in_dim(zs, new[0][:, None], at, axis=1)
    idxs = jax.lax.dynamic_update_slice_in_dim(idxs, new[-1][:, None], at, axis=1)
    return tuple(_pairs(a) for a in new) + (_pairs(zs), _pairs(idxs), idx0, done + 1)


def _host_active(num_steps, state):
    return state[-1] < num_steps // 2


def _host_finish(inputs_state):
    (z, _), state = inputs_state
    return _assemble(z, _flat_pairs(state[7]), _flat_pairs(state[5]), _flat_pairs(state[6]))


def traversal_program(f: Callable, mode: str, sigma: float, num_steps: int,
                      scale_by_singular_value: bool, follow_basis: bool,
                      keep: int) -> jax.tree_util.Partial:
    """The compiled core of :func:`iterative_traversal` (its steps inside the program) as a
    pytree callable.

    ``(z (n, in), index (n,) int32) -> (path (n, 2 * (num_steps // 2) + 1, in), index (n, same))``;
    ``keep`` triplets of each step's SVD are kept. Exposed so that tests can inspect its
    compiled program (e.g. its LAPACK calls); users call :func:`iterative_traversal`.
    """
    return jax.tree_util.Partial(_traverse, f, mode, float(sigma), int(num_steps),
                                 bool(scale_by_singular_value), bool(follow_basis), int(keep))


def iterative_traversal(f: Callable, z, *, index, sigma: float, steps: int = 100,
                        frames: int = 5, scale_by_singular_value: bool = False,
                        follow_basis: bool = False, mode: str = "auto", loop: str = "auto",
                        chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                        progress: bool | Callable = False) -> Traversal:
    """Iterative curve traversal along the ``index``-th Local Basis direction.

    Choi et al., Local Basis (ICLR 2022), section 3.2: from ``z``, ``steps // 2`` small
    steps each way along the chosen right singular vector, recomputing the Local Basis after
    every step (module docstring for the step rule).

    Args:
      f: batched tap ``(N, in) -> (N, *out_shape)`` whose Local Basis is followed.
      z: ``(N, in)`` start latents.
      index: 0-based singular direction (0 = largest): an int for every latent, or an
        ``(N,)`` int array, one per latent (several directions of one latent then run in one
        compiled batch: repeat the latent, vary the index).
      sigma: half-length of the traversal (about ``sigma`` each way in the latent space, or
        in the tap with ``scale_by_singular_value``).
      steps: total steps (``steps // 2`` each way), one Jacobian and SVD each.
      frames: odd number of frames returned (reference default: 5 frames, 100 steps).
      scale_by_singular_value: divide each step by the current singular value.
      follow_basis: re-pick the index by the most parallel tap-space basis vector
        (reference ``compare_basis``).
      mode: Jacobian mode (``"auto"``, ``"fwd"``, ``"rev"``).
      loop: where the steps run: ``"device"`` (``lax.scan`` inside one compiled program),
        ``"host"`` (one compiled step per call, driven from Python) or ``"auto"``: the host on
        CPU when the tap has a convolution (XLA's CPU backend runs those many times slower
        inside a loop; :class:`jaxlatent.engine.parallel.HostLoop`), else the device.
      chunk_size: latents per compiled call (default
        :func:`jaxlatent.engine.parallel.auto_chunk_size`, two Jacobians and SVDs per latent).
      mesh, use_pmap, progress: execution options, see :func:`jaxlatent.engine.parallel.map_batched`.

    Returns:
      :class:`Traversal`: ``latents (N, frames, in)``, ``values (N, frames, *out_shape)``,
      ``path (N, 2 * (steps // 2) + 1, in)``, ``index`` (same length as ``path``).
    """
    z = check_latents(z, "iterative_traversal")
    if frames < 1 or frames % 2 == 0:
        raise ValueError(f"iterative_traversal: frames must be odd and positive, found {frames}")
    if steps < 2 or steps // 2 < frames // 2:
        raise ValueError(f"iterative_traversal: steps ({steps}) must give at least one step per "
                         f"frame each way ({frames // 2})")
    n_out = output_size(f, z)
    m = min(n_out, z.shape[1])
    index = np.asarray(index)
    if index.ndim == 0:
        index = np.full((z.shape[0],), index)
    if index.shape != (z.shape[0],) or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"iterative_traversal: index must be an int or an int array of shape "
                         f"({z.shape[0]},), found {index.dtype} {index.shape}")
    if index.min() < 0 or index.max() >= m:
        raise ValueError(f"iterative_traversal: index must lie in [0, {m}) for a {n_out}x{z.shape[1]} "
                         f"Jacobian, found {index.min() if index.min() < 0 else index.max()}")
    keep = m if follow_basis else int(index.max()) + 1
    if chunk_size is None:  # each latent runs both halves of its curve: two Jacobians per step
        chunk_size = auto_chunk_size(2 * decomposition_bytes(n_out, z.shape[1], z.dtype.itemsize),
                                     z.shape[0], mesh=mesh, use_pmap=use_pmap)
    mode = resolve_mode(mode, z.shape[1], n_out)
    if resolve_loop(loop, f, z, mesh) == "host":
        args = (f, mode, float(sigma), int(steps), bool(scale_by_singular_value), bool(follow_basis), int(keep))
        fn = HostLoop(jax.tree_util.Partial(_host_start, *args), jax.tree_util.Partial(_host_step, *args),
                      _host_finish, functools.partial(_host_active, int(steps)))
    else:
        fn = traversal_program(f, mode, sigma, steps, scale_by_singular_value, follow_basis, keep)
    path, idx = map_batched(fn, (z, jnp.asarray(index, jnp.int32)), chunk_size=chunk_size, mesh=mesh,
                            use_pmap=use_pmap, progress=progress)
    half = steps // 2
    cols = [half - s for s in frame_steps(frames, steps)[::-1]] + [half] + \
           [half + s for s in frame_steps(frames, steps)]
    latents = path[:, jnp.asarray(cols)]
    flat = latents.reshape((-1, z.shape[1]))
    values = map_batched(repeat_rows(f, frames), flat, chunk_size=chunk_size * frames, mesh=mesh, use_pmap=use_pmap)
    values = values.reshape(latents.shape[:2] + values.shape[1:])
    return Traversal(latents=latents, values=values, path=path, index=idx)
