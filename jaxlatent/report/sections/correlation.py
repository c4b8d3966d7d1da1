"""Correlation analysis on a generator (Li, Tao, Niu & Li, ICPR 2020): the report section and its glue.

Shared by ``jaxlatent correlation`` and the report. On a population of latents it measures the
concept effects of every latent dimension on every class of the classifier, ranks the
dimensions per target class (Method A: sensitivity order, direction = sign of the effect),
and reads, for every (source, target) pair at once, the success curve ``S(k)`` of the top-k
dimensions set to ``+-a`` on the source's samples: the controlling-set size of the pair is the
size rule applied to that curve. One pair is worked out in full: ``S(k)`` of both methods
against random dimensions, and its translation over a sweep of magnitudes against k random
dimensions and all dimensions.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.report import plots as viz
from jaxlatent.correlation.controlling import (choose_size, optimized_set, set_masks,
                                            success_curve)
from jaxlatent.correlation.effects import concept_effects
from jaxlatent.correlation.interventions import class_probs, edit, intervention_probs
from jaxlatent.correlation.translation import translate
from jaxlatent.engine.latents import latents_from_seeds

__all__ = ["Sizes", "FULL", "QUICK", "Space", "latent_space", "analyse", "add_section"]

SPACES = ("z", "w")


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


class Space(NamedTuple):
    """Latents and generator of one space: ``g(x)`` images; ``center``/``scale`` its standard units."""

    name: str
    g: Callable
    x: np.ndarray
    center: np.ndarray | None
    scale: np.ndarray | None


def latent_space(model, z, space: str = "z", truncation_psi: float = 1.0) -> Space:
    """The generator and latents in Z or W (StyleGAN2's w broadcast to every layer).

    In W the standard units are the population's mean and standard deviation per dimension.
    """
    if space not in SPACES:
        raise ValueError(f"correlation: space must be one of {SPACES}, found {space!r}")
    stylegan2 = model.config.family == "stylegan2"
    options = {"truncation_psi": truncation_psi} if stylegan2 and truncation_psi != 1.0 else {}
    if space == "z":
        return Space("z", model.fn("image", **options), np.asarray(z, np.float32), None, None)
    if not stylegan2:
        raise ValueError(f"correlation: space 'w' needs a StyleGAN2, this model is {model.config.family}")
    x = np.asarray(model.fn("w", **options)(jnp.asarray(z)), np.float32)
    return Space("w", model.fn("image", wrt="w"), x, x.mean(0), x.std(0))


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


def analyse(space: Space, logits: Callable, sizes: Sizes, key: jax.Array, *, pair=None,
            chunk_size: int | None = None, progress: Callable | None = None) -> dict[str, Any]:
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
    tr = translate(g, logits, x, t, a_set, directions[t], source=s, key=k_rand, num_random=4,
                   **units, **opts)
    return dict(base=base, label=label, counts=counts, effects=eff, rankings=rankings,
                directions=directions, size=size, success=success, curves=curves, pair=(s, t),
                set_a=a_set, set_b=b, random_curve=np.asarray(rand_curve), translation=tr)


def translation_images(space: Space, res: dict, magnitude: float, rows: int = 4):
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
            latents.append(np.asarray(edit(space.x[n], mask, target, "set")))
    return np.asarray(space.g(jnp.asarray(np.stack(latents)))), 1 + len(res["rankings"])


def add_section(page, model, *, quick: bool, key, classifier, arrays: dict, truncation_psi: float,
                progress: bool) -> None:
    """Report section: importance heatmap, S(k) of both methods, translation matrix and grids."""
    page.section("Correlation analysis and controlling sets (Li, Tao, Niu & Li, ICPR 2020)",
                 "Single latent dimensions are set to +-a (in Z, a in standard deviations) and the "
                 "classifier's probabilities are read; the controlling set of a (source, target) "
                 "pair is the smallest prefix of the target's sensitivity ranking whose joint "
                 "intervention moves 90% of the source's samples into the target (or where the "
                 "success stops growing).")
    if classifier is None:
        page.text("No classifier was given: the concept scores this section needs are unavailable.")
        return
    start = time.perf_counter()
    sizes = QUICK if quick else FULL
    z = latents_from_seeds(range(sizes.population), int(model.z_dim))
    space = latent_space(model, z, "z", truncation_psi)
    res = analyse(space, classifier.logits, sizes, key)
    write_figures(page, space, res, sizes, prefix="correlation")
    summary = summarize(res)
    summary["seconds"] = time.perf_counter() - start
    summary["sizes"] = sizes._asdict()
    page.results["correlation"] = summary
    for name, value in raw_arrays(res).items():
        arrays[f"correlation/{name}"] = value


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


def importance_figure(sensitivity, path: str, title: str) -> str:
    """Heatmap of a (dims, classes) matrix, tall enough to read every dimension."""
    import matplotlib  # noqa: PLC0415  (plotting only, as in jaxlatent.report.plots)

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    m = np.asarray(sensitivity, np.float64)
    fig, ax = plt.subplots(figsize=(4.8, max(4.0, 0.11 * m.shape[0] + 1.2)))
    im = ax.imshow(m, cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax).set_label("mean max |change of p|")
    ax.set(xlabel="class", ylabel="latent dimension", title=title)
    ax.set_xticks(range(m.shape[1]))
    ax.title.set_fontsize("small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(page, space: Space, res: dict, sizes: Sizes, prefix: str) -> None:
    e, (s, t) = res["effects"], res["pair"]
    classes = [str(c) for c in range(res["size"].shape[0])]
    sens = np.asarray(e.sensitivity)
    importance_figure(sens, page.path(f"{prefix}_importance.png"),
                      f"sensitivity of p(class) to single dims of {space.name} (set to +-{sizes.magnitude:g})")
    page.figure(f"{prefix}_importance.png", "Importance: latent dimensions (rows) x classes "
                "(columns), mean largest change of the class probability.")
    ks = np.arange(1, res["curves"].shape[-1] + 1)
    b = res["set_b"]
    curves = {"Method A (sensitivity rank)": res["curves"][s, t]}
    if b is not None:
        curves["Method B (tanh weights)"] = np.asarray(b.success)[:len(ks)]
    curves["random dims"] = res["random_curve"]
    viz.plot_lines(ks, curves,
                   page.path(f"{prefix}_success.png"), title=f"S(k): {s} -> {t}",
                   xlabel="k (dimensions set jointly)", ylabel="share classified as target")
    page.figure(f"{prefix}_success.png", f"Success curve of digit {s} -> {t} for the first k "
                "dimensions of each ranking, against a random ranking.")
    viz.plot_heatmap(np.nan_to_num(res["success"], nan=0.0), page.path(f"{prefix}_matrix.png"),
                     title="translation success (rows: source, columns: target)",
                     labels=classes, colorbar_label="share moved into the target")
    page.figure(f"{prefix}_matrix.png", "Success of each pair's controlling set.")
    tr = res["translation"]
    mags = np.asarray(tr.magnitudes)
    page.table(["a", "set: success", "target p", "left in source", "random k: success",
                "all dims: success"],
               [[float(m), float(tr.success[i]), float(tr.target_prob[i]), float(tr.source_share[i]),
                 float(tr.random_success[i]), float(tr.all_success[i])] for i, m in enumerate(mags)])
    images, ncol = translation_images(space, res, sizes.magnitude)
    viz.save_image_grid(images, page.path(f"{prefix}_translations.png"), nrow=ncol)
    page.figure(f"{prefix}_translations.png", "Rows: a sample, then its translation to each class "
                "by its pair's controlling set (the sample's own class: unchanged).")
    off = ~np.eye(len(res["size"]), dtype=bool) & np.isfinite(res["success"])
    page.text(f"Controlling-set size over {int(off.sum())} pairs: median "
              f"{np.median(res['size'][off]):g} of {space.x.shape[1]} dimensions; mean success "
              f"{np.mean(res['success'][off]):.2f}; pair {s} -> {t}: Method A {len(res['set_a'])} dims"
              + ("." if b is None else f", Method B {len(b.dims)} dims.")
              + (" (Quick mode: no Method B, no intervals.)" if b is None else ""))
