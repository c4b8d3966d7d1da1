"""Distortion: how inconsistent a latent space's tangent spaces are (Choi et al., Local Dimension Estimation).

Choi, Hwang, Cho and Kang (arXiv 2205.13182) call *Distortion* a purely geometric, label-free
score of "an inconsistency of intrinsic tangent space on the learned latent space", which tracks
how well one global basis can serve every latent. The paper gives no formula; ours
(``docs/methods-local-dimension.md``):

* at each latent ``z_i`` the estimated tangent space ``T_i`` of the tap is the span of the top
  ``k`` left singular vectors of its Jacobian (the Local Basis, Choi et al., ICLR 2022), with
  one ``k`` for the whole tap: by default the median of the population's estimated local
  dimensions (:mod:`.local_dimension`, the paper's Gavish-Donoho count unless ``rule`` says
  otherwise);
* ``far``: mean Grassmannian distance ``d(T_i, T_j)`` over all pairs ``i < j`` of the
  population (distant latents);
* ``near``: mean ``d(T_i, T_i')`` with ``z_i' = z_i + eps * u_i``, ``u_i`` a random unit vector
  (the neighbour test of the Local Basis code, eps = 0.1);
* ``Distortion = far / near``: how much more the tangent space turns between distant latents
  than within a small neighbourhood. Near 1 means globally consistent (a global basis fits every
  latent as well as a local one fits its neighbours); large means warped.

A map whose tangent space is the same everywhere (a linear map) has ``far = near = 0``; the
ratio is then left to rounding, so read ``far`` too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.localbasis.grassmann import grassmann_distance, pairwise_grassmann
from jaxlatent.engine.keys import as_key
from jaxlatent.engine.linalg import after
from jaxlatent.engine.parallel import with_progress
from jaxlatent.localdim.dimension import dimension_from_spectrum, jacobian_spectrum
from jaxlatent.engine.sampling import neighbours, random_orthonormal
from jaxlatent.localdim.thresholds import threshold_rule

__all__ = ["Distortion", "distortion", "layer_distortions"]


class Distortion(NamedTuple):
    """Distortion of one tap over a population of N latents (a pytree).

    distortion: () ``far / near``.
    far: () mean distance between tangent spaces at distinct latents.
    near: () mean distance between the tangent spaces at a latent and its neighbour.
    baseline: () mean distance between Haar-random ``k``-subspaces of the tap's space.
    k: () int32, the subspace dimension used.
    dimension: (N,) int32, the estimated local dimensions.
    far_distances: (N, N) pairwise distances (zero diagonal).
    near_distances: (N,) distance to each latent's neighbour.
    """

    distortion: jax.Array
    far: jax.Array
    near: jax.Array
    baseline: jax.Array
    k: jax.Array
    dimension: jax.Array
    far_distances: jax.Array
    near_distances: jax.Array


@functools.partial(jax.jit, static_argnames=("n_pairs", "dim", "k", "dtype", "metric"))
def _random_baseline(key, n_pairs: int, dim: int, k: int, dtype, metric: str):
    # both sides from one draw
    ab = random_orthonormal(key=key, n=dim, k=k, batch=(2, n_pairs), dtype=dtype)
    return jnp.mean(grassmann_distance(ab[0], ab[1], metric=metric))


def distortion(f: Callable, z, *, key: jax.Array, k: int | None = None, eps: float = 0.1,
               metric: str = "geodesic", rule="paper", mode: str = "auto",
               baseline_pairs: int = 64, chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
               progress: bool | Callable = False) -> Distortion:
    """Distortion of the tap ``f`` over the latents ``z`` (Choi et al.'s metric; our formula, module doc).

    With ``k=None`` every latent's full left basis (N, out, min(out, in)) is held at once; for
    wide taps (images, feature maps) give ``k``.

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``.
      z: (N, in) latents, N >= 2.
      key: PRNG key for the neighbours and the random baseline (typed or legacy).
      k: tangent-space dimension (default: the median estimated local dimension, at least 1).
      eps: neighbour distance in the input space.
      metric: a metric of :func:`jaxlatent.localbasis.grassmann.grassmann_distance` (``"geodesic"``:
        2-norm of the principal angles).
      rule: the local-dimension rule that sets the default ``k`` (``"paper"``, ``"bulk"``,
        ``"numerical"``, a relative cut ``rtol`` or a threshold function; see
        :func:`jaxlatent.localdim.dimension.local_dimension`).
      mode: see :func:`jaxlatent.engine.jacobian.jacobian`.
      baseline_pairs: Haar-random subspace pairs of the baseline.
      chunk_size, mesh, use_pmap, progress: of the two Jacobian spectra
        (:func:`jaxlatent.localdim.dimension.jacobian_spectrum`).

    Returns:
      :class:`Distortion`: scalars ``distortion``, ``far``, ``near``, ``baseline``, ``k``;
      ``dimension`` (N,), ``far_distances`` (N, N), ``near_distances`` (N,).
    """
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"distortion needs latents of shape (N >= 2, z_dim), found shape {z.shape}")
    threshold_rule(rule)            # an unknown rule stops before any Jacobian is computed
    k_near, k_base = jax.random.split(as_key(key, "distortion"))
    run = dict(mode=mode, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    s, basis, shape = jacobian_spectrum(f, z, keep=k, **run)
    dims = dimension_from_spectrum(s, shape, rule).dimension
    m = min(shape)
    if k is None:
        k = int(min(max(math.floor(float(np.median(np.asarray(dims))) + 0.5), 1), m))
    elif not 1 <= k <= m:
        raise ValueError(f"distortion: k must lie in [1, {m}] for a {shape[0]}x{shape[1]} Jacobian, found {k}")
    basis = basis[..., :k]
    _, basis_nb, _ = jacobian_spectrum(f, neighbours(z, key=k_near, eps=eps), keep=k, **run)
    far_d, near_d, far, near = _far_near(basis, basis_nb, metric)
    base = _random_baseline(k_base, int(baseline_pairs), int(shape[0]), k, jnp.dtype(basis.dtype), metric)
    return Distortion(distortion=far / near, far=far, near=near, baseline=base,
                      k=jnp.asarray(k, jnp.int32), dimension=dims, far_distances=far_d,
                      near_distances=near_d)


@functools.partial(jax.jit, static_argnames=("metric",))
def _far_near(basis, basis_nb, metric):
    """Distances between the tangent spaces of distinct latents and of each latent and its neighbour."""
    far_d = pairwise_grassmann(basis, metric=metric, formula="cosine")
    # the near pairs' decompositions start once the far pairs' are done (linalg module docstring)
    near_d = grassmann_distance(after(basis, far_d), basis_nb, metric=metric)
    n = basis.shape[0]
    return far_d, near_d, jnp.sum(far_d) / (n * (n - 1)), jnp.mean(near_d)


def layer_distortions(fns: Mapping[str, Callable], z, *, key: jax.Array, k: int | None = None,
                      eps: float = 0.1, metric: str = "geodesic", rule="paper",
                      mode: str = "auto", baseline_pairs: int = 64, chunk_size: int | None = None, mesh=None,
                      use_pmap: bool = False, progress: bool | Callable = False) -> dict[str, Distortion]:
    """:func:`distortion` for each named tap on the same latents and key, as ``layer_dimensions`` does.

    Sharing latents and neighbours across taps makes the per-layer values comparable.

    Args:
      fns: ``name -> f`` batched taps.
      z: (N, in) latents shared by every tap, N >= 2.
      key: PRNG key shared by every tap.
      k, eps, metric, rule, mode, baseline_pairs, chunk_size, mesh, use_pmap: see
        :func:`distortion`.
      progress: ``True`` for a bar over the taps, or a wrapper of the tap iteration (e.g. ``tqdm.tqdm``).

    Returns:
      ``name -> Distortion``, in the order given.
    """
    threshold_rule(rule)
    return {name: distortion(fn, z, key=key, k=k, eps=eps, metric=metric, rule=rule, mode=mode,
                             baseline_pairs=baseline_pairs, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap)
            for name, fn in with_progress(list(fns.items()), progress, "taps")}
