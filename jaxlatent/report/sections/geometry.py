"""The Riemannian metric of the image manifold (Wang & Ponce 2021) on a generator: report section and CLI glue.

Which callables are analysed: ``space="z"`` uses ``model.fn("image")`` at the latents; ``"w"``
(StyleGAN2) uses ``model.fn("image", wrt="w")`` at ``w = mapping(z)``, one w for every layer, as
the paper's StyleGAN analysis does. Distances: pixel MSE (:func:`mse_distance`), a classifier's
features (:func:`feature_distance`, the report's feature-space metric) and any callable
``distance(x0, x) -> (N,)`` (e.g. an LPIPS module).
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlatent.report import plots as viz
from jaxlatent.geometry.metric import Metric, eigen_axis_latents, metric_tensor, mse_distance
from jaxlatent.geometry.stats import (anisotropy, average_metric, hessian_corr, offdiag_summary,
                                               vector_hessian_corr)
from jaxlatent.geometry.inversion import invert
from jaxlatent.engine.latents import latents_from_seeds
from jaxlatent.report.plots_geometry import save_eigen_strips

__all__ = ["SPACES", "space_fn", "feature_distance", "summarize", "strip_images", "inversion_runs",
           "add_section"]

SPACES = ("z", "w")
HELD_OUT_SEED = 100_000        # inversion targets come from seeds far from the analysed ones


def space_fn(model, space: str, z, truncation_psi: float = 1.0) -> tuple[Callable, jax.Array]:
    """``(g, x)``: the batched generator on ``space`` and the points ``x`` for latents ``z``.

    Args:
      model: a loaded generator; ``space="w"`` needs a StyleGAN2.
      space: "z" or "w".
      z: (N, z_dim) latents.
      truncation_psi: truncation applied by the mapping (W) or by ``fn`` (Z).

    Returns:
      g: ``(N, in) -> (N, C, H, W)``; x: (N, in), ``z`` itself or ``mapping(z)``.
    """
    if space == "z":
        kw = {"truncation_psi": truncation_psi} if model.config.family == "stylegan2" else {}
        return model.fn("image", **kw), jnp.asarray(z)
    if space != "w":
        raise ValueError(f"space must be one of {SPACES}, found {space!r}")
    if model.config.family != "stylegan2":
        raise ValueError(f"space 'w' needs a StyleGAN2; this model is a {model.config.family}")
    w = model.fn("w", truncation_psi=truncation_psi)(jnp.asarray(z))
    return model.fn("image", wrt="w"), w


def feature_distance(features: Callable) -> Callable:
    """``distance(x0, x)``: mean squared difference of ``features(x)`` (N, F): a feature-space metric.

    Args:
      features: batched image features, e.g. ``classifier.features``.

    Returns:
      A distance ``(x0 (N, ...), x (N, ...)) -> (N,)``.
    """
    def distance(x0, x):
        d = features(x) - features(x0)
        return jnp.mean(jnp.reshape(d * d, (d.shape[0], -1)), axis=1)

    return distance


class Summary(NamedTuple):
    """Numbers of one metric population: anisotropy and homogeneity (means over latents)."""

    dims_99: float
    dims_999: float
    slope: float
    top_eigenvalue: float
    corr_log: tuple[float, float]
    corr_lin: tuple[float, float]
    corr_vec: tuple[float, float]


def summarize(metric: Metric) -> tuple[Summary, dict]:
    """Anisotropy and homogeneity of one metric population, and the matrices behind them.

    Args:
      metric: :class:`Metric` at N latents.

    Returns:
      (:class:`Summary`, dict of arrays: ``corr_log``, ``corr_lin``, ``corr_vec`` (N, N)).
    """
    an = anisotropy(metric.eigenvalues)
    corr = hessian_corr(metric)
    vec = vector_hessian_corr(metric)
    pair = lambda m: tuple(float(v) for v in offdiag_summary(m))
    dims = np.asarray(an.dims, np.float64).mean(axis=0)
    s = Summary(float(dims[0]), float(dims[1]), float(jnp.nanmean(an.slope)),
                float(jnp.mean(metric.eigenvalues[:, 0])), pair(corr.log), pair(corr.lin), pair(vec))
    return s, {"corr_log": np.asarray(corr.log), "corr_lin": np.asarray(corr.lin), "corr_vec": np.asarray(vec)}


def strip_images(g: Callable, x: jax.Array, metric: Metric, axes: int, length: float, n_side: int) -> np.ndarray:
    """Images along the top ``axes`` eigenvectors at one point, spaced by equal metric length.

    Args:
      g: batched generator on the space of ``x``; x: (in,) the point.
      metric: :class:`Metric` at ``x`` (a batch of one).
      axes: eigenvectors drawn; length, n_side: see
        :func:`jaxlatent.geometry.metric.equal_distance_steps`.

    Returns:
      (axes, 2 n_side + 1, C, H, W) images.
    """
    m = Metric(metric.eigenvalues[:1, :axes], metric.eigenvectors[:1, :, :axes], None)
    # the longest step stays within twice the point's distance from the origin
    limit = 2.0 * float(jnp.linalg.norm(x)) + 1.0
    lat = eigen_axis_latents(x, m, length, n_side, max_step=limit)[0]           # (axes, S, in)
    imgs = g(jnp.reshape(lat, (-1, lat.shape[-1])))
    return np.asarray(imgs).reshape(lat.shape[:2] + imgs.shape[1:])


def inversion_runs(model, basis_metric: Metric, n_targets: int, steps: int, k: int, truncation_psi: float = 1.0,
                   learning_rate: float = 0.05, in_z: bool = True) -> dict[str, np.ndarray]:
    """Distance-vs-step curves of Adam inversions of generated images, in z, in W and in eigen-coordinates.

    Targets are the model's images at seeds from ``HELD_OUT_SEED`` on (not among the seeds that
    built the basis). W runs start at the mean w of 256 latents (seeds 0-255), z runs at the
    latent of seed ``HELD_OUT_SEED - 1`` (not at 0, where StyleGAN2's normalisation of z is
    singular). The three W runs (plain, all eigenvectors
    of ``basis_metric``, its top ``k``) are one batched :func:`invert` call with a basis per
    target: plain W uses the identity, top-k the eigenvectors with the others zeroed (Adam leaves
    coordinates with zero gradient at 0, which is exactly the top-k search).

    Args:
      model: a StyleGAN2. basis_metric: a batch-one :class:`Metric` in W (e.g. an average metric).
      n_targets, steps, k: targets, Adam steps, eigenvectors kept for the top-k run.
      truncation_psi: truncation of the targets' mapping. learning_rate: Adam's.
      in_z: also run plain Adam in z (one more compiled program).

    Returns:
      dict method -> (n_targets, steps + 1) MSE histories.
    """
    z_t = latents_from_seeds(range(HELD_OUT_SEED, HELD_OUT_SEED + n_targets), model.config.z_dim)
    gz, _ = space_fn(model, "z", z_t, truncation_psi)
    gw, w_t = space_fn(model, "w", z_t, truncation_psi)
    targets = gw(w_t)
    w_start = jnp.mean(space_fn(model, "w", latents_from_seeds(range(256), model.config.z_dim), truncation_psi)[1],
                       axis=0)
    opt = optax.adam(learning_rate)
    out = {}
    if in_z:
        z_start = latents_from_seeds([HELD_OUT_SEED - 1], model.config.z_dim)[0]
        out["Adam in z"] = np.asarray(invert(gz, targets, z_start, optimizer=opt, steps=steps).history)
    v = basis_metric.eigenvectors[0]
    d = v.shape[0]
    bases = [jnp.eye(d, dtype=v.dtype), v, v * (jnp.arange(d) < k)]
    names = ["Adam in W", "Adam in W eigen-coordinates (all)", f"Adam in W eigen-coordinates (top {k})"]
    stacked = jnp.concatenate([jnp.broadcast_to(b, (n_targets, d, d)) for b in bases])
    hist = invert(gw, jnp.concatenate([targets] * 3), w_start, basis=stacked, optimizer=opt, steps=steps).history
    for i, name in enumerate(names):
        out[name] = np.asarray(hist[i * n_targets:(i + 1) * n_targets])
    return out


def add_section(page, model, *, quick: bool, key, classifier, arrays: dict, truncation_psi: float,
                progress: bool) -> None:
    """The metric tensor's spectra, anisotropy, homogeneity, eigen-axis strips and an inversion table.

    Args: see :mod:`jaxlatent.report.sections`.
    """
    del key, progress
    t0 = time.perf_counter()
    stylegan = model.config.family == "stylegan2"
    n = 16 if quick else 64
    spaces = (["w"] if quick else ["z", "w"]) if stylegan else ["z"]
    distances = {"pixel MSE": mse_distance}
    if classifier is not None:
        distances["classifier features"] = feature_distance(classifier.features)
    z = latents_from_seeds(range(n), model.config.z_dim)
    page.section("Riemannian metric of the image manifold (Wang & Ponce 2021)",
                 f"H(z) = Hessian of d(G(z0), G(z)) at z0, from J^T M J, at {n} latents (seeds 0-{n - 1}); "
                 "distances: " + ", ".join(distances) + ". Spectra: mean and 5-95 % band. Anisotropy: "
                 "eigen-dimensions holding 99 % / 99.9 % of the trace. Homogeneity: correlation of "
                 "v^T H_j v over latent i's eigenvectors with H_j's eigenvalues (off-diagonal mean).")
    spectra, rows, results, metrics = {}, [], {}, {}
    seconds = {}
    t_stage = time.perf_counter()
    for space in spaces:
        g, x = space_fn(model, space, z, truncation_psi)
        for dname, dist in distances.items():
            m = metric_tensor(g, x, dist, method="full")
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
    viz.plot_spectra(spectra, page.path("geometry_spectra.png"), title="metric eigenvalues",
                     ylabel="eigenvalue", xlabel="eigen-index")
    page.figure("geometry_spectra.png", "Metric spectra (mean and 5-95 % band over latents).")
    page.table(["space", "distance", "dim", "top eigenvalue", "dims 99 %", "dims 99.9 %", "power-law slope",
                "homogeneity log", "homogeneity lin", "H correlation"], rows)
    main = spaces[-1]
    g, x, m = metrics[(main, "pixel MSE")]
    corr = arrays[f"geometry/{main}_mse/corr_log"]
    viz.plot_heatmap(corr, page.path("geometry_homogeneity.png"),
                     title=f"homogeneity ({main}, pixel MSE, log scale)", colorbar_label="correlation")
    page.figure("geometry_homogeneity.png", "Entry [i, j]: correlation of log v^T H_j v over latent i's "
                "eigenvectors with log eigenvalues of H_j (not symmetric).")
    strips = strip_images(g, x[0], Metric(m.eigenvalues[:1], m.eigenvectors[:1], None), 6, 0.1, 3)
    save_eigen_strips(strips, page.path("geometry_axes.png"), scale=4)
    page.figure("geometry_axes.png", f"Top 6 eigen-axes at seed 0 ({main}): each step moves sqrt(MSE) by 0.1.")
    if stylegan and not quick:          # the inversion's compiled program alone is seconds: full report only
        t_stage = time.perf_counter()
        avg = average_metric(metrics[("w", "pixel MSE")][2])
        k, steps = 16, 100
        curves = inversion_runs(model, avg, 6, steps, k, truncation_psi)
        marks = [0, steps // 4, steps // 2, steps]
        inv_rows = [[name] + [float(np.mean(h[:, s])) for s in marks] for name, h in curves.items()]
        viz.plot_lines(np.arange(steps + 1), {k_: np.mean(h, axis=0) for k_, h in curves.items()},
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
    seconds["total"] = time.perf_counter() - t0
    results["seconds"] = seconds
    page.results["geometry"] = results
