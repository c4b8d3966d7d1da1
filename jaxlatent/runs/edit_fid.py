"""FID of edits along a ganspace run's directions, streamed (Heusel et al. 2017; Härkönen et al. 2020).

For each requested direction ``d_c`` (``--indices``) of a finished ``ganspace`` run
(``--directions RUN_DIR``, ``--method pca|ica``) and each strength ``s`` (``--strength-values``),
every latent of this run is
edited, ``x + s d_c`` in the directions' space (W, or a layer range of W+ with ``--layers``,
for StyleGAN2's ``w``; Z otherwise; :func:`jaxlatent.ganspace.edits.edit`), and the FID
between the features of the edited and of the unedited images is the Fréchet distance of
their float64 feature moments (:func:`jaxlatent.ganspace.fid.frechet_distance`).

Stages: the run folder, one row per chunk of latents, ``count ()`` and the float64 ``mean
(E + 1, F)`` and centred ``scatter (E + 1, F, F)`` of the features, row 0 unedited, row
``1 + e`` the e-th edit (directions major, strengths minor); ``result``, one row: the moments
merged in chunk order (as :func:`jaxlatent.ganspace.fid.feature_statistics` with the run's
chunk size does) and ``fid (E,)``, ``index (E,)``, ``strength (E,)``. The directions'
SHA-256 is part of the run's identity (the manifest's stage ``inputs``): a resumed run refuses
a ganspace run that changed.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxlatent.engine.parallel import map_batched, pad_rows
from jaxlatent.ganspace.edits import edit
from jaxlatent.ganspace.fid import frechet_distance
from jaxlatent.ganspace.population import Moments, fold
from jaxlatent.models.digits import load_classifier
from jaxlatent.runs.manifest import model_digest
from jaxlatent.runs.registry import CLASS, TRUNC, Analysis, Option, model_kwargs, register
from jaxlatent.runs.results import open_run
from jaxlatent.runs.stages import RunContext, Stage
from jaxlatent.runs.store import Output, RunError, array_digest
from jaxlatent.workflows.features import check_reads_images, features_for
from jaxlatent.workflows.spaces import is_stylegan2, latent_space

__all__ = ["edit_grid_of", "directions_of"]


def _run_dir(text) -> str:
    return os.path.abspath(os.fspath(text))


def _numbers(text: str, kind: type, flag: str) -> list:
    try:
        return [kind(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise RunError(f"edit-fid: {flag} expects numbers separated by commas, found {text!r}") from None


def directions_of(model, options) -> tuple[np.ndarray, str]:
    """``(directions (K, d), space)``: the ``--method`` directions of the ``--directions`` ganspace run,
    checked to come from this model, and the latent space they live in (``w`` or ``z``)."""
    path = options["directions"]
    if path is None:
        raise RunError("edit-fid: --directions RUN_DIR is needed (the folder of a finished 'jaxlatent run "
                       "ganspace' of this model)")
    try:
        src = open_run(path)
    except (OSError, RunError) as err:
        raise RunError(f"edit-fid: --directions {path}: {err}") from None
    found = src.manifest.get("analysis")
    if found != "ganspace" or not src.complete:
        raise RunError(f"edit-fid: --directions {path}: expected a finished ganspace run, found "
                       f"{'an unfinished ' if not src.complete else ''}{found} run")
    if src.manifest.get("model_sha256") != model_digest(model):
        raise RunError(f"edit-fid: --directions {path}: its directions come from another model (model SHA-256 "
                       f"{src.manifest.get('model_sha256', '?')[:12]}..., this model {model_digest(model)[:12]}...)")
    method = options["method"]
    result = src.results()
    if f"{method}_directions" not in result:
        raise RunError(f"edit-fid: --method {method}: the ganspace run at {path} has no {method} directions "
                       f"(its --method was {src.manifest['options'].get('method')!r})")
    tap = src.manifest["options"].get("tap")
    space = "w" if tap == "w" and is_stylegan2(model) else "z"
    return np.asarray(result[f"{method}_directions"], np.float32), space


def edit_grid_of(options, k: int) -> tuple[list[int], list[float]]:
    """``(indices, strengths)`` of ``--indices`` (``all``: 0..k-1) and ``--strength-values``."""
    comps = list(range(k)) if options["indices"] in (None, "all") else _numbers(options["indices"], int, "--indices")
    strengths = _numbers(options["strength_values"], float, "--strength-values")
    if not comps or min(comps) < 0 or max(comps) >= k:
        raise RunError(f"edit-fid: --indices must lie in [0, {k}) (the run's {k} directions), "
                       f"found {options['indices']!r}")
    if not strengths:
        raise RunError(f"edit-fid: --strength-values needs at least one value, found {options['strength_values']!r}")
    return comps, strengths


def _rendered_features(render, features, x):
    return features(render(x))


def _features(model, options):
    if options["features"] is None:
        fn = load_classifier().features
        try:
            check_reads_images(model, fn, flag="--features", what="feature network")
        except ValueError as err:
            raise RunError(f"edit-fid: {err}") from None
        return fn
    try:
        return features_for(model, None, options["features"], flag="--features")
    except (OSError, ValueError) as err:
        raise RunError(f"edit-fid: {err}") from None


def _plan(model, options, ctx: RunContext):
    directions, space = directions_of(model, options)
    comps, strengths = edit_grid_of(options, directions.shape[0])
    layers = None
    if options["layers"] is not None:
        try:
            layers = tuple(int(v) for v in str(options["layers"]).split(":"))
            assert len(layers) == 2
        except (ValueError, AssertionError):
            raise RunError(f"edit-fid: --layers expects START:STOP (e.g. 0:4), found {options['layers']!r}") from None
        if space != "w":
            raise RunError(f"edit-fid: --layers: layer ranges apply to StyleGAN2 W+ edits; these directions are "
                           f"in {space}")
    if ctx.n < 2:
        raise RunError(f"edit-fid: a covariance needs N >= 2 latents, found {ctx.n}")
    try:
        lat = latent_space(model, space, layers=layers is not None, **model_kwargs(options), where="edit-fid")
    except ValueError as err:
        raise RunError(str(err)) from None
    features = _features(model, options)
    f = check_reads_images(model, features, flag="--features", what="feature network")
    fn = jax.tree_util.Partial(_rendered_features, lat.image, features)
    edits = [(c, s) for c in comps for s in strengths]
    size = ctx.chunk_size

    def load(index, start, stop):
        lo, hi = index * size, min(index * size + size, ctx.n)
        return pad_rows(ctx.latents(lo, hi), size), hi - lo

    def compute(inputs):
        z, count = inputs
        x = map_batched(lat.points, z, chunk_size=size, mesh=ctx.mesh)
        parts = [fold(None, map_batched(fn, x, chunk_size=size, mesh=ctx.mesh), count)]
        for c, s in edits:
            moved = edit(x, directions[c], strength=s, layers=layers)
            parts.append(fold(None, map_batched(fn, moved, chunk_size=size, mesh=ctx.mesh), count))
        return {"count": np.asarray([count], np.int64), "mean": np.stack([p.mean for p in parts])[None],
                "scatter": np.stack([p.scatter for p in parts])[None]}

    e = len(edits)
    first = Stage("", -(-ctx.n // size), 1, (Output("count", (), "int64"), Output("mean", (e + 1, f), "float64"),
                                             Output("scatter", (e + 1, f, f), "float64")),
                  load, compute, unit="chunk", latents_per_row=size,
                  inputs={"directions_sha256": array_digest(directions)})

    def load_result(index, start, stop):
        store, acc = ctx.reader(""), None
        for i in range(store.n_chunks):
            record = store.record(i)
            count = int(store.read_chunk("count", i, record)[0])
            mean, scatter = store.read_chunk("mean", i, record)[0], store.read_chunk("scatter", i, record)[0]
            part = [Moments(count, mean[r], scatter[r]) for r in range(e + 1)]
            acc = part if acc is None else [a.merge(p) for a, p in zip(acc, part)]
        return acc

    def result(acc):
        orig, fid = acc[0], []
        for (c, s), moved in zip(edits, acc[1:]):
            try:
                fid.append(frechet_distance(orig.mean, orig.covariance, moved.mean, moved.covariance))
            except ValueError as err:
                raise RunError(f"edit-fid: direction {c}, strength {s:g}: {err} (the moments of {ctx.n} latents, "
                               f"{f} features, are stored in {ctx.path}; more latents than features make the "
                               "covariances regular)") from None
        return {"fid": np.asarray(fid, np.float64)[None], "index": np.asarray([c for c, _ in edits])[None],
                "strength": np.asarray([s for _, s in edits])[None]}

    second = Stage("result", 1, 1, (Output("fid", (e,), "float64"), Output("index", (e,), "int32"),
                                    Output("strength", (e,), "float32")),
                   load_result, result, unit="result", latents_per_row=0)
    return [first, second]


register(Analysis(
    name="edit-fid",
    help="FID of edits along a ganspace run's directions, per direction and strength (Heusel et al. 2017; "
         "Härkönen et al. 2020): streamed feature moments of unedited and edited images",
    options=(Option("directions", "--directions", _run_dir, None, "folder of a finished 'jaxlatent run ganspace' "
                                                                  "of this model (required)"),
             Option("method", "--method", str, "pca", "directions: pca (default) or ica", ("pca", "ica")),
             Option("indices", "--indices", str, "all", "indices of the directions edited, e.g. 0,1,2 (default all)"),
             Option("strength_values", "--strength-values", str, "-2,2", "edit strengths, e.g. -2,2 (default -2,2)"),
             Option("layers", "--layers", str, None, "W+ layer range START:STOP of the edits (StyleGAN2 w only; "
                                                     "default every layer)"),
             Option("features", "--features", str, None,
                    "feature network: pytorch-fid's Inception weights file or a classifier folder; default: the "
                    "shipped digit classifier's features, for the shipped digits model only"),
             TRUNC, CLASS),
    outputs=None, compute=None, plan=_plan))
