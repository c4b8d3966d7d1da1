"""The Riemannian metric of the image manifold (Wang & Ponce 2021) on a generator, for the report and
``jaxlatent geometry``.

Which callables are analysed (:func:`jaxlatent.workflows.spaces.latent_space`): ``space="z"`` uses
``model.fn("image")`` at the latents; ``"w"`` (StyleGAN2) uses ``model.fn("image", wrt="w")`` at
``w = mapping(z)``, one w for every layer, as the paper's StyleGAN analysis does. Distances: pixel MSE (:func:`mse_distance`), a classifier's
features (:func:`feature_distance`, the report's feature-space metric) and any callable
``distance(x0, x) -> (N,)`` (e.g. an LPIPS module).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlatent.geometry.metric import Metric, eigen_axis_latents
from jaxlatent.geometry.stats import anisotropy, hessian_corr, offdiag_summary, vector_hessian_corr
from jaxlatent.geometry.inversion import invert
from jaxlatent.engine.latents import latents_from_seeds
from jaxlatent.workflows.spaces import latent_space

__all__ = ["HELD_OUT_SEED", "feature_distance", "Summary", "summarize", "strip_images", "inversion_runs"]

HELD_OUT_SEED = 100_000        # inversion targets come from seeds far from the analysed ones


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
    lat = eigen_axis_latents(x, m, length=length, n_side=n_side, max_step=limit)[0]           # (axes, S, in)
    imgs = g(jnp.reshape(lat, (-1, lat.shape[-1])))
    return np.asarray(imgs).reshape(lat.shape[:2] + imgs.shape[1:])


def inversion_runs(model, basis_metric: Metric, n_targets: int, *, steps: int, k: int,
                   truncation_psi: float | None = None, learning_rate: float = 0.05, in_z: bool = True) -> dict[str, np.ndarray]:
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
    gz = latent_space(model, "z", truncation_psi=truncation_psi).image
    w_space = latent_space(model, "w", truncation_psi=truncation_psi)
    gw = w_space.image
    targets = gw(w_space.points(z_t))
    w_start = jnp.mean(w_space.points(latents_from_seeds(range(256), model.config.z_dim)), axis=0)
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


