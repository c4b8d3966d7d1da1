"""huggingface ``pytorch-pretrained-biggan`` (0.1.1) weights -> BigGAN-deep model.

The package keeps a generator as two files: ``pytorch_model.bin`` (a ``torch.save`` state dict)
and ``config.json`` (its ``BigGANConfig``). ``BigGAN.from_pretrained`` reads them from a folder
that holds both under those names, or downloads them into its cache
(``$PYTORCH_PRETRAINED_BIGGAN_CACHE``, default ``~/.pytorch_pretrained_biggan``), where each file
is named by the SHA-256 of its URL (and ETag) with a ``<name>.json`` beside it recording the URL.
This reader takes the folder, the two files given directly, or the cache and a model name
(:func:`find_in_cache`).

The state dict is read with ``torch.load(weights_only=True)`` (no code from the file runs).
Spectral-norm triples are folded as PyTorch evaluation mode computes them
(:mod:`jaxlatent.converters.spectral_norm`); the class embedding, the batch norms' statistic
tables ``(n_stats, C)``, the attention gain and every bias are taken as stored. Keys the
generator does not use are left out and listed in ``source['ignored_keys']`` (the package loads
with ``strict=False``); a missing key, a misshapen tensor or a non-finite value stops with an
error naming the file and the key.
"""

from __future__ import annotations

import glob
import json
import logging
import os

import numpy as np
from flax.traverse_util import unflatten_dict

from jaxlatent.converters import CheckpointError, Converted, file_sha256, load_torch_file, tensor_to_numpy
from jaxlatent.converters.spectral_norm import fold_spectral_norm
from jaxlatent.models.biggan.config import PACKAGE_KEYS, BigGANConfig, expected_shapes

log = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
CACHE_ENV = "PYTORCH_PRETRAINED_BIGGAN_CACHE"
# keys that tell the package's config.json from other config.json files
_SIGNATURE = ("channel_width", "layers", "attention_layer_position", "n_stats")
_PLAIN_WEIGHTS = ("embeddings.weight", "generator.bn.weight")  # the weights without spectral norm

__all__ = ["read_biggan", "convert_biggan", "params_from_state_dict", "read_package_config",
           "is_package_config", "is_biggan_folder", "cached_models", "find_in_cache", "default_cache_dir"]


def is_package_config(data) -> bool:
    """Whether a parsed JSON object is the package's ``BigGANConfig`` (not a jaxlatent record)."""
    return isinstance(data, dict) and "format" not in data and all(k in data for k in _SIGNATURE)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable JSON ({err})") from None


def read_package_config(path) -> BigGANConfig:
    """The package's ``config.json`` -> :class:`BigGANConfig` (package defaults for absent keys)."""
    data = _read_json(path)
    if not is_package_config(data):
        found = sorted(data)[:10] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: not a pytorch-pretrained-biggan config: expected keys "
                              f"{list(_SIGNATURE)} (of {list(PACKAGE_KEYS)}); found {found}")
    try:
        return BigGANConfig.from_package(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from None


def is_biggan_folder(path) -> bool:
    """A folder with ``pytorch_model.bin`` and the package's ``config.json``."""
    config = os.path.join(path, CONFIG_NAME)
    if not (os.path.isfile(os.path.join(path, WEIGHTS_NAME)) and os.path.isfile(config)):
        return False
    try:
        return is_package_config(_read_json(config))
    except CheckpointError:
        return False


def default_cache_dir() -> str:
    """The package's cache: ``$PYTORCH_PRETRAINED_BIGGAN_CACHE`` or ``~/.pytorch_pretrained_biggan``."""
    return os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".pytorch_pretrained_biggan"))


def cached_models(cache_dir) -> dict:
    """``{model name: (weights path, config path)}`` of the complete models in a package cache,
    read from the URL records (``<hash>.json``) beside the cached files."""
    models: dict = {}
    for meta in sorted(glob.glob(os.path.join(cache_dir, "*.json"))):
        target = meta[: -len(".json")]
        try:
            url = _read_json(meta).get("url", "")
        except (CheckpointError, AttributeError):
            continue
        base = str(url).rsplit("/", 1)[-1]
        for suffix, kind in ((f"-{WEIGHTS_NAME}", "weights"), (f"-{CONFIG_NAME}", "config")):
            if base.endswith(suffix) and os.path.isfile(target):
                models.setdefault(base[: -len(suffix)], {})[kind] = target
    return {k: (v["weights"], v["config"]) for k, v in models.items() if len(v) == 2}


def find_in_cache(name: str | None = None, cache_dir=None) -> tuple[str, str]:
    """The cached ``(weights, config)`` files of a model ``from_pretrained`` downloaded.

    Args:
      name: ``'biggan-deep-128'``, ``'-256'`` or ``'-512'``; None when the cache holds one model.
      cache_dir: default :func:`default_cache_dir`.

    Returns:
      the two file paths; ``CheckpointError`` lists the cached models when the name is not there.
    """
    cache_dir = os.fspath(cache_dir or default_cache_dir())
    if not os.path.isdir(cache_dir):
        raise FileNotFoundError(f"{cache_dir}: no such directory (the pytorch-pretrained-biggan cache)")
    complete = cached_models(cache_dir)
    if name is None and len(complete) == 1:
        name = next(iter(complete))
    if name not in complete:
        what = "several models: name one with which=" if name is None else f"no model {name!r}"
        raise CheckpointError(f"{cache_dir}: the pytorch-pretrained-biggan cache holds {what}; "
                              f"complete models (weights and config) found: {sorted(complete) or 'none'}")
    return complete[name]


def params_from_state_dict(state: dict, config: BigGANConfig, source: str = "state dict"):
    """``(nested params, ignored keys)`` from the package's state dict of arrays.

    Args:
      state: flat ``{key: array}`` as ``BigGAN.state_dict()`` holds it (spectral-norm triples or
        plain weights; a ``module.`` prefix is dropped).
      config: the generator's hyper-parameters.
      source: the file, named in errors.

    Returns:
      params nested at the dots (float32, spectral norm folded) and the sorted unused keys.
    """
    state = {k.removeprefix("module."): np.asarray(v) for k, v in state.items()}
    folded = fold_spectral_norm(state, source)
    expected = expected_shapes(config)
    flat = {}
    for key, shape in expected.items():
        if key not in folded:
            plain = key in _PLAIN_WEIGHTS or not key.endswith(".weight")
            hint = "" if plain else f" (or its spectral-norm triple '{key}_orig', '_u', '_v')"
            raise CheckpointError(f"{source}: missing key {key!r}{hint}, shape {shape}, for the "
                                  f"configured generator; the file may be truncated or from another model")
        value = folded[key]
        if tuple(value.shape) != tuple(shape):
            raise CheckpointError(f"{source}: key {key!r} has shape {tuple(value.shape)}, expected "
                                  f"{tuple(shape)} (from the config)")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{source}: key {key!r} holds NaN or infinite values")
        flat[key] = np.asarray(value, np.float32)
    ignored = sorted(k for k in folded if k not in expected)
    return unflatten_dict(flat, sep="."), ignored


def _state_arrays(obj, path) -> dict:
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a state dict (key -> tensor); found "
                              f"{type(obj).__name__ if not isinstance(obj, dict) else 'an empty dict'}")
    out = {}
    for key, value in obj.items():
        if not hasattr(value, "shape"):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[str(key)] = tensor_to_numpy(value) if hasattr(value, "detach") else np.asarray(value)
    return out


def convert_biggan(obj, path, config: BigGANConfig, config_path=None) -> Converted:
    """Convert a state dict already loaded with :func:`load_torch_file`.

    Args:
      obj: the state dict. path: its file (named in errors, recorded in ``source``).
      config: the generator's :class:`BigGANConfig`. config_path: its file, recorded.

    Returns:
      ``Converted(BigGANConfig, params, source)``.
    """
    params, ignored = params_from_state_dict(_state_arrays(obj, path), config, str(path))
    if ignored:
        log.info("BigGAN %s: %d keys not used by the generator: %s", path, len(ignored), ignored[:8])
    source = {"format": "pytorch-pretrained-biggan", "file": os.path.abspath(path),
              "sha256": file_sha256(path) if os.path.isfile(path) else None,
              "config_file": os.path.abspath(config_path) if config_path else None,
              "ignored_keys": ignored}
    return Converted(config, params, source)


def read_biggan(path, config=None, which: str | None = None) -> Converted:
    """Read a ``pytorch-pretrained-biggan`` generator into a :class:`Converted` record.

    Args:
      path: a folder with ``pytorch_model.bin`` and ``config.json`` (what ``from_pretrained``
        takes), the package's cache folder (then ``which`` names the model), or the weights file
        itself (any name: cached files are named by hash).
      config: the ``config.json`` path when ``path`` is the weights file (default: the
        ``config.json`` beside it).
      which: for a cache folder: ``'biggan-deep-128'``, ``'-256'`` or ``'-512'``.

    Returns:
      ``Converted(config, params, source)``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if config is not None:
            raise ValueError(f"{path}: config= names the config file when the weights file is given; "
                             "a folder holds its own config.json")
        if is_biggan_folder(path):
            weights, config = os.path.join(path, WEIGHTS_NAME), os.path.join(path, CONFIG_NAME)
        elif os.path.isfile(os.path.join(path, WEIGHTS_NAME)):
            raise CheckpointError(f"{os.path.join(path, CONFIG_NAME)}: missing, or not the package's "
                                  f"BigGANConfig (keys {list(_SIGNATURE)})")
        else:
            weights, config = find_in_cache(which, path)
    else:
        weights = path
        config = os.fspath(config) if config is not None else os.path.join(os.path.dirname(path) or ".",
                                                                            CONFIG_NAME)
        if not os.path.isfile(config):
            raise FileNotFoundError(f"{config}: no such file (the BigGAN config.json for {path}; "
                                    "pass config=...)")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights}: no such file")
    return convert_biggan(load_torch_file(weights), weights, read_package_config(config), config)
