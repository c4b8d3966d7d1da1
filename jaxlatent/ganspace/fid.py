"""Fréchet distance of feature statistics, and the FID of GANSpace edits.

Fréchet Inception Distance (Heusel et al., NeurIPS 2017): for Gaussians fitted to two
feature populations,

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).

:func:`frechet_distance` follows pytorch-fid 0.3's ``calculate_frechet_distance`` in float64:
``scipy.linalg.sqrtm`` of the product; when that is not finite (a singular product), ``eps``
is added to both diagonals and the root taken again; a complex root whose diagonal has an
imaginary part above 1e-3 is an error, otherwise its real part is used.

Statistics stream (:func:`feature_statistics`): features of chunks of images (or of
latents rendered chunk by chunk) are folded into float64 moments, so a 50,000-image FID
never holds the images. Any feature callable works: pytorch-fid's InceptionV3 pool features
for FID proper, the shipped digits classifier's feature layer for the digits model.

:func:`edit_fid` is the edit-quality protocol of Palaev, Lukmanov and Khan (ICLR 2023 Tiny
Papers, section 3 and tables 1-3): N latents, one random direction of the set per image,
a random strength, FID between the original and the edited images. The strength is drawn
as the paper's text says (``variant="paper"``: alpha ~ U[-a, a], a = 3 and 6) or as its code
does (``variant="code"``: alpha = 6 N(0, 1), values of size below 0.5 pushed out to +-0.5).
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from jaxlatent.engine.keys import as_key
from jaxlatent.ganspace.edits import edit
from jaxlatent.ganspace.population import Moments, moments

__all__ = ["frechet_distance", "feature_statistics", "edit_strengths", "edit_fid", "edit_fid_table",
           "EditFID", "EditFIDTable", "VARIANTS"]

VARIANTS = ("paper", "code")
CODE_SCALE = 6.0      # the reference code's shift = 6 * randn
CODE_MIN = 0.5        # ... with |shift| raised to at least 0.5


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), pytorch-fid's convention.

    Args:
        mu1, mu2: (F,) feature means. sigma1, sigma2: (F, F) feature covariances.
        eps: offset added to both diagonals when ``sqrtm(sigma1 sigma2)`` is not finite.

    Returns:
        The squared Fréchet distance ``d^2`` (what FID reports), a float64 Python float.

    Raises:
        ValueError: mismatched shapes, or a square root with a significant imaginary part.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: means of shapes {mu1.shape} and {mu2.shape} differ")
    if sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"frechet_distance: covariances of shapes {sigma1.shape} and {sigma2.shape} "
                         f"for means of shape {mu1.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # pytorch-fid's sqrtm(..., disp=False): no singularity warning
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"frechet_distance: singular product of covariances; adding {eps} to their diagonals",
                      RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: the matrix square root has an imaginary component of "
                             f"size {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _features_of_render(render, features, x):
    return features(render(x))


def feature_statistics(features: Callable, x, *, render: Callable | None = None,
                       chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                       progress: bool | Callable = False) -> Moments:
    """Streamed float64 mean and covariance of features (FID statistics).

    Args:
        features: batched callable ``images (n, C, H, W) -> (n, F)`` (e.g. an InceptionV3's
            pool features, or ``jaxlatent.models.digits.load_classifier().features``).
        x: (N, C, H, W) images, or, with ``render``, (N, ...) latents (an array or
            :class:`~jaxlatent.ganspace.population.SeedLatents`).
        render: optional batched callable latents -> images (e.g. ``model.generate`` wrapped
            or ``model.fn("image")``); images then exist one chunk at a time.
        chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`~jaxlatent.ganspace.population.Moments`: ``mean`` (F,), ``covariance`` (F, F).
    """
    fn = features if render is None else jax.tree_util.Partial(_features_of_render, render, features)
    return moments(fn, x, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)


def edit_strengths(key: jax.Array, n: int, variant: str = "paper", max_strength: float = 3.0) -> jax.Array:
    """Strengths alpha of the edit-FID protocol (Palaev et al. 2023, section 3).

    Args:
        key: PRNG key. n: number of strengths.
        variant: ``"paper"``: alpha ~ U[-max_strength, max_strength] (the text: 3 and 6);
            ``"code"``: alpha = 6 z, z ~ N(0, 1), with 0 < |alpha| < 0.5 set to +-0.5 (the
            notebooks; ``max_strength`` unused).
        max_strength: a of U[-a, a].

    Returns:
        alpha: (n,) float32.
    """
    if variant not in VARIANTS:
        raise ValueError(f"edit_strengths: variant must be one of {VARIANTS}, found {variant!r}")
    if variant == "paper":
        return jax.random.uniform(key, (n,), minval=-max_strength, maxval=max_strength)
    a = CODE_SCALE * jax.random.normal(key, (n,))
    return jnp.where((a > 0) & (a < CODE_MIN), CODE_MIN, jnp.where((a < 0) & (a > -CODE_MIN), -CODE_MIN, a))


def _draw(key, n, k, variant, max_strength, dtype):
    """Component indices (n,) in [0, k) and strengths (n,) of the protocol."""
    k_index, k_alpha = jax.random.split(key)
    index = jax.random.randint(k_index, (n,), 0, k)
    return index, edit_strengths(k_alpha, n, variant, max_strength).astype(dtype)


def _edited_features(render, features, directions, layers, inputs):
    x, index, alpha = inputs
    moved = jax.vmap(lambda xi, i, a: edit(xi[None], directions[i], strength=a, layers=layers)[0])(x, index, alpha)
    return features(render(moved))


class EditFID(NamedTuple):
    """One edit-FID measurement.

    fid: () squared Fréchet distance between original and edited features.
    components: (N,) index of the direction applied to each latent. strengths: (N,) alpha.
    original, edited: float64 feature :class:`~jaxlatent.ganspace.population.Moments`.
    """

    fid: float
    components: jax.Array
    strengths: jax.Array
    original: Moments
    edited: Moments


def edit_fid(render: Callable, features: Callable, x, directions, *, key: jax.Array,
             variant: str = "paper", max_strength: float = 3.0, layers: tuple[int, int] | None = None,
             original: Moments | None = None, chunk_size: int | None = None, mesh=None,
             use_pmap: bool = False, progress: bool | Callable = False) -> EditFID:
    """FID of GANSpace edits: one random direction and strength per image (Palaev et al. 2023).

    Args:
        render: batched callable ``(n, ...) latents -> (n, C, H, W) images``, in the space the
            directions live in (e.g. W for StyleGAN2, broadcast to every layer; Z for FastGAN).
        features: batched callable ``images -> (n, F)``.
        x: (N, ...) latents to edit (the paper: N = 1000).
        directions: (K, d) directions (normalised rows, as the paper's).
        key: PRNG key of the component indices and strengths.
        variant: ``"paper"`` or ``"code"`` (see :func:`edit_strengths`). max_strength: a of
            U[-a, a] for ``"paper"``. layers: W+ layer range, see :func:`~jaxlatent.ganspace.edits.edit`.
        original: precomputed feature moments of ``render(x)`` (reused across directions sets).
        chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`EditFID` with fid, components (N,), strengths (N,), original and edited moments.
    """
    x = jnp.asarray(x)
    directions = jnp.asarray(directions, x.dtype)
    n = x.shape[0]
    index, alpha = _draw(as_key(key, "edit_fid"), n, directions.shape[0], variant, max_strength, x.dtype)
    kw = dict(chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    fn = jax.tree_util.Partial(_edited_features, render, features, directions, layers)
    if original is None:  # the same compiled program, every strength 0
        original = moments(fn, (x, index, jnp.zeros_like(alpha)), **kw)
    edited = moments(fn, (x, index, alpha), **kw)
    fid = frechet_distance(original.mean, original.covariance, edited.mean, edited.covariance)
    return EditFID(fid, index, alpha, original, edited)


class EditFIDTable(NamedTuple):
    """Edit FIDs shaped like Palaev et al.'s tables 1-3: strength rows x method columns.

    methods: (M,) column names (e.g. "PCA 20", "ICA 100"). strengths: (R,) row names
    ("U[-3, 3]", or "6 N(0,1), |a| >= 0.5" for the code variant). fid: (R, M) float64.
    variant, n: how the strengths were drawn, latents per cell.
    """

    methods: tuple
    strengths: tuple
    fid: np.ndarray
    variant: str
    n: int


def edit_fid_table(render: Callable, features: Callable, x, direction_sets: Mapping[str, object], *,
                   key: jax.Array, variant: str = "paper", max_strengths: Sequence[float] = (3.0, 6.0),
                   layers: tuple[int, int] | None = None, chunk_size: int | None = None, mesh=None,
                   use_pmap: bool = False, progress: bool | Callable = False) -> EditFIDTable:
    """The paper's FID table: every set of directions at every strength range, one shared original.

    Args:
        render, features, x, layers: as :func:`edit_fid`.
        direction_sets: column name -> (K, d) directions (e.g. {"PCA 20": ..., "ICA 20": ...}).
        key: PRNG key (typed or legacy); row r uses ``fold_in(key, r)`` for every method, so the
            columns of one row share their strengths (paired comparison).
        variant: ``"paper"`` (one row per ``max_strengths`` entry) or ``"code"`` (one row).
        chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.ganspace.population.stream`.

    Returns:
        :class:`EditFIDTable`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"edit_fid_table: variant must be one of {VARIANTS}, found {variant!r}")
    kw = dict(chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    x = jnp.asarray(x)
    # every set padded with zero rows to the largest K (never drawn: indices stay below each
    # set's own K), so that the whole table runs one compiled program
    sets = [jnp.asarray(d, x.dtype) for d in direction_sets.values()]
    width = max(d.shape[0] for d in sets)
    padded = [jnp.concatenate([d, jnp.zeros((width - d.shape[0],) + d.shape[1:], d.dtype)]) for d in sets]
    fn = jax.tree_util.Partial(_edited_features, render, features, padded[0], layers)
    n = x.shape[0]
    original = moments(fn, (x, jnp.zeros(n, jnp.int32), jnp.zeros(n, x.dtype)), **kw)
    rows = [(f"U[-{a:g}, {a:g}]", a) for a in max_strengths] if variant == "paper" else \
        [(f"{CODE_SCALE:g} N(0,1), |a| >= {CODE_MIN:g}", 0.0)]
    fid = np.zeros((len(rows), len(direction_sets)))
    key = as_key(key, "edit_fid_table")
    for r, (_, a) in enumerate(rows):
        row_key = jax.random.fold_in(key, r)
        for m, (dirs, full) in enumerate(zip(sets, padded)):
            index, alpha = _draw(row_key, n, dirs.shape[0], variant, a, x.dtype)
            fn = jax.tree_util.Partial(_edited_features, render, features, full, layers)
            edited = moments(fn, (x, index, alpha), **kw)
            fid[r, m] = frechet_distance(original.mean, original.covariance, edited.mean, edited.covariance)
    return EditFIDTable(tuple(direction_sets), tuple(name for name, _ in rows), fid, variant, int(x.shape[0]))
