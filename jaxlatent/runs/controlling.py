"""Controlling sets over many (source, target) class pairs, streamed (Li, Tao, Niu & Li, ICPR 2020).

Method A of :func:`jaxlatent.correlation.controlling.controlling_set` (``method="sequential"``,
``selection="ranked"``) for every requested pair, over a run's latents, in three stages:

* the run folder, one row per latent: ``base_probs (C,)``, the classifier's probabilities of
  the unedited image; latent ``i`` is a sample of source ``s`` when its most probable class is
  ``s`` with probability ``>= --min-prob`` (:func:`~jaxlatent.correlation.interventions.select_samples`);
* ``sums``, one row per chunk of latents: ``count (S,)`` samples of each requested source and
  the float64 sums over them of the single-dimension measures that rank the dimensions,
  ``sensitivity (S, D, T)`` = ``max_v |p_t(z; i <- v) - p_t(z)|`` and ``effect (S, D, T)`` =
  ``p_t(z; i <- +a) - p_t(z; i <- -a)`` for ``v = +-a`` (``--magnitude``), for the requested
  sources S and targets T (:func:`jaxlatent.correlation.effects.sample_stats`). Memory:
  ``16 S D T`` bytes per chunk, whatever N;
* ``pairs``, one row per pair: the merged sums over the source's samples divided by their
  count are ``concept_effects``' sensitivity and effect on those samples; the ranking, the
  signs, the success curve ``S(k)`` for ``k = 1..--max-k`` on the first ``--curve-samples``
  samples of the source in run order (the stated subsample), and the size rule
  (:func:`~jaxlatent.correlation.controlling.choose_size`).

A pair whose source has no sample among the run's latents gives a row with ``num_samples 0``,
``size 0``, ``ranking`` and ``signs`` of ``-1`` and ``0``, and NaN scores, weights and curve
(the in-memory function raises there; one rare class does not stop a run over many pairs).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.controlling import choose_size, ranked_order, success_curve
from jaxlatent.correlation.interventions import class_probs, intervention_probs, single_dim_grid
from jaxlatent.engine.parallel import pad_rows
from jaxlatent.models.digits import load_classifier
from jaxlatent.runs.registry import CLASS, TRUNC, Analysis, Option, execution, register, tap_fn
from jaxlatent.runs.stages import RunContext, Stage
from jaxlatent.runs.store import Output, RunError
from jaxlatent.workflows.features import check_reads_images
from jaxlatent.workflows.spaces import seed_latents

__all__ = ["parse_pairs"]


@functools.lru_cache(maxsize=4)
def _classifier(path: str | None):
    return load_classifier(path)


def parse_pairs(text: str, classes: int) -> list[tuple[int, int]]:
    """``--class-pairs``: ``"all"`` (every ordered pair of distinct classes) or ``"s:t,s:t"`` -> [(s, t), ...]."""
    if str(text).strip() == "all":
        return [(s, t) for s in range(classes) for t in range(classes) if s != t]
    pairs = []
    for item in str(text).split(","):
        if not item.strip():
            continue
        try:
            s, t = (int(v) for v in item.split(":"))
        except ValueError:
            raise RunError(f"controlling-set: --class-pairs expects all or SOURCE:TARGET,... (e.g. 0:1,3:5), "
                           f"found {text!r}") from None
        if not (0 <= s < classes and 0 <= t < classes) or s == t:
            raise RunError(f"controlling-set: --class-pairs {item.strip()}: source and target must be distinct "
                           f"classes in [0, {classes}) of the classifier")
        pairs.append((s, t))
    if not pairs or len(set(pairs)) != len(pairs):
        raise RunError(f"controlling-set: --class-pairs needs at least one pair and no pair twice, found {text!r}")
    return pairs


def _plan(model, options, ctx: RunContext):
    clf = _classifier(options["classifier"])
    try:
        c = check_reads_images(model, clf.logits, flag="--classifier", what="classifier")
    except ValueError as err:
        raise RunError(f"controlling-set: {err}") from None
    pairs = parse_pairs(options["class_pairs"], c)
    sources = sorted({s for s, _ in pairs})
    targets = sorted({t for _, t in pairs})
    d, a, size = int(model.z_dim), float(options["magnitude"]), ctx.chunk_size
    max_k = d if options["max_k"] is None else int(options["max_k"])
    m = int(options["curve_samples"])
    if not 1 <= max_k <= d or m < 1 or a <= 0:
        raise RunError(f"controlling-set: --max-k must lie in [1, {d}], --curve-samples >= 1 and --magnitude > 0, "
                       f"found {max_k}, {m}, {a}")
    g = tap_fn(model, options)
    min_prob = float(options["min_prob"])

    def load_latents(index, start, stop):
        return pad_rows(ctx.latents(start, stop), size)

    def base(z):
        return {"base_probs": class_probs(g, clf.logits, z, **execution(z, ctx.mesh))}

    first = Stage("", ctx.n, size, (Output("base_probs", (c,), "float32"),), load_latents, base)

    def member(p):
        """(n, S) 1.0 where the latent is a sample of each source (``select_samples``' rule)."""
        label = p.argmax(axis=1)
        return np.stack([(label == s) & (p[:, s] >= min_prob) for s in sources], axis=1).astype(np.float64)

    def load_sums(index, start, stop):
        p = ctx.reader("").read_chunk("base_probs", index)
        return load_latents(index, start, stop), member(p)

    mask, amount = single_dim_grid(d, np.arange(d), (-a, a), kind="set")
    # row 0: no intervention, the base probabilities in the same call (as concept_effects does)
    mask = jnp.concatenate([jnp.zeros((1, d)), mask])
    amount = jnp.concatenate([jnp.zeros((1, d)), amount])

    def sums(inputs):
        z, w = inputs
        p = np.asarray(intervention_probs(g, clf.logits, z, mask, amount, kind="set", **execution(z, ctx.mesh)),
                       np.float64)[:len(w)][..., targets]
        grid = p[:, 1:].reshape(len(w), d, 2, len(targets))        # dims x values (-a, +a)
        sens = np.abs(grid - p[:, :1, None]).max(axis=2)
        eff = grid[:, :, 1] - grid[:, :, 0]
        return {"count": w.sum(0).astype(np.int64)[None], "sensitivity": np.einsum("ns,ndt->sdt", w, sens)[None],
                "effect": np.einsum("ns,ndt->sdt", w, eff)[None]}

    n_chunks = -(-ctx.n // size)
    second = Stage("sums", n_chunks, 1, (Output("count", (len(sources),), "int64"),
                                         Output("sensitivity", (len(sources), d, len(targets)), "float64"),
                                         Output("effect", (len(sources), d, len(targets)), "float64")),
                   lambda index, start, stop: load_sums(index, index * size, min(index * size + size, ctx.n)),
                   sums, unit="chunk", latents_per_row=size)

    cache: dict = {}

    def merged():
        """Per source: sample count and the summed measures, over every chunk in order (float64)."""
        if "sums" not in cache:
            store, acc = ctx.reader("sums"), None
            for index in range(store.n_chunks):
                record = store.record(index)
                part = [store.read_chunk(name, index, record)[0] for name in ("count", "sensitivity", "effect")]
                acc = part if acc is None else [x + y for x, y in zip(acc, part)]
            cache["sums"] = acc
        return cache["sums"]

    def subsample():
        """Per source: its first ``--curve-samples`` samples in run order (one pass over base_probs)."""
        if "first" not in cache:
            store, found = ctx.reader(""), {s: [] for s in sources}
            for index in range(store.n_chunks):
                start, _ = store.rows(index)
                w = member(store.read_chunk("base_probs", index))
                for col, s in enumerate(sources):
                    found[s].extend((start + np.flatnonzero(w[:, col])[:m - len(found[s])]).tolist())
                if all(len(v) >= m for v in found.values()):
                    break
            cache["first"] = {s: np.asarray(v, np.int64) for s, v in found.items()}
        return cache["first"]

    def load_pair(index, start, stop):
        s, t = pairs[index]
        count, sens, eff = merged()
        n_s = int(count[sources.index(s)])
        if n_s == 0:
            return s, t, 0, None
        scores = sens[sources.index(s), :, targets.index(t)] / n_s
        weights = eff[sources.index(s), :, targets.index(t)] / n_s
        order, directions = ranked_order(scores, weights)
        idx = subsample()[s]
        z = seed_latents(model, (ctx.seed + idx).tolist(), truncation_psi=options.get("truncation_psi"))
        return s, t, n_s, (scores, weights, directions, order[:max_k], z)

    def pair(inputs):
        s, t, n_s, found = inputs
        row = {"source": s, "target": t, "num_samples": n_s}
        if found is None:
            nan = np.full(max_k, np.nan, np.float32)
            row.update(curve_samples=0, scores=np.full(d, np.nan), weights=np.full(d, np.nan),
                       signs=np.zeros(d, np.float32), ranking=np.full(max_k, -1, np.int32), success=nan,
                       target_prob=nan, size=0)
        else:
            scores, weights, directions, ranking, z = found
            success, target_prob = success_curve(g, clf.logits, z, t, ranking, directions, magnitude=a,
                                                 chunk_size=size, mesh=ctx.mesh)
            row.update(curve_samples=len(z), scores=scores, weights=weights, signs=directions, ranking=ranking,
                       success=np.asarray(success), target_prob=np.asarray(target_prob),
                       size=choose_size(success, options["success_target"], options["saturation"]))
        return {name: np.asarray(value)[None] for name, value in row.items()}

    third = Stage("pairs", len(pairs), 1, (
        Output("source", (), "int32"), Output("target", (), "int32"), Output("num_samples", (), "int64"),
        Output("curve_samples", (), "int64"), Output("scores", (d,), "float64"), Output("weights", (d,), "float64"),
        Output("signs", (d,), "float32"), Output("ranking", (max_k,), "int32"), Output("success", (max_k,), "float32"),
        Output("target_prob", (max_k,), "float32"), Output("size", (), "int32")),
        load_pair, pair, unit="pair", latents_per_row=0)
    return [first, second, third]


register(Analysis(
    name="controlling-set",
    help="controlling sets of latent dimensions for (source, target) class pairs, Method A ranked (Li, Tao, Niu & "
         "Li, ICPR 2020): ranking, signs, success curve S(k) and size per pair",
    options=(Option("tap", "--tap", str, "image", "image tap the classifier reads (default image)"),
             Option("class_pairs", "--class-pairs", str, "all", "SOURCE:TARGET class pairs, e.g. 0:1,3:5, or all ordered pairs "
                                                    "of distinct classes (default all)"),
             Option("magnitude", "--magnitude", float, 3.0, "intervention magnitude a in standard units (default 3)"),
             Option("min_prob", "--min-prob", float, 0.0, "a source sample's least probability of its class "
                                                          "(default 0)"),
             Option("max_k", "--max-k", int, None, "longest prefix of the ranking on the success curve "
                                                   "(default: every dimension)"),
             Option("success_target", "--success-target", float, 0.9, "size rule: first k with S(k) >= this "
                                                                      "(default 0.9)"),
             Option("saturation", "--saturation", float, 0.02, "size rule otherwise: first k within this of the "
                                                               "best S (default 0.02)"),
             Option("curve_samples", "--curve-samples", int, 1000, "S(k) on the first M samples of the source in "
                                                                   "run order (default 1000)"),
             Option("classifier", "--classifier", str, None,
                    "classifier folder (jaxlatent.train.classifier.save_classifier) trained on the model's images; "
                    "default: the shipped digit classifier, for the shipped digits model only"),
             TRUNC, CLASS),
    outputs=None, compute=None, plan=_plan))
