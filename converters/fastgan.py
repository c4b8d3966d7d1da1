"""FastGAN ``.pth`` checkpoints (Liu et al. 2021, the author's ``train.py``) -> FastGAN model.

Three layouts are read, all with ``torch.load(weights_only=True)`` (no code from the file runs):

* per-iteration ``<iter>.pth``: ``{'g': state_dict, 'd': state_dict}``; the trainer copies its
  exponential moving average of the generator parameters into the network before saving, so
  ``g`` holds the EMA weights (with the live network's buffers);
* ``all_<iter>.pth``: ``{'g': raw state_dict, 'd', 'g_ema': [tensors in parameter order],
  'opt_g', 'opt_d'}``; EMA weights are ``g_ema`` put in the place of ``g``'s parameters;
* a bare generator ``state_dict``.

Keys may carry the ``module.`` prefix of ``nn.DataParallel``. Spectral-norm layers store
``weight_orig`` and the power-iteration vectors ``weight_u``, ``weight_v``; the effective weight
is computed once here as PyTorch computes it in evaluation mode,
``weight_orig / (u . (W v))`` with ``W`` the weight reshaped to a matrix (the output-channel
axis first: axis 0 for convolutions, axis 1 for the transposed convolution of ``init``).
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np
from flax.traverse_util import unflatten_dict

from jaxlatent.converters import (CheckpointError, Converted, file_sha256, load_torch_file,
                                  spectral_norm, tensor_to_numpy)
from jaxlatent.models.fastgan.config import FastGANConfig, check_params

log = logging.getLogger(__name__)

WEIGHTS = ("ema", "raw")
_TRANSPOSED = {"init.init.0"}  # spectral_norm(ConvTranspose2d) normalises along axis 1
_BUFFERS = ("weight_u", "weight_v", "running_mean", "running_var", "num_batches_tracked")


def _strip(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def _arrays(state, path, what) -> dict:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: {what} should be a state dict (key -> tensor); found {type(state).__name__}")
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = tensor_to_numpy(value)
        out[_strip(str(key))] = np.asarray(value)
    return out


def fold_spectral_norm(state: dict, source: str = "state dict") -> dict:
    """Replace every ``<m>.weight_orig, <m>.weight_u, <m>.weight_v`` by the effective ``<m>.weight``.

    ``sigma = u . (W_mat v)`` with the stored vectors (PyTorch evaluation mode: no power
    iteration; :func:`jaxlatent.converters.spectral_norm.fold_spectral_norm`, axis 1 for the
    transposed ``init`` convolution); ``weight = weight_orig / sigma``, computed in float64,
    returned as float32. Entries without spectral norm pass through; ``num_batches_tracked`` is dropped.
    """
    kept = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return spectral_norm.fold_spectral_norm(kept, source, transposed=_TRANSPOSED)


def infer_config(state: dict, source: str = "state dict", im_size=None, nz=None, ngf=None, nc=None):
    """``FastGANConfig`` from the shapes of a folded state dict; given values must agree."""
    init = state.get("init.init.0.weight")
    if init is None or np.ndim(init) != 4:
        sample = list(state)[:6]
        raise CheckpointError(
            f"{source}: not a FastGAN generator: no 4-d 'init.init.0.weight_orig' (the initial "
            f"transposed convolution); found keys {sample}{' ...' if len(state) > 6 else ''}")
    found = {"nz": int(init.shape[0])}
    nfc4 = int(init.shape[1]) // 2
    if nfc4 % 16:
        raise CheckpointError(f"{source}: init.init.0 has {init.shape[1]} output channels; FastGAN "
                              f"needs 32 * ngf (ngf an integer)")
    found["ngf"] = nfc4 // 16
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"feat_(\d+)\.", k))}
    found["im_size"] = 1024 if 1024 in blocks else 512 if 512 in blocks else 256
    if "to_big.weight" in state:
        found["nc"] = int(np.shape(state["to_big.weight"])[0])
    given = {"im_size": im_size, "nz": nz, "ngf": ngf, "nc": nc}
    for name, value in given.items():
        if value is not None and name in found and int(value) != found[name]:
            hint = f" (its last block is feat_{found['im_size']})" if name == "im_size" else ""
            raise CheckpointError(f"{source}: {name}={value} was requested but the weights have "
                                  f"{name}={found[name]}{hint}")
    values = {**{k: int(v) for k, v in given.items() if v is not None}, **found}
    try:
        return FastGANConfig(**values)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from None


def params_from_state_dict(state: dict, source: str = "state dict", **config_options):
    """``(FastGANConfig, nested params)`` from an official generator state dict of arrays.

    ``state`` may hold torch-style keys (``module.`` prefixes, ``weight_orig``/``u``/``v``,
    ``num_batches_tracked``); ``config_options`` (``im_size``, ``nz``, ``ngf``, ``nc``) are
    checked against the shapes.
    """
    state = {_strip(k): np.asarray(v) for k, v in state.items()}
    folded = fold_spectral_norm(state, source)
    config = infer_config(folded, source, **config_options)
    params = unflatten_dict({k: np.asarray(v, np.float32) for k, v in folded.items()}, sep=".")
    try:
        check_params(config, params, source)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    return config, params


def parameter_names(state: dict) -> list[str]:
    """Keys of the generator's parameters in ``Generator.parameters()`` order (``g_ema`` order).

    The state dict lists each module's parameters before its buffers, modules in registration
    order, which is the order ``parameters()`` walks; buffers are left out.
    """
    return [k for k in state if not k.rsplit(".", 1)[-1] in _BUFFERS]


def _ema_state(raw: dict, ema: list, path) -> dict:
    names = parameter_names(raw)
    if len(names) != len(ema):
        raise CheckpointError(
            f"{path}: 'g_ema' holds {len(ema)} tensors but the generator 'g' has {len(names)} "
            "parameters; the file may come from a different model")
    state = dict(raw)
    for name, tensor in zip(names, ema):
        value = tensor_to_numpy(tensor) if hasattr(tensor, "detach") else np.asarray(tensor)
        if value.shape != raw[name].shape:
            raise CheckpointError(f"{path}: 'g_ema' entry for {name} has shape {value.shape}; "
                                  f"'g' has {raw[name].shape}")
        state[name] = value
    return state


def _select(data, path, weights):
    """``(state dict, layout, weights taken, note)`` for the requested weights."""
    if weights not in (None, "g") + WEIGHTS:
        raise ValueError(f"weights must be 'ema', 'raw' or None; got {weights!r}")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict (a FastGAN checkpoint or state dict); "
                              f"found {type(data).__name__}")
    if "g" in data and "g_ema" in data:
        raw = _arrays(data["g"], path, "'g'")
        if weights in ("raw", "g"):
            return raw, "all", "raw", "'g' of an all_*.pth file (raw weights, as trained)"
        if not isinstance(data["g_ema"], (list, tuple)):
            raise CheckpointError(f"{path}: 'g_ema' should be a list of tensors; found {type(data['g_ema']).__name__}")
        return (_ema_state(raw, list(data["g_ema"]), path), "all", "ema",
                "'g_ema' of an all_*.pth file (EMA weights) with the buffers of 'g'")
    if "g" in data:
        if weights == "raw":
            raise CheckpointError(
                f"{path}: a per-iteration FastGAN file holds only the EMA weights (under 'g'); "
                "the raw weights are in the all_<iter>.pth file of the same run")
        return (_arrays(data["g"], path, "'g'"), "per-iteration", "ema",
                "'g' of a per-iteration file (the trainer stores EMA weights there)")
    if any(_strip(str(k)).startswith("init.init.0.") for k in data):
        taken = weights if weights in WEIGHTS else "unknown"
        return (_arrays(data, path, "the file"), "state_dict", taken,
                "a bare generator state dict (whether EMA or raw cannot be told from the file)")
    raise CheckpointError(
        f"{path}: not a FastGAN checkpoint: expected 'g' (and 'g_ema') entries or generator keys "
        f"like 'init.init.0.weight_orig'; found keys {list(data)[:8]}")


_WHICH = {"ema": "ema", "g_ema": "ema", "raw": "raw", "g": "g"}


def convert_fastgan(obj, path, weights: str | None = None, im_size=None, nz=None, ngf=None,
                    nc=None, which: str | None = None) -> Converted:
    """Convert an already loaded FastGAN checkpoint object.

    Args:
      obj: what ``load_torch_file(path)`` returned.
      path: the file, named in errors and recorded in ``source``.
      weights, im_size, nz, ngf, nc, which: as in :func:`read_fastgan`.

    Returns:
      ``Converted(FastGANConfig, params, source)``.
    """
    if which is not None:
        if which not in _WHICH or (weights is not None and weights != _WHICH[which]):
            raise ValueError(f"{path}: which={which!r} (weights={weights!r}): FastGAN files offer "
                             f"which='ema'/'g_ema', 'raw' or 'g'")
        weights = _WHICH[which]
    state, layout, taken, note = _select(obj, path, weights)
    config, params = params_from_state_dict(state, str(path), im_size=im_size, nz=nz, ngf=ngf, nc=nc)
    source = {"format": "fastgan-pth", "file": os.path.abspath(path),
              "sha256": file_sha256(path) if os.path.isfile(path) else None,
              "layout": layout, "weights": taken, "note": note}
    log.info("FastGAN %s: took %s", path, note)
    return Converted(config, params, source)


def read_fastgan(path, weights: str | None = None, im_size=None, nz=None, ngf=None, nc=None,
                 which: str | None = None) -> Converted:
    """Read a FastGAN ``.pth`` file into a :class:`Converted` record.

    Args:
      path: per-iteration ``<iter>.pth``, ``all_<iter>.pth`` or a bare generator state dict.
      weights: ``'ema'``, ``'raw'`` or ``None`` (EMA where the file has them).
      im_size, nz, ngf, nc: optional; inferred from the shapes, and checked when given.
      which: the name ``jaxlatent.load`` passes: ``'ema'``/``'g_ema'``, ``'raw'``, or ``'g'``
        (the ``g`` entry as stored: EMA in a per-iteration file, raw in ``all_*.pth``).

    Returns:
      ``Converted(config, params, source)``; ``source['weights']`` says which weights were
      taken (``'ema'``, ``'raw'``, or ``'unknown'`` for a bare state dict).
    """
    return convert_fastgan(load_torch_file(path), path, weights, im_size, nz, ngf, nc, which)
