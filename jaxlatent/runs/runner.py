"""Long runs: an analysis over N latents, streamed chunk by chunk into a store, resumable.

Latent ``i`` of a run with seed ``s`` is ``z_i = RandomState(s + i).randn(z_dim)``, the NVlabs
per-seed convention that every other command uses (``--seeds``), so latent ``i`` of a run is
seed ``s + i`` of ``jaxlatent local-basis --seeds`` and can be recomputed alone. Analyses that
draw random numbers get ``fold_in(PRNGKey(s), i)`` for latent ``i``. Results therefore never
depend on the chunking, the device count or restarts.

Chunk ``j`` holds latents ``[j * chunk_size, (j + 1) * chunk_size)``; every chunk is computed
by the same compiled program (the last one is padded to full size), its rows spread over the
local devices (:func:`jaxlatent.engine.parallel.batch_mesh` of ``jax.local_devices()``). Under
``jax.distributed`` process ``p`` of ``P`` takes every P-th missing chunk and writes only
those; process 0 alone creates, checks and finishes the store. The folder must be shared
by every host.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from jaxlatent.engine.latents import latents_from_seeds
from jaxlatent.engine.parallel import batch_mesh, pad_rows
from jaxlatent.runs import registry
from jaxlatent.runs.manifest import (build_manifest, check_same_run, manifest_path, read_manifest,
                                     run_id, write_manifest)
from jaxlatent.runs.results import SUMMARY_FILE, RunResult, open_run
from jaxlatent.runs.store import (GROUP_FILE, RECORDS_DIR, ChunkedStore, RunCorruptError, RunError,
                                  json_bytes, write_atomic)
from jaxlatent.runs.summaries import Summary

DEFAULT_CHUNK_SIZE = 256
SUMMARY_EVERY_S = 5.0


def latents(seed: int, start: int, stop: int, z_dim: int) -> np.ndarray:
    """``z: (stop - start, z_dim)`` float32: latents ``start..stop-1`` of a run with ``seed``, the
    seeds ``seed + start .. seed + stop - 1`` (:func:`jaxlatent.engine.latents.latents_from_seeds`)."""
    return latents_from_seeds(range(seed + start, seed + stop), z_dim)


@jax.jit
def _row_keys(seed, rows):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(rows)


def row_keys(seed: int, start: int, stop: int) -> jax.Array:
    """``(stop - start, 2)`` uint32: the PRNG key ``fold_in(PRNGKey(seed), i)`` of each latent."""
    return _row_keys(np.uint32(seed), np.arange(start, stop, dtype=np.uint32))


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)


def _barrier(name: str, path: str) -> None:
    if jax.process_count() <= 1:
        return
    try:
        multihost_utils.sync_global_devices(f"jaxlatent.run.{name}")
    except Exception as err:  # a lost peer surfaces as the collective's own error (gloo, NCCL, ICI)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(
            f"{path}: process {jax.process_index()} of {jax.process_count()}: another process of this run "
            f"stopped ({first}). Chunks committed so far are kept: start the same command on every host "
            "again to finish the run") from None


def _visible_entries(path: str) -> list[str]:
    return sorted(e for e in os.listdir(path) if ".tmp." not in e)


def _check_folder(store: ChunkedStore, wanted: dict, repair: bool) -> dict | None:
    """Read-only checks every process makes; returns the stored manifest (None: new or to rewrite)."""
    path = store.path
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunError(f"{path}: --out exists and is not a folder")
    if not os.path.isdir(path) or not _visible_entries(path):
        return None
    if not os.path.exists(manifest_path(path)):
        ours = os.path.isdir(os.path.join(path, RECORDS_DIR)) and os.path.exists(os.path.join(path, GROUP_FILE))
        if ours and repair:
            return None
        hint = ("it looks like a run whose manifest.json was deleted: rerun with --repair" if ours else
                "choose an empty or new folder")
        raise RunError(f"{path}: the output folder holds something else ({', '.join(_visible_entries(path)[:5])}) "
                       f"and no run manifest; {hint}")
    try:
        stored = read_manifest(path)
    except RunCorruptError as err:
        if repair:
            return None
        raise RunCorruptError(f"{err}; rerun with --repair to rewrite it from this command (chunks that do "
                              "not match are recomputed)") from None
    check_same_run(path, stored, wanted)
    return stored


def _prepare(spec, store: ChunkedStore, wanted: dict, stored: dict | None, repair: bool,
             verbose: bool) -> Summary:
    """Process 0: create the store, or test every committed chunk (and repair when asked).

    Returns the summaries of the chunks that passed (the test reads them anyway).
    """
    if stored is None:
        os.makedirs(store.path, exist_ok=True)
        write_manifest(store.path, wanted)
    store.create({"jaxlatent_run": {"analysis": wanted["analysis"], "n": wanted["n"],
                                    "manifest": "manifest.json"}})
    ident, bad, summary = run_id(wanted), [], Summary()
    for index in store.done():
        try:
            record, arrays = store.verify(index)
            if record.get("run") != ident:
                raise RunCorruptError(f"{store.record_path(index)}: chunk {index} was written by another run "
                                      f"({record.get('run')}, this run is {ident}); rerun with --repair")
        except RunCorruptError:
            if not repair:
                raise
            store.discard(index)
            bad.append(index)
            continue
        summary.add(arrays.get(spec.spectrum), arrays.get(spec.dimension))
    if bad:
        _say(verbose, f"repair: {len(bad)} damaged chunk(s) will be recomputed: {bad[:20]}")
    return summary


def _compute(spec, model, options, store, mine, seed, mesh, verbose, pid, nproc, ident,
             summary: Summary | None) -> None:
    """Compute and commit the chunks ``mine``, three stages deep.

    While the device computes chunk j+1 (JAX dispatch is asynchronous), the host copies chunk j
    out and a writer thread writes and commits it (file writes and fsyncs wait on the disk,
    not the CPU), and another thread draws the latents of chunk j+2. At most two chunks are in flight, so memory stays bounded. ``summary`` (process
    0 only) goes on from the chunks committed before and is written every few seconds.
    """
    z_dim, size = int(model.z_dim), store.chunk_size
    last_summary = time.monotonic()
    total = sum(store.rows(i)[1] - store.rows(i)[0] for i in mine)
    desc = spec.name if nproc == 1 else f"{spec.name} [process {pid}/{nproc}]"
    bar = tqdm(total=total, unit="latent", desc=desc, disable=not verbose, mininterval=1.0,
               dynamic_ncols=True, file=sys.stderr)

    def committed(job):
        nonlocal last_summary
        arrays = job.result()          # re-raises the writer's error (disk full, ...)
        bar.update(len(next(iter(arrays.values()))))
        if summary is not None:
            summary.add(arrays.get(spec.spectrum), arrays.get(spec.dimension))
            if time.monotonic() - last_summary > SUMMARY_EVERY_S:
                _write_summary(store.path, summary, complete=False, sample=nproc > 1)
                last_summary = time.monotonic()

    def write(index, arrays):
        store.write_chunk(index, arrays, {"run": ident, "process": pid})
        return arrays

    def draw(index):
        start, stop = store.rows(index)
        return latents(seed, start, stop, z_dim)

    order = [*mine, None]
    computing, writing = None, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxlatent-run-writer") as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxlatent-run-latents") as drawer:
        drawn = drawer.submit(draw, order[0]) if mine else None
        try:
            for pos, index in enumerate(order):
                if index is not None:
                    start, stop = store.rows(index)
                    z = drawn.result()
                    if order[pos + 1] is not None:     # the next chunk's latents, drawn meanwhile
                        drawn = drawer.submit(draw, order[pos + 1])
                    keys = pad_rows(row_keys(seed, start, stop), size)
                    result = (index, spec.compute(model, pad_rows(z, size), options, keys, mesh=mesh))
                if computing is not None:
                    done, out = computing
                    lo, hi = store.rows(done)
                    arrays = {o.name: np.asarray(out[o.name])[:hi - lo].astype(o.dtype, copy=False)
                              for o in store.outputs}
                    if writing is not None:
                        committed(writing)
                    writing = writer.submit(write, done, arrays)
                computing = result if index is not None else None
            if writing is not None:
                committed(writing)
        finally:
            bar.close()


def _write_summary(path: str, summary: Summary, complete: bool, sample: bool = False) -> None:
    body = dict(summary.to_json(), complete=complete)
    if sample:
        body["note"] = "while running: chunks done before this start and process 0's chunks since"
    write_atomic(os.path.join(path, SUMMARY_FILE), json_bytes(body))


def _finish(store: ChunkedStore, spec, manifest: dict) -> None:
    """Process 0: summaries over every chunk in order, then mark the manifest complete."""
    summary = Summary()
    for index in range(store.n_chunks):
        record = store.record(index)
        spectrum = store.read_chunk(spec.spectrum, index, record) if spec.spectrum else None
        dimension = store.read_chunk(spec.dimension, index, record) if spec.dimension else None
        summary.add(spectrum, dimension)
    _write_summary(store.path, summary, complete=True)
    write_manifest(store.path, dict(manifest, complete=True, chunks_done=store.n_chunks))


def run(analysis: str, model, n: int, out, *, first_seed: int = 0, options: dict | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, repair: bool = False, progress: bool = True,
        checkpoint: str | None = None, mesh=None) -> RunResult:
    """Run a registered analysis over latents ``0..n-1`` (seeds ``first_seed + i``), streamed into ``out``.

    Killed at any moment, the same call resumes from the chunks not yet committed and ends with
    the arrays an unbroken run writes; called on a finished run it checks the store and does
    nothing. Under ``jax.distributed`` every process makes the same call.

    Args:
      analysis: a registered name (``jaxlatent.runs.registry.names()``: ``"local-basis"``,
        ``"local-dim"``, ...).
      model: a loaded generator (``jaxlatent.load``).
      n: number of latents N >= 1.
      out: the run folder (new, empty, or holding this same run).
      first_seed: latent ``i`` is ``RandomState(first_seed + i).randn(z_dim)``, the seed naming of
        ``--seeds``; ``first_seed + n <= 2**32``. Analyses that draw random numbers get the key
        ``fold_in(PRNGKey(first_seed), i)`` for latent ``i``, so the run is one integer's function.
      options: the analysis's options (``{"tap": "w", "k": 8}``), as its own command takes them.
      chunk_size: latents per chunk (store chunk and compiled batch).
      repair: rewrite a damaged manifest and recompute damaged chunks instead of stopping.
      progress: show progress (rate, ETA) and messages on stderr.
      checkpoint: path the model came from, recorded in the manifest.
      mesh: device mesh for each chunk (default: all local devices).

    Returns:
      :class:`jaxlatent.runs.results.RunResult`: output name -> lazy ``(N, *shape)`` array.
    """
    spec = registry.get(analysis)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise RunError(f"{analysis}: the number of latents N must be an integer >= 1, found {n!r}")
    if chunk_size is None or int(chunk_size) < 1:
        raise RunError(f"{analysis}: chunk_size must be >= 1, found {chunk_size!r}")
    seed = int(first_seed)
    if not 0 <= seed or seed + n > 2**32:
        raise RunError(f"{analysis}: latent seeds first_seed..first_seed+N-1 must lie in [0, 2**32), "
                       f"found first_seed {seed}, N {n}")
    options = registry.resolve_options(spec, options, model)
    outputs = spec.outputs(model, options)
    wanted = build_manifest(analysis=analysis, options=options, model=model, n=int(n), seed=int(seed),
                            chunk_size=int(chunk_size), outputs=outputs, checkpoint=checkpoint)
    store = ChunkedStore(out, outputs, n, chunk_size)
    pid, nproc = jax.process_index(), jax.process_count()
    stored = _check_folder(store, wanted, repair)
    if stored is not None:
        wanted = dict(wanted, complete=stored.get("complete", False), chunks_done=stored.get("chunks_done", 0))
    summary = _prepare(spec, store, wanted, stored, repair, progress) if pid == 0 else None
    _barrier("prepared", store.path)
    missing = store.missing()
    _barrier("listed", store.path)
    if not missing and wanted.get("complete"):
        _say(progress, f"{store.path}: run already complete ({n} latents, {store.n_chunks} chunks, "
                       "checksums verified); nothing to do")
        return open_run(store.path)
    if missing:
        done = store.n_chunks - len(missing)
        if done:
            _say(progress and pid == 0, f"{store.path}: resuming, {done}/{store.n_chunks} chunks done")
        mesh = batch_mesh(jax.local_devices()) if mesh is None else mesh
        _compute(spec, model, options, store, missing[pid::nproc], int(seed), mesh, progress, pid, nproc,
                 run_id(wanted), summary)
    _barrier("computed", store.path)
    if pid == 0:
        _finish(store, spec, wanted)
        _say(progress, f"{store.path}: run complete ({n} latents)")
    _barrier("finished", store.path)
    return open_run(store.path)
