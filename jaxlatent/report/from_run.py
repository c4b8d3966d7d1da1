"""A report from a run's store: the sections of its analysis, built from stored arrays and summaries.

``build_run_report(run_dir, out_dir)`` reads ``open_run(run_dir)`` (manifest, ``summary.json``,
the ``result`` stage and the per-latent arrays it needs, each chunk checked against its
SHA-256) and writes ``report.html``, ``results.json`` and ``arrays.npz`` as
:func:`jaxlatent.report.build.build_report` does, without loading the model or recomputing
anything. ``jaxlatent report --run DIR --out OUT`` calls it.

Sections by analysis: every run gets the run's identity and, where it has one, the spectrum
(mean and 5-95 % band from the streamed summaries) and the local dimension histogram; then
``distortion``: far, near, Distortion, baseline and the histogram of pair and neighbour
distances; ``grassmann``: the warpage curves (mean +- std over pairs); ``ganspace``: explained
variance and ICA convergence; ``concept-effects``: the population measures of
:func:`jaxlatent.correlation.effects.effects_from_probs` from the stored probabilities.
"""

from __future__ import annotations

import os
import time

import numpy as np

from jaxlatent.correlation.effects import effects_from_probs
from jaxlatent.report import plots
from jaxlatent.report.page import ReportPage
from jaxlatent.runs.results import RunResult, open_run
from jaxlatent.runs.store import RunError

__all__ = ["build_run_report", "run_summaries"]


def _numbers(text) -> list[float]:
    return [float(t) for t in str(text).split(",") if t.strip()]


def run_summaries(res: RunResult) -> dict:
    """Per-analysis summaries of a run, from its store alone: what the run report shows.

    Returns a dict with ``analysis``, ``n``, ``complete``, ``options``, ``summary`` (the
    streamed spectrum and local dimension summaries) and, for the multi-stage analyses,
    ``result`` (the ``result`` stage's values as lists); ``concept-effects`` adds ``effects``.
    """
    out = {"analysis": res.manifest["analysis"], "n": res.manifest["n"], "complete": res.complete,
           "options": res.manifest["options"], "first_seed": res.manifest["seed"],
           "model_sha256": res.manifest["model_sha256"], "summary": dict(res.summary)}
    if "result" in res.stages:
        out["result"] = {k: np.asarray(v).tolist() for k, v in res.results().items()}
    if out["analysis"] == "controlling-set":
        pairs = res.stage("pairs")
        out["pairs"] = {name: np.asarray(pairs[name]).tolist()
                        for name in ("source", "target", "num_samples", "curve_samples", "size", "ranking", "success")}
    if out["analysis"] == "concept-effects":
        opts = res.manifest["options"]
        values = _numbers(opts["values"])
        k = res["probs"].shape[1]
        dims = list(range(k)) if opts["dims"] in (None, "all") else [int(v) for v in _numbers(opts["dims"])]
        eff = effects_from_probs(np.asarray(res["probs"]), np.asarray(res["base_probs"]), values, dims)
        out["effects"] = {"dims": dims, "sensitivity": np.asarray(eff.sensitivity).tolist(),
                          "effect": np.asarray(eff.effect).tolist(), "flip_rate": np.asarray(eff.flip_rate).tolist()}
    return out


def _spectrum(page: ReportPage, summ: dict, arrays: dict) -> None:
    spec = summ["summary"].get("spectrum")
    if spec:
        mean = np.asarray(spec["mean"])
        idx = np.arange(1, len(mean) + 1)
        plots.plot_lines(idx, {"mean": mean}, page.path("run_spectrum.png"), title="spectrum over the run's latents",
                         xlabel="index", ylabel="value", bands={"mean": (spec["p5"], spec["p95"])}, log=True)
        page.section("Spectrum", f"Mean and 5-95 % band over {summ['summary']['latents']} latents "
                                 "(streamed summaries of the run).")
        page.figure("run_spectrum.png", "spectrum: mean, 5-95 % band")
        arrays["spectrum/mean"] = mean
    dims = summ["summary"].get("local_dimension")
    if dims:
        hist = dims["histogram"]
        plots.plot_bars(list(hist), list(hist.values()), page.path("run_dimensions.png"),
                        title="local dimension", ylabel="latents")
        page.section("Local dimension", f"mean {dims['mean']:.3f}, range [{dims['min']}, {dims['max']}]")
        page.figure("run_dimensions.png", "histogram of local dimensions")


def _distortion(page: ReportPage, res: RunResult, summ: dict, arrays: dict) -> None:
    r = summ["result"]
    page.section("Distortion (Choi, Hwang, Cho and Kang 2022)",
                 "Mean Grassmannian distance between Local Bases over pairs of latents (far) over the mean "
                 "distance to a neighbour's (near).")
    page.table(["k", "distortion", "far", "near", "Haar baseline", "pairs"],
               [[r["k"], r["distortion"], r["far"], r["near"], r["baseline"], res.stage("pairs").manifest["n"]]])
    far = np.asarray(res.stage("pairs")["distance"])
    near = np.asarray(res["near_distance"])
    arrays["distortion/far"], arrays["distortion/near"] = far, near
    edges = np.linspace(0, max(far.max(), near.max()) * 1.001 + 1e-12, 21)
    centres = 0.5 * (edges[1:] + edges[:-1])
    plots.plot_lines(centres, {"pairs": np.histogram(far, edges, density=True)[0],
                               "neighbours": np.histogram(near, edges, density=True)[0]},
                     page.path("run_distortion.png"), title="distances between Local Bases",
                     xlabel="Grassmannian distance", ylabel="density")
    page.figure("run_distortion.png", "pair and neighbour distances")


def _grassmann(page: ReportPage, summ: dict, arrays: dict) -> None:
    r = summ["result"]
    names = [n for n in ("random_pairs", "neighbours", "to_global", "haar") if n in r]
    dims = np.asarray(r["dims"])
    bands = {n: (np.asarray(r[n]) - np.asarray(r[f"{n}_std"]), np.asarray(r[n]) + np.asarray(r[f"{n}_std"]))
             for n in names}
    plots.plot_lines(dims, {n: r[n] for n in names}, page.path("run_warpage.png"), title="warpage curves",
                     xlabel="subspace dimension d", ylabel="Grassmannian distance", bands=bands)
    page.section("Grassmannian warpage (Choi et al., ICLR 2022)",
                 "Distance between Local Bases of random pairs, of neighbours, to the global PCA basis and "
                 "between Haar-random bases, against the subspace dimension (mean +- std).")
    page.figure("run_warpage.png", "warpage curves")
    for n in names:
        arrays[f"grassmann/{n}"] = np.asarray(r[n])


def _ganspace(page: ReportPage, summ: dict, arrays: dict) -> None:
    r = summ["result"]
    page.section("GANSpace (Härkönen et al. 2020; ICA: Palaev et al. 2023)",
                 f"tap {summ['options']['tap']}, {summ['n']} latents (PCA), ICA on the first "
                 f"{min(summ['options']['ica_samples'], summ['n'])}.")
    if "pca_explained_variance_ratio" in r:
        ratio = np.asarray(r["pca_explained_variance_ratio"])
        plots.plot_bars([str(i) for i in range(len(ratio))], ratio, page.path("run_pca.png"),
                        title="PCA explained variance ratio", ylabel="ratio")
        page.figure("run_pca.png", "explained variance ratio of each component")
        arrays["ganspace/pca_explained_variance_ratio"] = ratio
    if "ica_iterations" in r:
        page.table(["ICA iterations", "converged"], [[r["ica_iterations"], str(bool(r["ica_converged"]))]])


def _controlling(page: ReportPage, summ: dict) -> None:
    p = summ["pairs"]
    page.section("Controlling sets (Li, Tao, Niu and Li, ICPR 2020)",
                 "Method A, ranked: per (source, target) pair the set's size by the size rule and the success "
                 "S(size) on the first curve samples of the source (0 samples: no sample of the source in the run).")
    rows = []
    for i in range(len(p["source"])):
        size = p["size"][i]
        rows.append([p["source"][i], p["target"][i], p["num_samples"][i], p["curve_samples"][i], size,
                     ", ".join(str(d) for d in sorted(p["ranking"][i][:size])),
                     p["success"][i][size - 1] if size else float("nan")])
    page.table(["source", "target", "samples", "curve samples", "size", "dims", "S(size)"], rows)


def _edit_fid(page: ReportPage, summ: dict) -> None:
    r = summ["result"]
    page.section("FID of edits (Heusel et al. 2017; directions: Härkönen et al. 2020)",
                 f"{summ['options']['method']} directions of {summ['options']['directions']}, features of "
                 f"{summ['n']} unedited and edited images.")
    page.table(["direction", "strength", "FID"], [list(row) for row in zip(r["index"], r["strength"], r["fid"])])


def _effects(page: ReportPage, summ: dict) -> None:
    e = summ["effects"]
    sens = np.asarray(e["sensitivity"])
    page.section("Concept effects (Li, Tao, Niu and Li, ICPR 2020)",
                 "Sensitivity of each class to intervening on each latent dimension, from the stored probabilities.")
    top = np.argsort(-sens.max(axis=1))[:10]
    page.table(["dim", "most sensitive class", "sensitivity", "flip rate"],
               [[e["dims"][i], int(sens[i].argmax()), float(sens[i].max()), float(np.asarray(e["flip_rate"])[i].max())]
                for i in top])


def build_run_report(run_dir, out_dir, *, title: str | None = None) -> dict:
    """Write the report of the run in ``run_dir`` into ``out_dir``; returns ``results.json``'s content.

    Args:
      run_dir: a run folder (``jaxlatent run ... --out DIR``), finished (an unfinished one raises
        :class:`jaxlatent.runs.store.RunError` naming the chunks missing).
      out_dir: the report folder (created).
      title: page title (default ``"jaxlatent run report: <analysis>"``).
    """
    res = open_run(run_dir)
    if not res.complete:
        missing = sorted(set(range(res.n_chunks)) - set(res.chunks_done))
        raise RunError(f"{res.path}: the run is not finished ({len(res.chunks_done)}/{res.n_chunks} chunks of its "
                       f"latents done, missing {missing[:10]}); rerun its command to finish it, then build the report")
    summ = run_summaries(res)
    page = ReportPage(os.fspath(out_dir), title or f"jaxlatent run report: {summ['analysis']}",
                      subtitle=f"{res.path} · {summ['n']} latents · {time.strftime('%Y-%m-%d %H:%M')}")
    page.section("Run", "Built from the run's store: no model is loaded and nothing is recomputed.")
    page.table(["analysis", "latents", "first seed", "complete", "model SHA-256", "options"],
               [[summ["analysis"], summ["n"], summ["first_seed"], str(summ["complete"]), summ["model_sha256"][:16],
                 ", ".join(f"{k}={v}" for k, v in sorted(summ["options"].items()) if v is not None)]])
    arrays: dict = {}
    _spectrum(page, summ, arrays)
    analysis = summ["analysis"]
    if analysis == "distortion":
        _distortion(page, res, summ, arrays)
    elif analysis == "grassmann":
        _grassmann(page, summ, arrays)
    elif analysis == "ganspace":
        _ganspace(page, summ, arrays)
    elif analysis == "concept-effects":
        _effects(page, summ)
    elif analysis == "controlling-set":
        _controlling(page, summ)
    elif analysis == "edit-fid":
        _edit_fid(page, summ)
    page.results.update(run=summ)
    np.savez_compressed(page.path("arrays.npz"), **arrays)
    page.write()
    return page.results
