"""NVlabs StyleGAN2 network pickles (``.pkl``) -> StyleGAN2 config and params.

Reads the files written by stylegan2-ada-pytorch (``training/networks.py``) and
by stylegan3 for its StyleGAN2 generator (``training/networks_stylegan2.py``):
a pickled dict ``{'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}``
or a single pickled network. The file is read with the restricted unpickler in
``_safe_pickle``: no code from the file runs, and only the chosen generator's
tensors are decoded. The constructor arguments (``_init_kwargs``) give the
config; parameters and persistent buffers give the params, keyed exactly like
the NVlabs state dict (``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import os
import re

from jaxlatent.converters import CheckpointError, Converted, file_sha256, import_torch
from jaxlatent.converters._safe_pickle import PersistentObject, module_state_dict, read_pickle
from jaxlatent.models.stylegan2.config import StyleGAN2Config, params_from_state_dict

NETWORK_KEYS = ("G_ema", "G")  # preference order when the caller names none


def _pick_network(data, which, path):
    if isinstance(data, PersistentObject):
        if which not in (None, data.class_name):
            raise CheckpointError(
                f"{path}: holds a single {data.class_name!r} network, not {which!r}"
            )
        return data, data.class_name
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: expected a dict of networks ('G', 'D', 'G_ema', ...) or one "
            f"network; found {type(data).__name__}"
        )
    names = [k for k, v in data.items() if isinstance(v, PersistentObject)]
    if which is None:
        which = next((k for k in NETWORK_KEYS if k in names), None)
        if which is None:
            raise CheckpointError(
                f"{path}: no generator found; expected one of {list(NETWORK_KEYS)}, "
                f"found networks {names} and keys {list(data)}"
            )
    if which not in names:
        raise CheckpointError(
            f"{path}: no network {which!r} in the pickle; it holds networks {names}"
        )
    return data[which], which


def _check_architecture(net: PersistentObject, which, path):
    modules = net.state.get("_modules") or {}
    if net.class_name != "Generator" or set(modules) != {"synthesis", "mapping"}:
        raise CheckpointError(
            f"{path}: network {which!r} is a {net.class_name!r} with submodules "
            f"{sorted(modules)}; only StyleGAN2 generators ('Generator' with 'mapping' and "
            "'synthesis') are supported"
        )
    synthesis = modules["synthesis"]
    layers = synthesis.state.get("_modules") or {}
    foreign = {
        name: getattr(mod, "class_name", type(mod).__name__)
        for name, mod in layers.items()
        if not re.fullmatch(r"b\d+", name)
    }
    if foreign:
        listed = ", ".join(f"{k} ({v})" for k, v in list(foreign.items())[:4])
        raise CheckpointError(
            f"{path}: unsupported generator architecture: synthesis network "
            f"{synthesis.class_name!r} has layers {listed}, not StyleGAN2 blocks b4, b8, ...; "
            "this looks like a StyleGAN3 (alias-free) generator, which is not supported"
        )


def _recorded(obj: PersistentObject, *path):
    """State of a nested submodule (``path`` of ``_modules`` names), or None."""
    for name in path:
        obj = (obj.state.get("_modules") or {}).get(name) if obj is not None else None
    return obj.state if isinstance(obj, PersistentObject) else None


def config_from_network(net: PersistentObject, path):
    """``StyleGAN2Config`` from the generator's ``_init_kwargs``.

    Defaults the kwargs omit differ between stylegan2-ada-pytorch and stylegan3;
    the flavour is read from the stored source text (never run), and the values
    the layers actually recorded (``conv_clamp``, ``w_avg_beta``) take precedence.
    """
    init_kwargs = net.state.get("_init_kwargs")
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{path}: generator has no constructor arguments (_init_kwargs)")
    if net.state.get("_init_args"):
        raise CheckpointError(f"{path}: generator was built with positional arguments")
    source_text = net.module_src if isinstance(net.module_src, str) else ""
    flavor = "stylegan3" if "fused_modconv_default" in source_text else "ada"
    try:
        config = StyleGAN2Config.from_nvlabs_kwargs(_plain(init_kwargs), flavor=flavor)
        recorded = {}
        layer = _recorded(net, "synthesis", "b4", "conv1")
        if layer is not None and "conv_clamp" in layer:
            recorded["conv_clamp"] = _plain(layer["conv_clamp"])
        mapping = _recorded(net, "mapping")
        if mapping is not None and "w_avg_beta" in mapping:
            recorded["w_avg_beta"] = _plain(mapping["w_avg_beta"])
        return dataclasses.replace(config, **recorded)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: unsupported generator options: {err}") from None


def _plain(value):
    """numpy scalars and EasyDict stand-ins -> plain Python values for the config."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def read_nvlabs(path, which: str | None = None) -> Converted:
    """Read an NVlabs StyleGAN2 ``.pkl`` without executing anything from it.

    Args:
      path: the pickle.
      which: network to read, ``'G_ema'`` (default when present) or ``'G'``.

    Returns:
      :class:`Converted` with a ``StyleGAN2Config`` and params keyed like the
      NVlabs state dict (``resample_filter`` buffers checked against the config, dropped).
    """
    import_torch(path, "an NVlabs pickle")  # tensors are decoded with torch.load(weights_only=True)
    data = read_pickle(path)
    net, which = _pick_network(data, which, path)
    _check_architecture(net, which, path)
    config = config_from_network(net, path)
    try:
        state = {key: tensor.numpy() for key, tensor in module_state_dict(net).items()}
    except CheckpointError as err:
        raise CheckpointError(f"{path}: network {which!r}: {err}") from None
    try:
        params = params_from_state_dict(config, state, source=f"{path} [{which}]")
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    source = {
        "format": "nvlabs-pkl",
        "file": os.path.abspath(path),
        "sha256": file_sha256(path),
        "network": which,
        "class_name": net.class_name,
    }
    return Converted(config, params, source)
