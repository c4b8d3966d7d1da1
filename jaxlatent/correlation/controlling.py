"""Controlling sets: the few latent dimensions that move samples into a concept (Li et al. 2020).

Li, Tao, Niu & Li (ICPR 2020) derive, per concept, "a set of controlling latent variables" by
two methods, and translate images between classes by extreme interventions on it. Their
formulas are not public; the design here is ours (``docs/correlation.md``):

* The success curve ``S(k)``: intervene jointly on the first ``k`` dimensions of a ranking,
  ``z_i <- center_i + d_i a scale_i`` (``set`` at magnitude ``a`` in standard units, direction
  ``d_i = +-1``), and count the samples whose most probable class becomes the target.
* Size rule: the smallest ``k`` with ``S(k) >= success_target``; when no ``k`` reaches it,
  the smallest ``k`` within ``saturation`` of the best ``S`` (where adding dimensions stops
  paying).
* Method A (sequential intervention): rank dimensions by the sensitivity of the target
  probability to single-dimension interventions at ``+-a`` (:mod:`.correlation`), directions by
  the sign of their effect; ``"ranked"`` takes that order, ``"greedy"`` adds at each step the
  dimension that raises ``S`` (then the mean target probability) most.
* Method B (optimisation): rank by ``|w|`` of the tanh weights of :mod:`.tanh_weights`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.effects import ConceptEffects, concept_effects
from jaxlatent.correlation.interventions import (amounts, class_probs, intervention_probs,
                                              select_samples, standard_units)
from jaxlatent.engine.jacobian import check_latents
from jaxlatent.correlation.tanh_weights import optimize_weights

METHODS = ("sequential", "optimize")
SELECTIONS = ("ranked", "greedy")


class ControllingSet(NamedTuple):
    """A controlling set of latent dimensions for one target class (a pytree).

    dims: (k,) the set, ascending. signs: (k,) +1/-1, the direction of each towards the target.
    all_signs: (D,) +1/-1 for every dimension (the same rule; used by the baselines).
    ranking: (K,) dimensions in the order they were added (the set is its first k).
    scores: (D,) ranking score (Method A: sensitivity of ``p_t``; Method B: ``|w|``).
    weights: (D,) signed weights (Method A: effect of ``+a`` over ``-a`` on ``p_t``; Method B:
      ``tanh(theta)``).
    success: (K,) ``S(k)``, share of samples classified as the target with the first k ranked
      dimensions intervened. target_prob: (K,) mean target probability at each k.
    num_samples: () samples the set was found on.
    """

    dims: jax.Array
    signs: jax.Array
    all_signs: jax.Array
    ranking: jax.Array
    scores: jax.Array
    weights: jax.Array
    success: jax.Array
    target_prob: jax.Array
    num_samples: jax.Array


def choose_size(success, success_target: float = 0.9, saturation: float = 0.02) -> int:
    """The size rule: first k with ``S(k) >= success_target``, else first k within ``saturation`` of max S."""
    s = np.asarray(success, np.float64)
    hit = np.flatnonzero(s >= success_target)
    if hit.size:
        return int(hit[0]) + 1
    return int(np.flatnonzero(s >= s.max() - saturation)[0]) + 1


def set_masks(sets: np.ndarray, directions, magnitude: float, center, scale, d: int):
    """Masks and amounts (M, D) of joint ``set`` interventions on the rows of a (M, D) 0/1 array."""
    mask = jnp.asarray(sets, jnp.float32)
    value = jnp.asarray(directions, jnp.float32) * magnitude
    center, scale = standard_units(d, center, scale)
    return mask, mask * amounts(value, center, scale, "set")[None]


def success_curve(g: Callable, classifier: Callable, z, target: int, ranking, directions, *,
                  magnitude: float = 3.0, center=None, scale=None, **options):
    """``S(k)`` and the mean target probability for the prefixes of a ranking.

    Args:
      g, classifier: batched generator and ``images -> logits`` classifier.
      z: (N, D) samples. target: class index.
      ranking: (K,) dimensions; prefix k intervenes on ``ranking[:k]``.
      directions: (D,) +1/-1 per dimension; ``z_i <- center_i + directions_i * magnitude * scale_i``.
      options: chunk_size, mesh, use_pmap, progress (:func:`.intervention_probs`).

    Returns:
      ``(success (K,), target_prob (K,))``.
    """
    z = check_latents(z, "success_curve")
    d = z.shape[1]
    ranking = np.asarray(ranking, np.int64).reshape(-1)
    sets = np.zeros((ranking.size, d), np.float32)
    for k in range(ranking.size):
        sets[k:, ranking[k]] = 1.0
    mask, amount = set_masks(sets, directions, magnitude, center, scale, d)
    p = intervention_probs(g, classifier, z, mask, amount, kind="set", **options)
    return (jnp.mean(jnp.argmax(p, axis=-1) == target, axis=0).astype(jnp.float32),
            jnp.mean(p[..., target], axis=0))


def _signs(x) -> np.ndarray:
    s = np.sign(np.asarray(x, np.float64))
    return np.where(s == 0, 1.0, s).astype(np.float32)


def ranked_order(scores, weights) -> tuple[np.ndarray, np.ndarray]:
    """Method A's order and directions from a target's single-dimension measures.

    Args:
      scores: (D,) sensitivity of the target probability per dimension.
      weights: (D,) signed effect of ``+a`` over ``-a`` on it.

    Returns:
      ``(order (D,), directions (D,))``: dimensions by decreasing score (ties in index order)
      and ``sign(weights)`` as +1/-1 (a zero effect counts as +1).
    """
    return np.argsort(-np.asarray(scores), kind="stable"), _signs(weights)


def _finish(ranking, scores, weights, directions, success, target_prob, n, success_target, saturation):
    k = choose_size(success, success_target, saturation)
    dims = np.sort(np.asarray(ranking)[:k])
    return ControllingSet(dims=jnp.asarray(dims, jnp.int32), signs=jnp.asarray(directions[dims]),
                          all_signs=jnp.asarray(directions), ranking=jnp.asarray(ranking, jnp.int32),
                          scores=jnp.asarray(scores), weights=jnp.asarray(weights),
                          success=jnp.asarray(success), target_prob=jnp.asarray(target_prob),
                          num_samples=jnp.asarray(n, jnp.int32))


def _greedy(g, classifier, z, target, first, directions, max_k, success_target, magnitude, center,
            scale, options):
    d = z.shape[1]
    chosen, success, target_prob = [], [], []
    for _ in range(max_k):
        sets = np.zeros((d, d), np.float32)           # row r: chosen + {r}; always D rows (one compile)
        sets[:, chosen] = 1.0
        sets[np.arange(d), np.arange(d)] = 1.0
        mask, amount = set_masks(sets, directions, magnitude, center, scale, d)
        p = np.asarray(intervention_probs(g, classifier, z, mask, amount, kind="set", **options))
        s = (p.argmax(-1) == target).mean(0)
        t = p[..., target].mean(0)
        s[chosen], t[chosen] = -1.0, -1.0
        best = int(np.lexsort((first, -t, -s))[0])   # most S, then most p_t, then Method A's rank
        chosen.append(best)
        success.append(s[best])
        target_prob.append(t[best])
        if s[best] >= success_target:
            break
    return np.asarray(chosen), np.asarray(success, np.float32), np.asarray(target_prob, np.float32)


def _source(g, classifier, z, target, source, min_prob, options, where):
    z = check_latents(z, where)
    probs = class_probs(g, classifier, z, **options)
    return z[select_samples(probs, source=source, target=target, min_prob=min_prob, where=where)]


def sequential_set(g: Callable, classifier: Callable, z, target: int, *, source: int | None = None,
                   min_prob: float = 0.0, selection: str = "ranked", magnitude: float = 3.0,
                   success_target: float = 0.9, saturation: float = 0.02, max_k: int | None = None,
                   center=None, scale=None, effects: ConceptEffects | None = None,
                   **options) -> ControllingSet:
    """Method A: the controlling set by sequential intervention (Li et al., ICPR 2020).

    Args: see :func:`controlling_set`. selection: ``"ranked"`` (sensitivity order, S(k) for
      k = 1..max_k, default max_k = D) or ``"greedy"`` (max_k steps at most, default 16, each
      trying every remaining dimension; stops when S reaches ``success_target``).
      effects: :class:`~jaxlatent.correlation.effects.ConceptEffects` over all D dimensions to
      rank by (e.g. one population-wide measurement shared by several targets); default:
      measured on the selected samples at ``+-magnitude``.

    Returns:
      :class:`ControllingSet`.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"controlling_set: selection must be one of {SELECTIONS}, found {selection!r}")
    zs = _source(g, classifier, z, target, source, min_prob, options, "controlling_set")
    d = zs.shape[1]
    eff = effects
    if eff is None:
        eff = concept_effects(g, classifier, zs, values=(-magnitude, magnitude), center=center,
                              scale=scale, **options)
    elif eff.sensitivity.shape[0] != d:
        raise ValueError(f"controlling_set: effects cover {eff.sensitivity.shape[0]} dimensions, "
                         f"the latents have {d}")
    scores = np.asarray(eff.sensitivity[:, target])
    weights = np.asarray(eff.effect[:, target])
    order, directions = ranked_order(scores, weights)
    if selection == "ranked":
        max_k = d if max_k is None else min(int(max_k), d)
        ranking = order[:max_k]
        success, target_prob = success_curve(g, classifier, zs, target, ranking, directions,
                                             magnitude=magnitude, center=center, scale=scale, **options)
    else:
        max_k = min(16, d) if max_k is None else min(int(max_k), d)
        rank_of = np.empty(d, np.int64)
        rank_of[order] = np.arange(d)
        ranking, success, target_prob = _greedy(g, classifier, zs, target, rank_of, directions, max_k,
                                                success_target, magnitude, center, scale, options)
    return _finish(ranking, scores, weights, directions, np.asarray(success), np.asarray(target_prob),
                   zs.shape[0], success_target, saturation)


def optimized_set(g: Callable, classifier: Callable, z, target: int, *, source: int | None = None,
                  min_prob: float = 0.0, objective: str = "signed", magnitude: float = 3.0,
                  success_target: float = 0.9, saturation: float = 0.02, max_k: int | None = None,
                  center=None, scale=None, key: jax.Array | None = None, fit: dict | None = None,
                  **options) -> ControllingSet:
    """Method B: the controlling set from optimised tanh weights (Li et al., IEEE TAI 2021).

    Args: see :func:`controlling_set`. objective: ``"signed"`` (ours) or ``"follow_up"``
      (:mod:`jaxlatent.correlation.tanh_weights`). fit: further arguments of
      :func:`~jaxlatent.correlation.tanh_weights.optimize_weights` (``penalty``, ``steps``,
      ``learning_rate``, ``batch_size``, ``epochs``; ``tanh_weights.FOLLOW_UP`` is the
      follow-up's configuration). key: sample order of the optimisation.

    Returns:
      :class:`ControllingSet` ranked by ``|w|``. Directions are ``sign(w)`` for the signed
      objective; the follow-up's objective is symmetric in ``w``, so there they come from the
      signed effect of single-dimension interventions at ``+-magnitude``, as in Method A.
    """
    zs = _source(g, classifier, z, target, source, min_prob, options, "controlling_set")
    d = zs.shape[1]
    w, _ = optimize_weights(g, classifier, zs, target, objective=objective, magnitude=magnitude,
                            center=center, scale=scale, key=key, **(fit or {}))
    w = np.asarray(w)
    if objective == "signed":
        directions = _signs(w)
    else:
        eff = concept_effects(g, classifier, zs, values=(-magnitude, magnitude), center=center,
                              scale=scale, **options)
        directions = _signs(eff.effect[:, target])
    scores = np.abs(w)
    max_k = d if max_k is None else min(int(max_k), d)
    ranking = np.argsort(-scores, kind="stable")[:max_k]
    success, target_prob = success_curve(g, classifier, zs, target, ranking, directions,
                                         magnitude=magnitude, center=center, scale=scale, **options)
    return _finish(ranking, scores, w, directions, np.asarray(success), np.asarray(target_prob),
                   zs.shape[0], success_target, saturation)


def controlling_set(g: Callable, classifier: Callable, z, *, target: int, source: int | None = None,
                    method: str = "sequential", magnitude: float = 3.0, success_target: float = 0.9,
                    saturation: float = 0.02, max_k: int | None = None, min_prob: float = 0.0,
                    selection: str = "ranked", objective: str = "signed", center=None, scale=None,
                    key: jax.Array | None = None, fit: dict | None = None, chunk_size: int | None = None,
                    mesh=None, use_pmap: bool = False, progress: bool | Callable = False) -> ControllingSet:
    """The controlling set of latent dimensions for a target class (Li, Tao, Niu & Li, ICPR 2020).

    Args:
      g: batched generator ``(B, D) -> images`` in the space of ``z`` (Z, or W through
        ``model.fn("image", wrt="w")``). classifier: batched ``images -> logits (B, C)``.
      z: (N, D) latents.
      target: the class to move samples into.
      source: translate from this class only (samples whose most probable class is ``source``
        with probability >= ``min_prob``); None: every sample not already in ``target``.
      method: ``"sequential"`` (Method A, :func:`sequential_set`) or ``"optimize"`` (Method B,
        :func:`optimized_set`).
      magnitude: ``a``, in standard units ``center + a * scale``. success_target, saturation,
        max_k: the size rule (:func:`choose_size`). min_prob: as for ``source``.
      selection: Method A's sample selection. objective, key, fit: Method B's
        (:func:`jaxlatent.correlation.tanh_weights.optimize_weights`; ``key`` typed or legacy).
      chunk_size, mesh, use_pmap, progress: execution options, as for every analysis.

    Returns:
      :class:`ControllingSet`: ``dims`` ascending, ``signs`` +1/-1, the success curve ``S(k)``.
    """
    shared = dict(source=source, min_prob=min_prob, magnitude=magnitude, success_target=success_target,
                  saturation=saturation, max_k=max_k, center=center, scale=scale, chunk_size=chunk_size,
                  mesh=mesh, use_pmap=use_pmap, progress=progress)
    if method == "sequential":
        return sequential_set(g, classifier, z, target, selection=selection, **shared)
    if method == "optimize":
        return optimized_set(g, classifier, z, target, objective=objective, key=key, fit=fit, **shared)
    raise ValueError(f"controlling_set: method must be one of {METHODS}, found {method!r}")
