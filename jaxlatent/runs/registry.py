"""Analyses a run can stream: each declares its options, its per-latent outputs and a compute step.

An :class:`Analysis` joins by being passed to :func:`register`. Its ``compute`` is a pure
function of ``(model, z, options, keys)`` with ``z: (n, z_dim)`` the latents of one chunk
(always ``chunk_size`` rows: the last chunk is padded, so one program serves every chunk) and
``keys: (n, 2)`` uint32, one PRNG key per latent (``fold_in(PRNGKey(seed), i)`` for latent
``i``), for analyses that draw random numbers: drawing per latent, never per chunk, keeps
results independent of the chunking. It returns ``output name -> (n, *shape)`` arrays
matching ``outputs(model, options)``. ``mesh`` (keyword) is the local device mesh to spread
the chunk over. ``spectrum`` / ``dimension`` name the outputs that the streamed summaries
read (a singular-value spectrum ``(m,)`` and an integer local dimension ``()``).

An analysis that needs more than one pass over per-latent rows gives ``plan(model, options,
ctx) -> [Stage, ...]`` (:mod:`jaxlatent.runs.stages`) instead of using ``outputs`` and
``compute`` alone: pairs of stored bases, moments of chunks of latents, one final row.

The analyses shipped with jaxlatent register themselves in :mod:`jaxlatent.runs.analyses`,
which the package imports.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jaxlatent.runs.store import Output, RunError
from jaxlatent.workflows import spaces
from jaxlatent.workflows.taps import default_tap

__all__ = ["Analysis", "Option", "Output", "register", "names", "get", "resolve_options", "TAP", "TRUNC", "CLASS",
           "tap_name", "model_kwargs", "tap_fn", "tap_jacobian_shape", "execution"]


class Option(NamedTuple):
    """One analysis option: keyword ``name``, command-line ``flag``, type, default, help text."""

    name: str
    flag: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None


class Analysis(NamedTuple):
    """A per-latent analysis that :func:`jaxlatent.runs.run` can stream to a store (see module doc).

    ``default_tap(model)``: the tap analysed when ``--tap`` is left out (the family's
    :func:`jaxlatent.workflows.taps.default_tap`, or e.g. GANSpace's own fitting tap).
    """

    name: str
    help: str
    options: tuple
    outputs: Callable[[Any, dict], tuple]
    compute: Callable[..., dict]
    spectrum: str | None = None
    dimension: str | None = None
    plan: Callable[..., list] | None = None
    default_tap: Callable[[Any], str] = default_tap


_REGISTRY: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    """Add (or replace) an analysis under ``analysis.name``; returns it."""
    _REGISTRY[analysis.name] = analysis
    return analysis


def names() -> list[str]:
    """Registered analysis names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Analysis:
    """The analysis registered as ``name``; an unknown name raises RunError listing the known ones."""
    if name not in _REGISTRY:
        raise RunError(f"unknown analysis {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def resolve_options(analysis: Analysis, options: dict | None, model=None) -> dict:
    """Options with defaults filled in, each converted to its declared type and checked.

    With ``model``, the defaults that depend on its family are filled in too (``tap``:
    ``analysis.default_tap(model)``, :func:`jaxlatent.workflows.taps.default_tap` unless the analysis
    names another; ``space``: ``w`` or ``z``), so that a run's manifest records what ran."""
    options = dict(options or {})
    known = {o.name: o for o in analysis.options}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise RunError(f"{analysis.name}: unknown option(s) {unknown}; known: {sorted(known)}")
    resolved = {}
    for name, opt in known.items():
        value = options.get(name, opt.default)
        if value is not None:
            try:
                value = opt.type(value)
            except (TypeError, ValueError):
                raise RunError(f"{analysis.name}: option {name} ({opt.flag}) expects "
                               f"{opt.type.__name__}, found {value!r}") from None
        if opt.choices is not None and value not in opt.choices:
            raise RunError(f"{analysis.name}: option {name} ({opt.flag}) must be one of "
                           f"{list(opt.choices)}, found {value!r}")
        resolved[name] = value
    if model is not None:
        if resolved.get("tap", "") is None:
            resolved["tap"] = analysis.default_tap(model)
        if resolved.get("space", "") is None:
            resolved["space"] = spaces.default_space(model)
    return resolved


# -- shared pieces of the model-tap analyses ----------------------------------------------

TAP = Option("tap", "--tap", str, None, "tap name (default: w for StyleGAN2, the first feature map init for "
                                         "FastGAN, the first block layers.0 for BigGAN); see model.taps()")
TRUNC = Option("truncation_psi", "--trunc", float, None, "truncation psi for the tap (StyleGAN2; default: none); "
                                                         "BigGAN's truncation (statistics and latents; default 1)")
CLASS = Option("class_idx", "--class", int, None, "class label of a conditional StyleGAN2 or a BigGAN (required "
                                                  "there), the same for every latent of the run")


def tap_name(model, options: dict) -> str:
    """The tap of ``options``; ``None`` is the family's default (:func:`jaxlatent.workflows.taps.default_tap`)."""
    tap = options.get("tap")
    tap = default_tap(model) if tap is None else tap
    if tap not in model.taps():
        raise RunError(f"--tap: unknown tap {tap!r}; this model has {model.taps()}")
    return tap


def model_kwargs(options: dict) -> dict:
    """``truncation_psi`` and ``class_idx`` of ``options`` as keywords of :mod:`jaxlatent.workflows.spaces`."""
    return dict(truncation_psi=options.get("truncation_psi"), class_idx=options.get("class_idx"))


def tap_fn(model, options: dict):
    """The batched callable ``z (n, z_dim) -> (n, ...)`` of the tap named in ``options`` (with its
    ``truncation_psi`` and ``class_idx``): :func:`jaxlatent.workflows.spaces.tap_fn`."""
    try:
        return spaces.tap_fn(model, tap_name(model, options), **model_kwargs(options), where="run")
    except ValueError as err:
        raise RunError(str(err)) from None


def tap_jacobian_shape(model, options: dict) -> tuple[int, int]:
    """``(out, in)``: the flattened tap size and the latent size (from shapes only, nothing runs)."""
    z_dim = int(model.z_dim)
    out = jax.eval_shape(tap_fn(model, options), jax.ShapeDtypeStruct((1, z_dim), np.float32))
    return math.prod(out.shape[1:]), z_dim


def execution(z, mesh) -> dict:
    """Execution options for one chunk: the whole chunk as one batch, over ``mesh``.

    ``chunk_size = len(z)``: the run's chunk is already the memory bound, and a chunk size of
    the analysis's own choosing (which may follow the free memory) would change the compiled
    program between runs and with it the last bits of the results. Every analysis takes both
    (the execution options of docs/api.md).
    """
    return {"chunk_size": int(z.shape[0]), "mesh": mesh}
