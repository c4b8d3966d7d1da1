"""The installation check of ``jaxlatent doctor`` on the device at hand, as benchmark rows.

Batched forward- and reverse-mode Jacobians of a StyleGAN2 with the 8 x 512 mapping network,
and a known trigger written as user code (``z * sum(square(z))``), against one latent at a
time (docs/known-issues.md). ``benchmarks/device.py`` runs it first, so the first run on a GPU
or TPU says whether that backend computes them right.

    .venv/bin/python benchmarks/jacobian_check.py
"""

from __future__ import annotations

import jaxlatent


def run(budget_s: float, smoke: bool) -> list[dict]:
    """One row per check: its largest relative error per latent and whether it is within tolerance."""
    report = jaxlatent.doctor(batch=4 if smoke else 16, verbose=False)
    rows = [dict(row=c.name, max_rel_error=c.error, ok=c.ok) for c in report.checks + [report.backend_check]]
    rows.append(dict(row="verdict", backend=report.backend, jax=report.jax_version, jaxlib=report.jaxlib_version,
                     ok=report.ok, note=report.lines[-1], seconds=round(report.seconds, 1)))
    return rows


if __name__ == "__main__":
    for r in run(60.0, smoke=False):
        print(r)
