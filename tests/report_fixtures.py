"""A further report section (the jaxlatent.report.context protocol) that records how it was called,
and the quick demo report the report and explorer tests share (``demo_dir`` in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import shutil
import types

import numpy as np

import jaxlatent.cli
import jaxlatent.report.build

# a few taps keep the shared demo to a few compilations; the demo's own default is every
# mapping layer, w and the small feature maps
TAPS = "mapping.fc1,w,synthesis.b4"
TRAVERSE = "w,synthesis.b4"
SEED = 7

SECTION_CALLS: list[dict] = []


def _add_section(page, model, ctx):
    SECTION_CALLS.append(dict(out=page.out_dir, model=model, quick=ctx.options.quick, key=ctx.key,
                              classifier=ctx.classifier, truncation_psi=ctx.options.truncation_psi,
                              progress=ctx.progress))
    page.section("A further section (Author et al. 2024)", "what it shows")
    page.results["fake"] = {"answer": 42}
    ctx.arrays["fake/values"] = np.arange(3)


FAKE_SECTION = types.ModuleType("jaxlatent.report.sections.fake")
FAKE_SECTION.add_section = _add_section


def calls_for(out) -> list[dict]:
    return [c for c in SECTION_CALLS if c["out"] == str(out)]


def run_quick_demo(out, monkeypatch) -> str:
    """``jaxlatent demo --quick`` into ``out`` with FAKE_SECTION after the real sections; its stdout."""
    monkeypatch.setattr(jaxlatent.report.build, "SECTIONS", jaxlatent.report.build.SECTIONS + (FAKE_SECTION,))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = jaxlatent.cli.main(["demo", "--quick", "--no-progress", "--out", str(out),
                                 "--taps", TAPS, "--traversal-taps", TRAVERSE, "--seed", str(SEED)])
    assert rc == 0
    return buf.getvalue()


def chromium() -> str | None:
    """The headless browser of the rendering tests (``make chromium`` installs Debian's)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


NO_CHROMIUM = ("Chromium is not installed (`make test` installs Debian's chromium package when it "
               "runs as root or with password-less sudo)")
