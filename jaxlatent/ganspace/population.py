"""A tap's population, streamed: latents in chunks, the tap over devices, statistics in float64.

GANSpace (Härkönen et al., NeurIPS 2020) and the ICA variant of Palaev, Lukmanov and Khan
(ICLR 2023 Tiny Papers) fit a decomposition to the values ``f(z)`` of one tap over a large
population of latents (100,000 ``w`` vectors in their StyleGAN2 runs); the Fréchet distance
(Heusel et al., NeurIPS 2017) needs the mean and covariance of features of as many images.
Nothing here holds the population: :func:`stream` hands out one chunk at a time (``f`` spread
over the devices of a mesh by :func:`jaxlatent.engine.parallel.map_batched`), and :func:`moments`
folds each chunk into float64 running moments on the host.

Chunks are merged with the pairwise update of Chan, Golub and LeVeque (1979): a chunk's own
mean and centred scatter are computed on the device (in the tap's dtype, from values centred
on the chunk's mean, so no large offset cancels), the merge in float64:

    n = n_a + n_b,  delta = mean_b - mean_a,
    mean = mean_a + delta n_b / n,  scatter = scatter_a + scatter_b + delta delta^T n_a n_b / n.

Latents are anything with ``len()`` and row slices: an array ``(N, in)`` or
:class:`SeedLatents`, which draws rows from seeds on demand (the NVlabs convention of
:func:`jaxlatent.engine.latents.latents_from_seeds`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.aligned import aligned_rows, take_rows
from jaxlatent.engine.parallel import map_batched, pad_rows, with_progress
from jaxlatent.engine.latents import latents_from_seeds

__all__ = ["Moments", "SeedLatents", "KeyLatents", "TruncatedKeyLatents", "Chunk", "stream", "moments", "moments_of", "collect"]

DEFAULT_CHUNK = 4096


class Moments(NamedTuple):
    """Running float64 moments of a population of vectors.

    count: number of samples n. mean: (d,). scatter: (d, d), the centred sum
    ``sum_i (x_i - mean)(x_i - mean)^T``; :attr:`covariance` divides it by ``n - 1``
    (``np.cov(x, rowvar=False)``, the convention of pytorch-fid and of sklearn's PCA).
    """

    count: int
    mean: np.ndarray
    scatter: np.ndarray

    @property
    def covariance(self) -> np.ndarray:
        """(d, d) unbiased sample covariance (needs n >= 2)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, found {self.count}")
        return self.scatter / (self.count - 1)

    def merge(self, other: "Moments") -> "Moments":
        """Moments of the union of both populations (Chan et al. pairwise update)."""
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.count * other.count / n)
        return Moments(n, mean, scatter)


def empty_moments(d: int) -> Moments:
    """Moments of no samples, of d-dimensional vectors."""
    return Moments(0, np.zeros(d), np.zeros((d, d)))


class SeedLatents:
    """Latents ``(len(seeds), dim)`` drawn from seeds on demand, row i = ``RandomState(seeds[i]).randn(dim)``.

    Supports ``len()`` and row slices (``latents[a:b]`` -> float32 ``(b - a, dim)``), so the
    population of a million seeds never exists as one array.
    """

    def __init__(self, seeds: Sequence[int], dim: int):
        self.seeds = list(seeds)
        self.dim = int(dim)
        if not self.seeds:
            raise ValueError("SeedLatents: no seeds given")

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError(f"SeedLatents takes row slices (latents[a:b]), found {type(rows).__name__}")
        return latents_from_seeds(self.seeds[rows], self.dim)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.seeds), self.dim)


class KeyLatents:
    """N(0, I) latents ``(n, dim)`` from a PRNG seed, row i = ``normal(fold_in(key(seed), i), (dim,))``.

    Rows do not depend on how the population is sliced, and a slice costs one vectorised draw
    (drawing 10^5 :class:`SeedLatents` rows takes seconds of ``RandomState`` set-ups).
    """

    def __init__(self, seed: int, n: int, dim: int):
        self.seed, self.n, self.dim = int(seed), int(n), int(dim)
        if self.n < 1:
            raise ValueError(f"KeyLatents: n must be >= 1, found {n}")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError(f"KeyLatents takes row slices (latents[a:b]), found {type(rows).__name__}")
        start, stop, step = rows.indices(self.n)
        return np.asarray(_key_rows(jax.random.key(self.seed), jnp.arange(start, stop, step), self.dim))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.dim)

    def __repr__(self) -> str:
        return f"KeyLatents({self.seed}, {self.n})"


@functools.partial(jax.jit, static_argnums=(2,))
def _key_rows(key, rows, dim):
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (dim,)))(rows)


class TruncatedKeyLatents(KeyLatents):
    """Truncated-normal latents ``scale * TN(0, 1; [-bound, bound])``, ``(n, dim)``, from a PRNG seed.

    Row i is ``scale * truncated_normal(fold_in(key(seed), i), -bound, bound, (dim,))``: the
    distribution of BigGAN's latents at truncation ``scale`` (Brock et al. 2019, section 3.1;
    bound 2), drawn as :class:`KeyLatents` draws its rows (any slicing gives the same rows).
    """

    def __init__(self, seed: int, n: int, dim: int, *, bound: float, scale: float = 1.0):
        super().__init__(seed, n, dim)
        if not bound > 0 or not scale > 0:
            raise ValueError(f"TruncatedKeyLatents: bound and scale must be > 0, found {bound} and {scale}")
        self.bound, self.scale = float(bound), float(scale)

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError(f"TruncatedKeyLatents takes row slices (latents[a:b]), found {type(rows).__name__}")
        start, stop, step = rows.indices(self.n)
        return np.asarray(_truncated_rows(jax.random.key(self.seed), jnp.arange(start, stop, step), self.dim,
                                          self.bound)) * np.float32(self.scale)

    def __repr__(self) -> str:
        return f"TruncatedKeyLatents({self.seed}, {self.n}, bound={self.bound:g}, scale={self.scale:g})"


@functools.partial(jax.jit, static_argnums=(2, 3))
def _truncated_rows(key, rows, dim, bound):
    return jax.vmap(lambda i: jax.random.truncated_normal(jax.random.fold_in(key, i), -bound, bound, (dim,)))(rows)


class Chunk(NamedTuple):
    """One streamed chunk: rows ``start .. start + count`` of the population.

    z: (chunk, in) latents and x: pytree of (chunk, ...) tap values, both padded to the
    full chunk with copies of the last row (``count`` rows are real), so every chunk has
    one shape and programs over chunks compile once.
    """

    start: int
    count: int
    z: Any
    x: Any


def stream(f: Callable, latents, *, chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
           progress: bool | Callable = False) -> Iterator[Chunk]:
    """Yield the population ``f(latents)`` chunk by chunk.

    Per-latent inputs of ``f`` (:class:`jaxlatent.engine.aligned.Aligned`, e.g. one label per
    latent) need N rows; each chunk gets the rows of its latents.

    Args:
        f: batched callable ``(n, in) -> pytree of (n, ...)``, samples independent (a
            ``model.fn(tap)``, or any function of a latent batch).
        latents: (N, in) array-like with ``len()`` and row slices (e.g. :class:`SeedLatents`),
            or a tuple/list of such sharing N, passed to ``f`` as a tuple of chunks.
        chunk_size: rows held at once (default 4096, or N if smaller); each chunk is one
            call of ``f`` spread over ``mesh``.
        mesh, use_pmap: see :func:`jaxlatent.engine.parallel.map_batched`.
        progress: ``True`` for a bar over the chunks, or a wrapper of the chunk iterator (e.g. ``tqdm.tqdm``).

    Yields:
        :class:`Chunk` records in order.
    """
    multi = isinstance(latents, (tuple, list))
    parts = tuple(latents) if multi else (latents,)
    n = len(parts[0])
    if n == 0:
        raise ValueError("stream: the population is empty (N = 0)")
    if any(len(p) != n for p in parts):
        raise ValueError(f"stream: latent inputs have different lengths {[len(p) for p in parts]}")
    rows = aligned_rows(f)
    if rows is not None and rows != n:
        raise ValueError(f"stream: the callable carries per-latent inputs for {rows} latents, the population has {n}")
    chunk = min(n, int(chunk_size or DEFAULT_CHUNK))
    starts = range(0, n, chunk)
    starts = with_progress(starts, progress)
    for start in starts:
        count = min(chunk, n - start)
        z = tuple(pad_rows(jnp.asarray(p[start:start + count]), chunk) for p in parts)
        z = z if multi else z[0]
        fc = f if rows is None else take_rows(f, np.minimum(np.arange(start, start + chunk), n - 1))
        x = map_batched(fc, z, chunk_size=chunk, mesh=mesh, use_pmap=use_pmap)
        yield Chunk(start, count, z, x)


@jax.jit
def _chunk_moments(x, count):
    """Mean (d,) and centred scatter (d, d) of the first ``count`` rows of x: (chunk, d)."""
    mask = (jnp.arange(x.shape[0]) < count).astype(x.dtype)[:, None]
    mean = jnp.sum(x * mask, axis=0) / count.astype(x.dtype)
    xc = (x - mean) * mask
    return mean, xc.T @ xc


def _flat(x) -> jax.Array:
    x = jnp.asarray(x)
    return x.reshape(x.shape[0], -1) if x.ndim != 2 else x


def fold(acc: Moments | None, x, count: int) -> Moments:
    """``acc`` merged with the moments of the first ``count`` rows of ``x: (chunk, ...)`` (flattened)."""
    mean, scatter = _chunk_moments(_flat(x), jnp.asarray(count, jnp.int32))
    part = Moments(int(count), np.asarray(mean, np.float64), np.asarray(scatter, np.float64))
    return part if acc is None else acc.merge(part)


def moments(f: Callable, latents, *, chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
            progress: bool | Callable = False):
    """Float64 mean and scatter of a tap's population, streamed.

    Args:
        f: batched callable ``(n, in) -> (n, ...)`` or a pytree of such outputs (each leaf
            flattened to ``(n, d_leaf)`` and given its own moments).
        latents: (N, in) array-like or :class:`SeedLatents` (see :func:`stream`).
        chunk_size, mesh, use_pmap, progress: see :func:`stream`.

    Returns:
        :class:`Moments` (count N, mean (d,), scatter (d, d)), or the same pytree of
        :class:`Moments` as ``f``'s output.
    """
    acc = None
    for ch in stream(f, latents, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress):
        leaves, treedef = jax.tree_util.tree_flatten(ch.x)
        prev = [None] * len(leaves) if acc is None else acc
        acc = [fold(a, leaf, ch.count) for a, leaf in zip(prev, leaves)]
    out = jax.tree_util.tree_unflatten(treedef, list(range(len(acc))))
    return jax.tree_util.tree_map(lambda i: acc[i], out)


def _identity(x):
    return x


def moments_of(x, *, chunk_size: int | None = None) -> Moments:
    """Float64 :class:`Moments` of the rows of an array ``x: (N, ...)`` (flattened), in chunks."""
    return moments(_identity, x, chunk_size=chunk_size)


def collect(f: Callable, latents, *, chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
            progress: bool | Callable = False) -> np.ndarray:
    """The whole population ``f(latents)`` as one host array, for decompositions that need every
    sample (FastICA's iterations); use :func:`moments` when mean and covariance suffice.

    Args:
        f: batched callable ``(n, in) -> (n, ...)``.
        latents: (N, in) array-like or :class:`SeedLatents` / :class:`KeyLatents`.
        chunk_size, mesh, use_pmap, progress: see :func:`stream`.

    Returns:
        (N, d) numpy array, each sample's values flattened.
    """
    pieces = [np.asarray(_flat(ch.x))[:ch.count]
              for ch in stream(f, latents, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap,
                               progress=progress)]
    return np.concatenate(pieces, axis=0)
