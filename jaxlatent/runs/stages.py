"""The stages of a run: row sets, each streamed chunk by chunk into its own store.

A per-latent analysis is one stage over the run's latents, stored in the run folder itself. An
analysis that needs more (distances over pairs of stored bases, a decomposition of streamed
moments, a population summary) plans further stages, each a :class:`Stage` with its own rows,
chunk size and outputs, stored in ``DIR/<stage>/`` with its own commit records. Stages run in
order and a stage starts once every chunk of the stages before it is committed, so its
``load`` may read them (``RunContext.reader``). Every stage's rows are a deterministic function
of the run's identity (the manifest), never of the chunking of the work, the device count or
restarts: a resumed run recomputes missing chunks from the same inputs.

Latent ``i`` of a run with seed ``s`` is ``z_i = RandomState(s + i).randn(z_dim)``
(:func:`latents`; a BigGAN's is the package's truncated draw of seed ``s + i`` at the run's
``--trunc``, :func:`model_latents`), read by every stage through ``RunContext.latents``; an
analysis that draws per latent gets ``fold_in(PRNGKey(s), i)`` (:func:`row_keys`); a stage
that draws per chunk seeds ``numpy.random.default_rng`` with the seed, a tag of its own and the
chunk index (:func:`chunk_rng`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jaxlatent.engine.latents import latents_from_seeds
from jaxlatent.engine.parallel import pad_rows
from jaxlatent.runs.store import ChunkedStore, RunError
from jaxlatent.workflows.spaces import seed_latents

__all__ = ["Stage", "RunContext", "latents", "model_latents", "row_keys", "chunk_rng", "latent_stage",
           "chunk_ranges", "stored_sum"]


class Stage(NamedTuple):
    """One stage of a run.

    name: ``""`` for the run folder itself, else the subfolder ``DIR/<name>/``.
    n: rows. chunk_size: rows per chunk (store chunk and compiled batch).
    outputs: :class:`~jaxlatent.runs.store.Output` declarations, each stored ``(n, *shape)``.
    load: ``(index, start, stop) -> inputs`` of chunk ``index`` (rows ``[start, stop)``), called
      on the host in a thread while the device computes the chunk before.
    compute: ``inputs -> output name -> (>= stop - start, *shape)`` arrays (rows past
      ``stop - start`` are padding and are dropped).
    unit: what a row is ("latent", "pair", "chunk", "result"), for progress and status.
    latents_per_row: latents a row stands for (1 for a latent, chunk size for a chunk of
      latents, 0 otherwise): the latents/s of the progress bar and the status.
    spectrum, dimension: outputs the streamed summaries read (see :mod:`jaxlatent.runs.summaries`).
    inputs: what the stage reads from outside the run (another run's arrays), as name -> SHA-256
      of their bytes: part of the run's identity, so a resumed run refuses changed inputs.
    """

    name: str
    n: int
    chunk_size: int
    outputs: tuple
    load: Callable[[int, int, int], Any]
    compute: Callable[[Any], dict]
    unit: str = "latent"
    latents_per_row: int = 1
    spectrum: str | None = None
    dimension: str | None = None
    inputs: dict | None = None

    def describe(self) -> dict:
        """The stage's part of the manifest (its identity: name, rows, chunking, outputs, outside inputs)."""
        desc = {"name": self.name, "n": int(self.n), "chunk_size": int(self.chunk_size), "unit": self.unit,
                "outputs": {o.name: {"shape": list(o.shape), "dtype": str(o.dtype)} for o in self.outputs}}
        if self.inputs:
            desc["inputs"] = dict(self.inputs)
        return desc


class RunContext(NamedTuple):
    """What a run's plan may use: the folder, the latents' seed and count, the chunking, the mesh.

    reader: ``stage name -> ChunkedStore`` of an earlier stage (reads are checked against the
    commit records' SHA-256). latents: ``(start, stop) -> z (stop - start, z_dim)``, the run's
    latents ``start..stop-1`` (:func:`model_latents`).
    """

    path: str
    n: int
    seed: int
    chunk_size: int
    mesh: Any
    reader: Callable[[str], ChunkedStore]
    latents: Callable[[int, int], np.ndarray]


def latents(seed: int, start: int, stop: int, z_dim: int) -> np.ndarray:
    """``z: (stop - start, z_dim)`` float32: latents ``start..stop-1`` of a run with ``seed``, the
    seeds ``seed + start .. seed + stop - 1`` (:func:`jaxlatent.engine.latents.latents_from_seeds`)."""
    return latents_from_seeds(range(seed + start, seed + stop), z_dim)


def model_latents(model, options: dict, seed: int, start: int, stop: int) -> np.ndarray:
    """The latents ``start..stop-1`` of a run of ``model`` with ``seed``: :func:`latents`, or for a
    BigGAN the package's truncated draws of the same seeds at ``options["truncation_psi"]`` (or 1)
    (:func:`jaxlatent.workflows.spaces.seed_latents`)."""
    return seed_latents(model, range(seed + start, seed + stop), truncation_psi=options.get("truncation_psi"))


@jax.jit
def _row_keys(seed, rows):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(rows)


def row_keys(seed: int, start: int, stop: int) -> jax.Array:
    """``(stop - start, 2)`` uint32: the PRNG key ``fold_in(PRNGKey(seed), i)`` of each latent."""
    return _row_keys(np.uint32(seed), np.arange(start, stop, dtype=np.uint32))


def chunk_rng(seed: int, tag: str, index: int) -> np.random.Generator:
    """The numpy generator of chunk ``index`` of a stage: ``default_rng([seed, tag as a little-endian
    integer of its first 8 bytes, index])``."""
    return np.random.default_rng([int(seed), int.from_bytes(tag.encode()[:8].ljust(8, b"\0"), "little"),
                                  int(index)])


def chunk_ranges(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each chunk of ``n`` rows."""
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def latent_stage(spec, model, options: dict, ctx: RunContext) -> Stage:
    """The one stage of a per-latent :class:`~jaxlatent.runs.registry.Analysis`: its ``compute`` on
    each chunk of latents (padded to ``chunk_size`` rows), stored in the run folder."""
    size = ctx.chunk_size

    def load(index, start, stop):
        return (pad_rows(ctx.latents(start, stop), size),
                pad_rows(row_keys(ctx.seed, start, stop), size))

    def compute(inputs):
        z, keys = inputs
        return spec.compute(model, z, options, keys, mesh=ctx.mesh)

    return Stage("", ctx.n, size, tuple(spec.outputs(model, options)), load, compute,
                 spectrum=spec.spectrum, dimension=spec.dimension)


def stored_sum(store: ChunkedStore, name: str, axis_rows: bool = True) -> tuple[np.ndarray, int]:
    """Float64 sum over the rows of a stored output (chunk by chunk, in order) and the row count.

    Memory stays one chunk; the order of the additions is fixed, so the sum is the same bits
    whenever it is taken.
    """
    total, count = None, 0
    for index in range(store.n_chunks):
        x = store.read_chunk(name, index).astype(np.float64)
        part = x.sum(axis=0) if axis_rows else x.sum()
        total = part if total is None else total + part
        count += len(x)
    if total is None:
        raise RunError(f"{store.path}: output {name!r} has no rows")
    return total, count

