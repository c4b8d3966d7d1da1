"""Stages shared by the multi-stage analyses: moments of chunks of latents, pairs of stored rows.

* :func:`moments_stage`: one row per chunk of latents, the float64 mean and centred scatter of
  the tap's values over the chunk (:func:`jaxlatent.ganspace.population.fold`); merging the rows
  in chunk order (:func:`merged_moments`) repeats :func:`jaxlatent.ganspace.population.moments`
  with the run's chunk size on the run's latents, to the bit.
* :func:`pair_stage`: rows are pairs ``(i, j)`` of latents with the stored rows of an output
  at both; a chunk of pairs reads two chunks of the first stage (a block of pairs), so a million
  pairs cost two chunk reads per chunk of pairs, not two per pair. Sampled pairs: the chunk's
  generator (:func:`jaxlatent.runs.stages.chunk_rng`) draws two first-stage chunks ``a, b`` with
  probability proportional to their sizes, keeps the draw ``a == b`` with probability
  ``(len_a - 1) / len_a``, then ``i`` in ``a`` and ``j != i`` in ``b`` uniformly: every ordered
  pair of distinct latents is equally likely. When the pairs asked for are at least all
  ``N (N - 1) / 2`` pairs ``i < j``, the stage takes those, in ``numpy.triu_indices`` order.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.parallel import map_batched, pad_rows
from jaxlatent.ganspace.population import Moments, fold
from jaxlatent.localbasis.grassmann import grassmann_distance
from jaxlatent.runs.stages import RunContext, Stage, chunk_rng
from jaxlatent.runs.store import ChunkedStore, Output

__all__ = ["moments_stage", "merged_moments", "pair_stage", "pair_count", "curves", "unit_neighbours"]


def moments_stage(f: Callable, d: int, ctx: RunContext, name: str = "moments") -> Stage:
    """One row per chunk of ``ctx.chunk_size`` latents: ``count ()``, ``mean (d,)``, ``scatter (d, d)``
    (float64) of ``f``'s flattened values over the chunk."""
    size = ctx.chunk_size
    n_rows = -(-ctx.n // size)

    def load(index, start, stop):
        lo, hi = index * size, min(index * size + size, ctx.n)
        return pad_rows(ctx.latents(lo, hi), size), hi - lo

    def compute(inputs):
        z, count = inputs
        part = fold(None, map_batched(f, z, chunk_size=size, mesh=ctx.mesh), count)
        return {"count": np.asarray([part.count], np.int64), "mean": part.mean[None], "scatter": part.scatter[None]}

    outputs = (Output("count", (), "int64"), Output("mean", (d,), "float64"), Output("scatter", (d, d), "float64"))
    return Stage(name, n_rows, 1, outputs, load, compute, unit="chunk", latents_per_row=size)


def merged_moments(store: ChunkedStore) -> Moments:
    """The rows of a :func:`moments_stage` merged in chunk order (Chan et al.), as ``moments`` does."""
    acc = None
    for index in range(store.n_chunks):
        record = store.record(index)
        part = Moments(int(store.read_chunk("count", index, record)[0]), store.read_chunk("mean", index, record)[0],
                       store.read_chunk("scatter", index, record)[0])
        acc = part if acc is None else acc.merge(part)
    return acc


def pair_count(n: int, pairs: int) -> tuple[int, bool]:
    """``(rows, all_pairs)``: the number of pair rows for ``pairs`` asked over ``n`` latents."""
    total = n * (n - 1) // 2
    return (total, True) if pairs >= total else (int(pairs), False)


class _ChunkCache:
    """The last few chunks of one stored output, read once each (checked against their records)."""

    def __init__(self, store: ChunkedStore, name: str, keep: int = 8):
        self.read = functools.lru_cache(maxsize=keep)(lambda index: store.read_chunk(name, index))
        self.size = store.chunk_size

    def rows(self, idx: np.ndarray) -> np.ndarray:
        blocks = idx // self.size
        out = None
        for b in np.unique(blocks):
            chunk = self.read(int(b))
            sel = blocks == b
            if out is None:
                out = np.empty((len(idx), *chunk.shape[1:]), chunk.dtype)
            out[sel] = chunk[idx[sel] - b * self.size]
        return out


def _sample_pairs(rng: np.random.Generator, n: int, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` ordered pairs of distinct latents of ``[0, n)`` from two chunks of ``size`` rows."""
    starts = np.arange(0, n, size)
    lens = np.minimum(starts + size, n) - starts
    p = lens / n
    while True:
        a, b = rng.choice(len(lens), size=2, p=p)
        if a != b or (lens[a] > 1 and rng.random() < (lens[a] - 1) / lens[a]):
            break
    i = starts[a] + rng.integers(lens[a], size=count)
    if a == b:
        j = starts[a] + (i - starts[a] + 1 + rng.integers(lens[a] - 1, size=count)) % lens[a]
    else:
        j = starts[b] + rng.integers(lens[b], size=count)
    return i, j


def pair_stage(ctx: RunContext, source: str, output: Output, pairs: int, distance: Callable,
               name: str = "pairs") -> Stage:
    """Rows: pairs ``(i, j)`` of latents (module doc); ``distance(a, b)`` of the stored rows of
    ``source`` at both, each ``(chunk, *shape)``, gives the output ``output`` per pair."""
    n_rows, every = pair_count(ctx.n, pairs)
    size = ctx.chunk_size
    triu = functools.lru_cache(maxsize=1)(lambda: np.triu_indices(ctx.n, 1))
    cache: list = []

    def load(index, start, stop):
        if not cache:
            cache.append(_ChunkCache(ctx.reader(""), source))
        if every:
            ii, jj = triu()
            i, j = ii[start:stop].astype(np.int64), jj[start:stop].astype(np.int64)
        else:
            i, j = _sample_pairs(chunk_rng(ctx.seed, name, index), ctx.n, size, stop - start)
        a, b = cache[0].rows(i), cache[0].rows(j)
        return i, j, pad_rows(jnp.asarray(a), size), pad_rows(jnp.asarray(b), size)

    def compute(inputs):
        i, j, a, b = inputs
        return {"i": i, "j": j, output.name: distance(a, b)}

    outputs = (Output("i", (), "int64"), Output("j", (), "int64"), output)
    return Stage(name, n_rows, size, outputs, load, compute, unit="pair", latents_per_row=0)


@functools.partial(jax.jit, static_argnames=("k", "metric"))
def curves(a, b, k: int, metric: str):
    """``(..., k)``: the distance between span(a[..., :d]) and span(b[..., :d]) for d = 1..k (the
    warpage curves of the Local Basis paper); a: (..., n, >= k), b broadcast against it."""
    return jnp.stack([grassmann_distance(a[..., :d], b[..., :d], metric=metric) for d in range(1, k + 1)], axis=-1)


@functools.partial(jax.jit, static_argnames=("eps",))
def unit_neighbours(keys, z, eps: float):
    """``z + eps * u_i`` with ``u_i`` uniform on the unit sphere, drawn from latent ``i``'s own key."""
    u = jax.vmap(lambda key: jax.random.normal(key, z.shape[1:], z.dtype))(keys)
    return z + eps * u / jnp.linalg.norm(u, axis=-1, keepdims=True)
