"""Local dimension of an intermediate latent space (Choi et al., Local Dimension Estimation).

Choi, Hwang, Cho and Kang, "Analyzing the Latent Space of GAN through Local Dimension
Estimation" (arXiv 2205.13182) estimate, at each latent, the number of directions along which
a layer's output really varies: the rank of a *denoised* local model of the latent manifold
(their Figure 1), with the Gavish-Donoho optimal hard threshold for an unknown noise level.
By default (``rule="paper"``, ``docs/methods-local-dimension.md``) we count the singular values
of the tap's Jacobian ``J(z)`` above it, never below the numerical-rank tolerance:

    dim(z) = #{ i : sigma_i(z) > max(omega(beta) * median(sigma(z)), tol(z)) },

the median over all ``m = min(out, in)`` values, ``tol = sigma_1 * max(out, in) * eps``
(values below it are float rounding). An exactly rank-r tap with ``r < m / 2`` thus has
dimension r; above ``m / 2`` the median is signal and the count falls short, which the
``"numerical"`` rule (the numerical rank) or ``"bulk"`` (Gavish-Donoho only where the spectrum
shows a Marchenko-Pastur noise bulk) avoid. :func:`jaxlatent.analysis.thresholds.threshold_rule`
lists the rules; ``LocalDimension.rule`` names the one used, ``LocalDimension.noise_bulk``
says where the spectrum shows a bulk.

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
from jaxlatent.localdim.thresholds import noise_bulk, rank_tolerance, threshold_rule

__all__ = [
    "LocalDimension",
    "LayerDimensions",
    "jacobian_spectrum",
    "dimension_from_spectrum",
    "local_dimension",
    "numerical_rank",
    "summarize_dimensions",
    "layer_dimensions",
]


class LocalDimension(NamedTuple):
    """Per-latent local dimension estimates (a pytree; ``rule`` is static data, not a leaf).

    dimension: (N,) int32, the estimated local dimension at each latent.
    threshold: (N,) the singular-value cut used at each latent (never below ``tolerance``).
    singular_values: (N, m) the tap Jacobian's singular values, descending,
        ``m = min(out, in)``.
    tolerance: (N,) the numerical-rank tolerance ``s_1 * max(out, in) * eps``.
    noise_bulk: (N,) bool, whether the spectrum shows the Marchenko-Pastur noise bulk that the
        Gavish-Donoho median estimate assumes (under ``rule="bulk"``: where Gavish-Donoho
        decided rather than the numerical rank).
    rule: the rule that made ``dimension`` (``"paper"``, ``"bulk"``, ``"numerical"``,
        ``"rtol=R"`` or a threshold function's name; :func:`thresholds.threshold_rule`).
    """

    dimension: jax.Array
    threshold: jax.Array
    singular_values: jax.Array
    tolerance: jax.Array
    noise_bulk: jax.Array
    rule: str = "paper"

    def arrays(self) -> dict:
        """The per-latent fields by name (everything but ``rule``)."""
        return {name: value for name, value in self._asdict().items() if name != "rule"}


_ARRAY_FIELDS = LocalDimension._fields[:-1]
jax.tree_util.register_pytree_with_keys(
    LocalDimension,
    lambda d: (tuple((jax.tree_util.GetAttrKey(n), getattr(d, n)) for n in _ARRAY_FIELDS), d.rule),
    lambda rule, children: LocalDimension(*children, rule=rule),
    flatten_func=lambda d: (tuple(d[:-1]), d.rule))


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


def dimension_from_spectrum(singular_values: jax.Array, shape: tuple, rule="paper") -> LocalDimension:
    """Local dimensions from precomputed spectra (jittable and vmappable; ``shape``, ``rule`` static).

    Args:
      singular_values: (N, m) every singular value of each (out, in) Jacobian, descending.
      shape: ``(out, in)``.
      rule: ``"paper"`` (default), ``"bulk"``, ``"numerical"``, a relative cut ``rtol`` in
        (0, 1), or a threshold function ``(singular_values (N, m), (out, in)) -> (N,)``
        (:func:`jaxlatent.analysis.thresholds.threshold_rule`); whatever it gives, values at
        or below the numerical-rank tolerance never count.

    Returns:
      :class:`LocalDimension`.
    """
    name, threshold_fn = threshold_rule(rule)
    tol = rank_tolerance(singular_values, shape)
    tau = jnp.maximum(threshold_fn(singular_values, shape), tol)
    dim = jnp.sum(singular_values > tau[..., None], axis=-1).astype(jnp.int32)
    return LocalDimension(dimension=dim, threshold=tau, singular_values=singular_values, tolerance=tol,
                          noise_bulk=noise_bulk(singular_values, shape), rule=name)


def local_dimension(f: Callable, z, *, rule="paper", mode: str = "auto",
                    chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                    progress: bool | Callable = False) -> LocalDimension:
    """Local dimension of the tap ``f`` at each latent (Choi et al.'s estimate; module doc).

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)`` (outputs flattened in C order).
      z: (N, in) latents.
      rule: ``"paper"`` (default: Gavish-Donoho ``omega(beta) * median`` over all values, floored
        at the numerical-rank tolerance), ``"bulk"`` (Gavish-Donoho where the spectrum shows a
        noise bulk, the numerical rank elsewhere), ``"numerical"`` (the numerical rank), a
        relative cut ``rtol`` in (0, 1) (values above ``rtol * s_1``), or a threshold function
        ``(singular_values (N, m), (out, in)) -> (N,)``.
      mode, chunk_size, mesh, use_pmap, progress: see :func:`jacobian_spectrum`.

    Returns:
      :class:`LocalDimension`: ``dimension`` (N,), ``threshold`` (N,), ``singular_values``
      (N, m), ``tolerance`` (N,), ``noise_bulk`` (N,), ``rule``.
    """
    threshold_rule(rule)            # an unknown rule stops before any Jacobian is computed
    s, _, shape = jacobian_spectrum(f, z, keep=0, mode=mode, chunk_size=chunk_size, mesh=mesh,
                                    use_pmap=use_pmap, progress=progress)
    return dimension_from_spectrum(s, shape, rule)


def numerical_rank(estimate: LocalDimension) -> np.ndarray:
    """The numerical rank at each latent of an estimate made with any rule, for comparison.

    Args:
      estimate: a :class:`LocalDimension` (N latents).

    Returns:
      (N,) int, the count of singular values above ``estimate.tolerance``: ``rule="numerical"``.
    """
    s = np.asarray(estimate.singular_values)
    return np.sum(s > np.asarray(estimate.tolerance)[..., None], axis=-1)


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


def layer_dimensions(fns: Mapping[str, Callable], z, *, rule="paper",
                     mode: str = "auto", chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                     progress: bool | Callable = False) -> dict[str, LayerDimensions]:
    """Per-layer local dimension over a population: the paper's table for the mapping network.

    Args:
      fns: ``name -> f`` (e.g. ``{t: model.fn(t) for t in ["mapping.fc0", ..., "w"]}``).
      z: (N, in) latents shared by every tap.
      rule: the local-dimension rule (see :func:`local_dimension`; default ``"paper"``).
      mode, chunk_size, mesh, use_pmap: see :func:`local_dimension`.
      progress: ``True`` for a bar over the taps, or a wrapper of the tap iteration (e.g. ``tqdm.tqdm``).

    Returns:
      ``name -> LayerDimensions``, in the order given.
    """
    threshold_rule(rule)
    return {name: summarize_dimensions(local_dimension(fn, z, rule=rule, mode=mode,
                                                       chunk_size=chunk_size, mesh=mesh,
                                                       use_pmap=use_pmap).dimension)
            for name, fn in with_progress(list(fns.items()), progress, "taps")}
