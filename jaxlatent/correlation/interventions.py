"""Interventions on latent dimensions, read by a classifier (Li, Tao, Niu & Li, ICPR 2020).

The correlation analysis of Li et al. ("Interpreting the Latent Space of GANs via Correlation
Analysis for Controllable Concept Manipulation", ICPR 2020) changes latent variables of a fixed
generator ``g`` and scores the concept content of the images with a classifier. An
intervention replaces the latents ``z: (N, D)`` on a mask of dimensions:

* ``"set"``:   ``z_i <- a_i``                      (do-intervention, value in the latent's units)
* ``"shift"``: ``z_i <- z_i + a_i``
* ``"scale"``: ``z_i <- z_i (1 + a_i mean(z))``    (the multiplicative form of the follow-up,
  Li et al., IEEE TAI 2021, code ``create_weight.py``: ``z * (1 -+ 10 mean(z) w)``)

with ``mean(z)`` the per-sample mean over all dimensions. A mask of zeros leaves ``z`` as it
is for every kind, which is how the unedited (base) probabilities ride along in one batch.

The latents may be Z or W (or any other input): the space is the one the callable ``g`` takes
(``model.fn("image", wrt="w")`` for W). Values can be given in standardised units with
``center`` and ``scale`` (per-dimension mean and standard deviation of the population), which
is what W needs, whose dimensions are neither centred nor of unit spread.

Work is spread with :func:`jaxlatent.engine.parallel.map_batched` over the edited latents: one
compiled call generates and classifies ``chunk_size`` images, whatever the number of samples
and interventions, so an analysis compiles its generator once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.jacobian import check_latents
from jaxlatent.engine.parallel import map_batched, pad_rows

KINDS = ("set", "shift", "scale")

# images per compiled generator call when chunk_size is not given: a second's work for a 16x16
# StyleGAN2 on 2 CPU cores, a few hundred MB of activations at 256x256
DEFAULT_IMAGES_PER_CALL = 256
# edited latents held at once (N * M of them are made block by block)
MAX_ROWS = 65536


def check_kind(kind: str, where: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}, found {kind!r}")
    return kind


def apply_intervention(z: jax.Array, mask: jax.Array, amount: jax.Array, kind: str = "set") -> jax.Array:
    """Apply an intervention to latents (broadcasting over leading axes).

    Args:
      z: (..., D) latents.
      mask: (..., D) weights in [0, 1]: 1 intervenes fully, 0 leaves the dimension alone
        (fractional weights interpolate, used by the optimisation of Method B).
      amount: (..., D) the value ``a_i`` of each dimension (see the module docstring).
      kind: ``"set"``, ``"shift"`` or ``"scale"``.

    Returns:
      (broadcast shape, D) edited latents: ``set``: ``z + m (a - z)``; ``shift``: ``z + m a``;
      ``scale``: ``z (1 + m a mean(z))``.
    """
    if kind == "set":
        return z + mask * (amount - z)
    if kind == "shift":
        return z + mask * amount
    if kind == "scale":
        return z * (1 + mask * amount * jnp.mean(z, axis=-1, keepdims=True))
    raise ValueError(f"apply_intervention: kind must be one of {KINDS}, found {kind!r}")


def standard_units(d: int, center=None, scale=None, dtype=jnp.float32):
    """``(center (D,), scale (D,))`` with defaults 0 and 1, checked against the latent size D."""
    out = []
    for name, value, default in (("center", center, 0.0), ("scale", scale, 1.0)):
        arr = jnp.full((d,), default, dtype) if value is None else jnp.asarray(value, dtype)
        if arr.ndim == 0:
            arr = jnp.full((d,), arr, dtype)
        if arr.shape != (d,):
            raise ValueError(f"interventions: {name} must have shape ({d},), found {tuple(arr.shape)}")
        out.append(arr)
    return tuple(out)


def amounts(values: jax.Array, center: jax.Array, scale: jax.Array, kind: str) -> jax.Array:
    """Raw amounts ``a`` (..., D) from values (..., D) in standard units: set ``c + v s``, shift ``v s``."""
    if kind == "set":
        return center + values * scale
    if kind == "shift":
        return values * scale
    return values


def single_dim_grid(d: int, dims, values, *, kind: str = "set", center=None, scale=None):
    """Masks and amounts of every (dim, value) single-dimension intervention.

    Args:
      d: latent size D.
      dims: (K,) dimensions to intervene on.
      values: (V,) values in standard units (``center + v * scale`` for ``set``).
      kind, center, scale: see :func:`apply_intervention` and the module docstring.

    Returns:
      ``(mask (K*V, D), amount (K*V, D))`` in (dim, value) row-major order.
    """
    dims = jnp.asarray(dims, jnp.int32)
    values = jnp.asarray(values, jnp.float32)
    center, scale = standard_units(d, center, scale)
    onehot = jax.nn.one_hot(dims, d, dtype=jnp.float32)                      # (K, D)
    mask = jnp.repeat(onehot, values.shape[0], axis=0)                       # (K*V, D)
    v = jnp.tile(values, dims.shape[0])[:, None] * mask                      # (K*V, D)
    return mask, amounts(v, center, scale, kind) * mask


def intervene(z, dims, values, *, kind: str = "set", center=None, scale=None) -> jax.Array:
    """Every single-dimension intervention of every sample.

    Args:
      z: (N, D) latents.
      dims: (K,) dimensions. values: (V,) values in standard units.
      kind: ``"set"``, ``"shift"`` or ``"scale"``. center, scale: (D,) standard units.

    Returns:
      (N, K, V, D): entry ``[n, k, v]`` is ``z[n]`` with dimension ``dims[k]`` intervened at
      ``values[v]``.
    """
    z = check_latents(z, "intervene")
    check_kind(kind, "intervene")
    mask, amount = single_dim_grid(z.shape[1], dims, values, kind=kind, center=center, scale=scale)
    k, v = len(np.atleast_1d(dims)), len(np.atleast_1d(values))
    out = apply_intervention(z[:, None, :], mask[None], amount[None].astype(z.dtype), kind)
    return out.reshape(z.shape[0], k, v, z.shape[1])


@functools.partial(jax.tree_util.register_dataclass, data_fields=["g", "classifier"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class ConceptScores:
    """``x (B, D) -> p (B, C)``: the classifier's class probabilities of the images ``g(x)``.

    A pytree: the generator's weights reach the compiled program as inputs, so every call with
    the same image batch shares one compilation.
    """

    g: Callable
    classifier: Callable

    def __call__(self, x):
        return jax.nn.softmax(self.classifier(self.g(x)), axis=-1)


@functools.partial(jax.jit, static_argnames=("kind",))
def _edit_block(z, mask, amount, kind):
    n, d = z.shape
    edited = apply_intervention(z[:, None, :], mask[None].astype(z.dtype), amount[None].astype(z.dtype), kind)
    return edited.reshape(n * mask.shape[0], d)


def intervention_probs(g: Callable, classifier: Callable, z, mask, amount, *, kind: str = "set",
                       chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                       progress: bool | Callable = False) -> jax.Array:
    """Class probabilities of the images of M interventions of each of N samples.

    The ``N * M`` edited latents are made in blocks of samples (at most ``MAX_ROWS`` latents)
    and generated in chunks of ``chunk_size`` images: every call of the generator has the same
    shape, whatever N and M, so it compiles once.

    Args:
      g: batched generator ``(B, D) -> images (B, ...)`` (any space: Z, W, ...).
      classifier: batched ``images -> logits (B, C)``; probabilities are its softmax, the
        concept score of Li et al. (the follow-up's code scores the class probability).
      z: (N, D) latents.
      mask: (M, D) intervention weights; amount: (M, D) amounts (see :func:`apply_intervention`).
      kind: ``"set"``, ``"shift"`` or ``"scale"``.
      chunk_size: images per compiled call (default ``DEFAULT_IMAGES_PER_CALL``).
      mesh, use_pmap, progress: see :func:`jaxlatent.engine.parallel.map_batched`.

    Returns:
      (N, M, C) probabilities.
    """
    z = check_latents(z, "intervention_probs")
    check_kind(kind, "intervention_probs")
    mask = jnp.atleast_2d(jnp.asarray(mask, jnp.float32))
    amount = jnp.broadcast_to(jnp.asarray(amount, jnp.float32), mask.shape)
    if mask.shape[1] != z.shape[1]:
        raise ValueError(f"intervention_probs: masks have {mask.shape[1]} dimensions, latents {z.shape[1]}")
    n, m = z.shape[0], mask.shape[0]
    chunk = DEFAULT_IMAGES_PER_CALL if chunk_size is None else max(1, int(chunk_size))
    block = max(1, MAX_ROWS // m)
    scores = ConceptScores(g, classifier)
    out = []
    for start in range(0, n, block):
        edited = _edit_block(z[start:start + block], mask, amount, kind)
        rows = edited.shape[0]
        # map_batched shortens the chunk to a smaller batch: pad instead, to keep one shape
        p = map_batched(scores, pad_rows(edited, chunk), chunk_size=chunk, mesh=mesh, use_pmap=use_pmap,
                        progress=progress)
        out.append(p[:rows].reshape(-1, m, p.shape[-1]))
    return out[0] if len(out) == 1 else jnp.concatenate(out)


def class_probs(g: Callable, classifier: Callable, z, **options) -> jax.Array:
    """(N, C) class probabilities of ``g(z)``; options as for :func:`intervention_probs`."""
    z = check_latents(z, "class_probs")
    return intervention_probs(g, classifier, z, jnp.zeros((1, z.shape[1])), 0.0, **options)[:, 0]


def select_samples(probs: jax.Array, *, source: int | None, target: int | None,
                   min_prob: float = 0.0, where: str = "select_samples") -> np.ndarray:
    """Indices of the samples a translation starts from.

    Args:
      probs: (N, C) base class probabilities.
      source: keep samples whose most probable class is ``source`` with probability at least
        ``min_prob``; None: keep every sample not already in ``target``.
      target: the class translated to (None: no exclusion).

    Returns:
      (n,) int indices into the N samples; an error when none is left.
    """
    p = np.asarray(probs)
    label = p.argmax(axis=1)
    if source is not None:
        keep = (label == source) & (p[:, source] >= min_prob)
        what = f"classified as {source} with probability >= {min_prob}"
    else:
        keep = label != target if target is not None else np.ones(len(p), bool)
        what = f"not classified as {target}"
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise ValueError(f"{where}: none of the {len(p)} samples is {what}; draw more samples or "
                         "lower min_prob")
    return idx


def rebuild(static, dyn):
    """A callable pytree from :func:`jaxlatent.engine.parallel.split_callable`'s two parts.

    For programs that are not batch maps (Method B's optimisation): the static part is a jit
    static argument, the arrays (a generator's weights) are inputs, not baked-in constants.
    """
    treedef, fixed = static
    it = iter(dyn)
    return jax.tree_util.tree_unflatten(treedef, [next(it) if s is None else s for s in fixed])
