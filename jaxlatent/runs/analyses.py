"""The analyses a run can stream, each registered with :func:`jaxlatent.runs.registry.register`.

Every entry calls the analysis's public function on one chunk, with the options of the
analysis's own command; ``docs/runs.md`` lists the outputs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.geometry.metric import METHODS, metric_tensor
from jaxlatent.io import load_lpips
from jaxlatent.correlation.interventions import KINDS, intervention_probs, single_dim_grid
from jaxlatent.localbasis.basis import SOLVERS, local_basis
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.localdim.thresholds import RULES, threshold_rule
from jaxlatent.models.digits import load_classifier
from jaxlatent.engine.parallel import map_batched
from jaxlatent.runs.registry import (CLASS, TAP, TRUNC, Analysis, Option, execution, model_kwargs, register, tap_fn,
                                     tap_jacobian_shape, tap_name)
from jaxlatent.runs.store import Output, RunError
from jaxlatent.workflows.features import check_reads_images
from jaxlatent.workflows.spaces import check_space, latent_space, z_units

# -- Local Basis (Choi et al., ICLR 2022) ----------------------------------------------------

def _local_basis_outputs(model, options):
    n_out, n_in = tap_jacobian_shape(model, options)
    m = min(n_out, n_in)
    k = options["k"] if options["k"] is not None else m
    if not 1 <= k <= m:
        raise RunError(f"local-basis: --k must lie in [1, {m}] for the {n_out}x{n_in} Jacobian of tap "
                       f"{tap_name(model, options)!r}, found {k}")
    return (Output("singular_values", (k,), "float32"), Output("basis", (n_out, k), "float32"),
            Output("directions", (n_in, k), "float32"))


def _local_basis(model, z, options, keys, *, mesh=None):
    res = local_basis(tap_fn(model, options), z, k=options["k"], method=options["method"],
                      **execution(z, mesh))
    return res._asdict()


register(Analysis(
    name="local-basis",
    help="Local Basis (Choi et al., ICLR 2022): singular values, basis and latent directions of a tap's Jacobian",
    options=(TAP, Option("k", "--k", int, None, "triplets kept per latent (default: all)"),
             Option("method", "--method", str, "svd", "dense SVD (default) or Gram eigenvectors", SOLVERS),
             TRUNC, CLASS),
    outputs=_local_basis_outputs, compute=_local_basis, spectrum="singular_values"))


# -- local dimension (Choi, Hwang, Cho and Kang 2022) ----------------------------------------

def _local_dim_outputs(model, options):
    n_out, n_in = tap_jacobian_shape(model, options)
    return (Output("dimension", (), "int32"), Output("threshold", (), "float32"),
            Output("singular_values", (min(n_out, n_in),), "float32"), Output("tolerance", (), "float32"),
            Output("noise_bulk", (), "bool"))


def _local_dim(model, z, options, keys, *, mesh=None):
    res = local_dimension(tap_fn(model, options), z, rule=options["rule"], **execution(z, mesh))
    return res.arrays()


def rule(text) -> str:
    """A local-dimension rule's name (``paper``, ``bulk``, ``numerical``, ``rtol=R``; ``0.01`` -> ``rtol=0.01``)."""
    return threshold_rule(text)[0]


register(Analysis(
    name="local-dim",
    help="local dimension (Choi, Hwang, Cho and Kang 2022): Jacobian singular values above the Gavish-Donoho "
         "threshold (--rule for the others)",
    options=(TAP, Option("rule", "--rule", rule, RULES[0],
                         "paper (default: Gavish-Donoho, omega(beta) times the median singular value), bulk "
                         "(Gavish-Donoho where the spectrum shows a noise bulk, else the numerical rank), "
                         "numerical, or a relative cut R in (0, 1)"),
             TRUNC, CLASS), outputs=_local_dim_outputs, compute=_local_dim,
    spectrum="singular_values", dimension="dimension"))


# -- Riemannian metric spectra (Wang & Ponce, ICLR 2021) ---------------------------------------

def _metric_space(model, options):
    """The chosen latent space: ``points`` maps z to it, ``image`` generates from it."""
    try:
        space = check_space(model, options["space"], where="geometry")
        return latent_space(model, space, **model_kwargs(options), where="geometry")
    except ValueError as err:
        raise RunError(str(err)) from None


@functools.lru_cache(maxsize=4)
def _lpips(path: str, net: str):
    return load_lpips(path, net=net)


def _distance(options):
    """The image distance of the metric: mean squared pixels, or LPIPS with the weights given."""
    if options["distance"] == "mse":
        return None
    if not options["lpips_weights"]:
        raise RunError("geometry: --distance lpips needs --lpips-weights PATH (a state dict of the "
                       "lpips.LPIPS module, .pth or .npz)")
    try:
        return _lpips(options["lpips_weights"], options["lpips_net"])
    except (OSError, ValueError, KeyError) as err:
        raise RunError(f"geometry: --lpips-weights {options['lpips_weights']}: {err}") from None


def _geometry_outputs(model, options):
    _distance(options)
    n_in = int(model.z_dim) if _metric_space(model, options).name == "z" else int(model.config.w_dim)
    k = options["k"] if options["k"] is not None else n_in
    if not 1 <= k <= n_in:
        raise RunError(f"geometry: --k must lie in [1, {n_in}], found {k}")
    return Output("eigenvalues", (k,), "float32"), Output("eigenvectors", (n_in, k), "float32")


def _geometry(model, z, options, keys, *, mesh=None):
    space = _metric_space(model, options)
    g, x = space.image, map_batched(space.points, z)
    # LOBPCG's start blocks come from one key per chunk (metric_tensor splits it per row): the
    # chunk's first latent's key, so a resumed run repeats them exactly
    distance = _distance(options)
    res = metric_tensor(g, x, distance=distance, k=options["k"], method=options["method"], key=keys[0],
                        **execution(z, mesh))
    return {"eigenvalues": res.eigenvalues, "eigenvectors": res.eigenvectors}


register(Analysis(
    name="geometry",
    help="Riemannian metric of the image manifold, H = J^T M J for the mean squared pixel distance or LPIPS "
         "(Wang & Ponce, ICLR 2021): eigenvalues and eigenvectors at each latent",
    options=(Option("space", "--space", str, None, "latent space: w (StyleGAN2's default) or z (FastGAN's default "
                                                   "and only space)", (None, "z", "w")),
             Option("k", "--k", int, None, "eigenpairs kept (default all)"),
             Option("method", "--method", str, "auto", "full metric and eigh, or the top --k by LOBPCG", METHODS),
             Option("distance", "--distance", str, "mse", "image distance: mean squared pixels (default) or LPIPS",
                    ("mse", "lpips")),
             Option("lpips_weights", "--lpips-weights", str, None,
                    "LPIPS state dict (.pth/.npz of the whole lpips.LPIPS module) for --distance lpips"),
             Option("lpips_net", "--lpips-net", str, "alex", "LPIPS backbone", ("alex", "vgg", "squeeze")),
             TRUNC, CLASS),
    outputs=_geometry_outputs, compute=_geometry, spectrum="eigenvalues"))


# -- concept effects of single latent dimensions (Li, Tao, Niu & Li, ICPR 2020) --------------

@functools.lru_cache(maxsize=4)
def _classifier(path: str | None):
    return load_classifier(path)


def _numbers(text: str, kind: type, flag: str) -> list:
    try:
        return [kind(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise RunError(f"concept-effects: {flag} expects numbers separated by commas, found {text!r}") from None


def _concept_grid(model, options):
    d = int(model.z_dim)
    dims = list(range(d)) if options["dims"] in (None, "all") else _numbers(options["dims"], int, "--dims")
    values = _numbers(options["values"], float, "--values")
    if not dims or min(dims) < 0 or max(dims) >= d:
        raise RunError(f"concept-effects: --dims must lie in [0, {d}), found {options['dims']!r}")
    if len(values) < 2:
        raise RunError(f"concept-effects: --values needs at least two values, found {options['values']!r}")
    return dims, values


def _concept_outputs(model, options):
    dims, values = _concept_grid(model, options)
    clf = _classifier(options["classifier"])
    try:
        c = check_reads_images(model, clf.logits, flag="--classifier", what="classifier")
    except ValueError as err:
        raise RunError(f"concept-effects: {err}") from None
    return (Output("base_probs", (c,), "float32"), Output("probs", (len(dims), len(values), c), "float32"))


def _concept_effects(model, z, options, keys, *, mesh=None):
    dims, values = _concept_grid(model, options)
    d, kind = int(model.z_dim), options["kind"]
    center, scale = z_units(model, truncation_psi=options["truncation_psi"])
    mask, amount = single_dim_grid(d, dims, values, kind=kind, center=center, scale=scale)
    # row 0: no intervention, the base probabilities in the same call (as concept_effects does)
    mask = jnp.concatenate([jnp.zeros((1, d)), mask])
    amount = jnp.concatenate([jnp.zeros((1, d)), amount])
    probs = intervention_probs(tap_fn(model, options), _classifier(options["classifier"]).logits, z, mask,
                               amount, kind=kind, **execution(z, mesh))
    n, c = probs.shape[0], probs.shape[-1]
    return {"base_probs": probs[:, 0], "probs": probs[:, 1:].reshape(n, len(dims), len(values), c)}


register(Analysis(
    name="concept-effects",
    help="classifier probabilities under single-dimension interventions (Li, Tao, Niu & Li, ICPR 2020); "
         "effects_from_probs turns the stored probs into sensitivity, effect, correlation and flip rate",
    options=(Option("tap", "--tap", str, "image", "image tap the classifier reads (default image)"),
             Option("dims", "--dims", str, "all", "latent dimensions to intervene on, e.g. 0,3,7 (default all)"),
             Option("values", "--values", str, "-3,3", "intervention values in standard units (default -3,3; "
                    "a BigGAN's: the std of its truncated draws)"),
             Option("kind", "--kind", str, "set", "set (default), shift or scale", KINDS),
             Option("classifier", "--classifier", str, None,
                    "classifier folder (jaxlatent.train.classifier.save_classifier) trained on the model's images; "
                    "default: the shipped digit classifier, for the shipped digits model only"),
             TRUNC, CLASS),
    outputs=_concept_outputs, compute=_concept_effects))
