"""Analyses over pairs of Local Bases: Distortion and the Grassmannian warpage curves, streamed.

Both store each latent's Local Basis (the top-``k`` left singular vectors of the tap's
Jacobian) and its distance to the Local Basis at a neighbour ``z_i + eps u_i`` (``u_i`` from
latent ``i``'s own key) in the run folder, then the distances over pairs of latents in the
``pairs`` stage (:func:`jaxlatent.runs.streamed.pair_stage`: all pairs ``i < j`` when ``--pairs``
covers them, else a uniform sample of ``--pairs`` pairs drawn in blocks), then the population
values in the one-row ``result`` stage.

* ``distortion`` (Choi, Hwang, Cho and Kang 2022; our formula,
  :mod:`jaxlatent.localdim.distortion`): ``far`` = mean pair distance, ``near`` = mean neighbour
  distance, ``distortion = far / near``, and the Haar baseline, for one ``k``.
* ``grassmann`` (Choi et al., ICLR 2022, the Grassmannian experiment,
  :func:`jaxlatent.localbasis.warpage.warpage`): the curves over subspace dimensions
  ``d = 1..k`` for random pairs, neighbours, against one global basis (GANSpace PCA of the tap
  over the run's latents, from streamed moments) and between Haar-random bases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.parallel import pad_rows
from jaxlatent.engine.sampling import random_orthonormal
from jaxlatent.ganspace.pca import pca_from_moments
from jaxlatent.localbasis.grassmann import METRICS, grassmann_distance
from jaxlatent.localdim.dimension import dimension_from_spectrum, jacobian_spectrum
from jaxlatent.runs.registry import CLASS, TAP, TRUNC, Analysis, Option, register, tap_fn, tap_jacobian_shape
from jaxlatent.runs.stages import RunContext, Stage, row_keys, stored_sum
from jaxlatent.runs.store import Output, RunError
from jaxlatent.runs.streamed import curves, merged_moments, moments_stage, pair_stage, unit_neighbours

__all__ = ["DEFAULT_PAIRS"]

DEFAULT_PAIRS = 100_000
EPS = Option("eps", "--eps", float, 0.1, "neighbour distance in the latent (default 0.1)")
METRIC = Option("metric", "--metric", str, "geodesic", "Grassmannian metric (default geodesic)", METRICS)
PAIRS = Option("pairs", "--pairs", int, DEFAULT_PAIRS,
               f"pairs of latents compared (default {DEFAULT_PAIRS}; all N(N-1)/2 when that is fewer)")


def _k(model, options, where):
    n_out, n_in = tap_jacobian_shape(model, options)
    m = min(n_out, n_in)
    k = options["k"]
    if k is None or not 1 <= k <= m:
        raise RunError(f"{where}: --k must lie in [1, {m}] for the {n_out}x{n_in} Jacobian of tap "
                       f"{options['tap']!r}, found {k} (each latent's basis is stored with k columns)")
    if options["pairs"] < 1:
        raise RunError(f"{where}: --pairs must be >= 1, found {options['pairs']}")
    return n_out, n_in, k


def _bases(f, z, keys, k, eps, mesh):
    """Spectra, top-k bases at ``z`` and at each latent's neighbour (one chunk)."""
    opts = dict(chunk_size=int(z.shape[0]), mesh=mesh)
    s, basis, shape = jacobian_spectrum(f, z, keep=k, **opts)
    _, near, _ = jacobian_spectrum(f, unit_neighbours(keys, z, eps=eps), keep=k, **opts)
    return s, basis, near, shape


def _latent_stage(model, options, ctx: RunContext, k, outputs, finish) -> Stage:
    f, size = tap_fn(model, options), ctx.chunk_size

    def load(index, start, stop):
        return (pad_rows(ctx.latents(start, stop), size), pad_rows(row_keys(ctx.seed, start, stop), size))

    def compute(inputs):
        z, keys = inputs
        return finish(keys, *_bases(f, z, keys, k, options["eps"], ctx.mesh))

    return Stage("", ctx.n, size, outputs, load, compute, spectrum="singular_values")


def _result_stage(outputs, load, compute) -> Stage:
    return Stage("result", 1, 1, outputs, load, compute, unit="result", latents_per_row=0)


def _baseline_key(seed: int) -> jax.Array:
    return jax.random.fold_in(jax.random.split(jax.random.PRNGKey(seed))[1], 0)


# -- Distortion -------------------------------------------------------------------------------

def _distortion_plan(model, options, ctx: RunContext):
    n_out, n_in, k = _k(model, options, "distortion")
    metric = options["metric"]

    def finish(keys, s, basis, near, shape):
        dims = dimension_from_spectrum(s, shape).dimension
        return {"singular_values": s, "dimension": dims, "basis": basis,
                "near_distance": grassmann_distance(basis, near, metric=metric)}

    first = _latent_stage(model, options, ctx, k, (
        Output("singular_values", (min(n_out, n_in),), "float32"), Output("dimension", (), "int32"),
        Output("basis", (n_out, k), "float32"), Output("near_distance", (), "float32")), finish)
    first = first._replace(dimension="dimension")
    pairs = pair_stage(ctx, "basis", Output("distance", (), "float32"), options["pairs"],
                       lambda a, b: grassmann_distance(a, b, metric=metric))

    def load(index, start, stop):
        far, n_far = stored_sum(ctx.reader("pairs"), "distance")
        near, n_near = stored_sum(ctx.reader(""), "near_distance")
        base = random_orthonormal(key=_baseline_key(ctx.seed), n=n_out, k=k, batch=(2, options["baseline_pairs"]))
        return far / n_far, near / n_near, float(np.mean(np.asarray(grassmann_distance(base[0], base[1],
                                                                                       metric=metric), np.float64)))

    def compute(inputs):
        far, near, base = inputs
        return {"distortion": np.asarray([far / near]), "far": np.asarray([far]), "near": np.asarray([near]),
                "baseline": np.asarray([base]), "k": np.asarray([k], np.int32)}

    result = _result_stage((Output("distortion", (), "float64"), Output("far", (), "float64"),
                            Output("near", (), "float64"), Output("baseline", (), "float64"),
                            Output("k", (), "int32")), load, compute)
    return [first, pairs, result]


register(Analysis(
    name="distortion",
    help="Distortion (Choi, Hwang, Cho and Kang 2022): mean Grassmannian distance between Local Bases over "
         "pairs of latents over the mean distance to a neighbour's",
    options=(TAP, Option("k", "--k", int, None, "Local Basis dimension (required; e.g. the median local dimension)"),
             EPS, METRIC, PAIRS, Option("baseline_pairs", "--baseline-pairs", int, 64,
                                        "Haar-random subspace pairs of the baseline (default 64)"), TRUNC, CLASS),
    outputs=None, compute=None, plan=_distortion_plan))


# -- Grassmannian warpage curves ----------------------------------------------------------------

def _grassmann_plan(model, options, ctx: RunContext):
    n_out, n_in, k = _k(model, options, "grassmann")
    metric = options["metric"]

    def finish(keys, s, basis, near, shape):
        haar = jax.vmap(lambda key: random_orthonormal(key=key, n=n_out, k=k, batch=2))(jax.vmap(jax.random.fold_in, (0, None))(
            keys, 1))
        return {"singular_values": s[:, :k], "basis": basis, "neighbours": curves(basis, near, k=k, metric=metric),
                "haar": curves(haar[:, 0], haar[:, 1], k=k, metric=metric)}

    first = _latent_stage(model, options, ctx, k, (
        Output("singular_values", (k,), "float32"), Output("basis", (n_out, k), "float32"),
        Output("neighbours", (k,), "float32"), Output("haar", (k,), "float32")), finish)
    stages = [first]
    if options["global_basis"] == "pca":
        if ctx.n < k + 1:
            raise RunError(f"grassmann: the global PCA basis needs N > k latents, found N {ctx.n}, k {k}")
        f = tap_fn(model, options)
        stages.append(moments_stage(f, n_out, ctx))

        def load_global(index, start, stop):
            return pca_from_moments(merged_moments(ctx.reader("moments")), k=k)

        def global_basis(pca):
            return {"basis": np.asarray(pca.components.T, np.float32)[None],
                    "explained_variance_ratio": np.asarray(pca.explained_variance_ratio)[None]}

        stages.append(Stage("global", 1, 1, (Output("basis", (n_out, k), "float32"),
                                             Output("explained_variance_ratio", (k,), "float64")),
                            load_global, global_basis, unit="result", latents_per_row=0))

        def load_to_global(index, start, stop):
            g = ctx.reader("global").read_chunk("basis", 0)[0]
            return pad_rows(jnp.asarray(ctx.reader("").read_chunk("basis", index)), ctx.chunk_size), g

        stages.append(Stage("to_global", ctx.n, ctx.chunk_size, (Output("distance", (k,), "float32"),),
                            load_to_global, lambda inp: {"distance": curves(inp[0], inp[1][None], k=k, metric=metric)},
                            latents_per_row=1))
    stages.append(pair_stage(ctx, "basis", Output("distance", (k,), "float32"), options["pairs"],
                             lambda a, b: curves(a, b, k=k, metric=metric)))
    parts = {"random_pairs": ("pairs", "distance"), "neighbours": ("", "neighbours"), "haar": ("", "haar")}
    if options["global_basis"] == "pca":
        parts["to_global"] = ("to_global", "distance")

    def load(index, start, stop):
        out = {}
        for name, (stage, output) in parts.items():
            total, count = stored_sum(ctx.reader(stage), output)
            sq, _ = _stored_square_sum(ctx.reader(stage), output)
            mean = total / count
            out[name] = mean[None]
            out[f"{name}_std"] = np.sqrt(np.maximum(sq / count - mean ** 2, 0.0))[None]
        out["dims"] = np.arange(1, k + 1, dtype=np.int32)[None]
        return out

    outputs = [Output("dims", (k,), "int32")]
    for name in parts:
        outputs += [Output(name, (k,), "float64"), Output(f"{name}_std", (k,), "float64")]
    stages.append(_result_stage(tuple(outputs), load, lambda out: out))
    return stages


def _stored_square_sum(store, name):
    total, count = None, 0
    for index in range(store.n_chunks):
        x = store.read_chunk(name, index).astype(np.float64)
        total = (x * x).sum(axis=0) if total is None else total + (x * x).sum(axis=0)
        count += len(x)
    return total, count


register(Analysis(
    name="grassmann",
    help="Grassmannian warpage curves (Choi et al., ICLR 2022): Local Basis distances over subspace dimensions "
         "1..k for random pairs, neighbours, a global PCA basis and Haar-random bases",
    options=(TAP, Option("k", "--k", int, 10, "largest subspace dimension d of the curves (default 10)"),
             EPS, METRIC, PAIRS,
             Option("global_basis", "--global", str, "pca", "global basis: pca of the tap over the run's "
                    "latents (streamed moments; the tap must be narrow) or none", ("pca", "none")), TRUNC, CLASS),
    outputs=None, compute=None, plan=_grassmann_plan))
