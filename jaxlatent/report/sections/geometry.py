"""Report section: the Riemannian metric of the image manifold (Wang & Ponce, ICLR 2021): spectra,
anisotropy, homogeneity, eigen-axis strips and, for StyleGAN2, metric-aware inversion.
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

from jaxlatent.geometry.metric import Metric, metric_tensor, mse_distance
from jaxlatent.geometry.stats import average_metric
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext
from jaxlatent.workflows.geometry import feature_distance, inversion_runs, strip_images, summarize
from jaxlatent.workflows.spaces import latent_space, seed_latents

__all__ = ["add_section"]


def add_section(page, model, ctx: SectionContext) -> None:
    """The metric tensor's spectra, anisotropy, homogeneity, eigen-axis strips and an inversion table."""
    quick, classifier, arrays = ctx.options.quick, ctx.classifier, ctx.arrays
    truncation_psi, class_idx = ctx.options.truncation_psi, ctx.options.class_idx
    t0 = time.perf_counter()
    stylegan = model.config.family == "stylegan2"
    n = min(16 if quick else 64, ctx.options.n_latents)     # --n bounds every population of the report
    spaces = (["w"] if quick else ["z", "w"]) if stylegan else ["z"]
    distances = {"pixel MSE": mse_distance}
    if classifier is not None:
        distances["classifier features"] = feature_distance(classifier.features)
    z = seed_latents(model, range(n), truncation_psi=truncation_psi)
    page.section("Riemannian metric of the image manifold (Wang & Ponce 2021)",
                 f"H(z) = Hessian of d(G(z0), G(z)) at z0, from J^T M J, at {n} latents (seeds 0-{n - 1}); "
                 "distances: " + ", ".join(distances) + ". Spectra: mean and 5-95 % band. Anisotropy: "
                 "eigen-dimensions holding 99 % / 99.9 % of the trace. Homogeneity: correlation of "
                 "v^T H_j v over latent i's eigenvectors with H_j's eigenvalues (off-diagonal mean).")
    spectra, rows, results, metrics = {}, [], {}, {}
    seconds = {}
    t_stage = time.perf_counter()
    for space in spaces:
        sp = latent_space(model, space, truncation_psi=truncation_psi, class_idx=class_idx, where="report")
        g, x = sp.image, sp.points(jnp.asarray(z))
        for dname, dist in distances.items():
            m = metric_tensor(g, x, distance=dist, method="full")
            metrics[(space, dname)] = (g, x, m)
            label = f"{space}, {dname}"
            spectra[label] = np.maximum(np.asarray(m.eigenvalues), 1e-30)
            s, mats = summarize(m)
            tag = f"{space}_{dname.split()[-1].lower()}"
            arrays[f"geometry/{tag}/eigenvalues"] = np.asarray(m.eigenvalues)
            for name, mat in mats.items():
                arrays[f"geometry/{tag}/{name}"] = mat
            results[tag] = s._asdict()
            rows.append([space, dname, x.shape[1], s.top_eigenvalue, s.dims_99, s.dims_999, s.slope,
                         s.corr_log[0], s.corr_lin[0], s.corr_vec[0]])
    seconds["metrics_and_statistics"] = time.perf_counter() - t_stage
    plots.plot_spectra(spectra, page.path("geometry_spectra.png"), title="metric eigenvalues",
                     ylabel="eigenvalue", xlabel="eigen-index")
    page.figure("geometry_spectra.png", "Metric spectra (mean and 5-95 % band over latents).")
    page.table(["space", "distance", "dim", "top eigenvalue", "dims 99 %", "dims 99.9 %", "power-law slope",
                "homogeneity log", "homogeneity lin", "H correlation"], rows)
    main = spaces[-1]
    g, x, m = metrics[(main, "pixel MSE")]
    corr = arrays[f"geometry/{main}_mse/corr_log"]
    plots.plot_heatmap(corr, page.path("geometry_homogeneity.png"),
                     title=f"homogeneity ({main}, pixel MSE, log scale)", colorbar_label="correlation")
    page.figure("geometry_homogeneity.png", "Entry [i, j]: correlation of log v^T H_j v over latent i's "
                "eigenvectors with log eigenvalues of H_j (not symmetric).")
    strips = strip_images(g, x[0], Metric(m.eigenvalues[:1], m.eigenvectors[:1], None), 6, 0.1, 3)
    plots.save_image_grid(strips, page.path("geometry_axes.png"), upscale=4)
    page.figure("geometry_axes.png", f"Top 6 eigen-axes at seed 0 ({main}): each step moves sqrt(MSE) by 0.1.")
    if stylegan and not quick:          # the inversion's compiled program alone is seconds: full report only
        t_stage = time.perf_counter()
        avg = average_metric(metrics[("w", "pixel MSE")][2])
        k, steps = 16, 100
        curves = inversion_runs(model, avg, 6, steps=steps, k=k, truncation_psi=truncation_psi)
        marks = [0, steps // 4, steps // 2, steps]
        inv_rows = [[name] + [float(np.mean(h[:, s])) for s in marks] for name, h in curves.items()]
        plots.plot_lines(np.arange(steps + 1), {k_: np.mean(h, axis=0) for k_, h in curves.items()},
                       page.path("geometry_inversion.png"), title="inversion of generated images",
                       xlabel="Adam step", ylabel="pixel MSE", log=True)
        page.text("Inversion of images generated at held-out seeds: Adam (lr 0.05) from one random z or "
                  "from the mean w; eigen-coordinates are those of the average W metric over "
                  f"seeds 0-{n - 1}.")
        page.table(["method"] + [f"MSE at step {s}" for s in marks], inv_rows)
        page.figure("geometry_inversion.png", "Mean pixel MSE to the target against the Adam step.")
        results["inversion"] = {r[0]: dict(zip([f"step_{s}" for s in marks], r[1:])) for r in inv_rows}
        for name, h in curves.items():
            arrays[f"geometry/inversion/{name}"] = h
        seconds["inversion"] = time.perf_counter() - t_stage
    elif not stylegan:
        page.text(f"Metric-aware inversion in W: not applicable, a {model.config.family} has no W space "
                  "(the metric above is in z).")
    seconds["total"] = time.perf_counter() - t0
    results["seconds"] = seconds
    page.results["geometry"] = results
