"""Class-to-class translation by extreme intervention on a controlling set (Li et al., ICPR 2020).

Li et al. report that extreme interventions on the controlling set of a class translate images
of one class into another. We measure it over a sweep of magnitudes ``a``: the set's
dimensions are set to ``center + sign * a * scale`` and the images are classified again.
Two baselines at each magnitude, the comparison being ours: ``k`` random dimensions (with the
same direction rule, ``directions[random dims]``; averaged over draws) and all ``D``
dimensions.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.controlling import set_masks
from jaxlatent.correlation.interventions import class_probs, intervention_probs, select_samples
from jaxlatent.engine.jacobian import check_latents

MAGNITUDES = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0)


class Translation(NamedTuple):
    """Translation outcomes over magnitudes (a pytree; every field (A,) except noted).

    magnitudes: (A,) the magnitudes ``a``.
    success: share of samples whose most probable class becomes the target.
    target_prob: mean target probability. source_share: share still in their starting class.
    random_success, random_target_prob, random_source_share: the same for k random dimensions.
    all_success, all_target_prob, all_source_share: the same for every dimension.
    num_samples: () samples translated.
    """

    magnitudes: jax.Array
    success: jax.Array
    target_prob: jax.Array
    source_share: jax.Array
    random_success: jax.Array
    random_target_prob: jax.Array
    random_source_share: jax.Array
    all_success: jax.Array
    all_target_prob: jax.Array
    all_source_share: jax.Array
    num_samples: jax.Array


def translate(g: Callable, classifier: Callable, z, *, target: int, dims, signs, source: int | None = None,
              min_prob: float = 0.0, magnitudes: Sequence[float] = MAGNITUDES, key: jax.Array,
              num_random: int = 8, center=None, scale=None, chunk_size: int | None = None, mesh=None,
              use_pmap: bool = False, progress: bool | Callable = False) -> Translation:
    """Translate samples into ``target`` by setting a controlling set to extreme values.

    Args:
      g: batched generator ``(B, D) -> images``. classifier: batched ``images -> logits (B, C)``.
      z: (N, D) latents.
      target: class translated to.
      dims: (k,) the controlling set (``ControllingSet.dims``).
      signs: (D,) +1/-1 for every dimension (``ControllingSet.all_signs``).
      source: translate samples of this class (probability >= ``min_prob``); None: every
        sample not already in ``target``.
      magnitudes: (A,) values of ``a`` in standard units.
      key: PRNG key of the random-dimension baseline.
      num_random: random draws of k dimensions per magnitude.
      center, scale: (D,) standard units (default 0 and 1).
      chunk_size, mesh, use_pmap, progress: execution options, as for every analysis.

    Returns:
      :class:`Translation`.
    """
    z = check_latents(z, "translate")
    d = z.shape[1]
    dims = np.asarray(dims, np.int64).reshape(-1)
    options = dict(chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap, progress=progress)
    directions = np.asarray(signs, np.float32).reshape(-1)
    if directions.shape != (d,):
        raise ValueError(f"translate: signs must have shape ({d},), found {directions.shape}")
    if dims.size == 0 or dims.min() < 0 or dims.max() >= d:
        raise ValueError(f"translate: dims must be a non-empty subset of [0, {d}), found {dims.tolist()}")
    if num_random < 1:
        raise ValueError(f"translate: num_random must be at least 1, found {num_random}")
    base = np.asarray(class_probs(g, classifier, z, **options))
    idx = select_samples(base, source=source, target=target, min_prob=min_prob, where="translate")
    zs, start = z[idx], base[idx].argmax(axis=1)
    mags = np.asarray(magnitudes, np.float32).reshape(-1)

    sets = [np.zeros(d, np.float32) for _ in range(num_random + 2)]
    sets[0][dims] = 1.0
    for r, k in enumerate(jax.random.split(key, num_random)):
        sets[1 + r][np.asarray(jax.random.permutation(k, d))[:dims.size]] = 1.0
    sets[-1][:] = 1.0
    sets = np.stack(sets)                                               # (R + 2, D)
    masks, amounts = [], []
    for a in mags:
        m, am = set_masks(sets, directions, float(a), center, scale, d)
        masks.append(m)
        amounts.append(am)
    p = intervention_probs(g, classifier, zs, jnp.concatenate(masks), jnp.concatenate(amounts),
                           kind="set", **options)
    p = np.asarray(p).reshape(zs.shape[0], mags.size, num_random + 2, -1)   # (n, A, R + 2, C)
    label = p.argmax(-1)
    succ = (label == target).mean(0)                                         # (A, R + 2)
    prob = p[..., target].mean(0)
    stay = (label == start[:, None, None]).mean(0)
    rnd = slice(1, num_random + 1)
    f = lambda x: jnp.asarray(x, jnp.float32)
    return Translation(magnitudes=f(mags), success=f(succ[:, 0]), target_prob=f(prob[:, 0]),
                       source_share=f(stay[:, 0]), random_success=f(succ[:, rnd].mean(1)),
                       random_target_prob=f(prob[:, rnd].mean(1)),
                       random_source_share=f(stay[:, rnd].mean(1)), all_success=f(succ[:, -1]),
                       all_target_prob=f(prob[:, -1]), all_source_share=f(stay[:, -1]),
                       num_samples=jnp.asarray(zs.shape[0], jnp.int32))
