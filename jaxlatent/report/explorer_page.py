"""``explorer.html``: the explorer's frames and controls in one self-contained page.

Every frame is an inline data URI (no server, no network, no file beside it needed): images of
at most ``LOSSLESS_SIDE`` pixels a side are PNGs of the library's uint8 image
(:func:`jaxlatent.report.plots.to_uint8`), so a frame decodes to exactly the library's pixels; larger
ones are box-downscaled to at most ``MAX_SIDE`` and stored as JPEG. The page's script and
style are ``jaxlatent/assets/explorer/explorer.{js,css}``, inlined; the numbers are one JSON
block (``<script id="explorer-data">``).

Size budget: each (latent, method, direction) strip of S frames may take
``S * frame_budget(h, w, c)`` bytes as stored (base64 included); the page may weigh the sum of
its strips' budgets plus ``OVERHEAD_BUDGET`` (script, style, numbers, labels).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from typing import Any

import numpy as np
from PIL import Image

from jaxlatent.report.plots import to_uint8

__all__ = ["ExplorerPage", "encode_frame", "frame_budget", "LOSSLESS_SIDE", "MAX_SIDE", "OVERHEAD_BUDGET"]

LOSSLESS_SIDE = 64         # frames up to this size are PNG at native size: pixel-exact
MAX_SIDE = 128             # larger frames are box-downscaled to at most this and stored as JPEG
JPEG_QUALITY = 85
OVERHEAD_BUDGET = 192 * 1024
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "explorer")


def frame_budget(height: int, width: int, channels: int) -> int:
    """Bytes (as stored: base64 data URI) one frame may take: 128 B plus 1.5 B per uint8 value,
    at most 12 KB (the JPEG of a 128x128 colour frame)."""
    side = max(height, width)
    if side > LOSSLESS_SIDE:
        f = math.ceil(side / MAX_SIDE)
        height, width = math.ceil(height / f), math.ceil(width / f)
    return min(128 + (3 * height * width * channels) // 2, 12 * 1024)


def _stored(u8: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> what is stored: itself, or box-downscaled to at most MAX_SIDE."""
    side = max(u8.shape[:2])
    if side <= LOSSLESS_SIDE:
        return u8
    f = math.ceil(side / MAX_SIDE)
    h, w = (u8.shape[0] // f) * f, (u8.shape[1] // f) * f
    x = u8[:h, :w].astype(np.float32).reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def encode_frame(u8: np.ndarray) -> str:
    """A data URI of one (H, W, C) uint8 frame (C = 1 or 3): PNG up to LOSSLESS_SIDE, else JPEG."""
    x = _stored(u8)
    img = Image.fromarray(x[..., 0] if x.shape[2] == 1 else x)
    buf = io.BytesIO()
    if max(u8.shape[:2]) <= LOSSLESS_SIDE:
        img.save(buf, format="PNG", optimize=True)
        kind = "png"
    else:
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _round(a) -> Any:
    """Numbers to 4 significant digits, NaN -> None, nested lists kept."""
    a = np.asarray(a, np.float64)
    if a.ndim == 0:
        return None if not np.isfinite(a) else float(f"{float(a):.4g}")
    return [_round(v) for v in a]


class ExplorerPage:
    """Collects the explorer's methods (frames, numbers, labels) and writes ``explorer.html``."""

    def __init__(self, out_dir: str, title: str, seeds: list[int]):
        self.out_dir = out_dir
        self.title = title
        self.seeds = [int(s) for s in seeds]
        self.methods: list[dict] = []
        self.shape: tuple[int, ...] | None = None
        self.steps: int | None = None
        self.frame_bytes = 0
        self.strips: list[int] = []          # bytes of every (latent, method, direction) strip

    def add(self, method, labels: tuple[np.ndarray, np.ndarray] | None) -> None:
        """One :class:`jaxlatent.report.explorer.Method`; ``labels``: (class, confidence), each (L, D, S), or None."""
        n_lat, n_dir, steps = method.images.shape[:3]
        if n_lat != len(self.seeds):
            raise ValueError(f"explorer: method {method.id} has {n_lat} latents, the page {len(self.seeds)}")
        if self.steps is None:
            self.steps, self.shape = steps, method.images.shape[3:]
        if steps != self.steps or method.images.shape[3:] != self.shape:
            raise ValueError(f"explorer: method {method.id} has frames {method.images.shape[2:]}, expected "
                             f"({self.steps}, *{self.shape}) like the first method")
        u8 = to_uint8(method.images.reshape((-1,) + method.images.shape[3:])).reshape(
            (n_lat, n_dir, steps) + to_uint8(method.images[:1, 0, 0]).shape[1:])
        frames = [[[encode_frame(u8[a, d, s]) for s in range(steps)] for d in range(n_dir)] for a in range(n_lat)]
        for per_lat in frames:
            for strip in per_lat:
                self.strips.append(sum(len(f) for f in strip))
        self.frame_bytes += sum(self.strips[-n_lat * n_dir:])
        entry = {"id": method.id, "name": method.name, "group": method.group, "space": method.space,
                 "tap": method.tap, "about": method.about, "strength_name": method.strength_name,
                 "names": method.names, "numbers": {k: _round(v) for k, v in method.numbers.items()},
                 "strengths": _round(method.strengths), "frames": frames, "labels": None}
        if labels is not None:
            cls, conf = labels
            entry["labels"] = [[[[int(cls[a, d, s]), round(float(conf[a, d, s]), 3)] for s in range(steps)]
                                for d in range(n_dir)] for a in range(n_lat)]
        self.methods.append(entry)

    def budget(self) -> dict[str, Any]:
        """The size budget of this page and what it uses (bytes)."""
        c, h, w = self.shape
        per_strip = self.steps * frame_budget(h, w, c)
        return {"frame_budget": frame_budget(h, w, c), "strip_budget": per_strip,
                "largest_strip": max(self.strips), "mean_strip": round(float(np.mean(self.strips)), 1),
                "strips": len(self.strips), "page_budget": per_strip * len(self.strips) + OVERHEAD_BUDGET,
                "frame_bytes": self.frame_bytes}

    def write(self) -> dict[str, Any]:
        """Write ``explorer.html``; returns its summary (methods, sizes, weight, budget)."""
        if not self.methods:
            raise ValueError("explorer: no method to show")
        c, h, w = self.shape
        stored = _stored(np.zeros((h, w, c), np.uint8)).shape
        data = {"title": self.title, "seeds": self.seeds, "steps": self.steps,
                "image": {"height": h, "width": w, "channels": c, "stored_height": stored[0],
                          "stored_width": stored[1], "lossless": max(h, w) <= LOSSLESS_SIDE},
                "classifier": any(m["labels"] is not None for m in self.methods),
                "methods": self.methods, "budget": self.budget()}
        with open(os.path.join(ASSETS, "explorer.js"), encoding="utf-8") as fh:
            script = fh.read()
        with open(os.path.join(ASSETS, "explorer.css"), encoding="utf-8") as fh:
            style = fh.read()
        blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>"
                f"<header><h1>{html.escape(self.title)}</h1><div id='controls'></div></header>"
                "<main id='panels'></main><footer id='help'></footer>"
                f"<script id='explorer-data' type='application/json'>{blob}</script>"
                f"<script>{script}</script></body></html>")
        path = os.path.join(self.out_dir, "explorer.html")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
        weight = os.path.getsize(path)
        budget = data["budget"] | {"page_bytes": weight}
        return {"file": "explorer.html", "bytes": weight, "seeds": self.seeds, "steps": self.steps,
                "methods": [{k: m[k] for k in ("id", "name", "group", "space", "tap", "strength_name", "strengths")}
                            | {"directions": len(m["frames"][0])} for m in self.methods],
                "budget": budget, "within_budget": weight <= budget["page_budget"]
                and budget["largest_strip"] <= budget["strip_budget"]}
