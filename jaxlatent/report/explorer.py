"""The interactive latent explorer of the report: every method's directions at the same latents.

:func:`build_explorer` gathers, at the report's traversal latents, frames of each method's
leading directions at ``S`` strengths (``S`` = the report's ``frames``, the latent itself in
the middle), and :mod:`jaxlatent.report.explorer_page` writes them as ``explorer.html`` beside
``report.html`` (frames inline as PNG sprites: no server, no network) and ``explorer.npz`` (the
latent of every frame). The methods, each a :class:`Method`:

* Local Basis (Choi et al. 2022) at each traversal tap: the iterative curve traversal and the
  linear traversal, the report's own traversal latents and images (no second computation);
* GANSpace PCA and ICA (Härkönen et al. 2020; Palaev et al. 2023): the GANSpace section's
  directions, edited by :func:`jaxlatent.ganspace.edits.edit_grid` at strengths ``-6 .. 6``;
* the metric's eigen-axes (Wang & Ponce 2021) in z and W under pixel MSE:
  :func:`jaxlatent.geometry.metric.eigen_axis_latents` (steps of equal metric length);
* controlling sets (Li et al. 2020), one method per target class when the report has a
  classifier: the correlation section's set for the latent's class and the target, then the
  target ranking's single dimensions, as the fraction ``lam`` of the ``set`` intervention
  ``z + lam m (a - z)`` (:func:`jaxlatent.correlation.interventions.apply_intervention`).

Every frame is the library's output for its latent (a test recomputes them); with a classifier,
each frame carries the class it sees and its confidence.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.controlling import set_masks
from jaxlatent.ganspace.edits import edit_grid
from jaxlatent.geometry.metric import Metric, eigen_axis_latents, equal_distance_steps, metric_tensor
from jaxlatent.correlation.interventions import apply_intervention
from jaxlatent.ganspace.population import KeyLatents
from jaxlatent.localbasis.traversal import frame_steps
from jaxlatent.report.explorer_page import ExplorerPage
from jaxlatent.report.sections import ganspace
from jaxlatent.workflows.correlation import population
from jaxlatent.workflows.ganspace import METHODS as GANSPACE_METHODS
from jaxlatent.workflows.spaces import latent_space

__all__ = ["Method", "local_basis_methods", "ganspace_methods", "metric_methods", "controlling_methods",
           "classify", "build_explorer", "GANSPACE_STRENGTH", "METRIC_STEP", "MAX_CONTROL_TARGETS"]

GANSPACE_STRENGTH = 6.0     # GANSpace edits span -6 .. 6, as the report's GANSpace grid
METRIC_STEP = 0.1           # metric eigen-axes: sqrt(pixel MSE) per step, as the report's strips
MAX_CONTROL_TARGETS = 10    # controlling sets: one method per target class, at most this many


class Method(NamedTuple):
    """One method's frames at the explorer's L latents, D directions and S strengths.

    id: short unique name. name, group: what the method picker shows. space: where the frame
    latents live ("z", "w"). tap: the tap or fitted space the directions come from. about: one
    sentence on how frames are made. strength_name: what a strength measures.
    latents: (L, D, S, in) the latents rendered. images: (L, D, S, C, H, W) in about [-1, 1].
    strengths: (L, D, S) signed strengths, 0 in the middle. names: (L, D) direction names.
    numbers: name -> (L, D) the direction's own numbers (singular value, eigenvalue, ...).
    """

    id: str
    name: str
    group: str
    space: str
    tap: str
    about: str
    strength_name: str
    latents: np.ndarray
    images: np.ndarray
    strengths: np.ndarray
    names: list
    numbers: dict


def _names(n_lat: int, names: list[str]) -> list[list[str]]:
    return [list(names) for _ in range(n_lat)]


def _chunked(g, x, batch: int = 256) -> np.ndarray:
    """g over the rows of x: (N, ...) in batches -> (N, C, H, W) numpy."""
    x = jnp.asarray(x, jnp.float32)
    return np.concatenate([np.asarray(g(x[i:i + batch])) for i in range(0, x.shape[0], batch)])


def local_basis_methods(tap: str, traversal: dict) -> list[Method]:
    """The report's iterative and linear Local Basis traversals of ``tap`` as two methods.

    Args:
      tap: the traversed tap.
      traversal: what :func:`jaxlatent.report.sections.builtin.traversal_section` returned: ``sigma``,
        ``steps``, ``singular_values`` (L, D), ``iterative`` and ``linear``: dicts of ``latents``
        (L, D, S, in), ``images`` (L * D * S, C, H, W), ``space`` and (linear) ``what``.
    """
    s = np.asarray(traversal["singular_values"], np.float64)
    n_lat, n_dir = s.shape
    sigma, steps = float(traversal["sigma"]), int(traversal["steps"])
    out = []
    for kind in ("iterative", "linear"):
        tr = traversal[kind]
        lat = np.asarray(tr["latents"])
        frames = lat.shape[2]
        imgs = np.asarray(tr["images"])
        if kind == "iterative":
            t = iterative_strengths(sigma, steps, frames)
            about = ("the iterative curve traversal: small steps along the Local Basis direction, "
                     f"re-estimated after every step ({steps} steps in all)")
            strength_name = "curve length in z"
        else:
            t = np.linspace(-sigma, sigma, frames, dtype=np.float32)
            about = "a straight line " + tr["what"]
            strength_name = "t"
        out.append(Method(
            id=f"lb_{kind}_{tap.replace('.', '_')}", name=f"Local Basis {kind} · {tap}", group="Local Basis",
            space=tr["space"], tap=tap, about=about, strength_name=strength_name, latents=lat,
            images=imgs.reshape((n_lat, n_dir, frames) + imgs.shape[1:]),
            strengths=np.broadcast_to(t, (n_lat, n_dir, frames)).copy(),
            names=_names(n_lat, [f"direction {i + 1}" for i in range(n_dir)]),
            numbers={"singular value": s}))
    return out


def iterative_strengths(sigma: float, steps: int, frames: int) -> np.ndarray:
    """(S,) latent distance along the iterative curve of each frame (step length 2 sigma / steps)."""
    each = np.asarray(frame_steps(frames, steps), np.float32) * (2 * sigma / steps)
    return np.concatenate([-each[::-1], [0.0], each]).astype(np.float32)


def ganspace_methods(model, z, arrays: dict, results: dict, n_dir: int, frames: int, *,
                     model_options: dict, space_options: dict) -> list[Method]:
    """The GANSpace section's PCA and ICA directions at latents ``z: (L, z_dim)``.

    Frames: ``edit_grid(x0, directions, strengths=alphas)`` in the fitted space (W: every layer; z: lifted
    directions), alphas ``-6 .. 6`` (``frames`` of them), rendered by the section's
    :func:`jaxlatent.workflows.spaces.latent_space`. Numbers: PCA's explained variance ratio;
    for both, the variance share of the fitted population (its first 4096 latents) along the
    direction (in W only: lifted z directions carry no population variance of their own).
    """
    info = results.get("ganspace")
    if not info:
        return []
    space = info["space"]
    alphas = np.linspace(-GANSPACE_STRENGTH, GANSPACE_STRENGTH, frames).astype(np.float32)
    sp = latent_space(model, space, **space_options)
    x0, render = sp.points(jnp.asarray(z)), sp.image
    share_of = None
    if space == "w":
        pop = KeyLatents(ganspace.POPULATION_SEED, min(int(info["n_population"]), 4096), int(model.z_dim))[:]
        w = np.asarray(model.fn("w", **model_options)(jnp.asarray(pop)), np.float64)
        w -= w.mean(0)
        total = float((w * w).mean(0).sum())                 # trace of the covariance
        share_of = lambda d: ((w @ np.asarray(d, np.float64).T) ** 2).mean(0) / max(total, 1e-30)  # noqa: E731
    out = []
    for method in GANSPACE_METHODS:
        keys = sorted((k for k in arrays if k.startswith(f"ganspace/{method}_") and k.endswith("_directions")),
                      key=lambda k: int(k.split("_")[1]))
        if not keys:
            continue
        key = keys[0]
        k = int(key.split("_")[1])
        d = np.asarray(arrays[key], np.float32)[:n_dir]
        lat = np.moveaxis(np.asarray(edit_grid(x0, d, strengths=alphas)), 2, 0)          # (L, D, S, in)
        imgs = _chunked(render, lat.reshape((-1,) + lat.shape[3:]))
        n_lat, dd = lat.shape[:2]
        numbers = {}
        if method == "pca":
            ratio = np.asarray(info["pca_explained_variance_ratio"], np.float64)[:dd]
            numbers["explained variance"] = np.broadcast_to(ratio, (n_lat, dd)).copy()
        if share_of is not None:
            numbers["population variance share"] = np.broadcast_to(share_of(d), (n_lat, dd)).copy()
        out.append(Method(
            id=f"ganspace_{method}", name=f"GANSpace {method.upper()} ({k} components)", group="GANSpace",
            space=space, tap=info["tap"],
            about=(f"{method.upper()} of tap '{info['tap']}' over {info['n_population']} latents; "
                   f"edits {space} + alpha d" + (" on every layer" if space == "w" else " (lifted to z)")),
            strength_name="alpha", latents=lat, images=imgs.reshape(lat.shape[:3] + imgs.shape[1:]),
            strengths=np.broadcast_to(alphas, lat.shape[:3]).copy(),
            names=_names(n_lat, [f"{method.upper()} {i + 1}" for i in range(dd)]), numbers=numbers))
    return out


def metric_methods(model, z, n_dir: int, frames: int, *, space_options: dict, key) -> list[Method]:
    """Top ``n_dir`` eigen-axes of the pixel-MSE metric at latents ``z: (L, z_dim)``, in z and W.

    Each latent's axes are drawn as the report's strips are
    (:func:`jaxlatent.workflows.geometry.strip_images`): ``eigen_axis_latents`` at steps of
    ``METRIC_STEP`` in sqrt(MSE), the largest step kept within ``2 |x| + 1``.
    """
    spaces = ["z", "w"] if model.config.family == "stylegan2" else ["z"]
    n_side = frames // 2
    out = []
    for i, space in enumerate(spaces):
        sp = latent_space(model, space, **space_options)
        g, x = sp.image, sp.points(jnp.asarray(z))
        k = min(n_dir, x.shape[1])
        m = metric_tensor(g, x, k=k, key=jax.random.fold_in(key, i))
        lat, t = [], []
        for n in range(x.shape[0]):
            mn = Metric(m.eigenvalues[n:n + 1, :k], m.eigenvectors[n:n + 1, :, :k], None)
            limit = 2.0 * float(jnp.linalg.norm(x[n])) + 1.0
            lat.append(np.asarray(eigen_axis_latents(x[n], mn, length=METRIC_STEP, n_side=n_side, max_step=limit))[0])
            t.append(np.asarray(equal_distance_steps(mn.eigenvalues, length=METRIC_STEP, n_side=n_side, max_step=limit))[0])
        lat = np.stack(lat)
        imgs = _chunked(g, lat.reshape(-1, lat.shape[-1]))
        out.append(Method(
            id=f"metric_{space}", name=f"metric eigen-axes · {space}", group="Riemannian metric",
            space=space, tap="image",
            about=(f"eigenvectors of the pixel-MSE metric H in {space}; each step moves sqrt(MSE) by "
                   f"{METRIC_STEP:g} (flat axes take longer steps)"),
            strength_name=f"t ({space} units)", latents=lat,
            images=imgs.reshape(lat.shape[:3] + imgs.shape[1:]), strengths=np.stack(t).astype(np.float32),
            names=_names(lat.shape[0], [f"eigen-axis {j + 1}" for j in range(k)]),
            numbers={"eigenvalue": np.asarray(m.eigenvalues[:, :k], np.float64)}))
    return out


def controlling_methods(model, z, arrays: dict, results: dict, classifier, n_dir: int, frames: int, *,
                        space_options: dict) -> list[Method]:
    """Controlling sets of the correlation section, one method per target class.

    For latent n of class s (the classifier's) and target t: direction 1 is the controlling set
    of (s, t) (the first ``size[s, t]`` dimensions of t's ranking; where that pair has no set,
    the median size of t's sets), the next ones the ranking's single dimensions. Frames:
    ``apply_intervention(z, lam * mask, amount, "set")`` for ``lam`` in -1 .. 1 with ``(mask, amount)`` of
    :func:`jaxlatent.correlation.controlling.set_masks` at the section's magnitude ``a``.
    """
    info = results.get("correlation")
    if classifier is None or not info or "correlation/rankings" not in arrays:
        return []
    space = population(model, z, "z", **{k: v for k, v in space_options.items() if k != "where"})
    rankings = np.asarray(arrays["correlation/rankings"])              # (T, K)
    size = np.asarray(arrays["correlation/set_size"])                   # (source, target)
    sens = np.asarray(arrays["correlation/sensitivity"], np.float64)    # (D, T)
    effect = np.asarray(arrays["correlation/effect"], np.float64)
    curves = np.asarray(arrays["correlation/curves"], np.float64)       # (source, target, K)
    signs = np.where(effect >= 0, 1.0, -1.0).T.astype(np.float32)      # (T, D)
    magnitude = float(info["sizes"]["magnitude"])
    label = np.asarray(jnp.argmax(classifier.logits(_chunked(space.g, space.x)), axis=-1))
    lam = np.linspace(-1.0, 1.0, frames).astype(np.float32)
    d = space.x.shape[1]
    out = []
    for t in range(min(len(rankings), MAX_CONTROL_TARGETS)):
        positive = size[:, t][size[:, t] > 0]
        fallback = int(np.median(positive)) if positive.size else rankings.shape[1]
        n_single = min(n_dir - 1, rankings.shape[1])
        lat, names, importance, success = [], [], [], []
        for n, s in enumerate(label):
            k = int(size[s, t]) if size[s, t] > 0 else fallback
            sets = np.zeros((1 + n_single, d), np.float32)
            sets[0, rankings[t, :k]] = 1.0
            for j in range(n_single):
                sets[1 + j, rankings[t, j]] = 1.0
            mask, amount = set_masks(sets, signs[t], magnitude, space.center, space.scale, d)
            x = jnp.asarray(space.x[n])
            lat.append(np.stack([np.asarray(apply_intervention(x, l * mask, amount, "set")) for l in lam], axis=1))
            names.append([f"set of {k} dims ({s} -> {t})"] + [f"dim {int(rankings[t, j])}" for j in range(n_single)])
            importance.append([float(sens[rankings[t, :k], t].sum())] + [float(sens[rankings[t, j], t])
                                                                         for j in range(n_single)])
            success.append([float(curves[s, t, k - 1]) if s != t and k <= curves.shape[2] else np.nan]
                           + [np.nan] * n_single)
        lat = np.stack(lat)                                             # (L, 1 + n_single, S, d)
        imgs = _chunked(space.g, lat.reshape(-1, d))
        out.append(Method(
            id=f"control_{t}", name=f"controlling set -> class {t}", group="Controlling sets",
            space="z", tap="z",
            about=(f"dimensions ranked by their sensitivity for class {t}, set to +-{magnitude:g} (sign of their "
                   "effect); strength lam: the fraction of that intervention, z + lam (a - z) on the set"),
            strength_name="lam (fraction of the intervention)", latents=lat,
            images=imgs.reshape(lat.shape[:3] + imgs.shape[1:]),
            strengths=np.broadcast_to(lam, lat.shape[:3]).copy(), names=names,
            numbers={"importance": np.asarray(importance), "success S(k)": np.asarray(success)}))
    return out


def classify(classifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(class (...), confidence (...)) of images (..., C, H, W), or None without a classifier
    (or for images it cannot read: it takes one channel)."""
    if classifier is None or images.shape[-3] != 1:
        return None
    flat = images.reshape((-1,) + images.shape[-3:])
    p = np.concatenate([np.asarray(classifier.probs(flat[i:i + 1024])) for i in range(0, len(flat), 1024)])
    return p.argmax(-1).reshape(images.shape[:-3]), p.max(-1).reshape(images.shape[:-3])


def build_explorer(page, model, *, options, seeds, traversals: dict, arrays: dict, classifier, key) -> dict[str, Any]:
    """Collect every method's frames at the latents of ``seeds`` and write ``explorer.html``.

    Args:
      page: the :class:`jaxlatent.report.page.ReportPage` (its ``results`` and directory; the
        explorer adds a link and a short section to it).
      model: the generator. options: the report's :class:`jaxlatent.report.build.ReportOptions`.
      seeds: the latents' seeds (the report's traversal seeds).
      traversals: tap -> what :func:`jaxlatent.report.sections.builtin.traversal_section` returned.
      arrays, classifier, key: the report's raw arrays (GANSpace directions, correlation
        rankings), its classifier (or None) and a PRNG key.

    Returns:
      ``results["explorer"]``: the methods (id, name, space, tap, strengths (L, D, S), ...),
      the page's weight in bytes and its size budget.
    """
    z = np.asarray(traversals[next(iter(traversals))]["latents_z"]) if traversals else None
    if z is None:
        raise ValueError("explorer: the report traversed no tap, so it has no latents to explore")
    n_dir, frames = options.traversal_directions, options.frames
    model_options = ({"truncation_psi": options.truncation_psi} if model.config.family == "stylegan2" else {})
    if model.config.family == "stylegan2" and model.config.c_dim:
        model_options["c"] = np.eye(model.config.c_dim, dtype=np.float32)[options.class_idx or 0]
    methods: list[Method] = []
    for tap, tr in traversals.items():
        methods += local_basis_methods(tap, tr)
    space_options = dict(truncation_psi=options.truncation_psi, class_idx=options.class_idx, where="explorer")
    methods += ganspace_methods(model, z, arrays, page.results, n_dir, frames, model_options=model_options,
                                space_options=space_options)
    methods += metric_methods(model, z, n_dir, frames, space_options=space_options, key=key)
    methods += controlling_methods(model, z, arrays, page.results, classifier, n_dir, frames,
                                   space_options=space_options)
    explorer = ExplorerPage(page.out_dir, page.title.replace("report", "explorer", 1), seeds=list(seeds))
    for m in methods:
        explorer.add(m, classify(classifier, m.images))
    summary = explorer.write()
    np.savez_compressed(os.path.join(page.out_dir, "explorer.npz"),
                        **{f"{m.id}/latents": m.latents for m in methods},
                        **{f"{m.id}/strengths": m.strengths for m in methods}, seeds=np.asarray(seeds))
    page.link("explorer.html", "Interactive explorer: every method's directions side by side")
    page.section("Interactive explorer",
                 f"explorer.html (beside this page; open it in a browser, no server needed) shows the "
                 f"latents of seeds {list(seeds)} edited along the {n_dir} leading directions of "
                 f"{len(methods)} methods at {frames} strengths, in panels side by side.")
    return summary
