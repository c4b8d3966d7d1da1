"""Reading a run back: :func:`open_run` gives output name -> lazy array, with the manifest beside it."""

from __future__ import annotations

import json
import os
from typing import Iterator, Mapping

import numpy as np

from jaxlatent.runs.manifest import read_manifest
from jaxlatent.runs.store import ChunkedStore, Output, RunError

SUMMARY_FILE = "summary.json"


class StoredArray:
    """One output of a run, read lazily: ``np.asarray(a)`` or ``a[i:j]`` reads the chunks it needs.

    Every chunk read is tested against the SHA-256 in its commit record (a damaged chunk
    raises :class:`jaxlatent.runs.store.RunCorruptError` naming it). Chunks not yet done read
    as NaN (floats) or 0 (integers) when the run was opened with ``partial=True``; otherwise
    reading them raises.
    """

    def __init__(self, store: ChunkedStore, output: Output, done: frozenset, partial: bool):
        self._store, self._output, self._done, self._partial = store, output, done, partial
        self.shape = (store.n, *output.shape)
        self.dtype = np.dtype(output.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StoredArray({self._output.name!r}, shape={self.shape}, dtype={self.dtype})"

    def _rows(self, start: int, stop: int) -> np.ndarray:
        store, size = self._store, self._store.chunk_size
        pieces = []
        for index in range(start // size, -(-stop // size)):
            lo, hi = store.rows(index)
            if index in self._done:
                chunk = store.read_chunk(self._output.name, index)
            elif self._partial:
                chunk = np.full((hi - lo, *self._output.shape), np.nan if self.dtype.kind == "f" else 0,
                                self.dtype)
            else:
                raise RunError(f"{store.path}: chunk {index} (latents {lo}-{hi - 1}) of output "
                               f"{self._output.name!r} is not done yet; rerun the command to finish the run, "
                               "or open_run(..., partial=True) to read what is done")
            pieces.append(chunk[max(start, lo) - lo:min(stop, hi) - lo])
        if not pieces:
            return np.zeros((0, *self._output.shape), self.dtype)
        return np.concatenate(pieces, axis=0)

    def __array__(self, dtype=None, copy=None):
        x = self._rows(0, self.shape[0])
        return x if dtype is None else x.astype(dtype)

    def __getitem__(self, idx):
        first = idx[0] if isinstance(idx, tuple) and idx else idx
        rest = idx[1:] if isinstance(idx, tuple) else ()
        if isinstance(first, (int, np.integer)):
            i = int(first) + (self.shape[0] if first < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"latent {first} outside [0, {self.shape[0]})")
            return self._rows(i, i + 1)[(0, *rest)]
        if isinstance(first, slice) and first.step in (None, 1):
            start, stop, _ = first.indices(self.shape[0])
            return self._rows(start, max(start, stop))[(slice(None), *rest)]
        return np.asarray(self)[idx]


class RunResult(Mapping):
    """A run directory: ``result[name]`` is a :class:`StoredArray` of shape ``(N, *shape)``.

    Attributes: ``path``; ``manifest`` (dict: analysis, options, model_sha256, package_version,
    n, seed, chunk_size, outputs, ...); ``summary`` (dict from ``summary.json``: mean spectrum,
    its 5-95 % band, local dimension histogram; empty before the first write);
    ``chunks_done`` (sorted chunk indices with a commit record); ``n_chunks``; ``complete``;
    ``stages`` (the names of the further stages, e.g. ``["pairs", "result"]``).
    :meth:`stage` opens a further stage the same way; :meth:`results` reads the one-row
    ``result`` stage of the analyses that have one (Distortion, warpage curves, GANSpace
    directions) as name -> array.
    """

    def __init__(self, path: str, manifest: dict, store: ChunkedStore, summary: dict, partial: bool):
        self.path, self.manifest, self.summary, self._store = path, manifest, summary, store
        self._partial = partial
        self.chunks_done = store.done()
        self.n_chunks = store.n_chunks
        self.complete = len(self.chunks_done) == store.n_chunks
        done = frozenset(self.chunks_done)
        self._arrays = {o.name: StoredArray(store, o, done, partial) for o in store.outputs}
        self.stages = [s["name"] for s in manifest.get("stages") or [] if s["name"]]
        if self.stages and not manifest.get("complete"):
            self.complete = False

    def stage(self, name: str) -> "RunResult":
        """A further stage of the run (``"pairs"``, ``"result"``, ...) as a :class:`RunResult`."""
        desc = next((s for s in self.manifest.get("stages") or [] if s["name"] == name and name), None)
        if desc is None:
            raise KeyError(f"{self.path}: no stage {name!r}; stages: {self.stages}")
        sub = os.path.join(self.path, name)
        return RunResult(sub, dict(self.manifest, n=desc["n"], chunk_size=desc["chunk_size"], outputs=desc["outputs"],
                                   stages=None), stage_store(sub, desc), {}, self._partial)

    def results(self) -> dict:
        """The ``result`` stage's one row as output name -> numpy array (checked against its SHA-256)."""
        res = self.stage("result")
        return {name: np.asarray(a)[0] for name, a in res.items()}

    def __getitem__(self, name: str) -> StoredArray:
        if name not in self._arrays:
            raise KeyError(f"{self.path}: no output {name!r}; outputs: {sorted(self._arrays)}")
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return (f"RunResult({self.manifest['analysis']!r}, n={self._store.n}, "
                f"chunks {len(self.chunks_done)}/{self.n_chunks}, outputs={list(self._arrays)})")


def stage_store(path: str, desc: dict) -> ChunkedStore:
    """The :class:`ChunkedStore` of a stage described by ``{"n", "chunk_size", "outputs"}``."""
    outputs = [Output(name, tuple(o["shape"]), o["dtype"]) for name, o in desc["outputs"].items()]
    return ChunkedStore(path, outputs, desc["n"], desc["chunk_size"])


def store_of(path: str, manifest: dict) -> ChunkedStore:
    """The :class:`ChunkedStore` of a run folder's own (first) stage, as its manifest describes it."""
    root = next((s for s in manifest.get("stages") or [] if not s["name"]), manifest)
    return stage_store(path, root)


def read_summary(path: str) -> dict:
    try:
        with open(os.path.join(path, SUMMARY_FILE)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def open_run(path, *, partial: bool = False) -> RunResult:
    """Open a run directory written by :func:`jaxlatent.runs.run` (or ``jaxlatent run``).

    Args:
      path: the run directory (``--out``).
      partial: allow reading an unfinished run (missing chunks read as NaN / 0).

    Returns:
      :class:`RunResult`, a mapping output name -> lazy array ``(N, *shape)`` with the manifest,
      the summaries and the done chunks beside it.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such run directory")
    manifest = read_manifest(path)
    return RunResult(path, manifest, store_of(path, manifest), read_summary(path), partial)
