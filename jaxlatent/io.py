"""Open any supported checkpoint (``load``) and write converted models (``save``).

Formats (``docs/checkpoints.md``):

* a converted directory: ``config.json`` + an orbax checkpoint of params under ``params/``;
* an NVlabs StyleGAN2 network pickle ``.pkl`` (read without running its code);
* a PyTorch ``.pt``/``.pth`` file, read with ``torch.load(weights_only=True)``:
  a rosinality ``stylegan2-pytorch`` checkpoint or a FastGAN checkpoint, told
  apart by their keys;
* a huggingface ``pytorch-pretrained-biggan`` generator: a folder with ``pytorch_model.bin``
  and the package's ``config.json`` (told from a converted directory by its keys), the
  package's download cache (``which=`` names the model), or the weights file with
  ``config=`` (``docs/biggan.md``).

The image feature networks of the metrics load here too: ``load_lpips`` and ``load_inception``
read weights the user brings (nothing can be downloaded here) with the converters' safe readers
and return ``jax.tree_util.Partial`` callables whose variables are leaves, so they pass through
``jit``, ``vmap`` and ``grad`` (the GAN geometry metric differentiates LPIPS twice).

PyTorch is imported only when a PyTorch-era file is read.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Callable, NamedTuple

import numpy as np
import orbax.checkpoint as ocp
from flax.traverse_util import flatten_dict

from jaxlatent.converters import CheckpointError, Converted, load_torch_file
from jaxlatent.converters.biggan import cached_models, is_biggan_folder, read_biggan
from jaxlatent.converters.fastgan import convert_fastgan
from jaxlatent.converters.inception import read_inception
from jaxlatent.converters.lpips import read_lpips
from jaxlatent.converters.nvlabs import read_nvlabs
from jaxlatent.converters.rosinality import convert_rosinality, is_rosinality_state_dict
from jaxlatent.models import biggan
from jaxlatent.models.fastgan import model as fastgan
from jaxlatent.models.features.inception import inception_from_variables
from jaxlatent.models.features.lpips import lpips_from_variables
from jaxlatent.models.stylegan2 import model as stylegan2

FORMAT_NAME = "jaxlatent.converted"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
PARAMS_DIR = "params"



class Family(NamedTuple):
    """A model family: its config class, model class and parameter layout."""

    config: type
    model: type
    expected_shapes: Callable  # config -> {dotted key: shape}


FAMILIES = {
    "stylegan2": Family(stylegan2.StyleGAN2Config, stylegan2.StyleGAN2, stylegan2.expected_shapes),
    "fastgan": Family(fastgan.FastGANConfig, fastgan.FastGAN, fastgan.expected_shapes),
    "biggan": Family(biggan.BigGANConfig, biggan.BigGAN, biggan.expected_shapes),
}

SUPPORTED = (
    "a converted directory (config.json + params/), "
    "an NVlabs StyleGAN2 network pickle (.pkl), "
    "a rosinality stylegan2-pytorch checkpoint (.pt/.pth), "
    "a FastGAN checkpoint (.pth/.pt), "
    "a pytorch-pretrained-biggan folder (pytorch_model.bin + config.json) or cache"
)


def _family(name: str, where) -> Family:
    if name not in FAMILIES:
        raise CheckpointError(f"{where}: unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def model_from_converted(converted: Converted, where=None):
    """Build the family's model object from a converter's :class:`Converted` record.

    Args:
      converted: what a reader returned.
      where: the file to name in errors (default: ``converted.source['file']``).

    Returns:
      the model (``StyleGAN2`` or ``FastGAN``) with ``model.source = converted.source``.
    """
    family = _family(converted.config.family, where or converted.source.get("file"))
    return family.model(converted.config, converted.params, source=converted.source)


def load(path, *, which: str | None = None, **options):
    """Open a checkpoint and return its model object (``model.config``, ``model.params``).

    Args:
      path: a converted directory, an NVlabs ``.pkl``, a rosinality ``.pt``, a
        FastGAN ``.pth``, or a BigGAN folder, cache or ``.bin`` weights file (see
        ``docs/checkpoints.md``, ``docs/biggan.md``).
      which: network inside a training file: NVlabs ``'G_ema'`` (default) or
        ``'G'``; rosinality ``'g_ema'`` (default) or ``'g'``; FastGAN per its reader;
        the model name in a BigGAN cache (``'biggan-deep-256'``).
      **options: reader options (rosinality ``lr_mlp``; FastGAN reader options; BigGAN
        ``config``: the ``config.json`` of a weights file given directly).

    Returns:
      the model (``StyleGAN2``, ``FastGAN``, ``BigGAN``) with ``generate``/``taps``/``fn``.

    Raises:
      FileNotFoundError: no such path.
      CheckpointError (a ``ValueError``): the file is unsupported or damaged;
        the message names the file and what was wrong.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if is_biggan_folder(path) or _is_biggan_cache(path):
            return model_from_converted(read_biggan(path, which=which, **options))
        return load_converted(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".bin" or "config" in options:
        return model_from_converted(read_biggan(path, **options))
    if suffix == ".pkl":
        return model_from_converted(read_nvlabs(path, which, **options))
    if suffix in (".pt", ".pth"):
        return _load_torch_checkpoint(path, which, options)
    raise CheckpointError(
        f"{path}: unsupported checkpoint type {suffix or '(no extension)'!r}; supported: {SUPPORTED}"
    )


def _is_biggan_cache(path) -> bool:
    """A folder without ``config.json`` holding the BigGAN package's download records."""
    return not os.path.exists(os.path.join(path, CONFIG_FILE)) and bool(cached_models(path))


def _is_fastgan_state(state) -> bool:
    return isinstance(state, dict) and any(
        str(k).removeprefix("module.").startswith("init.init.") for k in state
    )


def sniff_torch_object(obj) -> str | None:
    """Tell the PyTorch checkpoint formats apart by their keys.

    Args:
      obj: what ``torch.load`` returned.

    Returns:
      ``'rosinality'``, ``'fastgan'`` or None.
    """
    if is_rosinality_state_dict(obj):
        return "rosinality"
    if _is_fastgan_state(obj):
        return "fastgan"
    if isinstance(obj, dict):
        if any(is_rosinality_state_dict(obj.get(k)) for k in ("g_ema", "g")):
            return "rosinality"
        if any(_is_fastgan_state(obj.get(k)) for k in ("g", "g_ema", "d")):
            return "fastgan"
    return None


_CONVERT = {"rosinality": convert_rosinality, "fastgan": convert_fastgan}


def _load_torch_checkpoint(path, which, options):
    obj = load_torch_file(path)
    kind = sniff_torch_object(obj)
    if kind is None:
        keys = sorted(map(str, obj))[:12] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: a PyTorch checkpoint, but neither rosinality StyleGAN2 (a 'g_ema' state dict "
            "with 'style.1.weight', 'input.input', ...) nor FastGAN (a 'g' state dict with "
            f"'init.init.0.weight_orig', ...); found {keys}"
        )
    return model_from_converted(_CONVERT[kind](obj, path, which=which, **options))


def _to_numpy_tree(tree):
    if isinstance(tree, dict):
        return {k: _to_numpy_tree(v) for k, v in tree.items()}
    return np.asarray(tree)


def drop_commit_marker(params_path) -> None:
    """Remove orbax's ``commit_success.txt``: it records the absolute path the checkpoint was
    written to (a machine path in a shared or shipped checkpoint) and restoring does not read it."""
    marker = os.path.join(params_path, "commit_success.txt")
    if os.path.isfile(marker):
        os.remove(marker)


def save(model, out_dir, *, source: dict | None = None, overwrite: bool = False) -> str:
    """Write ``model`` as a converted directory: ``config.json`` + orbax ``params/``.

    ``config.json`` holds the format name and version, ``family``, the config
    (``config.to_json()``) and ``source`` (provenance). It is written last, so an
    interrupted save leaves no ``config.json`` and is recognisably incomplete.

    Args:
      model: a ``StyleGAN2`` or ``FastGAN``.
      out_dir: directory to write (new or empty unless ``overwrite``).
      source: provenance to record; default ``model.source``.
      overwrite: replace an existing converted directory.

    Returns:
      the absolute directory path.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    config_path = os.path.join(out_dir, CONFIG_FILE)
    params_path = os.path.join(out_dir, PARAMS_DIR)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(f"{out_dir}: directory exists and is not empty (pass overwrite)")
        if os.path.exists(config_path):
            os.remove(config_path)
        shutil.rmtree(params_path, ignore_errors=True)
    os.makedirs(out_dir, exist_ok=True)
    ocp.PyTreeCheckpointer().save(params_path, _to_numpy_tree(model.params))
    drop_commit_marker(params_path)
    if source is None:
        source = model.source
    record = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "family": model.config.family,
        "config": json.loads(model.config.to_json()),
        "source": source or {},
    }
    tmp = config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.replace(tmp, config_path)
    return out_dir


def _read_record(path):
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise CheckpointError(
            f"{path}: directory has no {CONFIG_FILE}, so it is not a converted model "
            "(or its conversion was interrupted: convert again)"
        )
    try:
        with open(config_path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path}: unreadable JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{config_path}: not a jaxlatent converted-model config")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: format version {record.get('format_version')!r}; this jaxlatent "
            f"reads version {FORMAT_VERSION}"
        )
    return record


def _check_shapes(family: Family, config, params, where):
    flat = {k: tuple(np.shape(v)) for k, v in flatten_dict(params, sep=".").items()}
    want = {k: tuple(v) for k, v in family.expected_shapes(config).items()}
    missing = sorted(set(want) - set(flat))
    extra = sorted(set(flat) - set(want))
    wrong = [f"{k}: {flat[k]} (expected {want[k]})" for k in sorted(want) if k in flat and flat[k] != want[k]]
    problems = [f"{k}: missing (expected {want[k]})" for k in missing]
    problems += [f"{k}: unexpected" for k in extra] + wrong
    if problems:
        more = f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        raise CheckpointError(
            f"{where}: params do not match the config: {'; '.join(problems[:6])}{more}"
        )


def load_converted(path):
    """Load a directory written by :func:`save`.

    Args:
      path: the converted directory.

    Returns:
      the model, with ``model.source`` as recorded; ``CheckpointError`` names the directory
      and the fault (missing or damaged files, params that do not fit the config).
    """
    path = os.path.abspath(os.fspath(path))
    record = _read_record(path)
    family = _family(record.get("family"), path)
    try:
        config = family.config.from_json(json.dumps(record["config"]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{os.path.join(path, CONFIG_FILE)}: bad config ({err})") from None
    params_path = os.path.join(path, PARAMS_DIR)
    if not os.path.isdir(params_path):
        raise CheckpointError(f"{path}: missing {PARAMS_DIR}/ (partial conversion: convert again)")
    try:
        metadata = ocp.PyTreeCheckpointer().metadata(params_path).item_metadata.tree
        dtypes = _dtype_tree(metadata)
        restored = ocp.PyTreeCheckpointer().restore(params_path)
        params = _restore_dtypes(restored, dtypes)
    except CheckpointError:
        raise
    except Exception as err:  # orbax/tensorstore raise many kinds on damaged files
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(
            f"{params_path}: orbax checkpoint unreadable or incomplete ({type(err).__name__}: {first})"
        ) from None
    _check_shapes(family, config, params, path)
    return family.model(config, params, source=record.get("source") or {})


def _dtype_tree(meta):
    if isinstance(meta, dict):
        return {k: _dtype_tree(v) for k, v in meta.items()}
    return np.dtype(getattr(meta, "dtype", np.float32))


def _restore_dtypes(tree, dtypes):
    if isinstance(tree, dict):
        if not isinstance(dtypes, dict) or set(tree) != set(dtypes):
            raise CheckpointError("restored params do not match the checkpoint metadata")
        return {k: _restore_dtypes(tree[k], dtypes[k]) for k in tree}
    # orbax gives 0-d arrays back as Python scalars: restore the stored dtype
    return np.asarray(tree, dtype=dtypes)


def load_lpips(src, *, net: str = "alex", backbone=None):
    """Load LPIPS (Zhang et al., CVPR 2018) as a pure callable.

    Args:
      src: a state dict of the whole ``lpips.LPIPS`` module (``.pth``, ``.npz`` or a mapping of
        arrays with the package's key names), or the package's lin weights file
        (``lpips/weights/v0.1/<net>.pth``) when ``backbone`` is given.
      net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
      backbone: a torchvision ``alexnet``/``vgg16``/``squeezenet1_1`` state dict (path or mapping).

    Returns:
      ``lp(x, y, spatial=False, layers=False)`` on NCHW images in [-1, 1] (the package's
      ``normalize=False``): distances ``(N,)``, or ``(N, 1, H, W)`` maps with ``spatial=True``;
      with ``layers=True`` an :class:`jaxlatent.models.features.lpips.LPIPSOutput` holding the per-layer
      terms as well.
    """
    variables, _ = read_lpips(src, net, backbone)
    return lpips_from_variables(variables, net)


def load_inception(src):
    """Load the FID Inception (pytorch-fid's ``pt_inception-2015-12-05-*.pth``) as a pure callable.

    Args:
      src: the weights file (``.pth`` or ``.npz``) or a mapping of arrays with its key names.

    Returns:
      ``features(x, resize=True)``: ``x (N, 3, H, W)`` RGB in [-1, 1] -> ``(N, 2048)`` pool3
      features, the embedding of FID (Heusel et al., NeurIPS 2017).
    """
    variables, _ = read_inception(src)
    return inception_from_variables(variables)
