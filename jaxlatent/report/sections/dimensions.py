"""Report section: Jacobian spectra and local dimensions of every tap (Choi et al. 2022, Local Dimension
Estimation), over the report's population of latents.
"""

from __future__ import annotations

import numpy as np

from jaxlatent.localdim.dimension import dimension_from_spectrum, local_dimension, summarize_dimensions
from jaxlatent.localdim.thresholds import (ThresholdFn, gavish_donoho_threshold, optimal_threshold,
                                           relative_threshold)
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext

__all__ = ["add_section", "threshold_rule"]


def threshold_rule(options) -> ThresholdFn:
    """The report's singular-value threshold: the combined rule, or ``rtol * s_1`` when ``options.rtol``."""
    return optimal_threshold if options.rtol is None else relative_threshold(options.rtol)


def add_section(page, model, ctx: SectionContext) -> None:
    """Local dimension of each of ``ctx.taps`` at every latent of ``ctx.population``."""
    dims = {t: local_dimension(ctx.fns[t], ctx.population, threshold_fn=threshold_rule(ctx.options),
                               chunk_size=ctx.options.chunk_size) for t in ctx.taps}
    dimension_section(page, model, list(ctx.taps), dims, ctx.arrays, ctx.options)


def dimension_section(page, model, taps, dims, arrays, options):
    """Spectra and local dimensions: dims maps tap -> :class:`LocalDimension` over the population."""
    rule = ("the combined rule: the Gavish-Donoho optimal hard threshold where the spectrum shows a "
            "Marchenko-Pastur noise bulk, the numerical rank elsewhere" if options.rtol is None
            else f"{options.rtol:g} times the largest (--rtol)")
    page.section("Jacobian spectra and local dimensions (Choi et al. 2022, Local Dimension Estimation)",
                 "Singular values of each tap's Jacobian with respect to z, over the population "
                 f"(mean and 5-95% band), normalised by the largest; the local dimension counts "
                 f"the values above {rule} (docs/methods-local-dimension.md).")
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
                  # which rule decided, and the paper-style count (Gavish-Donoho everywhere) beside it
                  "noise_bulk_share": float(np.mean(np.asarray(dims[t].noise_bulk))),
                  "gavish_donoho_mean": float(np.mean(np.asarray(dimension_from_spectrum(
                      dims[t].singular_values, (int(np.prod(model.tap_shape(t))), int(model.z_dim)),
                      gavish_donoho_threshold).dimension)))}
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
    if flat and options.rtol is None:
        page.text(f"Note: {', '.join(flat)} estimated below 1: their whole spectrum is one Marchenko-Pastur "
                  "noise bulk (e.g. random weights), which the Gavish-Donoho rule reads as all noise. Rerun "
                  "with --rtol (e.g. --rtol 0.01) to count singular values relative to the largest instead.")
        page.results["warnings"] = page.results.get("warnings", []) + [
            f"local dimension < 1 at {flat}: the spectrum is one noise bulk; try rtol"]
    if options.rtol is None:
        page.text("'bulk share': the fraction of latents whose spectrum shows a noise bulk, where the "
                  "Gavish-Donoho threshold decides; elsewhere the numerical rank does (smoothly decaying "
                  "spectra of trained networks have no bulk). 'GD count': the Gavish-Donoho rule applied "
                  "everywhere, as the paper states it, for comparison.")
    page.table(["tap", "out x in", "mean dim", "std", "median", "min", "max", "bulk share", "GD count",
                "s_1 (mean)"],
               [[t, "x".join(map(str, res[t]["shape"])), res[t]["mean_dimension"], res[t]["std_dimension"],
                 res[t]["median_dimension"], res[t]["min_dimension"], res[t]["max_dimension"],
                 res[t]["noise_bulk_share"], res[t]["gavish_donoho_mean"],
                 res[t]["mean_singular_values"][0]] for t in names])
    page.results["local_dimension"] = res
    page.results["local_dimension_rule"] = ("gavish-donoho on a noise bulk, numerical rank elsewhere"
                                            if options.rtol is None else {"rtol": options.rtol})


