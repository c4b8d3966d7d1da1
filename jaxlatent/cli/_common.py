"""What every ``jaxlatent`` subcommand shares: one flag vocabulary, one way to load and to write.

The flags are NVlabs stylegan3's (``gen_images.py``), so the same thing has the same name in
every command:

==================  ======================  ================================================
flag                ``args`` attribute      meaning
==================  ======================  ================================================
``CKPT``            ``checkpoint``          anything :func:`jaxlatent.load` reads
``--which``         ``which``               network inside a training file (G_ema, g_ema...)
``--seeds 0-63``    ``seeds`` (text)        latents, ``RandomState(seed).randn(z_dim)`` each
``--trunc PSI``     ``truncation_psi``      truncation psi (StyleGAN2; default 1: none); BigGAN's
                                            truncation (statistics and latent scale)
``--class IDX``     ``class_idx``           label of a conditional StyleGAN2 or of a BigGAN
``--seed N``        ``seed``                PRNG seed (neighbours, baselines, random draws)
``--chunk-size N``  ``chunk_size``          latents per compiled batch (default: library's)
``--out PATH``      ``out``                 output directory (or file, for ``generate``)
``--metric NAME``   ``metric``              Grassmannian metric, one of ``METRICS``
==================  ======================  ================================================

A command module (``jaxlatent/cli/<name>.py``) uses them like this::

    from jaxlatent.cli import _common

    def register(subparsers):
        p = subparsers.add_parser("my-analysis", help="... (Author et al. 2021)")
        _common.add_model_args(p)          # CKPT --which --seeds --trunc --class --seed --chunk-size --out
        p.add_argument("--tap", default="w")
        p.set_defaults(func=run)

    def run(args):
        model, seeds, z = _common.load_model_and_latents(args)
        f = tap_fn(model, args.tap, **_common.model_kwargs(args))
        ...
        _common.write_json(os.path.join(args.out, "my_analysis.json"), {...})

Functions (stable API; other command modules import them):

* ``add_model_args(parser, *, seeds="0-63", out_help=..., prng=True, chunk_size=None)``: the
  flags above but ``--metric``. ``seeds=None`` leaves out ``--seeds``, ``prng=False`` leaves
  out ``--seed``. It is ``add_checkpoint_args`` (``CKPT --which``) then
  ``add_run_args(parser, *, seeds, out_help, out_default=None, prng, chunk_size)`` (the rest;
  for commands without a checkpoint, such as ``demo``).
* ``add_metric_arg(parser, default="geodesic")``: ``--metric`` with ``choices=METRICS``.
* ``add_rule_arg(parser, flag="--rule")``: the local-dimension rule (``paper``, ``bulk``,
  ``numerical`` or a relative cut in (0, 1)), parsed to its name by ``rule_name(text)``
  (``0.01`` -> ``rtol=0.01``).
* ``load_model(args)``: ``jaxlatent.load(CKPT, which=...)``.
* ``load_model_and_latents(args) -> Loaded(model, seeds, z)``: the model, the parsed seed list
  and ``z: (len(seeds), z_dim)`` float32 (``seed_latents``); creates ``--out``.
* ``seed_latents(model, seeds, args)``: ``RandomState(seed).randn(z_dim)`` per seed; for BigGAN
  the package's truncated draw ``truncated_noise_sample(1, z_dim, --trunc, seed)``.
* ``add_rule_arg(parser, flag="--rule")``: the local-dimension rule (``paper``, ``bulk``,
  ``numerical`` or a relative cut in (0, 1)), parsed to its name by ``rule_name(text)``.
* ``model_kwargs(args) -> dict``: ``truncation_psi``, ``class_idx`` (``--trunc``, ``--class``) and
  ``where`` (``CKPT``) as keywords of :mod:`jaxlatent.workflows.spaces` (``tap_fn``,
  ``latent_space``, ``render``, ``model_options``), which build every callable from a model.
* ``add_tap_arg(parser)``: ``--tap NAME``, the one tap a command analyses (default: the family's,
  :func:`jaxlatent.workflows.taps.default_tap`).
* ``load_tap(args) -> (f, seeds, z)``: ``load_model_and_latents`` and the callable of ``--tap``.
* ``add_taps_arg(parser)`` / ``load_taps(args) -> (fns, seeds, z)``: the same for ``--taps LIST``.
* ``layer_range(text)``: ``--layers START:STOP`` -> ``(start, stop)`` or ``None``.
* ``split_list(text) -> tuple[str, ...]``: ``"a, b,c"`` -> ``("a", "b", "c")``.
* ``prng_key(args)``: ``jax.random.PRNGKey(args.seed)``.
* ``progress(desc)``: a wrapper of an iterator in a tqdm bar (the analyses' ``progress=``).
* ``write_json(path, obj)``: ``obj`` through :func:`jaxlatent.report.page.to_jsonable`, indented.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Callable, Iterable, NamedTuple

import jax
import numpy as np
from tqdm import tqdm

import jaxlatent
from jaxlatent.localbasis.grassmann import METRICS
from jaxlatent.localdim.thresholds import RULES, threshold_rule
from jaxlatent.report.page import to_jsonable
from jaxlatent.engine.latents import parse_seeds
from jaxlatent.workflows import spaces
from jaxlatent.workflows.spaces import model_options, tap_fn
from jaxlatent.workflows.taps import check_taps, default_tap, mapping_taps

__all__ = ["Loaded", "add_model_args", "add_checkpoint_args", "add_run_args", "add_metric_arg", "load_model",
           "load_model_and_latents", "seed_latents", "add_rule_arg", "rule_name", "model_kwargs", "add_tap_arg", "load_tap", "add_taps_arg", "load_taps", "layer_range", "split_list", "class_list", "prng_key",
           "progress", "write_json"]


class Loaded(NamedTuple):
    """A loaded model and its latents. seeds: list of ints; z: ``(len(seeds), z_dim)`` float32."""

    model: Any
    seeds: list[int]
    z: np.ndarray


def add_model_args(parser: argparse.ArgumentParser, *, seeds: str | None = "0-63",
                   out_help: str = "output directory", prng: bool = True,
                   chunk_size: int | None = None, classes: bool = False) -> None:
    """Add ``CKPT --which [--seeds] --trunc --class [--seed] --chunk-size --out`` to ``parser``.

    ``seeds``: default of ``--seeds`` (``None``: no ``--seeds``, for commands that choose their
    own latents). ``prng=False``: no ``--seed``, for commands that draw nothing at random.
    ``chunk_size``: default of ``--chunk-size`` (``None``: the library chooses). ``classes``:
    ``--class`` takes a list (``3`` or ``1,3``) parsed to a tuple of ints.
    """
    add_checkpoint_args(parser)
    add_run_args(parser, seeds=seeds, out_help=out_help, prng=prng, chunk_size=chunk_size, classes=classes)


def add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    """Add ``CKPT --which``."""
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="checkpoint file (.pkl, .pt, .pth) or converted directory")
    parser.add_argument("--which", default=None, metavar="NAME",
                        help="network inside a training file: NVlabs G_ema (default) or G; "
                             "rosinality g_ema (default) or g")


def add_run_args(parser: argparse.ArgumentParser, *, seeds: str | None = "0-63",
                 out_help: str = "output directory", out_default: str | None = None, prng: bool = True,
                 chunk_size: int | None = None, classes: bool = False) -> None:
    """Add ``[--seeds] --trunc --class [--seed] --chunk-size --out`` (see :func:`add_model_args`).

    ``out_default``: default of ``--out`` (``None``: required).
    """
    if seeds is not None:
        parser.add_argument("--seeds", default=seeds, metavar="LIST",
                            help=f"latent seeds, e.g. 0-63 or 1,5,9-12 (default {seeds})")
    parser.add_argument("--trunc", dest="truncation_psi", type=float, default=None, metavar="PSI",
                        help="truncation psi (StyleGAN2; default 1: no truncation); BigGAN's truncation "
                             "(batch-norm statistics and the scale of the latents drawn; default 1)")
    if classes:
        parser.add_argument("--class", dest="class_idx", type=class_list, default=None, metavar="IDX[,IDX...]",
                            help="class label(s) of a conditional StyleGAN2 or a BigGAN (required there): one, "
                                 "or several side by side")
    else:
        parser.add_argument("--class", dest="class_idx", type=int, default=None, metavar="IDX",
                            help="class label of a conditional StyleGAN2 or a BigGAN (required there)")
    if prng:
        parser.add_argument("--seed", type=int, default=0, metavar="N",
                            help="PRNG seed of the random draws: neighbours, baselines (default 0)")
    parser.add_argument("--chunk-size", type=int, default=chunk_size, metavar="N",
                        help="latents per compiled batch (default: %s)"
                             % ("chosen by the library" if chunk_size is None else chunk_size))
    if out_default is None:
        parser.add_argument("--out", required=True, metavar="PATH", help=out_help)
    else:
        parser.add_argument("--out", default=out_default, metavar="PATH",
                            help=f"{out_help} (default {out_default})")


def class_list(text: str) -> tuple[int, ...]:
    """``--class 3`` or ``--class 1,3`` -> ``(3,)`` / ``(1, 3)``."""
    try:
        classes = tuple(int(t) for t in split_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class indices like 3 or 1,3, found {text!r}") from None
    if not classes:
        raise argparse.ArgumentTypeError(f"expected class indices like 3 or 1,3, found {text!r}")
    return classes


def add_metric_arg(parser: argparse.ArgumentParser, default: str = "geodesic") -> None:
    """Add ``--metric`` restricted to the Grassmannian metrics of :mod:`jaxlatent.localbasis.grassmann`."""
    parser.add_argument("--metric", default=default, choices=METRICS,
                        help=f"Grassmannian metric (default {default})")


def rule_name(text: str) -> str:
    """A local-dimension rule from the command line, checked and named (``0.01`` -> ``rtol=0.01``)."""
    try:
        return threshold_rule(text)[0]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_rule_arg(parser: argparse.ArgumentParser, flag: str = "--rule") -> None:
    """Add the local-dimension rule (:func:`jaxlatent.analysis.thresholds.threshold_rule`), default ``paper``."""
    parser.add_argument(flag, dest="rule", type=rule_name, default=RULES[0], metavar="RULE",
                        help="local-dimension rule: paper (default: Gavish-Donoho, omega(beta) times the "
                             "median of all singular values, never below the numerical-rank tolerance), bulk "
                             "(Gavish-Donoho where the spectrum shows a noise bulk, the numerical rank "
                             "elsewhere), numerical (the numerical rank), or a number R in (0, 1): values "
                             "above R times the largest; see docs/methods-local-dimension.md")


def load_model(args: argparse.Namespace):
    """The generator named by ``CKPT`` (and ``--which``)."""
    which = getattr(args, "which", None)
    return jaxlatent.load(args.checkpoint) if which is None else jaxlatent.load(args.checkpoint, which=which)


def load_model_and_latents(args: argparse.Namespace, check: Callable | None = None) -> Loaded:
    """Load ``CKPT``, draw one latent per ``--seeds`` entry and create ``--out``.

    ``check(model)``: the command's own checks of its flags against the model, run (like those of
    ``--trunc`` and ``--class``) before anything is written or computed."""
    model = load_model(args)
    model_options(model, **model_kwargs(args))  # a flag that does not apply to this model stops before any work
    if check is not None:
        check(model)
    seeds = parse_seeds(args.seeds)
    z = seed_latents(model, seeds, args)
    os.makedirs(args.out, exist_ok=True)
    return Loaded(model, seeds, z)


def seed_latents(model, seeds: list[int], args: argparse.Namespace) -> np.ndarray:
    """``z: (len(seeds), z_dim)`` float32, one latent per seed (BigGAN: truncated at ``--trunc`` as the
    package draws): :func:`jaxlatent.workflows.spaces.seed_latents`."""
    return spaces.seed_latents(model, seeds, truncation_psi=getattr(args, "truncation_psi", None))


def model_kwargs(args: argparse.Namespace) -> dict:
    """``truncation_psi``, ``class_idx`` and ``where`` from ``--trunc``, ``--class`` and ``CKPT``: the
    keywords of :func:`jaxlatent.workflows.spaces.tap_fn` and its neighbours."""
    return dict(truncation_psi=getattr(args, "truncation_psi", None), class_idx=getattr(args, "class_idx", None),
                where=getattr(args, "checkpoint", "model"))


def add_tap_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--tap NAME``: the one tap a command analyses (default
    :func:`jaxlatent.workflows.taps.default_tap`: ``w`` for StyleGAN2, ``init`` for FastGAN)."""
    parser.add_argument("--tap", default=None, metavar="NAME",
                        help="tap name (default: w for StyleGAN2, the first feature map init for FastGAN); "
                             "see docs/taps.md")


def load_tap(args: argparse.Namespace) -> tuple[Callable, list[int], np.ndarray]:
    """``(f, seeds, z)``: the callable of ``--tap`` (with ``--trunc``/``--class``), the seeds and latents.

    A missing ``--tap`` becomes the family's default, written back to ``args.tap`` and printed."""
    model, seeds, z = load_model_and_latents(args)
    if args.tap is None:
        args.tap = default_tap(model)
        print(f"--tap {args.tap} (the default for {model.config.family})")
    check_taps(model, [args.tap], flag="--tap")
    return tap_fn(model, args.tap, **model_kwargs(args)), seeds, z


def add_taps_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--taps LIST``: the taps a command analyses side by side (default: the mapping taps and w)."""
    parser.add_argument("--taps", default=None, metavar="LIST",
                        help="comma-separated tap names, e.g. mapping.fc0,mapping.fc1,w (default: every "
                             "mapping tap and w for StyleGAN2, the feature maps init,feat_8 for FastGAN); "
                             "see docs/taps.md")


def load_taps(args: argparse.Namespace) -> tuple[dict[str, Callable], list[int], np.ndarray]:
    """``(fns, seeds, z)``: tap -> callable for every tap of ``--taps`` (default
    :func:`jaxlatent.workflows.taps.mapping_taps`), the seeds and latents."""
    model, seeds, z = load_model_and_latents(args)
    taps = check_taps(model, split_list(args.taps)) if args.taps is not None else mapping_taps(model)
    return {t: tap_fn(model, t, **model_kwargs(args)) for t in taps}, seeds, z


def layer_range(text: str | None) -> tuple[int, int] | None:
    """``--layers START:STOP`` -> ``(start, stop)`` (a W+ layer range), ``None`` -> ``None``."""
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--layers: expected START:STOP (e.g. 0:4), found {text!r}") from None
    return start, stop


def split_list(text: str | None) -> tuple[str, ...]:
    """Comma-separated names -> tuple, blanks dropped (``None`` -> ``()``)."""
    return tuple(t.strip() for t in (text or "").split(",") if t.strip())


def prng_key(args: argparse.Namespace) -> jax.Array:
    """``jax.random.PRNGKey(--seed)``."""
    return jax.random.PRNGKey(args.seed)


def progress(desc: str) -> Callable[[Iterable], Iterable]:
    """A wrapper of an iterator in a tqdm bar labelled ``desc`` (pass as an analysis' ``progress``)."""
    return lambda it: tqdm(it, desc=desc, unit="chunk")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` (arrays, NamedTuples, dataclasses allowed) as indented JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_jsonable(obj), fh, indent=2)
