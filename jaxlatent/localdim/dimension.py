"""Local dimension of an intermediate latent space (Choi et al., Local Dimension Estimation).

Choi, Hwang, Cho and Kang, "Analyzing the Latent Space of GAN through Local Dimension
Estimation" (arXiv 2205.13182) estimate, at each latent, the number of directions along which
a layer's output really varies: the rank of a *denoised* local model of the latent manifold
(their Figure 1). The paper gives no formula for the denoising; ours
(``docs/methods-local-dimension.md``) counts the singular values of the tap's Jacobian ``J(z)``
above :func:`jaxlatent.localdim.thresholds.optimal_threshold`:

    dim(z) = #{ i : sigma_i(z) > max(tau(z), tol(z)) },

with ``tol`` the numerical-rank tolerance ``sigma_1 * max(out, in) * eps`` (values below it are
float rounding) and ``tau`` the Gavish-Donoho optimal hard threshold for an unknown noise level
where the spectrum shows a noise bulk, ``tol`` elsewhere. An exactly rank-r tap thus has
dimension r in float32 and float64 alike; ``LocalDimension.noise_bulk`` says which rule decided
at each latent.

Only singular values are computed (:func:`jaxlatent.engine.linalg.singular_values`), never
singular vectors, unless :func:`jacobian_spectrum` is asked to keep some.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.jacobian import check_latents, output_size, resolve_mode
from jaxlatent.engine.linalg import singular_values
from jaxlatent.engine.parallel import with_progress
from jaxlatent.localbasis.basis import decompose_jacobians, svd_triplets
from jaxlatent.localdim.thresholds import ThresholdFn, noise_bulk, optimal_threshold, rank_tolerance

__all__ = [
    "LocalDimension",
    "LayerDimensions",
    "jacobian_spectrum",
    "dimension_from_spectrum",
    "local_dimension",
    "summarize_dimensions",
    "layer_dimensions",
]


class LocalDimension(NamedTuple):
    """Per-latent local dimension estimates (a pytree).

    dimension: (N,) int32, the estimated local dimension at each latent.
    threshold: (N,) the singular-value cut used at each latent (never below ``tolerance``).
    singular_values: (N, m) the tap Jacobian's singular values, descending,
        ``m = min(out, in)``.
    tolerance: (N,) the numerical-rank tolerance ``s_1 * max(out, in) * eps``.
    noise_bulk: (N,) bool, whether the spectrum shows the noise bulk that the Gavish-Donoho
        rule needs. With the default threshold: True where the Gavish-Donoho threshold decided,
        False where the numerical rank did.
    """

    dimension: jax.Array
    threshold: jax.Array
    singular_values: jax.Array
    tolerance: jax.Array
    noise_bulk: jax.Array


class LayerDimensions(NamedTuple):
    """Summary of the local dimension of one tap over a population of latents.

    The paper's per-layer table for the mapping network reports these statistics of the
    per-latent estimates.
    """

    mean: float
    std: float
    median: float
    min: int
    max: int
    dimension: np.ndarray  # (N,) the per-latent estimates


def jacobian_spectrum(f: Callable, z, *, keep: int | None = 0, mode: str = "auto",
                      chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                      progress: bool | Callable = False):
    """Singular values (and optionally the leading left singular vectors) of the tap Jacobian.

    Work runs ``chunk_size`` latents at a time and only the spectrum (and ``keep`` vectors) of
    a chunk outlive it, so memory is O(chunk_size * out * in + N * out * keep), not O(N * out * in)
    (an image tap's Jacobian is ``out = C*H*W`` rows per latent).

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``.
      z: (N, in) latents.
      keep: left singular vectors kept per latent: 0 (spectrum only: no vectors are computed),
        ``k``, or None for all ``m``.
      mode, chunk_size, mesh, use_pmap: see :func:`jaxlatent.engine.jacobian.jacobian`.
      progress: optional wrapper of the chunk iterator (e.g. ``tqdm.tqdm``).

    Returns:
      ``(singular_values (N, m), basis (N, out, keep) or None, (out, in))``, ``m = min(out, in)``;
      the basis is the Local Basis (same sign convention as ``local_basis``).
    """
    z = check_latents(z, "jacobian_spectrum")
    n_out = output_size(f, z)
    values, basis = decompose_jacobians(f, z, jax.tree_util.Partial(_spectrum_rows, keep),
                                        resolve_mode(mode, z.shape[1], n_out), chunk_size=chunk_size,
                                        mesh=mesh, use_pmap=use_pmap, progress=progress)
    return values, basis, (n_out, z.shape[1])


def _spectrum_rows(keep, jac):
    """Singular values of a chunk's Jacobians, and the leading ``keep`` left vectors (0: none)."""
    if keep == 0:
        return singular_values(jac), None
    lb = svd_triplets(jac)             # the Local Basis's own SVD and sign convention
    return lb.singular_values, (lb.basis if keep is None else lb.basis[..., :keep])


def dimension_from_spectrum(singular_values: jax.Array, shape: tuple,
                            threshold_fn: ThresholdFn = optimal_threshold) -> LocalDimension:
    """Local dimensions from precomputed spectra (jittable and vmappable; ``shape`` static).

    Args:
      singular_values: (N, m) every singular value of each (out, in) Jacobian, descending.
      shape: ``(out, in)``.
      threshold_fn: ``(singular_values (N, m), (out, in)) -> (N,)``; whatever it returns,
        values at or below the numerical-rank tolerance never count.

    Returns:
      :class:`LocalDimension`.
    """
    tol = rank_tolerance(singular_values, shape)
    tau = jnp.maximum(threshold_fn(singular_values, shape), tol)
    dim = jnp.sum(singular_values > tau[..., None], axis=-1).astype(jnp.int32)
    return LocalDimension(dimension=dim, threshold=tau, singular_values=singular_values, tolerance=tol,
                          noise_bulk=noise_bulk(singular_values, shape))


def local_dimension(f: Callable, z, *, threshold_fn: ThresholdFn = optimal_threshold, mode: str = "auto",
                    chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                    progress: bool | Callable = False) -> LocalDimension:
    """Local dimension of the tap ``f`` at each latent (Choi et al.'s estimate; our rule, module doc).

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)`` (outputs flattened in C order).
      z: (N, in) latents.
      threshold_fn: ``(singular_values (N, m), (out, in)) -> (N,)``; default the combined rule
        (Gavish-Donoho where the spectrum shows a noise bulk, the numerical rank elsewhere);
        ``thresholds.relative_threshold(rtol)`` counts values above ``rtol * s_1``.
      mode, chunk_size, mesh, use_pmap, progress: see :func:`jacobian_spectrum`.

    Returns:
      :class:`LocalDimension`: ``dimension`` (N,), ``threshold`` (N,), ``singular_values``
      (N, m), ``tolerance`` (N,), ``noise_bulk`` (N,).
    """
    s, _, shape = jacobian_spectrum(f, z, keep=0, mode=mode, chunk_size=chunk_size, mesh=mesh,
                                    use_pmap=use_pmap, progress=progress)
    return dimension_from_spectrum(s, shape, threshold_fn)


def summarize_dimensions(dimension) -> LayerDimensions:
    """Mean, std, median, min and max of per-latent estimates.

    Args:
      dimension: (N,) local dimensions.

    Returns:
      :class:`LayerDimensions`.
    """
    d = np.asarray(dimension)
    return LayerDimensions(mean=float(d.mean()), std=float(d.std()), median=float(np.median(d)),
                           min=int(d.min()), max=int(d.max()), dimension=d)


def layer_dimensions(fns: Mapping[str, Callable], z, *, threshold_fn: ThresholdFn = optimal_threshold,
                     mode: str = "auto", chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                     progress: bool | Callable = False) -> dict[str, LayerDimensions]:
    """Per-layer local dimension over a population: the paper's table for the mapping network.

    Args:
      fns: ``name -> f`` (e.g. ``{t: model.fn(t) for t in ["mapping.fc0", ..., "w"]}``).
      z: (N, in) latents shared by every tap.
      threshold_fn: see :func:`local_dimension`.
      mode, chunk_size, mesh, use_pmap: see :func:`local_dimension`.
      progress: ``True`` for a bar over the taps, or a wrapper of the tap iteration (e.g. ``tqdm.tqdm``).

    Returns:
      ``name -> LayerDimensions``, in the order given.
    """
    return {name: summarize_dimensions(local_dimension(fn, z, threshold_fn=threshold_fn, mode=mode,
                                                       chunk_size=chunk_size, mesh=mesh,
                                                       use_pmap=use_pmap).dimension)
            for name, fn in with_progress(list(fns.items()), progress, "taps")}
