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

import hashlib
import os
import re

from jaxlatent.converters import CheckpointError, Converted
from jaxlatent.converters._safe_pickle import PersistentObject, module_state_dict, read_pickle

NETWORK_KEYS = ("G_ema", "G")  # preference order when the caller names none

# constructor options that only concern speed or mixed precision; float32 ignores them
_IGNORED_OPTIONS = {"num_fp16_res", "fp16_channels_last", "use_fp16", "fused_modconv_default"}


def _file_digest(path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    return sha.hexdigest()


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


def generator_options(init_kwargs, path) -> dict:
    """Flatten NVlabs ``Generator`` constructor arguments into one options dict.

    Returns ``{'z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels',
    'mapping': {...mapping_kwargs}, 'synthesis': {...synthesis_kwargs}}`` with
    speed-only options dropped.
    """
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{path}: generator has no constructor arguments (_init_kwargs)")
    kwargs = dict(init_kwargs)
    top = {}
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if key not in kwargs:
            raise CheckpointError(f"{path}: generator _init_kwargs lacks {key!r}; found {sorted(kwargs)}")
        top[key] = kwargs.pop(key)
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    # Generator(**kw) forwards anything else to the synthesis network
    synthesis.update(kwargs)
    for options in (mapping, synthesis):
        for key in _IGNORED_OPTIONS & set(options):
            del options[key]
    if synthesis.get("kernel_size", 3) != 3:
        raise CheckpointError(f"{path}: unsupported synthesis kernel_size={synthesis['kernel_size']}")
    synthesis.pop("kernel_size", None)
    return dict(top, mapping=mapping, synthesis=synthesis)


def read_nvlabs(path, which: str | None = None) -> Converted:
    """Read an NVlabs StyleGAN2 ``.pkl`` without executing anything from it.

    Args:
      path: the pickle.
      which: network to read, ``'G_ema'`` (default when present) or ``'G'``.

    Returns:
      :class:`Converted` with a ``StyleGAN2Config`` and params keyed like the
      NVlabs state dict (constant ``resample_filter`` buffers dropped).
    """
    from jaxlatent.models import stylegan2  # noqa: PLC0415  (models stay optional here)

    data = read_pickle(path)
    net, which = _pick_network(data, which, path)
    _check_architecture(net, which, path)
    if net.state.get("_init_args"):
        raise CheckpointError(f"{path}: generator {which!r} was built with positional arguments")
    options = generator_options(net.state.get("_init_kwargs"), path)
    config = stylegan2_config(options, path)
    try:
        state = {
            key: tensor.numpy()
            for key, tensor in module_state_dict(net).items()
            if not key.endswith("resample_filter")
        }
    except CheckpointError as err:
        raise CheckpointError(f"{path}: network {which!r}: {err}") from None
    params = stylegan2.params_from_state_dict(config, state, source=f"{path} [{which}]")
    source = {
        "format": "nvlabs-pkl",
        "file": os.path.abspath(path),
        "sha256": _file_digest(path),
        "network": which,
        "class_name": net.class_name,
    }
    return Converted(config, params, source)


def stylegan2_config(options: dict, path):
    """Build a ``StyleGAN2Config`` from :func:`generator_options` output."""
    from jaxlatent.models.stylegan2 import StyleGAN2Config  # noqa: PLC0415

    return config_from_options(StyleGAN2Config, options, path)


def config_from_options(config_cls, options: dict, path):
    """Match flattened NVlabs options onto ``config_cls`` fields; unknown ones are errors."""
    import dataclasses  # noqa: PLC0415

    fields = {f.name for f in dataclasses.fields(config_cls)}
    values = {k: v for k, v in options.items() if k not in ("mapping", "synthesis")}
    for group in ("mapping", "synthesis"):
        for key, value in options[group].items():
            name = next((n for n in (f"{group}_{key}", key) if n in fields), None)
            if name is None:
                raise CheckpointError(
                    f"{path}: unsupported {group} option {key}={value!r} in the generator's "
                    "constructor arguments"
                )
            if isinstance(value, list):
                value = tuple(value)
            values[name] = value
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: generator options {values} are not supported: {err}") from None


def load_nvlabs(path, which: str | None = None):
    """Read an NVlabs ``.pkl`` and return a ``StyleGAN2`` model (see :func:`read_nvlabs`)."""
    from jaxlatent.models.stylegan2 import StyleGAN2  # noqa: PLC0415

    converted = read_nvlabs(path, which)
    return StyleGAN2(converted.config, converted.params)
