"""Long runs: an analysis over N latents, streamed stage by stage into a store, resumable.

Latent ``i`` of a run with first seed ``s`` is ``z_i = RandomState(s + i).randn(z_dim)``, the
NVlabs per-seed convention that every other command uses (``--seeds``), so latent ``i`` of a run
is seed ``s + i`` of ``jaxlatent local-basis --seeds`` and can be recomputed alone. Analyses
that draw random numbers get ``fold_in(PRNGKey(s), i)`` for latent ``i``. Results therefore
never depend on the chunking of the work, the device count or restarts.

A run is a list of stages (:mod:`jaxlatent.runs.stages`): the per-latent analyses have one,
over the latents; others add stages over pairs of latents, chunks of latents or one final
row. Chunk ``j`` of a stage holds rows ``[j * chunk_size, (j + 1) * chunk_size)``; every chunk
is computed by the same compiled program (the last one is padded to full size), its rows
spread over the local devices (:func:`jaxlatent.engine.parallel.batch_mesh` of
``jax.local_devices()``). Under ``jax.distributed`` process ``p`` of ``P`` takes every P-th
missing chunk of each stage and writes only those; process 0 alone creates, checks and
finishes the store. The folder must be shared by every host.

A resumed run trusts the commit records: it lists them and computes what has none, without
reading committed data (``verify=True`` re-reads and re-hashes every committed chunk first;
``repair=True`` does too and recomputes what fails). Every later read of a chunk, by a
later stage, the final summaries or :func:`~jaxlatent.runs.results.open_run`, still tests it
against its record's SHA-256.
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

from jaxlatent.engine.parallel import batch_mesh
from jaxlatent.runs import registry
from jaxlatent.runs.manifest import (build_manifest, check_same_run, manifest_path, read_manifest,
                                     run_id, write_manifest)
from jaxlatent.runs.results import SUMMARY_FILE, RunResult, open_run
from jaxlatent.runs.stages import RunContext, Stage, latent_stage, latents, model_latents, row_keys
from jaxlatent.runs.status import Throughput, write_status
from jaxlatent.runs.store import (GROUP_FILE, RECORDS_DIR, ChunkedStore, RunCorruptError, RunError,
                                  json_bytes, write_atomic)
from jaxlatent.runs.summaries import Summary

__all__ = ["run", "latents", "row_keys", "DEFAULT_CHUNK_SIZE"]

DEFAULT_CHUNK_SIZE = 256
SUMMARY_EVERY_S = 5.0


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


def _stage_store(path: str, stage: Stage) -> ChunkedStore:
    return ChunkedStore(os.path.join(path, stage.name) if stage.name else path, stage.outputs, stage.n,
                        stage.chunk_size)


def _prepare(stores: list, wanted: dict, stored: dict | None, verify: bool, repair: bool, verbose: bool) -> None:
    """Process 0: create the stores; with ``verify`` (or ``repair``) test every committed chunk.

    Without ``verify`` nothing committed is read: the commit records are trusted.
    """
    root = stores[0]
    if stored is None:
        os.makedirs(root.path, exist_ok=True)
        write_manifest(root.path, wanted)
    for store in stores:
        store.create({"jaxlatent_run": {"analysis": wanted["analysis"], "n": wanted["n"],
                                        "manifest": os.path.relpath(manifest_path(root.path), store.path)}})
    if not (verify or repair):
        return
    ident, bad = run_id(wanted), []
    for store in stores:
        for index in store.done():
            try:
                record, _ = store.verify(index)
                if record.get("run") != ident:
                    raise RunCorruptError(f"{store.record_path(index)}: chunk {index} was written by another run "
                                          f"({record.get('run')}, this run is {ident}); rerun with --repair")
            except RunCorruptError:
                if not repair:
                    raise
                store.discard(index)
                bad.append((os.path.relpath(store.path, root.path), index))
    if bad:
        _say(verbose, f"repair: {len(bad)} damaged chunk(s) will be recomputed: {bad[:20]}")
    else:
        _say(verbose, f"{root.path}: every committed chunk matches its checksum")


def _compute(stage: Stage, store: ChunkedStore, mine: list, verbose: bool, pid: int, nproc: int, ident: str,
             devices: int, status: dict | None) -> None:
    """Compute and commit the chunks ``mine`` of ``stage``, three stages deep.

    While the device computes chunk j+1 (JAX dispatch is asynchronous), the host copies chunk j
    out and a writer thread writes and commits it (file writes and fsyncs wait on the disk,
    not the CPU), and another thread loads the inputs of chunk j+2 (latents, stored rows). At
    most two chunks are in flight, so memory stays bounded. ``status`` (process 0 only) is the
    body of ``status.json``, rewritten every few seconds with the rate so far.
    """
    last_status = time.monotonic()
    total = sum(store.rows(i)[1] - store.rows(i)[0] for i in mine)
    label = stage.name or "latents"
    desc = label if nproc == 1 else f"{label} [process {pid}/{nproc}]"
    bar = tqdm(total=total, unit=stage.unit, desc=desc, disable=not verbose, mininterval=1.0,
               dynamic_ncols=True, file=sys.stderr)
    speed = Throughput(stage.unit, stage.latents_per_row, devices, nproc)
    summary = Summary() if status is not None and (stage.spectrum or stage.dimension) else None
    left = [sum(store.rows(i)[1] - store.rows(i)[0] for i in store.missing())]   # every process's rows

    def committed(job):
        nonlocal last_status
        arrays = job.result()          # re-raises the writer's error (disk full, ...)
        rows = len(next(iter(arrays.values())))
        bar.update(rows)
        if summary is not None:
            summary.add(arrays.get(stage.spectrum), arrays.get(stage.dimension))
        speed.committed(rows)
        left[0] -= rows * nproc
        text = speed.postfix()
        if text:
            bar.set_postfix_str(text, refresh=False)
        if status is not None and time.monotonic() - last_status > SUMMARY_EVERY_S:
            _write_status(store, status, stage, speed, max(left[0], 0))
            if summary is not None:
                _write_summary(store.path, summary, complete=False)
            last_status = time.monotonic()

    def write(index, arrays):
        store.write_chunk(index, arrays, {"run": ident, "process": pid, "time": round(time.time(), 3)})
        return arrays

    order = [*mine, None]
    computing, writing = None, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxlatent-run-writer") as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxlatent-run-loader") as loader:
        loaded = loader.submit(stage.load, order[0], *store.rows(order[0])) if mine else None
        try:
            for pos, index in enumerate(order):
                if index is not None:
                    inputs = loaded.result()
                    if order[pos + 1] is not None:     # the next chunk's inputs, loaded meanwhile
                        loaded = loader.submit(stage.load, order[pos + 1], *store.rows(order[pos + 1]))
                    result = (index, stage.compute(inputs))
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
    if status is not None:
        _write_status(store, status, stage, speed, 0)


def _write_status(store: ChunkedStore, status: dict, stage: Stage, speed: Throughput, rows_left: int) -> None:
    status.update(stage=stage.name or "latents", throughput=speed.as_json(rows_left))
    write_status(status["root"], status)


def _write_summary(path: str, summary: Summary, complete: bool) -> None:
    body = dict(summary.to_json(), complete=complete)
    if not complete:
        body["note"] = "while running: the chunks process 0 committed since this start"
    write_atomic(os.path.join(path, SUMMARY_FILE), json_bytes(body))


def _finish(stores: list, stages: list, manifest: dict) -> None:
    """Process 0: summaries over every chunk of the first stage in order, then mark the run complete."""
    store, stage = stores[0], stages[0]
    summary = Summary()
    if stage.spectrum or stage.dimension:
        for index in range(store.n_chunks):
            record = store.record(index)
            spectrum = store.read_chunk(stage.spectrum, index, record) if stage.spectrum else None
            dimension = store.read_chunk(stage.dimension, index, record) if stage.dimension else None
            summary.add(spectrum, dimension)
    else:
        summary.count = int(manifest["n"])
    _write_summary(store.path, summary, complete=True)
    write_manifest(store.path, dict(manifest, complete=True, chunks_done=sum(s.n_chunks for s in stores)))


def plan(spec, model, options: dict, ctx: RunContext) -> list[Stage]:
    """The stages of a run of ``spec``: its own plan, or the one latent stage of a per-latent analysis."""
    return list(spec.plan(model, options, ctx)) if spec.plan is not None else [latent_stage(spec, model, options, ctx)]


def run(analysis: str, model, n: int, out, *, first_seed: int = 0, options: dict | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, repair: bool = False, verify: bool = False,
        progress: bool = True, checkpoint: str | None = None, mesh=None) -> RunResult:
    """Run a registered analysis over latents ``0..n-1`` (seeds ``first_seed + i``), streamed into ``out``.

    Killed at any moment, the same call resumes from the chunks not yet committed and ends with
    the arrays an unbroken run writes; called on a finished run it does nothing. Under
    ``jax.distributed`` every process makes the same call.

    Args:
      analysis: a registered name (``jaxlatent.runs.registry.names()``: ``"local-basis"``,
        ``"distortion"``, ``"ganspace"``, ...).
      model: a loaded generator (``jaxlatent.load``).
      n: number of latents N >= 1.
      out: the run folder (new, empty, or holding this same run).
      first_seed: latent ``i`` is ``RandomState(first_seed + i).randn(z_dim)``, the seed naming of
        ``--seeds`` (a BigGAN's: the package's truncated draw of that seed at the ``truncation_psi`` option); ``first_seed + n <= 2**32``. Analyses that draw random numbers get the key
        ``fold_in(PRNGKey(first_seed), i)`` for latent ``i``.
      options: the analysis's options (``{"tap": "w", "k": 8}``), as ``jaxlatent run ANALYSIS`` takes them.
      chunk_size: latents per chunk (store chunk and compiled batch).
      repair: rewrite a damaged manifest, re-hash every committed chunk and recompute the damaged ones.
      verify: re-read and re-hash every committed chunk before going on (a damaged one stops the run;
        without it, a resumed run trusts its commit records and starts at once).
      progress: show progress (rate per device, ETA) and messages on stderr.
      checkpoint: path the model came from, recorded in the manifest.
      mesh: device mesh for each chunk (default: all local devices).

    Returns:
      :class:`jaxlatent.runs.results.RunResult`: output name -> lazy ``(N, *shape)`` array, and
      ``result.stage(name)`` for the further stages.
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
    path = os.path.abspath(os.fspath(out))
    mesh = batch_mesh(jax.local_devices()) if mesh is None else mesh
    readers: dict[str, ChunkedStore] = {}
    ctx = RunContext(path, int(n), seed, int(chunk_size), mesh, lambda name: readers[name],
                     lambda start, stop: model_latents(model, options, seed, start, stop))
    stages = plan(spec, model, options, ctx)
    stores = [_stage_store(path, s) for s in stages]
    readers.update({s.name: st for s, st in zip(stages, stores)})
    wanted = build_manifest(analysis=analysis, options=options, model=model, n=int(n), seed=seed,
                            chunk_size=int(chunk_size), outputs=stages[0].outputs, checkpoint=checkpoint,
                            stages=[s.describe() for s in stages] if spec.plan is not None else None)
    pid, nproc = jax.process_index(), jax.process_count()
    stored = _check_folder(stores[0], wanted, repair)
    if stored is not None:
        wanted = dict(wanted, complete=stored.get("complete", False), chunks_done=stored.get("chunks_done", 0))
    if pid == 0:
        _prepare(stores, wanted, stored, verify, repair, progress)
    _barrier("prepared", path)
    missing = [st.missing() for st in stores]
    _barrier("listed", path)
    if not any(missing) and wanted.get("complete"):
        checked = "checksums verified" if (verify or repair) else "commit records trusted; --verify re-hashes them"
        _say(progress, f"{path}: run already complete ({n} latents, {checked}); nothing to do")
        return open_run(path)
    done = sum(st.n_chunks for st in stores) - sum(map(len, missing))
    if done and pid == 0:
        _say(progress, f"{path}: resuming, {done}/{sum(st.n_chunks for st in stores)} chunks done")
    ident = run_id(wanted)
    status = {"root": path, "analysis": analysis, "n": int(n), "started": time.time()} if pid == 0 else None
    devices = len(mesh.devices.flat) if hasattr(mesh, "devices") else len(jax.local_devices())
    for i, (stage, store) in enumerate(zip(stages, stores)):
        if i:   # every process lists the stage before any writes to it
            todo = store.missing()
            _barrier(f"listed{i}", path)
        else:
            todo = missing[0]
        if todo:
            _compute(stage, store, todo[pid::nproc], progress, pid, nproc, ident, devices, status)
        _barrier(f"stage{i}", path)
    if pid == 0:
        _finish(stores, stages, wanted)
        write_status(path, dict(status, stage=None, complete=True))
        _say(progress, f"{path}: run complete ({n} latents)")
    _barrier("finished", path)
    return open_run(path)
