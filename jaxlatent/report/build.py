"""The analysis report: every analysis of the library run on one generator, as one page.

``build_report(model, out_dir)`` runs the sections listed in :data:`SECTIONS` (modules of
:mod:`jaxlatent.report.sections`, one protocol: :mod:`jaxlatent.report.context`): samples, local
dimensions, Distortion, Grassmannian distances and warpage, Local Basis traversals, the
Riemannian metric, GANSpace and correlation analysis; it writes ``report.html`` (figures beside
it), ``results.json`` (every number shown) and ``arrays.npz`` (the raw spectra and distances).
``jaxlatent report CKPT --out DIR`` and ``jaxlatent demo`` (the shipped digits model) call it.

Latents come from seeds in the NVlabs convention (``np.random.RandomState(seed).randn(z_dim)``),
so every number of the report can be recomputed with the library calls it names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from types import ModuleType
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxlatent.localdim.thresholds import threshold_rule
from jaxlatent.report.context import SectionContext
from jaxlatent.report.explorer import build_explorer
from jaxlatent.report.page import ReportPage
from jaxlatent.report.sections import (correlation, dimensions, distortion, ganspace, geometry, grassmann, samples,
                                       traversal)
from jaxlatent.workflows.features import check_reads_images
from jaxlatent.workflows.spaces import is_biggan, model_options, seed_latents, tap_fn
from jaxlatent.workflows.taps import check_taps, default_taps, default_traversal_taps

__all__ = ["ReportOptions", "QUICK", "SECTIONS", "build_report", "build_class_reports", "section_context",
           "section_name", "skipped_sections"]

#: The report's sections, in page order: modules with ``add_section(page, model, ctx)`` (see
#: :mod:`jaxlatent.report.context`): samples, local dimensions and Distortion (Choi et al. 2022),
#: Grassmannian distances and Local Basis traversals (Choi et al., ICLR 2022), GAN geometry (Wang &
#: Ponce 2021), GANSpace PCA/ICA (Palaev et al. 2023), correlation analysis (Li et al. 2020).
SECTIONS: tuple[ModuleType, ...] = (samples, dimensions, distortion, grassmann, traversal, geometry, ganspace,
                                    correlation)


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """What the report computes. The defaults suit a small model on 2 CPU cores in minutes.

    Attributes:
      n_samples: images in the sample grid (seeds 0..n_samples-1).
      n_latents: population for spectra, local dimensions and Distortion (seeds from
        ``population_seed``).
      population_seed: first seed of the population.
      n_grassmann: latents of the pairwise distance heatmap (the population's first).
      k: Local Basis subspace dimension for the Grassmannian comparisons.
      traversal_seeds: latents whose traversals are drawn.
      traversal_directions: leading directions drawn per latent.
      frames: images per traversal (odd).
      steps: iterative traversal steps (each a Jacobian and an SVD).
      sigma: traversal half-length in the latent.
      taps: taps analysed (default :func:`default_taps`).
      traversal_taps: taps traversed (default: a middle mapping layer, ``w`` and the smallest
        feature-map tap).
      max_tap_size: default taps hold at most this many numbers per sample.
      truncation_psi: StyleGAN2 truncation for every tap and image; BigGAN's truncation (its
        batch-norm statistics and the scale of its latents, ``truncation * TN(0, 1; [-2, 2])``).
      class_idx: label of a conditional StyleGAN2 or a BigGAN (required by them, refused by others).
      chunk_size: latents per compiled batch.
      seed: PRNG seed of the neighbours, random baselines and further sections.
      rule: the local-dimension rule of the dimensions and of Distortion's ``k``
        (:func:`jaxlatent.localdim.thresholds.threshold_rule`): ``"paper"`` (Gavish-Donoho,
        ``omega(beta) * median`` of all singular values), ``"bulk"``, ``"numerical"`` or a
        relative cut ``"rtol=R"`` (which counts a flat spectrum, e.g. a full-rank tap with few
        inputs, that the Gavish-Donoho rule reads as all noise).
      quick: the geometry, GANSpace and correlation sections run their small, seconds-long variant.
    """

    n_samples: int = 64
    n_latents: int = 128
    population_seed: int = 1000
    n_grassmann: int = 32
    k: int = 8
    traversal_seeds: tuple[int, ...] = (0, 1, 2)
    traversal_directions: int = 5
    frames: int = 7
    steps: int = 60
    sigma: float = 2.5
    taps: tuple[str, ...] | None = None
    traversal_taps: tuple[str, ...] | None = None
    max_tap_size: int = 8192
    truncation_psi: float = 1.0
    class_idx: int | None = None
    chunk_size: int = 32
    seed: int = 0
    rule: str = "paper"
    quick: bool = False
    explorer: bool = True


#: A small report for tests and smoke runs (seconds of compute on the digits model).
QUICK = ReportOptions(n_samples=16, n_latents=16, n_grassmann=8, k=4, traversal_seeds=(0, 1),
                      traversal_directions=3, frames=5, steps=8, quick=True)


# ---------------------------------------------------------------------------------- the report
class _Steps:
    """Times the report's steps into ``timings`` (seconds), with a tqdm bar when asked for."""

    def __init__(self, names: list[str], progress: bool):
        self.bar = tqdm(total=len(names), desc="report", unit="step") if progress else None
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = round(time.perf_counter() - t0, 3)
        if self.bar is not None:
            self.bar.update(1)
        return out

    def close(self):
        if self.bar is not None:
            self.bar.close()


def section_name(module: ModuleType) -> str:
    """The name a section's timings and results go under: its module's last component."""
    return module.__name__.rsplit(".", 1)[-1]


def section_context(model, options: ReportOptions = ReportOptions(), *, classifier=None,
                    arrays: dict | None = None, progress: bool = False, quality: dict | None = None
                    ) -> SectionContext:
    """The :class:`SectionContext` of a report on ``model``: taps checked, their callables, the population.

    ``key`` is the report's ``PRNGKey(options.seed)``; :func:`build_report` hands section ``i``
    ``fold_in(key, i)``. Raises ``ValueError`` (naming the option) for unknown taps, an even
    frame count, too few latents, or a class label the model refuses, before any work.
    """
    taps = check_taps(model, options.taps or default_taps(model, options.max_tap_size), flag="report: taps")
    trav_taps = check_taps(model, options.traversal_taps or default_traversal_taps(model, taps),
                           flag="report: traversal taps")
    if options.frames < 3 or options.frames % 2 == 0:
        raise ValueError(f"report: frames must be odd and >= 3, found {options.frames}")
    if options.n_latents < 4 or options.n_grassmann < 2:
        raise ValueError("report: n_latents must be >= 4 and n_grassmann >= 2, found "
                         f"{options.n_latents} and {options.n_grassmann}")
    model_options(model, truncation_psi=options.truncation_psi, class_idx=options.class_idx, where="report")
    threshold_rule(options.rule)  # an unknown local-dimension rule stops before any work
    if classifier is not None:   # a classifier the user named must read this model's images
        reads = getattr(classifier, "logits", None) or getattr(classifier, "features")
        check_reads_images(model, reads, flag="report: classifier", what="classifier")
    fns = {t: tap_fn(model, t, truncation_psi=options.truncation_psi, class_idx=options.class_idx, where="report")
           for t in taps + [t for t in trav_taps if t not in taps]}
    seeds = range(options.population_seed, options.population_seed + options.n_latents)
    return SectionContext(options=options, key=jax.random.PRNGKey(options.seed), classifier=classifier,
                          arrays={} if arrays is None else arrays, progress=progress, quality=quality,
                          taps=tuple(taps), traversal_taps=tuple(trav_taps),
                          population=jnp.asarray(seed_latents(model, seeds, truncation_psi=options.truncation_psi)),
                          fns=fns,
                          frames={})


def skipped_sections(model, ctx: SectionContext, sections=None) -> dict[str, str]:
    """``section name -> why it cannot apply`` for every section whose ``applies(model, ctx)`` (an
    optional function of a section module) gives a reason; asked before any section computes."""
    out = {}
    for module in SECTIONS if sections is None else sections:
        check = getattr(module, "applies", None)
        reason = check(model, ctx) if check is not None else None
        if reason:
            out[section_name(module)] = reason
    return out


def build_report(model, out_dir: str | os.PathLike, options: ReportOptions = ReportOptions(),
                 title: str | None = None, source: str = "", classifier=None, quality: dict | None = None,
                 progress: bool = True) -> dict:
    """Run every analysis on ``model`` and write ``report.html``, ``results.json``, ``arrays.npz``.

    Each module of :data:`SECTIONS` adds its part of the page in turn, with its own key
    ``fold_in(PRNGKey(options.seed), index)``. Before any of them computes, every section is
    checked against the model (:func:`skipped_sections`); one that cannot apply is skipped with
    a note on the page saying why (``results["skipped"]``). Then the explorer
    (:func:`jaxlatent.report.explorer.build_explorer`: ``explorer.html`` and ``explorer.npz``)
    when ``options.explorer``.

    Args:
      model: a loaded generator (:func:`jaxlatent.load`): StyleGAN2, FastGAN or BigGAN.
      out_dir: directory written (created when missing).
      options: what to compute (:class:`ReportOptions`; :data:`QUICK` for a small report).
      title: page title (default: the model's family).
      source: where the model came from, shown under the title.
      classifier: optional digit classifier (:class:`jaxlatent.models.digits.Classifier`) naming the
        class of each traversal frame.
      quality: optional measurements shown as a table (the shipped model's ``quality.json``).
      progress: show a progress bar over the steps.

    Returns:
      The results dictionary written to ``results.json``; ``results["timings_s"]`` holds the
      seconds of every section under its module's last name.
    """
    out_dir = os.fspath(out_dir)
    z_dim = int(model.z_dim)
    arrays: dict[str, np.ndarray] = {}
    ctx = section_context(model, options, classifier=classifier, arrays=arrays, progress=progress, quality=quality)
    taps, trav_taps = list(ctx.taps), list(ctx.traversal_taps)
    skipped = skipped_sections(model, ctx)

    family = model.config.family
    page = ReportPage(out_dir, title or f"jaxlatent report: {family}",
                      subtitle=f"{source} · jaxlatent · {jax.devices()[0].platform} · "
                               f"{time.strftime('%Y-%m-%d %H:%M')}")
    results: dict[str, Any] = page.results
    results["model"] = {"family": family, "source": source, "z_dim": z_dim,
                        "config": json.loads(model.config.to_json()) if hasattr(model.config, "to_json")
                        else dataclasses.asdict(model.config)}
    results["options"] = dataclasses.asdict(options) | {"taps": taps, "traversal_taps": trav_taps}
    results["machine"] = {"backend": jax.default_backend(), "devices": len(jax.devices()),
                          "cpu_count": os.cpu_count(), "platform": platform.platform()}
    results["skipped"] = skipped
    if is_biggan(model):
        page.text(f"BigGAN: every section analyses class {options.class_idx} (the class vector every block "
                  f"reads) at truncation {options.truncation_psi:g} (it selects the batch-norm statistics; "
                  f"latents are the package's draws {options.truncation_psi:g} TN(0, 1; [-2, 2])); the latent "
                  "space is z, there is no mapping network.")
    elif options.class_idx is not None:
        page.text(f"Conditional model: every section analyses class {options.class_idx} "
                  "(the label given to the mapping network for every latent).")
    if skipped:
        page.text("Skipped sections: " + "; ".join(f"{name}: {why}" for name, why in skipped.items()) + ".")
    steps = _Steps([section_name(m) for m in SECTIONS] + (["explorer"] if options.explorer else []), progress)
    try:
        for index, module in enumerate(SECTIONS):
            name = section_name(module)
            if name in skipped:
                page.section(getattr(module, "TITLE", name), f"Skipped: {skipped[name]}.")
                continue
            own = ctx._replace(key=jax.random.fold_in(ctx.key, index))
            steps.run(name, lambda module=module, own=own: module.add_section(page, model, own))
        if options.explorer:
            results["explorer"] = steps.run("explorer", lambda: build_explorer(
                page, model, options=options, seeds=options.traversal_seeds, traversals=ctx.frames,
                arrays=arrays, classifier=classifier, key=jax.random.fold_in(ctx.key, 99)))
    finally:
        steps.close()
    results["timings_s"] = steps.timings
    np.savez_compressed(page.path("arrays.npz"), **arrays)
    page.text("Raw arrays (spectra, dimensions, distance matrices): arrays.npz.")
    page.write()
    return results




def build_class_reports(model, out_dir: str | os.PathLike, classes, options: ReportOptions = ReportOptions(),
                        title: str | None = None, **kwargs) -> dict:
    """One report per class of a conditional model, side by side: ``class_<c>/report.html`` each, and
    ``report.html`` comparing their local dimensions and Distortions per tap in one table.

    Every class is checked (:func:`section_context`) before any report computes.

    Args:
      model: a conditional generator. out_dir: directory written. classes: class indices.
      options: as :func:`build_report` (its ``class_idx`` is replaced by each class).
      title, kwargs: passed to :func:`build_report` (``source``, ``classifier``, ``quality``, ``progress``).

    Returns:
      ``{"classes": {c: results of class c}}``, also written to ``results.json``.
    """
    classes = [int(c) for c in classes]
    if not classes:
        raise ValueError("report: no class given")
    for c in classes:
        section_context(model, dataclasses.replace(options, class_idx=c), classifier=kwargs.get("classifier"))
    out_dir = os.fspath(out_dir)
    per_class = {}
    for c in classes:
        per_class[c] = build_report(model, os.path.join(out_dir, f"class_{c}"),
                                    dataclasses.replace(options, class_idx=c),
                                    title=f"{title or 'jaxlatent report'}: class {c}", **kwargs)
    page = ReportPage(out_dir, f"{title or 'jaxlatent report'}: classes {', '.join(map(str, classes))} side by side",
                      subtitle=kwargs.get("source", ""))
    page.section("Per class", "One report per class (every latent of a report gets that class's label).")
    page.table(["class", "report"], [[c, f"class_{c}/report.html"] for c in classes])
    taps = list(per_class[classes[0]].get("local_dimension", {}))
    if taps:
        page.section("Local dimension and Distortion per class",
                     "Mean local dimension and Distortion of each tap, one column pair per class.")
        rows = []
        for t in taps:
            row = [t]
            for c in classes:
                r = per_class[c]
                row += [r.get("local_dimension", {}).get(t, {}).get("mean_dimension", float("nan")),
                        r.get("distortion", {}).get(t, {}).get("distortion", float("nan"))]
            rows.append(row)
        page.table(["tap"] + [f"{h} (class {c})" for c in classes for h in ("local dim", "Distortion")], rows)
    page.results["classes"] = per_class
    page.write()
    return page.results
