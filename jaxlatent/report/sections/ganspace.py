"""GANSpace with PCA and ICA on a generator: fits, edit grids, the edit-FID table, the report section.

The model glue of ``jaxlatent ganspace`` / ``jaxlatent edit-fid`` and of the report: which tap
is fitted (StyleGAN2: ``w``, as GANSpace and Palaev et al. do; other generators: a feature tap,
lifted to Z by least squares), where edits apply (W broadcast to every layer, a W+ layer range,
or Z), and the image grids (rows: directions; columns: strengths; methods side by side).
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxlatent.report import plots as viz
from jaxlatent.ganspace.edits import edit_grid, lift_activations, lift_directions, normalize
from jaxlatent.ganspace.fid import edit_fid_table
from jaxlatent.ganspace.ica import fast_ica
from jaxlatent.ganspace.pca import pca_randomized, population_pca, transform
from jaxlatent.ganspace.population import KeyLatents, collect
from jaxlatent.engine.latents import latents_from_seeds

__all__ = ["Directions", "fit_directions", "edit_space", "direction_images", "save_side_by_side",
           "default_tap", "add_section", "METHODS"]

METHODS = ("pca", "ica")
MAX_MOMENT_DIM = 4096     # wider taps use the streamed randomized PCA (no d x d matrix)


class Directions(NamedTuple):
    """Edit directions from one decomposition of a tap's population.

    method: "pca" or "ica". tap: the fitted tap. space: "w" (StyleGAN2 W: edits move w, or a
    W+ layer range) or "z" (lifted to the latent). directions: (k, dim of space) unit rows.
    result: the :class:`~jaxlatent.ganspace.pca.PCA` or :class:`~jaxlatent.ganspace.ica.ICA`
    fitted at the tap. residual: relative least-squares residual of the lift (0 for "w").
    """

    method: str
    tap: str
    space: str
    directions: np.ndarray
    result: Any
    residual: float


def is_stylegan2(model) -> bool:
    return model.config.family == "stylegan2"


def default_tap(model) -> str:
    """``w`` for StyleGAN2 (GANSpace); the first feature map for other generators (FastGAN's init)."""
    if is_stylegan2(model):
        return "w"
    return next(t for t in model.taps() if t != "image")


def _activations(f, result, z):
    return transform(result, f(z))


def fit_directions(model, tap: str, method: str, latents, k: int, key: jax.Array, *,
                   model_options: dict | None = None, ica_options: dict | None = None,
                   chunk_size: int | None = None, progress: Callable | None = None) -> Directions:
    """Fit PCA or FastICA to ``tap`` over ``latents`` and turn its components into edit directions.

    Args:
        model: a loaded generator. tap: a tap of it (``w``: directions in W; any other: the
            components are lifted to Z by least squares on the latents that produced them).
        method: "pca" or "ica". latents: (N, z_dim) array or
            :class:`~jaxlatent.ganspace.population.SeedLatents`. k: components.
        key: PRNG key (ICA's ``w_init``; the randomized PCA of wide taps).
        model_options: keyword arguments of ``model.fn`` (``truncation_psi``, ``c``).
        ica_options: keyword arguments of :func:`~jaxlatent.ganspace.ica.fast_ica`.
        chunk_size, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`Directions`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, found {method!r}")
    f = model.fn(tap, **(model_options or {}))
    kw = dict(chunk_size=chunk_size, progress=progress)
    d = int(np.prod(model.tap_shape(tap)))
    x = None
    if method == "pca":
        result = population_pca(f, latents, k, **kw) if d <= MAX_MOMENT_DIM else \
            pca_randomized(f, latents, k, key, **kw)
    else:
        x = collect(f, latents, **kw)
        result = fast_ica(x, k, key=key, **(ica_options or {}))
    if tap == "w" and is_stylegan2(model):
        return Directions(method, tap, "w", np.asarray(normalize(result.components)), result, 0.0)
    z = np.concatenate([np.asarray(latents[i:i + 4096]) for i in range(0, len(latents), 4096)])
    if x is not None:
        lifted = lift_directions(result, x, z)
    else:
        acts = collect(jax.tree_util.Partial(_activations, f, result), latents, **kw)
        lifted = lift_activations(acts, z)
    return Directions(method, tap, "z", np.asarray(lifted.directions), result, float(lifted.residual))


def edit_space(model, space: str, z, *, layers: tuple[int, int] | None = None,
               model_options: dict | None = None):
    """Starting points and renderer for edits in ``space``.

    Returns ``(x0, render)``: x0 the latents ``z: (N, z_dim)`` mapped into the space (w:
    (N, w_dim); with ``layers``, W+: (N, num_ws, w_dim); z: as given) and ``render`` the
    batched callable x -> images (N, C, H, W).
    """
    opts = dict(model_options or {})
    z = jnp.asarray(z, jnp.float32)
    if space == "z":
        if layers is not None:
            raise ValueError("layer ranges apply to StyleGAN2 W+ edits, not to latent (z) directions")
        return z, model.fn("image", **opts)
    wrt = "w" if layers is None else "ws"
    x0 = model.fn(wrt, **opts)(z)
    opts.pop("truncation_psi", None)
    opts.pop("c", None)
    return x0, model.fn("image", wrt=wrt, **opts)


def direction_images(render: Callable, x0, directions, alphas, layers=None) -> np.ndarray:
    """Images of one latent ``x0: (1, ...)`` edited along each direction by each strength.

    Returns (D * S, C, H, W): row-major, one row of S strengths per direction.
    """
    x = edit_grid(x0, directions, alphas, layers)          # (D, S, 1, ...)
    x = x.reshape((-1,) + x.shape[3:])
    return np.asarray(render(x))


def save_side_by_side(path: str, grids: dict, ncol: int, gap: int = 12) -> str:
    """One PNG: each entry of ``grids`` (name -> (D * S, C, H, W) images) as a grid, left to right."""
    tiles = []
    for images in grids.values():
        h = images.shape[-2]
        up = max(1, int(np.ceil(48 / h)))
        images = np.asarray(images).repeat(up, axis=-2).repeat(up, axis=-1)
        tiles.append(viz.image_grid(images, nrow=ncol))
    height = max(t.shape[0] for t in tiles)
    spacer = np.full((height, gap, tiles[0].shape[2]), 255, np.uint8)
    parts = []
    for t in tiles:
        pad = np.full((height - t.shape[0],) + t.shape[1:], 255, np.uint8)
        parts += [np.concatenate([t, pad]), spacer]
    out = np.concatenate(parts[:-1], axis=1)
    Image.fromarray(out[..., 0] if out.shape[2] == 1 else out).save(path)
    return path


# ------------------------------------------------------------------------------------ the section
POPULATION_SEED = 2026     # the fitted population: KeyLatents(POPULATION_SEED, n, z_dim)
FID_SEED = 1000            # the edit-FID latents, another draw
_FULL = dict(n_population=20000, n_fid=1000, k=10, k_ica=(10, 20), grid_dirs=5, strengths=7)
_QUICK = dict(n_population=2000, n_fid=200, k=8, k_ica=(8,), grid_dirs=4, strengths=5)


def add_section(page, model, *, quick: bool, key, classifier, arrays: dict, truncation_psi: float,
                progress: bool) -> None:
    """GANSpace PCA vs ICA: edit grids of both and the edit-FID table (Palaev et al. 2023)."""
    cfg = _QUICK if quick else _FULL
    t0 = time.perf_counter()
    tap = default_tap(model)
    opts = {"truncation_psi": truncation_psi} if is_stylegan2(model) else {}
    if is_stylegan2(model) and model.config.c_dim:
        opts["c"] = np.eye(model.config.c_dim, dtype=np.float32)[0]
    z_dim = int(model.z_dim)
    population = KeyLatents(POPULATION_SEED, cfg["n_population"], z_dim)
    k_pca = min(cfg["k"], int(np.prod(model.tap_shape(tap))))
    fits = {f"PCA {k_pca}": fit_directions(model, tap, "pca", population, k_pca, key, model_options=opts)}
    for i, k in enumerate(cfg["k_ica"]):
        k = min(k, int(np.prod(model.tap_shape(tap))))
        fits[f"ICA {k}"] = fit_directions(model, tap, "ica", population, k, jax.random.fold_in(key, i + 1),
                                          model_options=opts, ica_options={"max_iter": 400})
    t_fit = time.perf_counter() - t0
    space = fits[next(iter(fits))].space
    page.section(
        "GANSpace: PCA and ICA directions",
        f"Härkönen et al. (NeurIPS 2020) edit along the principal axes of a tap's population; "
        f"Palaev, Lukmanov and Khan (ICLR 2023 Tiny Papers) replace PCA by FastICA. Fitted at tap "
        f"'{tap}' over {cfg['n_population']} latents (KeyLatents({POPULATION_SEED}, n)); edits move "
        + ("w (every layer)." if space == "w" else "z along directions lifted by least squares."))

    # grids: the first latent, each method's leading directions, strengths -6..6
    alphas = np.linspace(-6, 6, cfg["strengths"]).astype(np.float32)
    x0, render = edit_space(model, space, latents_from_seeds([0], z_dim), model_options=opts)
    first_ica = next(name for name in fits if name.startswith("ICA"))
    shown = {name: fits[name] for name in (next(iter(fits)), first_ica)}
    grids = {name: direction_images(render, x0, d.directions[:cfg["grid_dirs"]], alphas) for name, d in shown.items()}
    save_side_by_side(page.path("ganspace_grid.png"), grids, ncol=len(alphas))
    page.figure("ganspace_grid.png", f"Seed 0 edited along the {cfg['grid_dirs']} leading directions "
                f"(rows) with strengths {alphas[0]:g} .. {alphas[-1]:g} (columns): "
                + " (left) | ".join(shown) + " (right).")
    pca_fit = fits[next(iter(fits))].result
    ratio = np.asarray(pca_fit.explained_variance_ratio)
    results: dict[str, Any] = {"tap": tap, "space": space, "n_population": cfg["n_population"],
                               "pca_explained_variance_ratio": ratio,
                               "ica": {name: {"n_iter": int(d.result.n_iter), "converged": bool(d.result.converged)}
                                       for name, d in fits.items() if name.startswith("ICA")}}
    for name, d in fits.items():
        arrays[f"ganspace/{name.replace(' ', '_').lower()}_directions"] = d.directions
    page.text(f"PCA: the {k_pca} leading axes hold {100 * ratio.sum():.1f}% of the variance "
              f"(first: {100 * ratio[0]:.1f}%). " + "; ".join(
                  f"{n}: {v['n_iter']} iterations, {'converged' if v['converged'] else 'NOT converged'}"
                  for n, v in results["ica"].items()) + ".")

    t1 = time.perf_counter()
    if classifier is None:
        page.text("Edit FID skipped: no feature network (the demo uses the digits classifier's features).")
    else:
        z = KeyLatents(FID_SEED, cfg["n_fid"], z_dim)[:]
        x, render = edit_space(model, space, z, model_options=opts)
        table = edit_fid_table(render, classifier.features, x, {n: d.directions for n, d in fits.items()},
                               seed=int(jax.random.randint(key, (), 0, 2**31 - 1)), variant="paper",
                               max_strengths=(3.0,) if quick else (3.0, 6.0), chunk_size=cfg["n_fid"])
        page.text(f"Fréchet distance between the classifier features of {table.n} generated images "
                  f"(KeyLatents({FID_SEED}, n)) and of the same images each edited along one random "
                  f"direction of the set with a random strength (Palaev et al., tables 1-3; "
                  f"strengths as the paper's text: alpha ~ U[-a, a]; PRNG seed {table.seed}). "
                  f"Lower: the edits keep the images closer to the model's distribution.")
        page.table(["strength"] + list(table.methods),
                   [[row] + [float(v) for v in table.fid[r]] for r, row in enumerate(table.strengths)])
        results["edit_fid"] = table
    results["seconds"] = {"fit": t_fit, "grids": t1 - t0 - t_fit, "edit_fid": time.perf_counter() - t1}
    page.results["ganspace"] = results
