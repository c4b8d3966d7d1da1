"""The chunked result store of a run: zarr v3 arrays written through tensorstore, commit records.

Layout of a run directory ``DIR``::

    DIR/zarr.json              zarr v3 group (any zarr v3 reader opens DIR)
    DIR/manifest.json          what was run (see :mod:`jaxlatent.runs.manifest`)
    DIR/<output>/zarr.json     one zarr v3 array per output, shape (N, *per_latent_shape),
    DIR/<output>/c/<i>/0/...   chunked (chunk_size, *per_latent_shape) along the latents
    DIR/chunks/<i>.json        commit record of chunk i: its rows and one SHA-256 per output
    DIR/summary.json           streamed summaries (:mod:`jaxlatent.runs.summaries`)

A chunk counts as done only when its commit record exists and its checksums match the data:
the record is written (temporary file, fsync, atomic rename) after every output's chunk has
been written and flushed, so a process killed at any moment leaves either a committed chunk or
one that the next run recomputes. Chunk files themselves are replaced atomically by
tensorstore's ``file`` key-value store, so a reader never sees a half-written file either.
Each chunk of a run maps to exactly one chunk file per output, so processes that write
different chunks never touch the same file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from typing import Mapping, NamedTuple

import numpy as np
import tensorstore as ts

RECORDS_DIR = "chunks"
GROUP_FILE = "zarr.json"


class RunError(ValueError):
    """A run directory cannot be used as asked (the message names the directory and the fault)."""


class RunMismatchError(RunError):
    """Resuming a run with a different analysis, options, model, package version or size."""


class RunCorruptError(RunError):
    """A manifest, commit record or chunk whose checksum does not match (rerun with ``repair``)."""


class RunWriteError(RunError):
    """The disk refused a write (full, read-only, ...); committed chunks are kept."""


class Output(NamedTuple):
    """One per-latent output of an analysis: stored as an array of shape ``(N, *shape)``."""

    name: str
    shape: tuple
    dtype: str


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Temporary file beside the target, fsync, ``os.replace``, fsync of the folder. An OSError (disk full,
    read-only, permissions) becomes a :class:`RunWriteError` naming the file; the
    temporary file is removed.
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path))
    except OSError as err:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise write_error(path, err) from None


_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}


def _fsync_dir(path: str) -> None:
    """Make a rename durable: flush the folder's entry list (POSIX; skipped where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_error(path: str, err: BaseException) -> RunWriteError:
    """A :class:`RunWriteError` that says what the disk said and that rerunning resumes."""
    code = getattr(err, "errno", None)
    if code is None:  # tensorstore's errors carry the OS error in their text only
        code = next((c for c in _DISK_ERRORS if os.strerror(c) in str(err)), None)
    what = _DISK_ERRORS.get(code)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    detail = what or first
    return RunWriteError(
        f"{path}: cannot write ({detail}). Chunks committed so far are kept and no partial chunk "
        "is counted; free space or fix permissions, then rerun the same command to resume")


def json_bytes(obj) -> bytes:
    """Canonical JSON (sorted keys) as UTF-8: what checksums of JSON documents are taken over."""
    return json.dumps(obj, sort_keys=True, indent=1).encode()


def with_checksum(obj: dict) -> dict:
    """``obj`` plus ``"sha256"``: the digest of its canonical JSON without that key."""
    body = {k: v for k, v in obj.items() if k != "sha256"}
    return dict(body, sha256=hashlib.sha256(json_bytes(body)).hexdigest())


def read_checked_json(path: str, what: str) -> dict:
    """Read a JSON document written with :func:`with_checksum`; a fault raises RunCorruptError."""
    try:
        with open(path, "rb") as fh:
            obj = json.loads(fh.read())
    except (OSError, ValueError) as err:
        raise RunCorruptError(f"{path}: {what} unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict) or with_checksum(obj).get("sha256") != obj.get("sha256"):
        raise RunCorruptError(f"{path}: {what} checksum does not match its content (the file was changed "
                              "or damaged)")
    return obj


def array_digest(x: np.ndarray) -> str:
    """SHA-256 of an array's little-endian C-order bytes (the bytes of its zarr chunk)."""
    x = np.ascontiguousarray(x)
    return hashlib.sha256(x.astype(x.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()


def _fill(dtype: np.dtype):
    if dtype == np.bool_:
        return False
    return float("nan") if np.issubdtype(dtype, np.floating) else 0


class ChunkedStore:
    """The arrays and commit records of one run directory (see the module docstring).

    path: the run directory. outputs: the analysis's :class:`Output` declarations.
    n: number of latents N. chunk_size: latents per chunk (the last one may be shorter).
    """

    def __init__(self, path: str, outputs, n: int, chunk_size: int):
        self.path = os.path.abspath(os.fspath(path))
        self.outputs = tuple(Output(o[0], tuple(o[1]), str(o[2])) for o in outputs)
        self.n = int(n)
        self.chunk_size = int(chunk_size)
        self.n_chunks = -(-self.n // self.chunk_size)
        self._arrays: dict[str, ts.TensorStore] = {}

    # -- layout ---------------------------------------------------------------------------
    def rows(self, index: int) -> tuple[int, int]:
        """Latent rows ``[start, stop)`` of chunk ``index``."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.n)

    def record_path(self, index: int) -> str:
        return os.path.join(self.path, RECORDS_DIR, f"{index:08d}.json")

    def chunk_file(self, name: str, index: int) -> str:
        """The zarr v3 chunk file of output ``name`` holding chunk ``index`` (default key encoding)."""
        out = next(o for o in self.outputs if o.name == name)
        return os.path.join(self.path, name, "c", str(index), *(["0"] * len(out.shape)))

    def _spec(self, out: Output, create: bool) -> dict:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": os.path.join(self.path, out.name) + "/"}}
        if create:
            dtype = np.dtype(out.dtype)
            spec.update(create=True, delete_existing=True, store_data_equal_to_fill_value=True, metadata={
                "shape": [self.n, *out.shape], "data_type": dtype.name,
                "chunk_grid": {"name": "regular",
                               "configuration": {"chunk_shape": [self.chunk_size, *out.shape]}},
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "fill_value": _fill(dtype)})
        else:
            spec.update(open=True, store_data_equal_to_fill_value=True)
        return spec

    def _has_array(self, out: Output) -> bool:
        """Whether output ``out`` is stored with this run's shape, dtype and chunking."""
        try:
            with open(os.path.join(self.path, out.name, GROUP_FILE)) as fh:
                meta = json.load(fh)
            chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
            return (meta["shape"] == [self.n, *out.shape] and meta["data_type"] == np.dtype(out.dtype).name
                    and chunks == [self.chunk_size, *out.shape])
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def create(self, attributes: Mapping) -> None:
        """Create the group, the records folder and each output array not there as declared (process 0)."""
        try:
            os.makedirs(os.path.join(self.path, RECORDS_DIR), exist_ok=True)
            for out in self.outputs:
                if not self._has_array(out):
                    self._arrays[out.name] = ts.open(self._spec(out, create=True)).result()
        except (OSError, ValueError) as err:
            raise write_error(self.path, err) from None
        group = {"zarr_format": 3, "node_type": "group", "attributes": dict(attributes)}
        write_atomic(os.path.join(self.path, GROUP_FILE), json.dumps(group, indent=1).encode())

    def array(self, name: str) -> ts.TensorStore:
        if name not in self._arrays:
            out = next(o for o in self.outputs if o.name == name)
            try:
                self._arrays[name] = ts.open(self._spec(out, create=False)).result()
            except ValueError as err:
                raise RunCorruptError(f"{os.path.join(self.path, name)}: output array {name!r} cannot be "
                                      f"opened ({str(err).splitlines()[0]}); rerun with repair") from None
        return self._arrays[name]

    # -- commit records -------------------------------------------------------------------
    def done(self) -> list[int]:
        """Indices of chunks that have a commit record (not yet verified against their data)."""
        try:
            names = os.listdir(os.path.join(self.path, RECORDS_DIR))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext == ".json" and stem.isdigit() and int(stem) < self.n_chunks:
                found.append(int(stem))
        return sorted(found)

    def missing(self) -> list[int]:
        """Chunk indices without a commit record, ascending."""
        have = set(self.done())
        return [i for i in range(self.n_chunks) if i not in have]

    def record(self, index: int) -> dict:
        return read_checked_json(self.record_path(index), f"commit record of chunk {index}")

    def discard(self, index: int) -> None:
        """Forget chunk ``index`` (its record goes; the next run recomputes and overwrites it)."""
        try:
            os.remove(self.record_path(index))
        except FileNotFoundError:
            pass

    # -- data -----------------------------------------------------------------------------
    def write_chunk(self, index: int, arrays: Mapping[str, np.ndarray], extra: Mapping | None = None) -> dict:
        """Write chunk ``index`` of every output, then commit it with its checksums.

        arrays: output name -> ``(rows, *shape)`` with ``rows = stop - start`` of the chunk.
        extra: more fields for the commit record. Returns the record.
        """
        start, stop = self.rows(index)
        digests, values = {}, {}
        for out in self.outputs:
            x = np.asarray(arrays[out.name])
            want = (stop - start, *out.shape)
            if x.shape != want or x.dtype != np.dtype(out.dtype):
                raise RunError(f"{self.path}: chunk {index} of output {out.name!r} is {x.shape} "
                               f"{x.dtype}, expected {want} {out.dtype} (the analysis's declaration)")
            digests[out.name], values[out.name] = array_digest(x), x
        self._write_rows(index, values)
        record = with_checksum({"chunk": index, "rows": [start, stop], "outputs": digests, **dict(extra or {})})
        write_atomic(self.record_path(index), json_bytes(record))
        return record

    def _write_rows(self, index: int, values: Mapping[str, np.ndarray]) -> None:
        """Write chunk ``index`` of every output; the files are written concurrently, all awaited."""
        start, stop = self.rows(index)
        pending = []
        for name, x in values.items():
            try:
                pending.append((name, self._put(name, start, stop, x)))
            except (OSError, ValueError) as err:
                raise write_error(self.chunk_file(name, index), err) from None
        for name, future in pending:
            try:
                future.result()
            except (OSError, ValueError) as err:  # tensorstore reports I/O faults as ValueError
                raise write_error(self.chunk_file(name, index), err) from None

    def _put(self, name: str, start: int, stop: int, x: np.ndarray):
        """Start writing rows ``[start, stop)`` of output ``name``; returns the write's future."""
        return self.array(name)[start:stop].write(x)

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of output ``name`` as stored (no checksum test)."""
        try:
            return np.asarray(self.array(name)[start:stop].read().result())
        except ValueError as err:
            raise RunCorruptError(f"{os.path.join(self.path, name)}: rows {start}-{stop} unreadable "
                                  f"({str(err).splitlines()[0]}); rerun with repair") from None

    def read_chunk(self, name: str, index: int, record: dict | None = None) -> np.ndarray:
        """Chunk ``index`` of output ``name``, its checksum tested against the commit record."""
        record = self.record(index) if record is None else record
        start, stop = record["rows"]
        x = self.read_rows(name, start, stop)
        if array_digest(x) != record["outputs"].get(name):
            raise RunCorruptError(
                f"{self.chunk_file(name, index)}: chunk {index} of output {name!r} (latents {start}-{stop - 1}) "
                "does not match its checksum; rerun with repair (--repair) to recompute it")
        return x

    def verify(self, index: int) -> tuple[dict, dict]:
        """Test chunk ``index`` (record and every output) or raise RunCorruptError.

        Returns ``(record, arrays)``: the commit record and output name -> the chunk's rows.
        """
        record = self.record(index)
        if record.get("chunk") != index or list(record.get("rows", [])) != list(self.rows(index)):
            raise RunCorruptError(f"{self.record_path(index)}: commit record names chunk {record.get('chunk')} "
                                  f"rows {record.get('rows')}, expected chunk {index} rows {list(self.rows(index))}")
        return record, {out.name: self.read_chunk(out.name, index, record) for out in self.outputs}
