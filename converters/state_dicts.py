"""Plain state dicts -> Flax variables, for networks whose variables are named as the state dict.

A *source* is a path to a ``torch.save`` file (``.pth``/``.pt``, read with
``torch.load(weights_only=True)``: no code from the file runs), a ``.npz`` file of arrays, or a
mapping of name -> array (numpy, jax or torch tensors). Keys are the PyTorch state-dict names;
:func:`to_variables` fills a module's expected variables (``{"params": ..., "batch_stats": ...}``
nested at the dots) from them and names the key, the expected shape and the found one when
something does not fit.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxlatent.converters import CheckpointError, load_torch_file, tensor_to_numpy

__all__ = ["read_state_dict", "to_variables"]


def _plain(value):
    if hasattr(value, "detach"):
        return tensor_to_numpy(value)
    return np.asarray(value)


def read_state_dict(src, what: str) -> tuple[dict, str]:
    """``src`` (path or mapping) -> ``(flat dict name -> numpy array, description for errors)``.

    A ``module.`` prefix (``nn.DataParallel``) is dropped; a checkpoint whose only entry holding
    arrays is ``state_dict`` is unwrapped.
    """
    if isinstance(src, Mapping):
        raw, name = dict(src), f"{what} (mapping)"
    else:
        path = os.fspath(src)
        name = path
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file ({what})")
        if path.endswith(".npz"):
            try:
                with np.load(path, allow_pickle=False) as data:
                    raw = {k: data[k] for k in data.files}
            except (ValueError, OSError) as err:
                raise CheckpointError(f"{path}: not a readable .npz of arrays ({err})") from None
        else:
            raw = load_torch_file(path)
        if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
            raw = raw["state_dict"]
        if not isinstance(raw, Mapping):
            raise CheckpointError(f"{path}: expected a state dict (name -> tensor) for {what}, "
                                  f"found {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        key = str(key)
        while key.startswith("module."):
            key = key[len("module."):]
        if hasattr(value, "shape"):
            out[key] = _plain(value)
    return out, name


def to_variables(expected: Mapping, flat: Mapping[str, np.ndarray], source: str,
                 dtype=np.float32) -> dict:
    """Fill ``expected`` (a module's variables or their shapes, nested) from ``flat``.

    Every expected entry ``collection.a.b.c`` is looked up as ``a.b.c`` in ``flat``; a missing
    key or a shape mismatch raises :class:`CheckpointError` naming the source, the key, the
    expected and the found shape. Entries of ``flat`` the module does not use are ignored.
    """
    filled = {}
    for path, leaf in flatten_dict(dict(expected)).items():
        key = ".".join(path[1:])
        if key not in flat:
            near = sorted(k for k in flat if k.split(".")[0] == path[1])[:5]
            raise CheckpointError(f"{source}: missing key {key!r} (shape {tuple(leaf.shape)}); "
                                  f"keys found under {path[1]!r}: {near or 'none'}")
        value = np.asarray(flat[key])
        if tuple(value.shape) != tuple(leaf.shape):
            raise CheckpointError(f"{source}: key {key!r} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(leaf.shape)}")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{source}: key {key!r} holds NaN or infinite values")
        filled[path] = value.astype(dtype)
    return unflatten_dict(filled)
