"""Spreading batched work over chunks and devices.

Every analysis of the method packages is a function of a batch of
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

Defaults that make a call with no options the fast path: :func:`auto_chunk_size` picks the
chunk from the bytes one sample needs and the memory at hand, and :func:`map_batched` runs its
programs with one BLAS thread per LAPACK call (:mod:`jaxlatent.engine.threads`). The execution
options are spelled the same in every analysis: ``chunk_size=None, mesh=None,
use_pmap=False, progress=False`` (keyword-only).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxlatent.engine.aligned import attach, detach, num_rows
from jaxlatent.engine.threads import single_blas_thread

BATCH_AXIS = "batch"

# Bytes of per-sample work (e.g. Jacobians plus decomposition workspace) one chunk holds on a
# CPU. LAPACK splits a batch over the cores, so its batches gain from size; 256 MiB is 32
# Local Bases of a 512 x 512 Jacobian, the fastest of 4-64 (docs/performance.md)
CPU_CHUNK_BYTES = 256 * 2 ** 20
# Bytes of intermediate values one Jacobian program pushes at once on a CPU (tangents times
# the forward pass's per-sample footprint). XLA's CPU convolutions slow down ~2.5x past it;
# dense layers do not care (docs/performance.md, "Jacobian pieces")
CPU_TANGENT_BYTES = 128 * 2 ** 20
# share of the free memory (host RAM on CPU, device memory on accelerators) one chunk may use
MEMORY_SHARE = 0.25


def available_memory(device: jax.Device | None = None) -> int | None:
    """Free bytes on ``device`` (default: the first device): device memory where the backend
    reports it, else the host's available RAM; ``None`` when neither is known."""
    device = jax.devices()[0] if device is None else device
    stats = None
    if device.platform != "cpu":
        try:
            stats = device.memory_stats()
        except (AttributeError, NotImplementedError, RuntimeError):
            stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _device_count(mesh: Mesh | None, use_pmap: bool) -> int:
    if mesh is not None:
        return mesh.devices.size
    return jax.local_device_count() if use_pmap else 1


def first_device(mesh: Mesh | None = None) -> jax.Device:
    """The device whose platform and memory decide the defaults: the mesh's first, else JAX's."""
    return mesh.devices.flat[0] if mesh is not None else jax.devices()[0]


def auto_chunk_size(bytes_per_sample: int, n: int, *, mesh: Mesh | None = None,
                    use_pmap: bool = False) -> int:
    """The chunk size analyses use when ``chunk_size=None``.

    Rule: a chunk holds at most ``budget / bytes_per_sample`` samples, where ``budget`` is
    ``MEMORY_SHARE`` (1/4) of the free memory of a device (times the device count: each
    device takes its share of the chunk), and on CPU also at most ``CPU_CHUNK_BYTES``
    (256 MiB, see ``docs/performance.md``). A chunk
    smaller than ``n`` is rounded down to a power of two (so that batches of other sizes
    reuse its compiled program); never below the device count, never above ``n``.

    Args:
      bytes_per_sample: bytes one sample needs at its peak (e.g. its Jacobian and the
        decomposition's workspace).
      n: number of samples.
      mesh, use_pmap: as passed to :func:`map_batched` (how many devices share a chunk).

    Returns:
      The chunk size, an int in ``[1, max(n, device count)]``.
    """
    ndev = _device_count(mesh, use_pmap)
    device = first_device(mesh)
    free = available_memory(device)
    budget = math.inf if free is None else MEMORY_SHARE * free * ndev
    if device.platform == "cpu":
        budget = min(budget, CPU_CHUNK_BYTES)
    chunk = int(max(1, budget // max(1, int(bytes_per_sample))))
    if chunk < n:
        chunk = 2 ** int(math.log2(chunk))
    return max(ndev, min(chunk, n))


def piece_size(work_bytes_per_sample: int, chunk: int, *, mesh: Mesh | None = None,
               use_pmap: bool = False) -> int:
    """Rows per Jacobian program inside a chunk of ``chunk`` rows (see :class:`Pieces`).

    Rule: on CPU, the largest power of two ``p`` with ``p * work_bytes_per_sample <=
    CPU_TANGENT_BYTES`` (at least the device count, at most ``chunk``); on accelerators the
    whole chunk (their limit is memory, which :func:`auto_chunk_size` already bounds).

    Args:
      work_bytes_per_sample: bytes of intermediate values one sample's Jacobian program holds
        (:func:`jaxlatent.engine.jacobian.tangent_bytes`).
      chunk: rows of the chunk being split.
      mesh, use_pmap: as passed to :func:`map_batched`.

    Returns:
      An int in ``[min(device count, chunk), chunk]``.
    """
    ndev = _device_count(mesh, use_pmap)
    device = first_device(mesh)
    if device.platform != "cpu":
        return chunk
    rows = int(max(1, CPU_TANGENT_BYTES // max(1, int(work_bytes_per_sample))))
    rows = 2 ** int(math.log2(rows))
    return min(chunk, max(ndev, rows))


class Pieces(NamedTuple):
    """A stage of :func:`map_batched` run ``rows`` at a time within each chunk.

    The pieces are separate calls of one compiled program, their outputs concatenated on the
    device; later stages see the whole chunk. Use it for a Jacobian program whose per-chunk
    working set is too large for a CPU's caches while the stage after it (a batched LAPACK
    decomposition) runs faster on the whole chunk. ``rows`` is rounded up to a multiple of the
    device count; a short last piece is padded like a short last chunk (one compilation).
    """

    fn: Callable
    rows: int


class HostLoop(NamedTuple):
    """A stage of :func:`map_batched` that iterates from Python: ``state = start(x)``, then
    ``state = step((x, state))`` while any row of ``active(state)`` is true, then
    ``finish((x, state))``. Each is a compiled program of its own (split over devices like any
    stage); ``active`` runs eagerly on the state and must become false within finitely many
    rounds, and ``step`` must leave inactive rows unchanged.

    For iterations whose body runs slowly inside a compiled ``while`` loop: XLA's CPU backend
    runs NCHW convolutions there many times slower than in straight-line code (jax-ml/jax#12868).
    Costs a host round trip per round.
    """

    start: Callable
    step: Callable
    finish: Callable
    active: Callable


def progress_wrapper(progress: bool | Callable | None, desc: str = "chunks") -> Callable | None:
    """``progress`` as the analyses take it: ``False``/``None`` (none), ``True`` (a tqdm bar
    labelled ``desc``) or a wrapper of an iterator (e.g. ``tqdm.tqdm``), returned as is."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return lambda it: tqdm.tqdm(it, desc=desc, unit="chunk")
    if not callable(progress):
        raise ValueError(f"progress must be True, False or a wrapper of an iterator, found {progress!r}")
    return progress



def with_progress(items, progress: bool | Callable | None, desc: str = "chunks"):
    """``items`` as ``progress`` wants them shown: unchanged, in a tqdm bar (``True``) or through a
    wrapper of an iterator (see :func:`progress_wrapper`)."""
    wrap = progress_wrapper(progress, desc)
    return items if wrap is None else wrap(items)


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


def _call(static, dyn, x_rows):
    x, rows = x_rows
    return attach(_join(static, dyn), rows)(x)


@functools.partial(jax.jit, static_argnums=(0,))
def _call_jit(static, dyn, x_rows):
    return _call(static, dyn, x_rows)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _call_sharded(static, mesh, dyn, x_rows):
    fn = functools.partial(_call, static)
    return jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(BATCH_AXIS)), out_specs=P(BATCH_AXIS),
                         check_vma=False)(dyn, x_rows)


@functools.lru_cache(maxsize=64)
def _pmapped(static, devices):
    return jax.pmap(functools.partial(_call, static), in_axes=(None, 0), devices=list(devices))


def _rows_of(tree, start, stop, size):
    return jax.tree_util.tree_map(lambda a: pad_rows(jnp.asarray(a[start:stop]), size), tree)


def _run_chunk(fn, x, mesh, use_pmap, rows=()):
    """One chunk through ``fn``'s stages; ``rows``: the chunk's per-latent rows of the callables
    inside ``fn`` (:mod:`jaxlatent.engine.aligned`), split with ``x`` wherever ``x`` is split."""
    if isinstance(fn, HostLoop):
        state = _run_chunk(fn.start, x, mesh, use_pmap, rows)
        while bool(np.any(np.asarray(fn.active(state)))):
            state = _run_chunk(fn.step, (x, state), mesh, use_pmap, rows)
        return _run_chunk(fn.finish, (x, state), mesh, use_pmap, rows)
    if isinstance(fn, Pieces):         # one stage, a few rows at a time
        n, ndev = jax.tree_util.tree_leaves(x)[0].shape[0], _device_count(mesh, use_pmap)
        rows_per = math.ceil(max(1, fn.rows) / ndev) * ndev
        if rows_per >= n:
            return _run_chunk(fn.fn, x, mesh, use_pmap, rows)
        outs = []
        for start in range(0, n, rows_per):   # the last piece padded: one program for all pieces
            piece = _rows_of(x, start, start + rows_per, rows_per)
            out = _run_chunk(fn.fn, piece, mesh, use_pmap, _rows_of(rows, start, start + rows_per, rows_per))
            outs.append(jax.tree_util.tree_map(lambda a: a[:min(rows_per, n - start)], out))
        return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0), *outs)
    if isinstance(fn, tuple):          # stages: one compiled program each, in order
        for stage in fn:
            x = _run_chunk(stage, x, mesh, use_pmap, rows)
        return x
    static, dyn = split_callable(fn)
    if use_pmap:
        devices = tuple(mesh.devices.flat) if mesh is not None else tuple(jax.local_devices())
        ndev = len(devices)
        split = lambda a: a.reshape((ndev, a.shape[0] // ndev) + a.shape[1:])  # noqa: E731
        out = _pmapped(static, devices)(dyn, jax.tree_util.tree_map(split, (x, rows)))
        return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), out)
    if mesh is not None:
        return _call_sharded(static, mesh, dyn, (x, rows))
    return _call_jit(static, dyn, (x, rows))


def map_batched(fn: Callable[[Any], Any], z, *, chunk_size: int | None = None, mesh: Mesh | None = None,
                use_pmap: bool = False, progress: bool | Callable | None = False):
    """Apply a batched function to ``z`` chunk by chunk, each chunk spread over devices.

    Its array leaves (if ``fn`` is a pytree such as ``jax.tree_util.Partial``) are passed to
    the compiled program as inputs, the rest is hashed: the same function (or an equal
    structure) compiles once and is reused across chunks and calls (see
    :func:`split_callable`). The programs run with one BLAS thread per LAPACK call
    (:func:`jaxlatent.engine.threads.single_blas_thread`), and the call returns when they are done.

    Args:
      fn: ``x (n, ...) -> pytree of arrays with leading axis n``, samples independent; or a
        tuple of such functions, applied in order to each chunk as separate compiled programs
        (XLA on CPU ran a Jacobian followed by a LAPACK SVD 40% slower fused into one program
        than as two); a stage given as :class:`Pieces` runs a few rows of the chunk at a time,
        one given as :class:`HostLoop` iterates from Python.
      z: ``(N, ...)`` array or pytree of arrays with a shared leading axis.
      chunk_size: rows per call (default: all N at once; the analyses pass
        :func:`auto_chunk_size`). The last chunk is padded so that every call has the same
        shape (one compilation).
      mesh: a :func:`batch_mesh`; each chunk (rounded up to a multiple of the device count)
        is split over its devices with ``shard_map``, or with ``pmap`` when ``use_pmap``.
      use_pmap: split chunks with ``pmap`` (default devices: all local ones).
      progress: ``True`` for a progress bar over chunks, or a wrapper of the chunk iterator
        (e.g. ``tqdm.tqdm``); see :func:`progress_wrapper`.

    Callables inside ``fn`` that carry per-latent inputs (:class:`jaxlatent.engine.aligned.Aligned`,
    e.g. ``model.fn(tap, c=c)`` with a label per latent) must have N rows: each chunk, piece and
    device share gets the rows of its latents.

    Returns:
      The pytree of results, concatenated to leading axis N.
    """
    leaves = jax.tree_util.tree_leaves(z)
    if not leaves:
        raise ValueError("map_batched: empty input")
    n = leaves[0].shape[0]
    if n == 0:
        raise ValueError("map_batched: the batch is empty (N = 0)")
    fn, rows = detach(fn)
    if rows and num_rows(rows) != n:
        raise ValueError(f"map_batched: the callable carries per-latent inputs for {num_rows(rows)} latents "
                         f"(e.g. labels c of shape ({num_rows(rows)}, c_dim)), but {n} latents were given; "
                         "pass one row per latent, or a single row to use for every latent")
    ndev = _device_count(mesh, use_pmap)
    chunk = n if chunk_size is None else max(1, int(chunk_size))
    chunk = math.ceil(min(chunk, n) / ndev) * ndev
    starts = range(0, n, chunk)
    wrap = progress_wrapper(progress)
    if wrap is not None:
        starts = wrap(starts)
    pieces = []
    with single_blas_thread():
        for start in starts:
            part = _rows_of(z, start, start + chunk, chunk)
            part_rows = _rows_of(rows, start, start + chunk, chunk)
            if mesh is not None and not use_pmap:
                part, _ = shard_batch(part, mesh)
                if rows:
                    part_rows, _ = shard_batch(part_rows, mesh)
            out = _run_chunk(fn, part, mesh, use_pmap, part_rows)
            kept = min(chunk, n - start)
            pieces.append(jax.tree_util.tree_map(lambda a: a[:kept], out))
        if len(pieces) == 1:
            result = pieces[0]
        else:
            result = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0), *pieces)
        return jax.block_until_ready(result)
