"""Correlation analysis on a generator (Li, Tao, Niu & Li, ICPR 2020), as the report and a command run it.

Shared by ``jaxlatent correlation`` and the report section :mod:`jaxlatent.report.sections.correlation`. On a population of latents it measures the
concept effects of every latent dimension on every class of the classifier, ranks the
dimensions per target class (Method A: sensitivity order, direction = sign of the effect),
and reads, for every (source, target) pair at once, the success curve ``S(k)`` of the top-k
dimensions set to ``+-a`` on the source's samples: the controlling-set size of the pair is the
size rule applied to that curve. One pair is worked out in full: ``S(k)`` of both methods
against random dimensions, and its translation over a sweep of magnitudes against k random
dimensions and all dimensions.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.controlling import (choose_size, optimized_set, set_masks,
                                            success_curve)
from jaxlatent.correlation.effects import concept_effects
from jaxlatent.correlation.interventions import apply_intervention, class_probs, intervention_probs
from jaxlatent.correlation.translation import translate
from jaxlatent.workflows.spaces import latent_space, z_units

__all__ = ["Sizes", "FULL", "QUICK", "Population", "population", "analyse", "translation_images", "summarize",
           "raw_arrays"]


class Sizes(NamedTuple):
    """How much the analysis computes.

    population: latents (seeds 0..population-1). effects: the first ones measured by
    :func:`concept_effects`. max_k: longest ranking prefix. bootstrap: resamples of the intervals
    (0: none). steps: Method B optimisation steps (0: Method B is left out; its gradient
    program takes longer to compile than the rest of the quick section runs).
    magnitude: ``a`` of the controlling sets.
    """

    population: int
    effects: int
    max_k: int
    bootstrap: int
    steps: int
    magnitude: float = 3.0


FULL = Sizes(population=96, effects=24, max_k=16, bootstrap=200, steps=40)
QUICK = Sizes(population=32, effects=6, max_k=8, bootstrap=0, steps=0)


class Population(NamedTuple):
    """Latents of one space and the generator on it: ``g(x)`` images; ``center``/``scale`` its standard units."""

    name: str
    g: Callable
    x: np.ndarray
    center: np.ndarray | None
    scale: np.ndarray | None


def population(model, z, space: str = "z", *, truncation_psi: float | None = None,
               class_idx: int | None = None) -> Population:
    """The latents ``z`` in Z or W (StyleGAN2's w broadcast to every layer) and the generator there.

    In W the standard units are the population's mean and standard deviation per dimension. In
    Z they are :func:`jaxlatent.workflows.spaces.z_units`: z's own for N(0, I) latents, the
    standard deviation of a BigGAN's truncated draws for a BigGAN.
    """
    sp = latent_space(model, space, truncation_psi=truncation_psi, class_idx=class_idx, where="correlation")
    x = np.asarray(sp.points(jnp.asarray(z, jnp.float32)), np.float32)
    if space == "z":
        return Population("z", sp.image, x, *z_units(model, truncation_psi=truncation_psi))
    return Population("w", sp.image, x, x.mean(0), x.std(0))


def pair_curves(g, logits, x, rankings, directions, magnitude, center, scale, **options):
    """(T, N, K) hits: sample n lands in target t with the top-k of ``rankings[t]`` set to ``+-a``."""
    d = x.shape[1]
    out = []
    for t, ranking in enumerate(rankings):
        sets = np.zeros((len(ranking), d), np.float32)
        for k, dim in enumerate(ranking):
            sets[k:, dim] = 1.0
        mask, amount = set_masks(sets, directions[t], magnitude, center, scale, d)
        p = intervention_probs(g, logits, x, mask, amount, kind="set", **options)
        out.append(np.asarray(jnp.argmax(p, axis=-1) == t))
    return np.stack(out)


def analyse(space: Population, logits: Callable, sizes: Sizes, *, key: jax.Array, pair=None,
            chunk_size: int | None = None, progress: bool | Callable = False) -> dict[str, Any]:
    """Every number of the section: effects, per-pair sizes and success, one pair in full.

    Returns a dict of numpy arrays and plain numbers (``results`` for JSON, ``arrays`` raw).
    """
    opts = dict(chunk_size=chunk_size, progress=progress)
    units = dict(center=space.center, scale=space.scale)
    g, x, a = space.g, space.x, sizes.magnitude
    k_eff, k_b, k_rand = jax.random.split(key, 3)
    base = np.asarray(class_probs(g, logits, x, **opts))
    label = base.argmax(1)
    classes = base.shape[1]
    eff = concept_effects(g, logits, x[:sizes.effects], values=(-a, a),
                          key=k_eff if sizes.bootstrap else None, num_bootstrap=sizes.bootstrap,
                          **units, **opts)
    sens, effect = np.asarray(eff.sensitivity), np.asarray(eff.effect)
    directions = np.where(effect >= 0, 1.0, -1.0).T.astype(np.float32)          # (T, D)
    max_k = min(sizes.max_k, x.shape[1])
    rankings = np.argsort(-sens.T, axis=1, kind="stable")[:, :max_k]              # (T, K)
    hits = pair_curves(g, logits, x, rankings, directions, a, **units, **opts)     # (T, N, K)
    size = np.zeros((classes, classes), np.int64)
    success = np.full((classes, classes), np.nan)
    curves = np.full((classes, classes, max_k), np.nan)
    for s in range(classes):
        rows = label == s
        if not rows.any():
            continue
        for t in range(classes):
            if t != s:
                curves[s, t] = hits[t][rows].mean(0)
                size[s, t] = choose_size(curves[s, t])
                success[s, t] = curves[s, t, size[s, t] - 1]
    counts = np.bincount(label, minlength=classes)
    if pair is None:
        s = int(np.argmax(counts))
        t = int(np.argsort(-counts, kind="stable")[1])
    else:
        s, t = (int(v) for v in pair)
    a_set = np.sort(rankings[t][:size[s, t]])
    b = None
    if sizes.steps:
        b = optimized_set(g, logits, x, t, source=s, max_k=max_k, magnitude=a, key=k_b,
                          fit=dict(steps=sizes.steps), **units, **opts)
    rand_rank = np.asarray(jax.random.permutation(k_rand, x.shape[1]))[:max_k]
    rand_curve, _ = success_curve(g, logits, x[label == s], t, rand_rank, directions[t], magnitude=a,
                                  **units, **opts)
    tr = translate(g, logits, x, target=t, dims=a_set, signs=directions[t], source=s, key=k_rand, num_random=4,
                   **units, **opts)
    return dict(base=base, label=label, counts=counts, effects=eff, rankings=rankings,
                directions=directions, size=size, success=success, curves=curves, pair=(s, t),
                set_a=a_set, set_b=b, random_curve=np.asarray(rand_curve), translation=tr)


def translation_images(space: Population, res: dict, magnitude: float, rows: int = 4):
    """(rows, 1 + T) images: a sample of each of the first classes, then translated to every class."""
    label, size = res["label"], res["size"]
    picks = [int(np.flatnonzero(label == c)[0]) for c in np.unique(label)][:rows]
    d = space.x.shape[1]
    center = np.zeros(d, np.float32) if space.center is None else space.center
    scale = np.ones(d, np.float32) if space.scale is None else space.scale
    latents = []
    for n in picks:
        latents.append(space.x[n])
        for t in range(len(res["rankings"])):
            mask = np.zeros(d, np.float32)
            if t != label[n]:
                mask[res["rankings"][t][:size[label[n], t]]] = 1.0
            target = center + res["directions"][t] * magnitude * scale
            latents.append(np.asarray(apply_intervention(space.x[n], mask, target, "set")))
    return np.asarray(space.g(jnp.asarray(np.stack(latents)))), 1 + len(res["rankings"])


def summarize(res: dict) -> dict:
    """Plain numbers of an :func:`analyse` result for results.json and the closing tables."""
    size, success = res["size"], res["success"]
    off = ~np.eye(len(size), dtype=bool) & np.isfinite(success)
    s, t = res["pair"]
    tr, b = res["translation"], res["set_b"]
    return {"pair": [s, t], "samples_per_class": res["counts"].tolist(),
            "median_set_size": float(np.median(size[off])), "mean_success": float(np.mean(success[off])),
            "share_pairs_reaching_0.9": float(np.mean(success[off] >= 0.9)),
            "set_size": size.tolist(), "success": np.where(np.isfinite(success), success, -1).tolist(),
            "pair_method_a": {"dims": res["set_a"].tolist(), "success": res["curves"][s, t].tolist()},
            "pair_method_b": None if b is None else {"dims": np.asarray(b.dims).tolist(),
                                                     "success": np.asarray(b.success).tolist()},
            "pair_random_dims": {"success": res["random_curve"].tolist()},
            "translation": {k: np.asarray(v).tolist() for k, v in tr._asdict().items()}}


def raw_arrays(res: dict) -> dict[str, np.ndarray]:
    e = res["effects"]
    out = {"sensitivity": e.sensitivity, "effect": e.effect, "correlation": e.correlation,
           "flip_rate": e.flip_rate, "set_size": res["size"], "success": res["success"],
           "curves": res["curves"], "rankings": res["rankings"], "label": res["label"]}
    if e.intervals is not None:
        out["sensitivity_interval"] = e.intervals.sensitivity
    return {k: np.asarray(v) for k, v in out.items()}


