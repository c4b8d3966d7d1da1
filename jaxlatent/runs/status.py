"""Where a run stands: what is done, what is left, the throughput so far and the time to go.

Process 0 writes ``DIR/status.json`` every few seconds while it computes (and at the end of each
stage): for each stage its rows and chunks done, and for the stage under way the rate of this
session (rows and latents per second, per device) and its ETA. :func:`run_status` reads it
with the commit records, without touching the arrays, and ``jaxlatent run --status DIR`` prints
it (:func:`format_status`).
"""

from __future__ import annotations

import json
import os
import time

from jaxlatent.runs.manifest import read_manifest
from jaxlatent.runs.store import RECORDS_DIR, json_bytes, write_atomic

__all__ = ["STATUS_FILE", "Throughput", "run_status", "format_status", "write_status", "stage_layout"]

STATUS_FILE = "status.json"
STALE_S = 60.0


class Throughput:
    """Rows committed per second by this process since its first commit of the stage.

    The clock starts at the first commit (the first chunk carries the compilation), so the
    rate is the steady one. ``devices``: the devices that computed the rows (this process's);
    ``processes``: how many processes share the stage (process 0 sees its own share, about
    1/P of the rows, so the run's rate is ``processes`` times its own).
    """

    def __init__(self, unit: str, latents_per_row: int, devices: int, processes: int = 1):
        self.unit, self.latents_per_row = unit, int(latents_per_row)
        self.devices, self.processes = max(1, int(devices)), max(1, int(processes))
        self.t0, self.rows = None, 0

    def committed(self, rows: int) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic()
            return
        self.rows += int(rows)

    def rows_per_s(self) -> float | None:
        """Rows per second of the whole run (this process's rate times the process count)."""
        if self.t0 is None or self.rows == 0:
            return None
        return self.rows / max(time.monotonic() - self.t0, 1e-9) * self.processes

    def as_json(self, rows_left: int) -> dict:
        rate = self.rows_per_s()
        out = {"unit": self.unit, "devices": self.devices * self.processes, "processes": self.processes,
               "rows_per_s": rate, "latents_per_s": None, "latents_per_s_per_device": None,
               "eta_s": None if not rate else rows_left / rate}
        if rate and self.latents_per_row:
            out["latents_per_s"] = rate * self.latents_per_row
            out["latents_per_s_per_device"] = out["latents_per_s"] / (self.devices * self.processes)
        return out

    def postfix(self) -> str:
        """``"123 latents/s/device"`` for the progress bar (empty until the rate is known)."""
        rate = self.rows_per_s()
        if not rate:
            return ""
        if self.latents_per_row:
            return f"{rate * self.latents_per_row / (self.devices * self.processes):.4g} latents/s/device"
        return f"{rate / (self.devices * self.processes):.4g} {self.unit}s/s/device"


def stage_layout(path: str, manifest: dict) -> list[dict]:
    """Each stage's name, unit, rows and chunk size from a manifest (one stage for a per-latent run)."""
    stages = manifest.get("stages")
    if stages:
        return [dict(s) for s in stages]
    return [{"name": "", "n": manifest["n"], "chunk_size": manifest["chunk_size"], "unit": "latent",
             "outputs": manifest["outputs"]}]


def _records(path: str, n_chunks: int) -> int:
    try:
        names = os.listdir(os.path.join(path, RECORDS_DIR))
    except FileNotFoundError:
        return 0
    return sum(1 for e in names if e.endswith(".json") and e[:-5].isdigit() and int(e[:-5]) < n_chunks)


def write_status(path: str, body: dict) -> None:
    """Write ``DIR/status.json`` atomically (``updated`` set to now)."""
    write_atomic(os.path.join(path, STATUS_FILE), json_bytes(dict(body, updated=time.time())))


def run_status(path) -> dict:
    """What a run has done and has left, from its manifest, commit records and ``status.json``.

    Reads no array. Returns a dict: ``analysis``, ``n``, ``complete``, ``stages`` (per stage:
    ``name``, ``unit``, ``rows``, ``chunks``, ``chunks_done``, ``rows_done``, ``rows_left``),
    ``latents_done`` / ``latents_left`` (the first stage), ``throughput`` (the last session's
    rate of the stage under way: ``rows_per_s``, ``latents_per_s``, ``latents_per_s_per_device``,
    ``devices``, ``eta_s``, recomputed from the rows left now; None before the first
    measurement), ``stage`` (the stage under way), ``updated`` (seconds since the last status
    write) and ``running`` (a write less than a minute ago).
    """
    path = os.path.abspath(os.fspath(path))
    manifest = read_manifest(path)
    stages = []
    for s in stage_layout(path, manifest):
        folder = os.path.join(path, s["name"]) if s["name"] else path
        chunks = -(-s["n"] // s["chunk_size"])
        done = _records(folder, chunks)
        last = s["n"] - (chunks - 1) * s["chunk_size"]
        rows_done = done * s["chunk_size"] if done < chunks else s["n"]
        if done and done < chunks and os.path.exists(os.path.join(folder, RECORDS_DIR, f"{chunks - 1:08d}.json")):
            rows_done -= s["chunk_size"] - last
        stages.append({"name": s["name"] or "latents", "unit": s.get("unit", "latent"), "rows": s["n"],
                       "chunks": chunks, "chunks_done": done, "rows_done": rows_done,
                       "rows_left": s["n"] - rows_done})
    try:
        with open(os.path.join(path, STATUS_FILE)) as fh:
            saved = json.load(fh)
    except (OSError, ValueError):
        saved = {}
    complete = bool(manifest.get("complete")) and all(s["rows_left"] == 0 for s in stages)
    current = next((s for s in stages if s["rows_left"]), None)
    thr = saved.get("throughput")
    if thr and current is not None and thr.get("rows_per_s") and saved.get("stage") == current["name"]:
        thr = dict(thr, eta_s=current["rows_left"] / thr["rows_per_s"])
    elif current is None or (thr and saved.get("stage") != (current or {}).get("name")):
        thr = dict(thr, eta_s=None) if thr else None
    age = time.time() - saved["updated"] if "updated" in saved else None
    return {"path": path, "analysis": manifest["analysis"], "n": manifest["n"], "complete": complete,
            "stages": stages, "stage": None if current is None else current["name"],
            "latents_done": stages[0]["rows_done"] if stages[0]["unit"] == "latent" else None,
            "latents_left": stages[0]["rows_left"] if stages[0]["unit"] == "latent" else None,
            "throughput": thr, "updated": age, "running": age is not None and age < STALE_S and not complete}


def _duration(s: float | None) -> str:
    if s is None:
        return "unknown"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_status(st: dict) -> str:
    """The lines ``jaxlatent run --status DIR`` prints."""
    state = "complete" if st["complete"] else ("running" if st["running"] else "stopped (rerun the command to resume)")
    lines = [f"{st['path']}: {st['analysis']}, {st['n']} latents, {state}"]
    for s in st["stages"]:
        lines.append(f"  {s['name']:<10s} {s['rows_done']}/{s['rows']} {s['unit']}s done, {s['rows_left']} left "
                     f"({s['chunks_done']}/{s['chunks']} chunks)")
    thr = st["throughput"]
    if thr and thr.get("rows_per_s"):
        rate = (f"{thr['latents_per_s']:.4g} latents/s ({thr['latents_per_s_per_device']:.4g} per device, "
                f"{thr['devices']} devices)" if thr.get("latents_per_s") else
                f"{thr['rows_per_s']:.4g} {thr['unit']}s/s over {thr['devices']} devices")
        lines.append(f"  throughput so far: {rate}; ETA of this stage {_duration(thr.get('eta_s'))}")
    elif not st["complete"]:
        lines.append("  throughput: not measured yet")
    if st["updated"] is not None:
        lines.append(f"  status written {_duration(st['updated'])} ago")
    return "\n".join(lines)
