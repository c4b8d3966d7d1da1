"""Spreading batched work over chunks and devices.

Every analysis in :mod:`jaxlatent.analysis` is a function of a batch of
independent latents, so it parallelises along the batch axis and nothing
else. This module holds the one piece of code that does so:

* :func:`batch_mesh` builds a 1-D :class:`jax.sharding.Mesh` whose single axis
  (``"batch"``) spans the devices;
* :func:`shard_batch` places an array on that mesh, padded to a multiple of the
  device count;
* :func:`map_batched` runs a batched function over a batch in fixed-size
  chunks (memory bounded by the chunk, one compilation for all chunks), each
  chunk split across the devices of the mesh (``shard_map``) or, when asked,
  across devices with ``pmap``.

Multi-host (several processes, e.g. a TPU pod or a GPU cluster): call
``jax.distributed.initialize()`` at the start of every process, before any
other JAX call; ``jax.devices()`` then lists every device of every host and
``batch_mesh()`` spans them all. Each process must call the same functions
with the same global batch. To feed a batch of which each host holds only its
own rows, build the global array with
``jax.make_array_from_process_local_data(NamedSharding(mesh, P("batch")), local_rows)``
and pass it on; results come back as global arrays whose host-local parts
``result.addressable_shards`` each process may write out.

Results do not depend on the device count or the chunk size beyond float
rounding: every sample is computed independently of the others.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH_AXIS = "batch"


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D device mesh whose axis ``"batch"`` spans ``devices`` (default: all devices of all hosts)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("batch_mesh: no devices given")
    return Mesh(np.asarray(devices, dtype=object), (BATCH_AXIS,))


def pad_rows(x: jax.Array, n: int) -> jax.Array:
    """Pad the leading axis to length ``n`` by repeating the last row (keeps values finite)."""
    extra = n - x.shape[0]
    if extra <= 0:
        return x
    tail = jnp.broadcast_to(x[-1:], (extra,) + x.shape[1:])
    return jnp.concatenate([x, tail], axis=0)


def shard_batch(x, mesh: Mesh):
    """Place ``x`` (or a pytree of arrays sharing a leading batch axis) on ``mesh``, split along axis 0.

    x: (N, ...). The batch is padded (with copies of its last row) to a multiple
    of the device count; returns ``(sharded, N)`` so callers can drop the padding.
    """
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves:
        raise ValueError("shard_batch: empty input")
    n = leaves[0].shape[0]
    ndev = mesh.devices.size
    padded = math.ceil(max(n, 1) / ndev) * ndev
    sharding = NamedSharding(mesh, P(BATCH_AXIS))
    out = jax.tree_util.tree_map(lambda a: jax.device_put(pad_rows(jnp.asarray(a), padded), sharding), x)
    return out, n


def _is_dynamic(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def split_callable(fn):
    """Split a callable pytree into a hashable static part and its array leaves.

    A ``jax.tree_util.Partial`` holding weights (what ``model.fn(tap)`` returns),
    or a registered dataclass wrapping one, passes its arrays to the compiled
    program as inputs: equal structures share one compilation, and the weights
    are not baked in as constants. A plain function is all static (hashed by
    identity).
    """
    leaves, treedef = jax.tree_util.tree_flatten(fn)
    dyn = tuple(x for x in leaves if _is_dynamic(x))
    static = tuple(None if _is_dynamic(x) else x for x in leaves)
    return (treedef, static), dyn


def _join(static, dyn):
    treedef, fixed = static
    it = iter(dyn)
    return jax.tree_util.tree_unflatten(treedef, [next(it) if s is None else s for s in fixed])


@functools.partial(jax.jit, static_argnums=(0,))
def _call_jit(static, dyn, x):
    return _join(static, dyn)(x)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _call_sharded(static, mesh, dyn, x):
    fn = lambda d, xs: _join(static, d)(xs)
    return jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(BATCH_AXIS)), out_specs=P(BATCH_AXIS),
                         check_vma=False)(dyn, x)


@functools.lru_cache(maxsize=64)
def _pmapped(static, devices):
    return jax.pmap(lambda d, xs: _join(static, d)(xs), in_axes=(None, 0), devices=list(devices))


def _run_chunk(fn, x, mesh, use_pmap):
    if isinstance(fn, tuple):          # stages: one compiled program each, in order
        for stage in fn:
            x = _run_chunk(stage, x, mesh, use_pmap)
        return x
    static, dyn = split_callable(fn)
    if use_pmap:
        devices = tuple(mesh.devices.flat) if mesh is not None else tuple(jax.local_devices())
        ndev = len(devices)
        shaped = jax.tree_util.tree_map(lambda a: a.reshape((ndev, a.shape[0] // ndev) + a.shape[1:]), x)
        out = _pmapped(static, devices)(dyn, shaped)
        return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), out)
    if mesh is not None:
        return _call_sharded(static, mesh, dyn, x)
    return _call_jit(static, dyn, x)


def map_batched(fn: Callable[[Any], Any], z, chunk_size: int | None = None, mesh: Mesh | None = None,
                use_pmap: bool = False, progress: Callable | None = None):
    """Apply a batched function to ``z`` chunk by chunk, each chunk spread over devices.

    fn: ``x (n, ...) -> pytree of arrays with leading axis n``, samples independent; or a
    tuple of such functions, applied in order to each chunk as separate compiled programs
    (XLA on CPU ran a Jacobian followed by a LAPACK SVD 40% slower fused into one program
    than as two).
    Its array leaves (if it is a pytree such as ``jax.tree_util.Partial``) are
    passed to the compiled program as inputs, the rest is hashed: the same
    function (or an equal structure) compiles once and is reused across chunks
    and calls (see :func:`split_callable`). z: ``(N, ...)`` array or pytree of arrays with a
    shared leading axis. chunk_size: rows per call (default: all N at once);
    the last chunk is padded so that every call has the same shape (one
    compilation). mesh: a :func:`batch_mesh`; each chunk (rounded up to a
    multiple of the device count) is split over its devices with ``shard_map``,
    or with ``pmap`` when ``use_pmap`` (default devices: all local ones).
    progress: optional wrapper of the chunk iterator (e.g. ``tqdm.tqdm``).
    Returns the pytree of results, concatenated to leading axis N.
    """
    leaves = jax.tree_util.tree_leaves(z)
    if not leaves:
        raise ValueError("map_batched: empty input")
    n = leaves[0].shape[0]
    if n == 0:
        raise ValueError("map_batched: the batch is empty (N = 0)")
    ndev = 1
    if use_pmap:
        ndev = mesh.devices.size if mesh is not None else jax.local_device_count()
    elif mesh is not None:
        ndev = mesh.devices.size
    chunk = n if chunk_size is None else max(1, int(chunk_size))
    chunk = math.ceil(min(chunk, n) / ndev) * ndev
    starts = range(0, n, chunk)
    if progress is not None:
        starts = progress(starts)
    pieces = []
    for start in starts:
        part = jax.tree_util.tree_map(lambda a: pad_rows(jnp.asarray(a[start:start + chunk]), chunk), z)
        if mesh is not None and not use_pmap:
            part, _ = shard_batch(part, mesh)
        out = _run_chunk(fn, part, mesh, use_pmap)
        rows = min(chunk, n - start)
        pieces.append(jax.tree_util.tree_map(lambda a: a[:rows], out))
    if len(pieces) == 1:
        return pieces[0]
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0), *pieces)
