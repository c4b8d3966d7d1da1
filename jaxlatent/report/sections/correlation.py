"""Report section: correlation analysis and controlling sets (Li, Tao, Niu & Li, ICPR 2020) with
the report's classifier as the concept; :func:`write_figures` also serves ``jaxlatent correlation``.
"""

from __future__ import annotations

import time

import numpy as np

from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext
from jaxlatent.workflows.spaces import seed_latents
from jaxlatent.workflows.correlation import (FULL, QUICK, Population, Sizes, analyse, population, raw_arrays,
                                             summarize, translation_images)

__all__ = ["applies", "add_section", "write_figures", "importance_figure"]

TITLE = "Correlation analysis and controlling sets (Li, Tao, Niu & Li, ICPR 2020)"


def applies(model, ctx: SectionContext) -> str | None:
    """Why the section cannot run on ``model`` (``None``: it can): its concepts are a classifier's classes."""
    if ctx.classifier is None:
        return ("no classifier was given, and the concepts this analysis controls are a classifier's classes: "
                "pass --classifier DIR (a classifier trained on this model's images)")
    return None


def add_section(page, model, ctx: SectionContext) -> None:
    """Importance heatmap, S(k) of both methods, translation matrix and grids."""
    classifier, arrays = ctx.classifier, ctx.arrays
    page.section(TITLE,
                 "Single latent dimensions are set to +-a (in Z, a in standard deviations) and the "
                 "classifier's probabilities are read; the controlling set of a (source, target) "
                 "pair is the smallest prefix of the target's sensitivity ranking whose joint "
                 "intervention moves 90% of the source's samples into the target (or where the "
                 "success stops growing).")
    if classifier is None:
        page.text("No classifier was given: the concept scores this section needs are unavailable.")
        return
    start = time.perf_counter()
    sizes = QUICK if ctx.options.quick else FULL
    z = seed_latents(model, range(sizes.population), truncation_psi=ctx.options.truncation_psi)
    space = population(model, z, "z", truncation_psi=ctx.options.truncation_psi, class_idx=ctx.options.class_idx)
    res = analyse(space, classifier.logits, sizes, key=ctx.key)
    write_figures(page, space, res, sizes, prefix="correlation")
    summary = summarize(res)
    summary["seconds"] = time.perf_counter() - start
    summary["sizes"] = sizes._asdict()
    page.results["correlation"] = summary
    for name, value in raw_arrays(res).items():
        arrays[f"correlation/{name}"] = value


def importance_figure(sensitivity, path: str, title: str) -> str:
    """Heatmap of a (dims, classes) matrix, tall enough to read every dimension."""
    import matplotlib  # noqa: PLC0415  (plotting only, as in jaxlatent.report.plots)

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    m = np.asarray(sensitivity, np.float64)
    fig, ax = plt.subplots(figsize=(4.8, max(4.0, 0.11 * m.shape[0] + 1.2)))
    im = ax.imshow(m, cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax).set_label("mean max |change of p|")
    ax.set(xlabel="class", ylabel="latent dimension", title=title)
    ax.set_xticks(range(m.shape[1]))
    ax.title.set_fontsize("small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(page, space: Population, res: dict, sizes: Sizes, prefix: str) -> None:
    e, (s, t) = res["effects"], res["pair"]
    classes = [str(c) for c in range(res["size"].shape[0])]
    sens = np.asarray(e.sensitivity)
    importance_figure(sens, page.path(f"{prefix}_importance.png"),
                      f"sensitivity of p(class) to single dims of {space.name} (set to +-{sizes.magnitude:g})")
    page.figure(f"{prefix}_importance.png", "Importance: latent dimensions (rows) x classes "
                "(columns), mean largest change of the class probability.")
    ks = np.arange(1, res["curves"].shape[-1] + 1)
    b = res["set_b"]
    curves = {"Method A (sensitivity rank)": res["curves"][s, t]}
    if b is not None:
        curves["Method B (tanh weights)"] = np.asarray(b.success)[:len(ks)]
    curves["random dims"] = res["random_curve"]
    plots.plot_lines(ks, curves,
                   page.path(f"{prefix}_success.png"), title=f"S(k): {s} -> {t}",
                   xlabel="k (dimensions set jointly)", ylabel="share classified as target")
    page.figure(f"{prefix}_success.png", f"Success curve of digit {s} -> {t} for the first k "
                "dimensions of each ranking, against a random ranking.")
    plots.plot_heatmap(np.nan_to_num(res["success"], nan=0.0), page.path(f"{prefix}_matrix.png"),
                     title="translation success (rows: source, columns: target)",
                     labels=classes, colorbar_label="share moved into the target")
    page.figure(f"{prefix}_matrix.png", "Success of each pair's controlling set.")
    tr = res["translation"]
    mags = np.asarray(tr.magnitudes)
    page.table(["a", "set: success", "target p", "left in source", "random k: success",
                "all dims: success"],
               [[float(m), float(tr.success[i]), float(tr.target_prob[i]), float(tr.source_share[i]),
                 float(tr.random_success[i]), float(tr.all_success[i])] for i, m in enumerate(mags)])
    images, ncol = translation_images(space, res, sizes.magnitude)
    plots.save_image_grid(images, page.path(f"{prefix}_translations.png"), nrow=ncol)
    page.figure(f"{prefix}_translations.png", "Rows: a sample, then its translation to each class "
                "by its pair's controlling set (the sample's own class: unchanged).")
    off = ~np.eye(len(res["size"]), dtype=bool) & np.isfinite(res["success"])
    page.text(f"Controlling-set size over {int(off.sum())} pairs: median "
              f"{np.median(res['size'][off]):g} of {space.x.shape[1]} dimensions; mean success "
              f"{np.mean(res['success'][off]):.2f}; pair {s} -> {t}: Method A {len(res['set_a'])} dims"
              + ("." if b is None else f", Method B {len(b.dims)} dims.")
              + (" (Quick mode: no Method B, no intervals.)" if b is None else ""))
