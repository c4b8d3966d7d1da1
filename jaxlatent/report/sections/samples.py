"""Report section: a grid of samples and, when the model comes with them, its quality measurements."""

from __future__ import annotations

import math

from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext
from jaxlatent.workflows.spaces import render, seed_latents

__all__ = ["add_section"]


def add_section(page, model, ctx: SectionContext) -> None:
    """The sample grid of seeds ``0..options.n_samples - 1``, then ``ctx.quality`` as a table."""
    options = ctx.options
    seeds = list(range(options.n_samples))
    imgs = render(model, seed_latents(model, seeds, truncation_psi=options.truncation_psi),
                  truncation_psi=options.truncation_psi,
                  class_idx=options.class_idx, where="report")
    nrow = int(math.ceil(math.sqrt(len(seeds))))
    plots.save_image_grid(imgs, page.path("samples.png"), nrow=nrow)
    page.section("Samples", f"Seeds 0-{len(seeds) - 1}, truncation psi {options.truncation_psi}.")
    page.figure("samples.png", f"{len(seeds)} samples (seeds 0-{len(seeds) - 1})")
    page.results["samples"] = {"seeds": seeds, "image_shape": list(imgs.shape[1:]),
                               "pixel_mean": float(imgs.mean()), "pixel_std": float(imgs.std())}
    if ctx.quality:
        _quality(page, ctx.quality)


def _quality(page, quality: dict) -> None:
    page.section("Model quality", "Measured when the model was trained (quality.json beside it).")
    rows = [[k, v] for k, v in quality.items() if isinstance(v, (int, float))]
    gen = quality.get("generated", {})
    rows += [[f"generated.{k}", v] for k, v in gen.items() if isinstance(v, (int, float))]
    if "class_histogram" in gen:
        rows.append(["generated class histogram (0-9)", " ".join(str(int(c)) for c in gen["class_histogram"])])
    page.table(["measure", "value"], rows)
    page.results["quality"] = quality
