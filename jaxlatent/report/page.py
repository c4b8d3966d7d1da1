"""A static HTML report: sections of text, figures and tables, plus results.json.

The page references its PNGs by relative path (they sit beside it), so the
output directory can be copied or served as it is; numbers go to
``results.json`` so scripts never have to scrape the page.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
from typing import Any, Sequence

import numpy as np

__all__ = ["ReportPage", "to_jsonable"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; image-rendering: pixelated; }
figcaption { font-size: 0.85em; color: #555; max-width: 520px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.meta { color: #666; font-size: 0.9em; }
.link a { font-weight: 600; }
"""


def to_jsonable(value: Any) -> Any:
    """Arrays, numpy scalars, dataclasses and NamedTuples -> plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: to_jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = np.where(np.isfinite(arr), arr, np.nan)
            return None if arr.ndim == 0 and np.isnan(arr) else (
                float(arr) if arr.ndim == 0 else [to_jsonable(v) for v in arr])
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ReportPage:
    """Collects sections in order and writes ``report.html`` and ``results.json``."""

    def __init__(self, out_dir: str | os.PathLike, title: str, subtitle: str = ""):
        self.out_dir = os.fspath(out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []
        self._links: list[tuple[str, str]] = []
        self.results: dict[str, Any] = {}

    def path(self, name: str) -> str:
        """Where a file of the report lives (figures are written there by the caller)."""
        return os.path.join(self.out_dir, name)

    def link(self, href: str, text: str) -> None:
        """A link shown under the title (e.g. a page written beside this one)."""
        self._links.append((href, text))

    def section(self, heading: str, text: str = "") -> None:
        self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            self._parts.append(f"<p>{html.escape(text)}</p>")

    def text(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def figure(self, filename: str, caption: str = "") -> None:
        rel = os.path.relpath(self.path(filename) if not os.path.isabs(filename) else filename,
                              self.out_dir)
        if not os.path.exists(os.path.join(self.out_dir, rel)):
            raise FileNotFoundError(f"report figure {os.path.join(self.out_dir, rel)} was not written")
        self._parts.append(
            f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption or rel)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        def cell(v):
            if isinstance(v, float):
                return f"{v:.4g}"
            return html.escape(str(v))

        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def write(self) -> str:
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class='meta'>{html.escape(self.subtitle)}</p>"
            + "".join(f"<p class='link'><a href='{html.escape(h)}'>{html.escape(t)}</a></p>" for h, t in self._links)
            + "\n".join(self._parts)
            + "<p class='meta'>Numbers: <a href='results.json'>results.json</a></p></body></html>"
        )
        out = self.path("report.html")
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(page)
        with open(self.path("results.json"), "w", encoding="utf-8") as fh:
            json.dump(to_jsonable(self.results), fh, indent=2)
        return out
