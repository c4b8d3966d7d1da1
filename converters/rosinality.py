"""rosinality ``stylegan2-pytorch`` checkpoints (``.pt``) -> StyleGAN2 config and params.

The file is a ``torch.save`` dict: ``'g_ema'`` (and optionally ``'g'``, ``'d'``,
``'latent_avg'``, optimizer states, ``'args'``) holding state dicts of
rosinality's ``model.Generator``; GANSpace, Local Basis and GAN-Geometry load
exactly this. Its modules compute what NVlabs' StyleGAN2 computes with
``architecture='skip'``, no conv clamping and filter ``[1, 3, 3, 1]``; we rename
the keys onto the NVlabs layout (``docs/checkpoints.md`` has the table) and
transform weights where the two codes store them differently:

* modulated conv weights carry a leading batch axis ``(1, O, I, k, k)``;
* the up-sampling convolutions need no flip: rosinality's ``conv_transpose2d``
  with its stored kernel equals NVlabs' up-sampling modulated convolution with
  the same kernel (its ``convert_weight.py`` flips only when coming from the
  TensorFlow layout). Checked against rosinality's own outputs in
  ``tests/test_converters_rosinality.py``: flipping there gives 54% error;
* noise strengths are ``(1,)`` instead of scalars, ``to_rgb`` biases
  ``(1, 3, 1, 1)`` instead of ``(3,)``, the constant input ``(1, C, 4, 4)``;
* ``latent_avg`` (the mean W rosinality truncates towards) becomes ``w_avg``.

Channels: rosinality uses ``min(512, 16384 * channel_multiplier / res)``, i.e.
NVlabs ``channel_base = 16384 * channel_multiplier``, ``channel_max = 512``;
other tables (narrowed test models) become an explicit per-resolution table.
"""

from __future__ import annotations

import os
import re

import numpy as np

from jaxlatent.converters import (CheckpointError, Converted, file_sha256, load_torch_file,
                                  tensor_to_numpy)
from jaxlatent.models.stylegan2.config import StyleGAN2Config, params_from_state_dict

GENERATOR_KEYS = ("g_ema", "g")
_BLUR_1D = np.array([1.0, 3.0, 3.0, 1.0])


def is_rosinality_state_dict(state) -> bool:
    """True when ``state`` looks like a rosinality ``Generator`` state dict."""
    if not isinstance(state, dict):
        return False
    keys = {_strip_module(k) for k in state}
    return "input.input" in keys and "conv1.conv.weight" in keys and "style.1.weight" in keys


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _pick_generator(obj, which, path):
    if is_rosinality_state_dict(obj):
        return obj, "state_dict"
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path}: expected a dict with 'g_ema' (rosinality stylegan2-pytorch); "
            f"found {type(obj).__name__}"
        )
    if which is not None:
        which = which.lower()
        if which not in obj:
            raise CheckpointError(f"{path}: no {which!r} entry; the file holds {sorted(map(str, obj))}")
    else:
        which = next((k for k in GENERATOR_KEYS if k in obj), None)
        if which is None:
            raise CheckpointError(
                f"{path}: no generator entry; expected one of {list(GENERATOR_KEYS)}, "
                f"found {sorted(map(str, obj))}"
            )
    if not is_rosinality_state_dict(obj[which]):
        raise CheckpointError(
            f"{path}: entry {which!r} is not a rosinality StyleGAN2 generator state dict "
            "(expected keys such as 'style.1.weight', 'input.input', 'conv1.conv.weight')"
        )
    return obj[which], which


def _get(state, key, shape, path, transform=None):
    if key not in state:
        raise CheckpointError(f"{path}: missing key {key!r} in the generator state dict")
    value = state[key]
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(
            f"{path}: key {key!r} has shape {tuple(value.shape)}, expected {tuple(shape)}"
        )
    return transform(value) if transform else value


def infer_options(state, path) -> dict:
    """Architecture of a rosinality generator from its state-dict shapes.

    Returns ``{'size', 'style_dim', 'n_mlp', 'channels': {res: C}}``.
    """
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in state:
        n_mlp += 1
    style_dim = state["style.1.weight"].shape[1]
    n_rgb = len({m.group(1) for k in state if (m := re.match(r"to_rgbs\.(\d+)\.", k))})
    size = 2 ** (n_rgb + 2)
    channels = {4: int(state["input.input"].shape[1])}
    for k in range(n_rgb):
        key = f"convs.{2 * k}.conv.weight"
        if key not in state:
            raise CheckpointError(f"{path}: missing key {key!r} in the generator state dict")
        channels[2 ** (k + 3)] = int(state[key].shape[1])
    return dict(size=size, style_dim=int(style_dim), n_mlp=n_mlp, channels=channels)


def channel_options(channels: dict) -> dict:
    """NVlabs ``channel_base``/``channel_max`` for a rosinality table, else the table."""
    hi = [r for r in channels if r >= 64]
    multipliers = {channels[r] * r / 16384 for r in hi} or {2}
    if len(multipliers) == 1:
        base = int(round(16384 * multipliers.pop()))
        if all(channels[r] == min(base // r, 512) for r in channels):
            return dict(channel_base=base, channel_max=512)
    return dict(channels=tuple(channels[r] for r in sorted(channels)))


def to_nvlabs_state_dict(state, latent_avg, options, path) -> dict:
    """Rename (and reshape) rosinality generator weights onto NVlabs keys."""
    d, ch = options["style_dim"], options["channels"]
    out = {}
    for i in range(options["n_mlp"]):
        out[f"mapping.fc{i}.weight"] = _get(state, f"style.{i + 1}.weight", (d, d), path)
        out[f"mapping.fc{i}.bias"] = _get(state, f"style.{i + 1}.bias", (d,), path)
    out["mapping.w_avg"] = latent_avg
    out["synthesis.b4.const"] = _get(state, "input.input", (1, ch[4], 4, 4), path)[0]

    def layer(src, dst, c_in, c_out, noise):
        out[f"{dst}.weight"] = _get(state, f"{src}.conv.weight", (1, c_out, c_in, 3, 3), path)[0]
        out[f"{dst}.affine.weight"] = _get(state, f"{src}.conv.modulation.weight", (c_in, d), path)
        out[f"{dst}.affine.bias"] = _get(state, f"{src}.conv.modulation.bias", (c_in,), path)
        out[f"{dst}.noise_strength"] = _get(state, f"{src}.noise.weight", (1,), path).reshape(())
        out[f"{dst}.bias"] = _get(state, f"{src}.activate.bias", (c_out,), path)
        res = noise[1]
        out[f"{dst}.noise_const"] = _get(state, noise[0], (1, 1, res, res), path)[0, 0]

    def torgb(src, dst, c_in):
        out[f"{dst}.weight"] = _get(state, f"{src}.conv.weight", (1, 3, c_in, 1, 1), path)[0]
        out[f"{dst}.affine.weight"] = _get(state, f"{src}.conv.modulation.weight", (c_in, d), path)
        out[f"{dst}.affine.bias"] = _get(state, f"{src}.conv.modulation.bias", (c_in,), path)
        out[f"{dst}.bias"] = _get(state, f"{src}.bias", (1, 3, 1, 1), path).reshape(3)

    layer("conv1", "synthesis.b4.conv1", ch[4], ch[4], ("noises.noise_0", 4))
    torgb("to_rgb1", "synthesis.b4.torgb", ch[4])
    res, k = 8, 0
    while res <= options["size"]:
        c_in, c_out, b = ch[res // 2], ch[res], f"synthesis.b{res}"
        layer(f"convs.{2 * k}", f"{b}.conv0", c_in, c_out, (f"noises.noise_{2 * k + 1}", res))
        layer(f"convs.{2 * k + 1}", f"{b}.conv1", c_out, c_out, (f"noises.noise_{2 * k + 2}", res))
        torgb(f"to_rgbs.{k}", f"{b}.torgb", c_out)
        res, k = res * 2, k + 1
    _check_blur_kernels(state, path)
    return out


def _check_blur_kernels(state, path):
    expected = np.outer(_BLUR_1D, _BLUR_1D) / _BLUR_1D.sum() ** 2
    for key, value in state.items():
        if key.endswith(".kernel"):
            kernel = np.asarray(value, dtype=np.float64)
            scale = kernel.sum()
            if kernel.shape != (4, 4) or not np.allclose(kernel / scale, expected, atol=1e-6):
                raise CheckpointError(
                    f"{path}: unsupported blur kernel at {key!r} (only [1, 3, 3, 1] is supported)"
                )


def convert_rosinality(obj, path, which=None, lr_mlp=0.01) -> Converted:
    """Convert an already loaded rosinality checkpoint object.

    Args:
      obj: what ``load_torch_file(path)`` returned (a training dict or a bare state dict).
      path: the file, named in errors and recorded in ``source``.
      which: ``'g_ema'`` (default when present) or ``'g'``.
      lr_mlp: the mapping network's learning-rate multiplier used at training.

    Returns:
      ``Converted(StyleGAN2Config, params, source)``.
    """
    generator, which = _pick_generator(obj, which, path)
    state = {_strip_module(k): tensor_to_numpy(v) for k, v in generator.items()}
    options = infer_options(state, path)
    notes = []
    latent_avg = obj.get("latent_avg") if isinstance(obj, dict) and which == "g_ema" else None
    if latent_avg is None:
        latent_avg = np.zeros(options["style_dim"], np.float32)
        notes.append("no latent_avg for this generator: w_avg set to zeros, so truncation "
                     "pulls towards 0 unless you set w_avg yourself")
    else:
        latent_avg = tensor_to_numpy(latent_avg).reshape(-1)
        if latent_avg.shape != (options["style_dim"],):
            raise CheckpointError(
                f"{path}: latent_avg has shape {latent_avg.shape}, expected ({options['style_dim']},)"
            )
    nv_state = to_nvlabs_state_dict(state, latent_avg, options, path)
    d = options["style_dim"]
    try:
        config = StyleGAN2Config(
            z_dim=d, c_dim=0, w_dim=d, img_resolution=options["size"], img_channels=3,
            mapping_layers=options["n_mlp"], mapping_lr_multiplier=lr_mlp,
            architecture="skip", conv_clamp=None, resample_filter=(1, 3, 3, 1),
            **channel_options(options["channels"]),
        )
        params = params_from_state_dict(config, nv_state, source=f"{path} [{which}]")
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}" if str(path) not in str(err) else str(err)) from None
    source = {"format": "rosinality-pt", "file": os.path.abspath(path),
              "sha256": file_sha256(path) if os.path.isfile(path) else None, "network": which,
              "notes": notes}
    return Converted(config, params, source)


def read_rosinality(path, which: str | None = None, lr_mlp: float = 0.01) -> Converted:
    """Read a rosinality ``stylegan2-pytorch`` checkpoint.

    Args:
      path: a ``.pt`` file saved by rosinality's ``train.py`` or ``convert_weight.py``.
      which: ``'g_ema'`` (default when present) or ``'g'``.
      lr_mlp: the mapping network's learning-rate multiplier used at training
        (rosinality's ``lr_mlp``, default 0.01); not stored in the file.

    Returns:
      ``Converted(StyleGAN2Config, params, source)``.
    """
    return convert_rosinality(load_torch_file(path), path, which, lr_mlp)
