"""GAN inversion by gradient descent, optionally in the eigen-coordinates of the metric.

Wang & Ponce, "The Geometry of Deep Generative Image Models and its Applications" (ICLR 2021),
section 5: the metric's eigenvectors make a better coordinate system for optimising in the
latent space. :func:`invert` finds, for every target image, a latent ``z`` minimising
``distance(target, g(z))`` with an optax optimiser (Adam by default) over the coordinates ``c``
of

    z = z0 + V c      (c = 0 at the start)

where ``V`` is the identity (plain optimisation in z), the eigenvectors of a metric (all of them:
a rotation, which changes what an element-wise optimiser such as Adam does), or only its top k
(the search is then confined to the k directions that change the image most). One ``V`` can be
shared by all targets (e.g. the average metric's global axes) or given per target.

Targets are independent: the loss is the sum of the per-target distances, so each target's
gradient is its own and an element-wise optimiser updates each target as if it were alone.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlatent.geometry.metric import Metric, mse_distance
from jaxlatent.engine.jacobian import check_latents
from jaxlatent.engine.parallel import map_batched

DEFAULT_LEARNING_RATE = 0.05


class Inversion(NamedTuple):
    """Inversion results for N targets.

    z: (N, in) the latents found (the last step's).
    distance: (N,) ``distance(target, g(z))`` at the end.
    history: (N, steps + 1) the distance before each step and after the last.
    """

    z: jax.Array
    distance: jax.Array
    history: jax.Array


@functools.partial(jax.tree_util.register_dataclass, data_fields=["g", "distance", "optimizer", "basis"],
                   meta_fields=["steps", "per_target"])
@dataclasses.dataclass(frozen=True)
class _Invert:
    """Hashable ``(targets, z0[, basis]) -> Inversion`` for one chunk of targets."""

    g: Callable
    distance: Callable
    optimizer: Any
    basis: jax.Array | None
    steps: int
    per_target: bool

    def __call__(self, batch):
        if self.per_target:
            targets, z0, basis = batch
        else:
            (targets, z0), basis = batch, self.basis

        def latents(c):
            if basis is None:
                return z0 + c
            if basis.ndim == 3:
                return z0 + jnp.einsum("nik,nk->ni", basis, c)
            return z0 + c @ basis.T

        def losses(c):
            return self.distance(targets, self.g(latents(c)))

        def loss(c):
            d = losses(c)
            return jnp.sum(d), d

        k = z0.shape[1] if basis is None else basis.shape[-1]
        c0 = jnp.zeros((z0.shape[0], k), z0.dtype)

        def step(carry, _):
            c, state = carry
            (_, d), grad = jax.value_and_grad(loss, has_aux=True)(c)
            updates, state = self.optimizer.update(grad, state, c)
            return (optax.apply_updates(c, updates), state), d

        (c, _), hist = jax.lax.scan(step, (c0, self.optimizer.init(c0)), None, length=self.steps)
        final = losses(c)
        return Inversion(latents(c), final, jnp.concatenate([hist.T, final[:, None]], axis=1))


def _basis_array(basis):
    if basis is None:
        return None
    if isinstance(basis, Metric):
        vecs = basis.eigenvectors
        return vecs[0] if vecs.shape[0] == 1 else vecs
    return jnp.asarray(basis)


def invert(g: Callable, targets, z0, *, distance: Callable | None = None, basis=None, k: int | None = None,
           optimizer: optax.GradientTransformation | None = None, steps: int = 200,
           chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
           progress: bool | Callable = False) -> Inversion:
    """Invert a generator: ``argmin_z distance(target, g(z))`` per target, optionally in eigen-coordinates.

    Wang & Ponce 2021, section 5 (Hessian-aware optimisation): ``z = z0 + V c``, optimising ``c``.

    Args:
      g: batched generator ``(N, in) -> (N, C, H, W)`` (e.g. ``model.fn("image", wrt="w")``).
      targets: (N, C, H, W) target images.
      z0: (N, in) starting latents, or (in,) one start for every target.
      distance: ``distance(x0, x) -> (N,)``; default :func:`jaxlatent.geometry.metric.mse_distance`.
      basis: None (optimise z itself), a :class:`jaxlatent.geometry.metric.Metric` (its
        eigenvectors; a Metric with a batch of one, such as
        :func:`jaxlatent.geometry.stats.average_metric`, is shared by all targets), or
        an array: (in, m) shared or (N, in, m) per target, orthonormal columns.
      k: keep only the first k basis vectors (the top-k eigenvectors of a Metric).
      optimizer: an optax transformation (default ``optax.adam(0.05)``), run on the coordinates.
      steps: optimisation steps.
      chunk_size, mesh, use_pmap, progress: see :func:`jaxlatent.engine.parallel.map_batched`.

    Returns:
      :class:`Inversion` with z (N, in), distance (N,) and history (N, steps + 1).
    """
    targets = jnp.asarray(targets)
    n = targets.shape[0]
    z0 = jnp.asarray(z0)
    if z0.ndim == 1:
        z0 = jnp.broadcast_to(z0, (n, z0.shape[0]))
    z0 = check_latents(z0, "invert")
    if z0.shape[0] != n:
        raise ValueError(f"invert: {n} targets but {z0.shape[0]} starting latents (z0 shape {tuple(z0.shape)})")
    v = _basis_array(basis)
    if v is not None:
        if v.shape[-2] != z0.shape[1] or v.ndim not in (2, 3) or (v.ndim == 3 and v.shape[0] != n):
            raise ValueError(f"invert: basis must be (in, m) or (N, in, m) with in = {z0.shape[1]} and N = {n}, "
                             f"found shape {tuple(v.shape)}")
        if k is not None:
            v = v[..., :k]
        v = v.astype(z0.dtype)
    elif k is not None:
        raise ValueError("invert: k selects basis vectors; give a basis (a Metric or an array) with it")
    optimizer = optax.adam(DEFAULT_LEARNING_RATE) if optimizer is None else optimizer
    per_target = v is not None and v.ndim == 3
    fn = _Invert(g, mse_distance if distance is None else distance, optimizer, None if per_target else v,
                 int(steps), per_target)
    batch = (targets, z0, v) if per_target else (targets, z0)
    return map_batched(fn, batch, chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
