"""GANSpace with PCA and ICA on a generator: fits and edit grids, for the report and the commands.

The model glue of ``jaxlatent ganspace`` / ``jaxlatent edit-fid`` and of the report: which tap
is fitted (StyleGAN2: ``w``, as GANSpace and Palaev et al. do; other generators: a feature tap,
lifted to Z by least squares), where edits apply (W broadcast to every layer, a W+ layer range,
or Z: :func:`jaxlatent.workflows.spaces.latent_space`), and the image grids (rows: directions;
columns: strengths).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jaxlatent.ganspace.edits import edit_grid, lift_activations, lift_directions, normalize
from jaxlatent.ganspace.ica import fast_ica
from jaxlatent.ganspace.pca import pca_randomized, population_pca, transform
from jaxlatent.ganspace.population import KeyLatents, collect
from jaxlatent.workflows.spaces import is_stylegan2, tap_fn

__all__ = ["Directions", "fit_directions", "direction_images", "edit_space_of", "METHODS"]

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


def edit_space_of(model, tap: str) -> str:
    """Where the directions fitted at ``tap`` act: ``"w"`` for StyleGAN2's ``w`` (edits move w, or a
    W+ layer range), ``"z"`` for every other tap (lifted to the latent)."""
    return "w" if tap == "w" and is_stylegan2(model) else "z"


def _activations(f, result, z):
    return transform(result, f(z))


def fit_directions(model, tap: str, method: str, latents, *, k: int, key: jax.Array,
                   truncation_psi: float | None = None, class_idx: int | None = None, where: str = "ganspace",
                   ica_options: dict | None = None, chunk_size: int | None = None,
                   progress: bool | Callable = False) -> Directions:
    """Fit PCA or FastICA to ``tap`` over ``latents`` and turn its components into edit directions.

    Args:
        model: a loaded generator. tap: a tap of it (``w``: directions in W; any other: the
            components are lifted to Z by least squares on the latents that produced them).
        method: "pca" or "ica". latents: (N, z_dim) array or
            :class:`~jaxlatent.ganspace.population.SeedLatents`. k: components.
        key: PRNG key (ICA's ``w_init``; the randomized PCA of wide taps).
        truncation_psi, class_idx, where: the model options and the name errors give
            (:func:`jaxlatent.workflows.spaces.model_options`).
        ica_options: keyword arguments of :func:`~jaxlatent.ganspace.ica.fast_ica`.
        chunk_size, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`Directions`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, found {method!r}")
    f = tap_fn(model, tap, truncation_psi=truncation_psi, class_idx=class_idx, where=where)
    kw = dict(chunk_size=chunk_size, progress=progress)
    d = int(np.prod(model.tap_shape(tap)))
    x = None
    if method == "pca":
        result = population_pca(f, latents, k=k, **kw) if d <= MAX_MOMENT_DIM else \
            pca_randomized(f, latents, k=k, key=key, **kw)
    else:
        x = collect(f, latents, **kw)
        result = fast_ica(x, k=k, key=key, **(ica_options or {}))
    if edit_space_of(model, tap) == "w":
        return Directions(method, tap, "w", np.asarray(normalize(result.components)), result, 0.0)
    z = np.concatenate([np.asarray(latents[i:i + 4096]) for i in range(0, len(latents), 4096)])
    if x is not None:
        lifted = lift_directions(result, x, z)
    else:
        acts = collect(jax.tree_util.Partial(_activations, f, result), latents, **kw)
        lifted = lift_activations(acts, z)
    return Directions(method, tap, "z", np.asarray(lifted.directions), result, float(lifted.residual))


def direction_images(render: Callable, x0, directions, strengths, layers=None) -> np.ndarray:
    """Images of one latent ``x0: (1, ...)`` edited along each direction by each strength.

    Returns (D * S, C, H, W): row-major, one row of S strengths per direction.
    """
    x = edit_grid(x0, directions, strengths=strengths, layers=layers)     # (D, S, 1, ...)
    x = x.reshape((-1,) + x.shape[3:])
    return np.asarray(render(x))


# ------------------------------------------------------------------------------------ the section
