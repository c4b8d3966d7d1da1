"""GANSpace over a run's population, streamed: PCA from moments of every latent, ICA on a subsample.

GANSpace (Härkönen et al., NeurIPS 2020) fits PCA to one tap's values over a large population;
Palaev, Lukmanov and Khan (ICLR 2023 Tiny Papers) fit FastICA instead. The run's first stage
stores, per chunk of latents, the float64 mean and centred scatter of the tap
(:func:`jaxlatent.runs.streamed.moments_stage`); the ``result`` stage merges them in chunk order,
which is :func:`jaxlatent.ganspace.pca.population_pca` with the run's chunk size on the run's
latents, and fits FastICA to the tap's values at the first ``--ica-samples`` latents (the
stated subsample: seeds ``first_seed .. first_seed + M - 1``), with the key
``fold_in(split(PRNGKey(first_seed))[1], 1)`` for its start. Directions: the unit component
rows when the tap is StyleGAN2's ``w`` (edits in W); for any other tap, the components lifted
to Z by least squares on the subsample (:func:`jaxlatent.ganspace.edits.lift_activations`).
The manifest beside them is their provenance (model digest, tap, N, seeds, options).
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxlatent.engine.parallel import map_batched
from jaxlatent.ganspace.edits import lift_activations, normalize
from jaxlatent.ganspace.ica import ALGORITHMS, FUNCTIONS, fast_ica
from jaxlatent.ganspace.pca import pca_from_moments, transform
from jaxlatent.runs.registry import CLASS, TRUNC, Analysis, Option, register, tap_fn, tap_name
from jaxlatent.runs.stages import RunContext, Stage
from jaxlatent.runs.store import Output, RunError
from jaxlatent.runs.streamed import merged_moments, moments_stage
from jaxlatent.workflows.spaces import is_stylegan2
from jaxlatent.workflows.taps import default_edit_tap

__all__ = ["MAX_TAP_SIZE", "ica_key"]

MAX_TAP_SIZE = 4096     # the moments hold a d x d float64 scatter per chunk of latents


def ica_key(first_seed: int) -> jax.Array:
    """The PRNG key of the run's FastICA start (``w_init``)."""
    return jax.random.fold_in(jax.random.split(jax.random.PRNGKey(first_seed))[1], 1)


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in str(text).split(",") if m.strip()]
    if not methods or any(m not in ("pca", "ica") for m in methods):
        raise RunError(f"ganspace: --method expects pca, ica or pca,ica, found {text!r}")
    return methods


def subsample(model, options, ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """``(z, x)``: the first ``--ica-samples`` latents of the run and the tap's flattened values there."""
    m = min(int(options["ica_samples"]), ctx.n)
    f, size = tap_fn(model, options), ctx.chunk_size
    z = np.concatenate([ctx.latents(s, min(s + size, m)) for s in range(0, m, size)])
    x = np.asarray(map_batched(f, z, chunk_size=size, mesh=ctx.mesh)).reshape(m, -1)
    return z, x


def _plan(model, options, ctx: RunContext):
    methods = _methods(options["method"])
    d = math.prod(model.tap_shape(tap_name(model, options)))
    k, z_dim = options["k"], int(model.z_dim)
    if d > MAX_TAP_SIZE:
        raise RunError(f"ganspace: tap {options['tap']!r} has {d} values per latent; a run streams d x d moments "
                       f"and takes taps of at most {MAX_TAP_SIZE} (use jaxlatent ganspace, randomized PCA, for wider)")
    m = min(int(options["ica_samples"]), ctx.n)
    if not 1 <= k <= d or ctx.n < 2 or ("ica" in methods and not k <= m):
        raise RunError(f"ganspace: --k must lie in [1, {d}] (and <= --ica-samples {m} for ICA) with N >= 2, "
                       f"found k {k}, N {ctx.n}")
    in_w = options["tap"] == "w" and is_stylegan2(model)
    space = int(model.config.w_dim) if in_w else z_dim
    first = moments_stage(tap_fn(model, options), d, ctx, name="")

    def load(index, start, stop):
        out = {}
        fits = {"pca": pca_from_moments(merged_moments(ctx.reader("")), k=k)}
        z = x = None
        if "ica" in methods or not in_w:
            z, x = subsample(model, options, ctx)
        if "ica" in methods:
            fits["ica"] = fast_ica(x, k=k, key=ica_key(ctx.seed), fun=options["fun"], algorithm=options["algorithm"],
                                   max_iter=options["max_iter"], tol=options["tol"])
            out["ica_iterations"] = np.asarray([int(fits["ica"].iterations)], np.int32)
            out["ica_converged"] = np.asarray([bool(fits["ica"].converged)])
        for name in methods:
            res = fits[name]
            directions = normalize(res.components) if in_w else lift_activations(transform(res, x), z).directions
            out[f"{name}_components"] = np.asarray(res.components, np.float64)[None]
            out[f"{name}_directions"] = np.asarray(directions, np.float32)[None]
            out[f"{name}_mean"] = np.asarray(res.mean, np.float64)[None]
        if "pca" in methods:
            out["pca_explained_variance"] = np.asarray(fits["pca"].explained_variance)[None]
            out["pca_explained_variance_ratio"] = np.asarray(fits["pca"].explained_variance_ratio)[None]
        return out

    outputs = []
    for name in methods:
        outputs += [Output(f"{name}_components", (k, d), "float64"), Output(f"{name}_directions", (k, space), "float32"),
                    Output(f"{name}_mean", (d,), "float64")]
    if "pca" in methods:
        outputs += [Output("pca_explained_variance", (k,), "float64"),
                    Output("pca_explained_variance_ratio", (k,), "float64")]
    if "ica" in methods:
        outputs += [Output("ica_iterations", (), "int32"), Output("ica_converged", (), "bool")]
    result = Stage("result", 1, 1, tuple(outputs), load, lambda out: out, unit="result", latents_per_row=0)
    return [first, result]


register(Analysis(
    name="ganspace",
    help="GANSpace (Härkönen et al. 2020): PCA of a tap over every latent from streamed moments, and FastICA "
         "(Palaev et al. 2023) on a stated subsample; edit directions with their provenance",
    options=(Option("tap", "--tap", str, None, "tap fitted (default: w for StyleGAN2, else the first feature map; "
                    "taps other than w are lifted to z on the subsample)"),
             Option("k", "--k", int, 20, "components per method (default 20)"),
             Option("method", "--method", str, "pca,ica", "pca, ica or pca,ica (default pca,ica)"),
             Option("ica_samples", "--ica-samples", int, 10000,
                    "FastICA (and the lift of non-w taps) on latents 0..M-1 of the run (default 10000)"),
             Option("fun", "--fun", str, "logcosh", "ICA contrast", FUNCTIONS),
             Option("algorithm", "--algorithm", str, "parallel", "ICA algorithm", ALGORITHMS),
             Option("max_iter", "--max-iter", int, 200, "ICA iteration limit (default 200)"),
             Option("tol", "--tol", float, 1e-4, "ICA tolerance (default 1e-4)"), TRUNC, CLASS),
    outputs=None, compute=None, plan=_plan, default_tap=default_edit_tap))
