"""Report section: GANSpace PCA against ICA (Härkönen et al. 2020; Palaev et al. 2023): edit grids
of both and the Fréchet distance of edited images.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from jaxlatent.ganspace.fid import edit_fid_table
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext
from jaxlatent.workflows.ganspace import direction_images, fit_directions
from jaxlatent.workflows.spaces import key_latents, latent_space, seed_latents
from jaxlatent.workflows.taps import default_edit_tap

__all__ = ["add_section"]

POPULATION_SEED = 2026     # the fitted population: key_latents(model, POPULATION_SEED, n)
FID_SEED = 1000            # the edit-FID latents, another draw
_FULL = dict(n_population=20000, n_fid=1000, k=10, k_ica=(10, 20), grid_dirs=5, strengths=7)
_QUICK = dict(n_population=2000, n_fid=200, k=8, k_ica=(8,), grid_dirs=4, strengths=5)


def add_section(page, model, ctx: SectionContext) -> None:
    """GANSpace PCA vs ICA: edit grids of both and the edit-FID table (Palaev et al. 2023)."""
    quick, key, classifier, arrays = ctx.options.quick, ctx.key, ctx.classifier, ctx.arrays
    opts = dict(truncation_psi=ctx.options.truncation_psi, class_idx=ctx.options.class_idx)
    cfg = _QUICK if quick else _FULL
    t0 = time.perf_counter()
    tap = default_edit_tap(model)
    population = key_latents(model, POPULATION_SEED, cfg["n_population"], truncation_psi=opts["truncation_psi"])
    k_pca = min(cfg["k"], int(np.prod(model.tap_shape(tap))))
    fits = {f"PCA {k_pca}": fit_directions(model, tap, "pca", population, k=k_pca, key=key, **opts)}
    for i, k in enumerate(cfg["k_ica"]):
        k = min(k, int(np.prod(model.tap_shape(tap))))
        fits[f"ICA {k}"] = fit_directions(model, tap, "ica", population, k=k, key=jax.random.fold_in(key, i + 1),
                                          ica_options={"max_iter": 400}, **opts)
    t_fit = time.perf_counter() - t0
    space = fits[next(iter(fits))].space
    page.section(
        "GANSpace: PCA and ICA directions",
        f"Härkönen et al. (NeurIPS 2020) edit along the principal axes of a tap's population; "
        f"Palaev, Lukmanov and Khan (ICLR 2023 Tiny Papers) replace PCA by FastICA. Fitted at tap "
        f"'{tap}' over {cfg['n_population']} latents ({population!r}); edits move "
        + ("w (every layer)." if space == "w" else "z along directions lifted by least squares."))

    # grids: the first latent, each method's leading directions, strengths -6..6
    strengths = np.linspace(-6, 6, cfg["strengths"]).astype(np.float32)
    edit_space = latent_space(model, space, where="report", **opts)
    x0, render = edit_space.points(seed_latents(model, [0], truncation_psi=opts["truncation_psi"])), edit_space.image
    first_ica = next(name for name in fits if name.startswith("ICA"))
    shown = {name: fits[name] for name in (next(iter(fits)), first_ica)}
    grids = {name: direction_images(render, x0, d.directions[:cfg["grid_dirs"]], strengths) for name, d in shown.items()}
    plots.save_image_grids(grids, page.path("ganspace_grid.png"), nrow=len(strengths))
    page.figure("ganspace_grid.png", f"Seed 0 edited along the {cfg['grid_dirs']} leading directions "
                f"(rows) with strengths {strengths[0]:g} .. {strengths[-1]:g} (columns): "
                + " (left) | ".join(shown) + " (right).")
    pca_fit = fits[next(iter(fits))].result
    ratio = np.asarray(pca_fit.explained_variance_ratio)
    results: dict[str, Any] = {"tap": tap, "space": space, "n_population": cfg["n_population"],
                               "pca_explained_variance_ratio": ratio,
                               "ica": {name: {"iterations": int(d.result.iterations), "converged": bool(d.result.converged)}
                                       for name, d in fits.items() if name.startswith("ICA")}}
    for name, d in fits.items():
        arrays[f"ganspace/{name.replace(' ', '_').lower()}_directions"] = d.directions
    page.text(f"PCA: the {k_pca} leading axes hold {100 * ratio.sum():.1f}% of the variance "
              f"(first: {100 * ratio[0]:.1f}%). " + "; ".join(
                  f"{n}: {v['iterations']} iterations, {'converged' if v['converged'] else 'NOT converged'}"
                  for n, v in results["ica"].items()) + ".")

    t1 = time.perf_counter()
    if classifier is None:
        page.text("Edit FID skipped: no feature network (the demo uses the digits classifier's features).")
    else:
        fid_latents = key_latents(model, FID_SEED, cfg["n_fid"], truncation_psi=opts["truncation_psi"])
        z = fid_latents[:]
        x, render = edit_space.points(z), edit_space.image
        table = edit_fid_table(render, classifier.features, x, {n: d.directions for n, d in fits.items()},
                               key=jax.random.fold_in(key, 0), variant="paper",
                               max_strengths=(3.0,) if quick else (3.0, 6.0), chunk_size=cfg["n_fid"])
        page.text(f"Fréchet distance between the classifier features of {table.n} generated images "
                  f"({fid_latents!r}) and of the same images each edited along one random "
                  f"direction of the set with a random strength (Palaev et al., tables 1-3; "
                  f"strengths as the paper's text: alpha ~ U[-a, a]). "
                  f"Lower: the edits keep the images closer to the model's distribution.")
        page.table(["strength"] + list(table.methods),
                   [[row] + [float(v) for v in table.fid[r]] for r, row in enumerate(table.strengths)])
        results["edit_fid"] = table
    results["seconds"] = {"fit": t_fit, "grids": t1 - t0 - t_fit, "edit_fid": time.perf_counter() - t1}
    page.results["ganspace"] = results
