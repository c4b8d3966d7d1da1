"""Report section: Jacobian spectra and local dimensions of every tap (Choi et al. 2022, Local Dimension
Estimation), over the report's population of latents.
"""

from __future__ import annotations

import numpy as np

from jaxlatent.localdim.dimension import local_dimension, numerical_rank, summarize_dimensions
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext

__all__ = ["add_section"]


def add_section(page, model, ctx: SectionContext) -> None:
    """Local dimension of each of ``ctx.taps`` at every latent of ``ctx.population``."""
    dims = {t: local_dimension(ctx.fns[t], ctx.population, rule=ctx.options.rule, chunk_size=ctx.options.chunk_size)
            for t in ctx.taps}
    dimension_section(page, model, list(ctx.taps), dims, ctx.arrays, ctx.options)


_RULE_TEXT = {
    "paper": "the Gavish-Donoho optimal hard threshold omega(beta) x the median of all singular values "
             "(the paper's count), never below the numerical-rank tolerance",
    "bulk": "the Gavish-Donoho threshold where the spectrum shows a Marchenko-Pastur noise bulk, the "
            "numerical-rank tolerance elsewhere",
    "numerical": "the numerical-rank tolerance s_1 x max(out, in) x eps (the numerical rank)",
}


def dimension_section(page, model, taps, dims, arrays, options):
    """Spectra and local dimensions: dims maps tap -> :class:`LocalDimension` over the population."""
    rule = next(iter(dims.values())).rule if dims else options.rule
    rtol = rule.removeprefix("rtol=")
    text = _RULE_TEXT.get(rule) or (f"{rtol} times the largest (--rule {rtol})" if rule.startswith("rtol=")
                                    else f"the threshold function {rule}")
    page.section("Jacobian spectra and local dimensions (Choi et al. 2022, Local Dimension Estimation)",
                 "Singular values of each tap's Jacobian with respect to z, over the population "
                 f"(mean and 5-95% band), normalised by the largest; the local dimension counts "
                 f"the values above {text} (docs/methods-local-dimension.md).")
    spectra = {}
    res = {}
    for t in taps:
        s = np.asarray(dims[t].singular_values, np.float64)
        spectra[t] = s / s[:, :1]
        summary = summarize_dimensions(dims[t].dimension)
        res[t] = {"shape": [int(np.prod(model.tap_shape(t))), int(model.z_dim)],   # Jacobian out x in
                  "mean_dimension": summary.mean, "std_dimension": summary.std,
                  "median_dimension": summary.median, "min_dimension": summary.min,
                  "max_dimension": summary.max,
                  "mean_singular_values": s.mean(axis=0).tolist(),
                  "mean_threshold": float(np.mean(np.asarray(dims[t].threshold))),
                  # beside the count: every value above rounding, and where a noise bulk shows
                  "numerical_rank_mean": float(np.mean(numerical_rank(dims[t]))),
                  "noise_bulk_share": float(np.mean(np.asarray(dims[t].noise_bulk)))}
        arrays[f"singular_values/{t}"] = s.astype(np.float32)
        arrays[f"dimension/{t}"] = np.asarray(dims[t].dimension)
    plots.plot_spectra(spectra, page.path("spectra.png"), title="Jacobian spectra per tap (s / s_1)",
                     ylabel="s_i / s_1")
    names = list(taps)
    plots.plot_bars(names, [res[t]["mean_dimension"] for t in names], page.path("local_dimensions.png"),
                  title="local dimension per tap (mean, std over latents)", ylabel="dimension",
                  errors=[res[t]["std_dimension"] for t in names])
    page.figure("spectra.png", "Jacobian singular values per tap, normalised by the largest")
    page.figure("local_dimensions.png", "Estimated local dimension per tap")
    flat = [t for t in names if res[t]["mean_dimension"] < 1]
    if flat and rule in ("paper", "bulk"):
        page.text(f"Note: {', '.join(flat)} estimated below 1: their spectrum is flat or one Marchenko-Pastur "
                  "noise bulk (e.g. random weights), which the Gavish-Donoho rule reads as all noise. Rerun "
                  "with --rule numerical, or --rule 0.01 to count singular values above 1% of the largest.")
        page.results["warnings"] = page.results.get("warnings", []) + [
            f"local dimension < 1 at {flat}: the spectrum is flat or one noise bulk; try --rule numerical or 0.01"]
    page.text(f"Reading: 'dim' is the local dimension by the {rule} rule; 'numerical rank' counts every "
              "value above float rounding (the exact rank of a noiseless tap, near full on a trained "
              "network); 'bulk share' is the fraction of latents whose spectrum shows a Marchenko-Pastur "
              "noise bulk, where the Gavish-Donoho noise estimate rests on its own model.")
    page.table(["tap", "out x in", "dim (mean)", "std", "median", "min", "max", "numerical rank",
                "bulk share", "s_1 (mean)"],
               [[t, "x".join(map(str, res[t]["shape"])), res[t]["mean_dimension"], res[t]["std_dimension"],
                 res[t]["median_dimension"], res[t]["min_dimension"], res[t]["max_dimension"],
                 res[t]["numerical_rank_mean"], res[t]["noise_bulk_share"],
                 res[t]["mean_singular_values"][0]] for t in names])
    page.results["local_dimension"] = res
    page.results["local_dimension_rule"] = rule


