"""Report section: the Distortion of every tap (Choi et al. 2022, Local Dimension Estimation)."""

from __future__ import annotations

import numpy as np

from jaxlatent.localdim.distortion import distortion
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext

__all__ = ["add_section"]


def add_section(page, model, ctx: SectionContext) -> None:
    """Distortion of each of ``ctx.taps`` over ``ctx.population``: far over near tangent-space distances."""
    taps = list(ctx.taps)
    dist = {t: distortion(ctx.fns[t], ctx.population, key=ctx.key, rule=ctx.options.rule,
                          chunk_size=ctx.options.chunk_size) for t in taps}
    arrays = ctx.arrays
    page.section("Distortion (Choi et al. 2022, Local Dimension Estimation)",
                 "Mean geodesic distance between the estimated tangent spaces at distinct latents "
                 "over the mean distance to a neighbour 0.1 away (docs/methods-local-dimension.md); "
                 "1 means tangent spaces vary no more across the space than next door. Each tangent "
                 "space spans the top k Local Basis directions, k the median local dimension of the tap "
                 "(the table above).")
    res = {}
    for t in taps:
        d = dist[t]
        res[t] = {"distortion": float(d.distortion), "far": float(d.far), "near": float(d.near),
                  "haar_baseline": float(d.baseline), "k": int(d.k)}
        arrays[f"distortion_far/{t}"] = np.asarray(d.far_distances, np.float32)
    plots.plot_bars(list(taps), [res[t]["distortion"] for t in taps], page.path("distortion.png"),
                  title="Distortion per tap (far / near)", ylabel="distortion")
    page.figure("distortion.png", "Distortion per tap")
    page.table(["tap", "k", "distortion", "far", "near", "Haar baseline"],
               [[t, res[t]["k"], res[t]["distortion"], res[t]["far"], res[t]["near"], res[t]["haar_baseline"]]
                for t in taps])
    page.results["distortion"] = res


