"""StyleGAN2 mapping and synthesis networks as pure functions of (config, params).

NVlabs semantics (stylegan2-ada-pytorch ``training/networks.py``; Karras et al., CVPR 2020):
``params`` is the nested state dict of :mod:`jaxlatent.models.stylegan2_config`. Each function
can stop at an intermediate point (``stop``) so that a tap computes only what it needs; the
points are named as in :mod:`jaxlatent.models.stylegan2`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models import ops
from jaxlatent.models.stylegan2_config import StyleGAN2Config

NOISE_MODES = ("const", "random", "none")


class _Stop(Exception):
    """Raised internally once the requested intermediate value has been computed."""

    def __init__(self, value):
        super().__init__()
        self.value = value


def _record(name, value, stop):
    if name == stop:
        raise _Stop(value)


def compute_dtype(x):
    """float64 when x is float64 (x64 mode, for float64 reference Jacobians), else float32.

    The reference casts z to float32; float32 inputs reproduce it exactly, and float64 inputs
    evaluate the same function in float64 throughout.
    """
    return jnp.float64 if jnp.asarray(x).dtype == jnp.float64 else jnp.float32


def _lerp(start, end, t: float):
    """``start + t (end - start)`` evaluated as ``torch.lerp`` does (same float32 rounding)."""
    if abs(t) < 0.5:
        return start + t * (end - start)
    return end - (end - start) * (1 - t)


def mapping_layers(config: StyleGAN2Config, params, z, c=None, stop: str | None = None):
    """Mapping network f: Z -> W up to its last layer (no broadcast, no truncation).

    z: (N, z_dim); c: (N, c_dim) when ``config.c_dim > 0``. Returns w: (N, w_dim), or the
    output of layer ``stop`` (``'mapping.embed'``, ``'mapping.fc<i>'``) when given.
    """
    p = params["mapping"]
    dtype = compute_dtype(z)
    x = ops.normalize_2nd_moment(jnp.asarray(z, dtype))
    if config.c_dim > 0:
        if c is None:
            raise ValueError(f"this generator is conditional (c_dim={config.c_dim}): pass c of "
                             f"shape (N, {config.c_dim})")
        c = jnp.asarray(c, dtype)
        if c.shape != (x.shape[0], config.c_dim):
            raise ValueError(f"c must have shape ({x.shape[0]}, {config.c_dim}), got {c.shape}")
        y = ops.fully_connected(c, p["embed"]["weight"], p["embed"]["bias"])
        _record("mapping.embed", y, stop)
        x = jnp.concatenate([x, ops.normalize_2nd_moment(y)], axis=1)
    for i in range(config.mapping_layers):
        fc = p[f"fc{i}"]
        x = ops.fully_connected(x, fc["weight"], fc["bias"], activation=config.mapping_activation,
                                lr_multiplier=config.mapping_lr_multiplier)
        _record(f"mapping.fc{i}", x, stop)
    return x


def truncate(config: StyleGAN2Config, params, w, truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None):
    """Broadcast w: (N, w_dim) to ws: (N, num_ws, w_dim) and apply the truncation trick.

    ``ws[:, :cutoff] = w_avg + psi (ws[:, :cutoff] - w_avg)`` (all rows when cutoff is None);
    Karras et al. 2019, section 3.
    """
    ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], config.num_ws, w.shape[1]))
    if truncation_psi == 1:
        return ws
    if "w_avg" not in params["mapping"]:
        raise ValueError("truncation needs mapping.w_avg, which this generator lacks "
                         "(w_avg_beta=None); use truncation_psi=1")
    w_avg = params["mapping"]["w_avg"]
    if truncation_cutoff is None:
        return _lerp(w_avg, ws, truncation_psi)
    head = _lerp(w_avg, ws[:, :truncation_cutoff], truncation_psi)
    return jnp.concatenate([head, ws[:, truncation_cutoff:]], axis=1)


def style(config: StyleGAN2Config, params, ws, res: int, name: str):
    """Style vector s = A(w) of one synthesis layer (StyleSpace coordinates).

    ws: (N, num_ws, w_dim). Returns (N, in_channels) for layer ``name`` ('conv0', 'conv1',
    'torgb') of block ``res``: the affine layer's output, before ToRGB's weight gain.
    """
    spec = next(s for s in config.synthesis_layers if s.res == res and s.name == name)
    aff = params["synthesis"][f"b{res}"][name]["affine"]
    return ops.fully_connected(ws[:, spec.w_index], aff["weight"], aff["bias"])


def _noise_inputs(config, params, n, noise_mode, key, dtype):
    """Per-layer noise images, ``{(res, name): array broadcastable to (n, C, res, res)}``.

    'random' draws every layer's N(0, 1) noise in one call (one random-bits kernel to compile,
    not one per layer), then scales it by the layer's noise strength.
    """
    if not config.use_noise or noise_mode == "none":
        return {}
    layers = [(s.res, s.name) for s in config.synthesis_layers if s.name != "torgb"]
    lp = {(r, nm): params["synthesis"][f"b{r}"][nm] for r, nm in layers}
    if noise_mode == "const":
        return {k: p["noise_const"].astype(dtype) * p["noise_strength"].astype(dtype)
                for k, p in lp.items()}
    sizes = [r * r for r, _ in layers]
    draw = jax.random.normal(key, (n, sum(sizes)), dtype)
    out, start = {}, 0
    for (r, nm), size in zip(layers, sizes):
        sample = draw[:, start:start + size].reshape(n, 1, r, r)
        out[(r, nm)] = sample * lp[(r, nm)]["noise_strength"].astype(dtype)
        start += size
    return out


def _synthesis_layer(config, lp, x, s, res, up, noise, gain=1.0):
    fw = ops.setup_filter(config.resample_filter)
    x = ops.modulated_conv2d(x, lp["weight"], s, noise=noise, up=up, padding=1,
                             resample_filter=fw, flip_weight=(up == 1))
    _, _, act_gain = ops.ACTIVATIONS[config.synthesis_activation]
    clamp = None if config.conv_clamp is None else config.conv_clamp * gain
    return ops.bias_act(x, lp["bias"], act=config.synthesis_activation, gain=act_gain * gain,
                        clamp=clamp)


def _torgb(config, lp, x, s):
    s = s * (1 / np.sqrt(x.shape[1]))
    x = ops.modulated_conv2d(x, lp["weight"], s, demodulate=False)
    return ops.bias_act(x, lp["bias"], clamp=config.conv_clamp)


def synthesis(config: StyleGAN2Config, params, ws, noise_mode: str = "const", key=None,
              stop: str | None = None):
    """Synthesis network g: W+ -> image, NVlabs ``SynthesisNetwork.forward`` (float32).

    ws: (N, num_ws, w_dim). ``noise_mode``: 'const' (stored noise), 'random' (fresh N(0, 1)
    noise from ``key``, independent over layers and samples), 'none'. Returns the
    image (N, img_channels, R, R), or the value named ``stop``: 'synthesis.b<res>' (block
    features), 'synthesis.b<res>.conv0'/'conv1' (layer outputs), 'synthesis.b<res>.img'
    (running image of a block that has one).
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    if noise_mode == "random" and config.use_noise and key is None:
        raise ValueError("noise_mode='random' needs an explicit jax.random key: pass key=...")
    ws = jnp.asarray(ws, compute_dtype(ws))
    if ws.ndim != 3 or ws.shape[1:] != (config.num_ws, config.w_dim):
        raise ValueError(f"ws must have shape (N, {config.num_ws}, {config.w_dim}), got {ws.shape}")
    n = ws.shape[0]
    sp = params["synthesis"]
    f = ops.setup_filter(config.resample_filter)
    x = img = None
    noise = _noise_inputs(config, params, n, noise_mode, key, ws.dtype)
    for res in config.block_resolutions:
        bp = sp[f"b{res}"]
        pre = f"synthesis.b{res}"
        styles = {s.name: style(config, params, ws, res, s.name)
                  for s in config.synthesis_layers if s.res == res}
        if res == 4:
            x = jnp.broadcast_to(bp["const"][None].astype(ws.dtype), (n,) + bp["const"].shape)
            x = _synthesis_layer(config, bp["conv1"], x, styles["conv1"], res, 1,
                                 noise.get((res, "conv1")))
            _record(f"{pre}.conv1", x, stop)
        else:
            resnet = config.architecture == "resnet"
            gain = math.sqrt(0.5) if resnet else 1.0
            if resnet:
                y = ops.conv2d_resample(x, bp["skip"]["weight"] * (1 / np.sqrt(x.shape[1])), f=f,
                                        up=2, flip_weight=False)
                y = y * jnp.asarray(gain, y.dtype)
            h = _synthesis_layer(config, bp["conv0"], x, styles["conv0"], res, 2,
                                 noise.get((res, "conv0")))
            _record(f"{pre}.conv0", h, stop)
            h = _synthesis_layer(config, bp["conv1"], h, styles["conv1"], res, 1,
                                 noise.get((res, "conv1")), gain=gain)
            _record(f"{pre}.conv1", h, stop)
            x = y + h if resnet else h
        _record(pre, x, stop)
        if img is not None:
            img = ops.upsample2d(img, f)
        if "torgb" in styles:
            y = _torgb(config, bp["torgb"], x, styles["torgb"])
            img = y if img is None else img + y
        if img is not None:
            _record(f"{pre}.img", img, stop)
    return img


def run_until(fn, *args, **kwargs):
    """Call ``fn`` and return either its result or the intermediate value it stopped at."""
    try:
        return fn(*args, **kwargs)
    except _Stop as stopped:
        return stopped.value
