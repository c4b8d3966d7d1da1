"""StyleGAN2 mapping and synthesis networks as Flax linen modules.

NVlabs semantics (stylegan2-ada-pytorch ``training/networks.py``; Karras et al., CVPR 2020).
The modules mirror the NVlabs module tree, so their variables are ``{"params": params}`` with
``params`` the NVlabs state dict nested at its dots, PyTorch layouts
(:func:`jaxlatent.models.stylegan2.config.expected_shapes`): ``mapping.fc0.weight`` is
``variables["params"]["mapping"]["fc0"]["weight"]``, ``(out, in)`` as in PyTorch.

Each network can stop at an intermediate point (``stop``) so that a tap computes only what it
needs; the points are named as in :mod:`jaxlatent.models.stylegan2.model`. The whole generator, with
a method per tap, is :class:`jaxlatent.models.stylegan2.net.Generator`; the functions at the end
(:func:`mapping_layers`, :func:`synthesis`) apply the networks to a params pytree.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models import ops
from jaxlatent.models.stylegan2.config import StyleGAN2Config, SynthesisLayerSpec

NOISE_MODES = ("const", "random", "none")


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


def _normal(scale: float = 1.0):
    """N(0, scale^2) initializer (the NVlabs constructors' ``torch.randn(...) * scale``)."""
    return lambda key, shape, dtype=jnp.float32: jax.random.normal(key, shape, dtype) * scale


# ----------------------------------------------------------------------------- layers

class FullyConnected(nn.Module):
    """Equalised-learning-rate dense layer (NVlabs ``FullyConnectedLayer``).

    Params ``weight: (features, in_features)`` drawn N(0, 1) / lr_multiplier and ``bias:
    (features,)`` at ``bias_init``; see :func:`jaxlatent.models.ops.fully_connected`.
    """

    features: int
    in_features: int
    activation: str = "linear"
    lr_multiplier: float = 1.0
    bias_init: float = 0.0

    def setup(self):
        self.weight = self.param("weight", _normal(1 / self.lr_multiplier),
                                 (self.features, self.in_features))
        self.bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))

    def __call__(self, x):
        """x: (N, in_features) -> (N, features)."""
        return ops.fully_connected(x, self.weight, self.bias, activation=self.activation,
                                   lr_multiplier=self.lr_multiplier)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution with noise, bias and activation (NVlabs ``SynthesisLayer``).

    ``spec`` gives the block resolution, the layer name and the channels; ``up`` is 2 for a
    block's first (upsampling) layer; ``gain`` scales the output (sqrt(1/2) for the resnet sum).
    """

    config: StyleGAN2Config
    spec: SynthesisLayerSpec
    up: int = 1
    gain: float = 1.0

    def setup(self):
        s, cfg = self.spec, self.config
        self.affine = FullyConnected(s.in_channels, cfg.w_dim, bias_init=1.0)
        self.weight = self.param("weight", _normal(), (s.out_channels, s.in_channels, 3, 3))
        self.bias = self.param("bias", nn.initializers.zeros, (s.out_channels,))
        if cfg.use_noise:
            self.noise_const = self.param("noise_const", _normal(), (s.res, s.res))
            self.noise_strength = self.param("noise_strength", nn.initializers.zeros, ())

    def style(self, w):
        """Style s = A(w): (N, w_dim) -> (N, in_channels) (StyleSpace coordinates)."""
        return self.affine(w)

    def noise(self, noise_mode: str, sample, dtype):
        """The noise added to the output: stored image or ``sample`` scaled by the strength."""
        if not self.config.use_noise or noise_mode == "none":
            return None
        strength = self.noise_strength.astype(dtype)
        if noise_mode == "const":
            return self.noise_const.astype(dtype) * strength
        return sample * strength

    def __call__(self, x, s, noise):
        """x: (N, in, H, W), s: (N, in), noise broadcastable to the output or None."""
        cfg = self.config
        fw = ops.setup_filter(cfg.resample_filter)
        x = ops.modulated_conv2d(x, self.weight, s, noise=noise, up=self.up, padding=1,
                                 resample_filter=fw, flip_weight=(self.up == 1))
        _, _, act_gain = ops.ACTIVATIONS[cfg.synthesis_activation]
        clamp = None if cfg.conv_clamp is None else cfg.conv_clamp * self.gain
        return ops.bias_act(x, self.bias, act=cfg.synthesis_activation,
                            gain=act_gain * self.gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """1x1 modulated convolution to image channels, no demodulation (NVlabs ``ToRGBLayer``)."""

    config: StyleGAN2Config
    spec: SynthesisLayerSpec

    def setup(self):
        s = self.spec
        self.affine = FullyConnected(s.in_channels, self.config.w_dim, bias_init=1.0)
        self.weight = self.param("weight", _normal(), (s.out_channels, s.in_channels, 1, 1))
        self.bias = self.param("bias", nn.initializers.zeros, (s.out_channels,))

    def style(self, w):
        """Style s = A(w), before the 1/sqrt(in_channels) weight gain."""
        return self.affine(w)

    def __call__(self, x, s):
        s = s * (1 / np.sqrt(x.shape[1]))
        x = ops.modulated_conv2d(x, self.weight, s, demodulate=False)
        return ops.bias_act(x, self.bias, clamp=self.config.conv_clamp)


class SkipLayer(nn.Module):
    """Resnet skip branch: 1x1 convolution with FIR upsampling, no bias (param ``weight``)."""

    config: StyleGAN2Config
    in_channels: int
    out_channels: int

    def setup(self):
        self.weight = self.param("weight", _normal(), (self.out_channels, self.in_channels, 1, 1))

    def __call__(self, x, gain: float):
        f = ops.setup_filter(self.config.resample_filter)
        y = ops.conv2d_resample(x, self.weight * (1 / np.sqrt(x.shape[1])), f=f, up=2,
                                flip_weight=False)
        return y * jnp.asarray(gain, y.dtype)


# ----------------------------------------------------------------------------- networks

class MappingNetwork(nn.Module):
    """Mapping network f: Z -> W (NVlabs ``MappingNetwork``): params ``embed``, ``fc<i>``,
    ``w_avg`` (the tracked mean of w, a buffer in NVlabs, a param here)."""

    config: StyleGAN2Config

    def setup(self):
        cfg = self.config
        feats = cfg.mapping_features
        if cfg.c_dim > 0:
            self.embed = FullyConnected(cfg.embed_features, cfg.c_dim)
        for i in range(cfg.mapping_layers):
            setattr(self, f"fc{i}", FullyConnected(feats[i + 1], feats[i],
                                                   activation=cfg.mapping_activation,
                                                   lr_multiplier=cfg.mapping_lr_multiplier))
        if cfg.w_avg_beta is not None:
            self.w_avg = self.param("w_avg", nn.initializers.zeros, (cfg.w_dim,))

    def layers(self, z, c=None, stop: str | None = None):
        """w: (N, w_dim) from z: (N, z_dim) (and c: (N, c_dim)); no broadcast, no truncation.

        Returns the output of layer ``stop`` (``'mapping.embed'``, ``'mapping.fc<i>'``) instead
        when given.
        """
        cfg = self.config
        x = ops.normalize_2nd_moment(jnp.asarray(z, compute_dtype(z)))
        if cfg.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional (c_dim={cfg.c_dim}): pass c of "
                                 f"shape (N, {cfg.c_dim})")
            c = jnp.asarray(c, x.dtype)
            if c.shape != (x.shape[0], cfg.c_dim):
                raise ValueError(f"c must have shape ({x.shape[0]}, {cfg.c_dim}), got {c.shape}")
            y = self.embed(c)
            if stop == "mapping.embed":
                return y
            x = jnp.concatenate([x, ops.normalize_2nd_moment(y)], axis=1)
        for i in range(cfg.mapping_layers):
            x = getattr(self, f"fc{i}")(x)
            if stop == f"mapping.fc{i}":
                return x
        return x

    def truncate(self, w, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        """Broadcast w: (N, w_dim) to ws: (N, num_ws, w_dim) and apply the truncation trick.

        ``ws[:, :cutoff] = w_avg + psi (ws[:, :cutoff] - w_avg)`` (all rows when cutoff is
        None); Karras et al. 2019, section 3.
        """
        cfg = self.config
        ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], cfg.num_ws, w.shape[1]))
        if truncation_psi == 1:
            return ws
        if cfg.w_avg_beta is None:
            raise ValueError("truncation needs mapping.w_avg, which this generator lacks "
                             "(w_avg_beta=None); use truncation_psi=1")
        if truncation_cutoff is None:
            return _lerp(self.w_avg, ws, truncation_psi)
        head = _lerp(self.w_avg, ws[:, :truncation_cutoff], truncation_psi)
        return jnp.concatenate([head, ws[:, truncation_cutoff:]], axis=1)

    def __call__(self, z, c=None, truncation_psi: float = 1.0,
                 truncation_cutoff: int | None = None):
        """ws: (N, num_ws, w_dim) from z (NVlabs ``MappingNetwork.forward``)."""
        return self.truncate(self.layers(z, c), truncation_psi, truncation_cutoff)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network (NVlabs ``SynthesisBlock``): params ``const``
    (4x4 only), ``conv0`` (res > 4), ``conv1``, ``torgb`` (when it has one), ``skip`` (resnet)."""

    config: StyleGAN2Config
    res: int

    def setup(self):
        cfg, res = self.config, self.res
        specs = {s.name: s for s in cfg.synthesis_layers if s.res == res}
        resnet = cfg.architecture == "resnet" and res > 4
        if res == 4:
            self.const = self.param("const", _normal(), (cfg.block_channels(4), 4, 4))
        else:
            self.conv0 = SynthesisLayer(cfg, specs["conv0"], up=2)
        self.conv1 = SynthesisLayer(cfg, specs["conv1"], gain=math.sqrt(0.5) if resnet else 1.0)
        if "torgb" in specs:
            self.torgb = ToRGBLayer(cfg, specs["torgb"])
        if resnet:
            self.skip = SkipLayer(cfg, cfg.block_channels(res // 2), cfg.block_channels(res))

    def __call__(self, x, img, styles: dict, noises: dict, stop: str | None = None):
        """Run the block; returns ``(x, img, stopped)``.

        ``styles`` and ``noises`` map layer names to the layer's s and noise; ``stopped`` is
        the value named ``stop`` when the block computes it (then x and img are None), else
        None.
        """
        cfg, res = self.config, self.res
        pre = f"synthesis.b{res}"
        if res == 4:
            n = styles["conv1"].shape[0]
            dtype = styles["conv1"].dtype
            x = jnp.broadcast_to(self.const[None].astype(dtype), (n,) + self.const.shape)
            x = self.conv1(x, styles["conv1"], noises.get("conv1"))
            if stop == f"{pre}.conv1":
                return None, None, x
        else:
            resnet = cfg.architecture == "resnet"
            y = self.skip(x, math.sqrt(0.5)) if resnet else None
            h = self.conv0(x, styles["conv0"], noises.get("conv0"))
            if stop == f"{pre}.conv0":
                return None, None, h
            h = self.conv1(h, styles["conv1"], noises.get("conv1"))
            if stop == f"{pre}.conv1":
                return None, None, h
            x = y + h if resnet else h
        if stop == pre:
            return None, None, x
        if img is not None:
            img = ops.upsample2d(img, ops.setup_filter(cfg.resample_filter))
        if "torgb" in styles:
            y = self.torgb(x, styles["torgb"])
            img = y if img is None else img + y
        if img is not None and stop == f"{pre}.img":
            return None, None, img
        return x, img, None


class SynthesisNetwork(nn.Module):
    """Synthesis network g: W+ -> image (NVlabs ``SynthesisNetwork``): blocks ``b4`` .. ``b<R>``."""

    config: StyleGAN2Config

    def setup(self):
        for res in self.config.block_resolutions:
            setattr(self, f"b{res}", SynthesisBlock(self.config, res))

    def style(self, ws, res: int, name: str):
        """Style s = A(w) of layer ``name`` of block ``res``: (N, in_channels) from ws."""
        spec = next(s for s in self.config.synthesis_layers if s.res == res and s.name == name)
        return getattr(getattr(self, f"b{res}"), name).style(ws[:, spec.w_index])

    def styles(self, ws):
        """Every style vector concatenated in execution order: (N, sum of in_channels)."""
        return jnp.concatenate([self.style(ws, s.res, s.name)
                                for s in self.config.synthesis_layers], axis=1)

    def _noise(self, n, noise_mode, key, dtype):
        """Per-layer noise ``{(res, name): array or None}``.

        'random' draws every layer's N(0, 1) noise in one call (one random-bits kernel to
        compile, not one per layer); each layer scales its slice by its noise strength.
        """
        cfg = self.config
        layers = [(s.res, s.name) for s in cfg.synthesis_layers if s.name != "torgb"]
        samples = dict.fromkeys(layers)
        if noise_mode == "random" and cfg.use_noise:
            sizes = [r * r for r, _ in layers]
            draw = jax.random.normal(key, (n, sum(sizes)), dtype)
            start = 0
            for (r, nm), size in zip(layers, sizes):
                samples[(r, nm)] = draw[:, start:start + size].reshape(n, 1, r, r)
                start += size
        return {(r, nm): getattr(getattr(self, f"b{r}"), nm).noise(noise_mode, samples[(r, nm)],
                                                                   dtype)
                for r, nm in layers}

    def __call__(self, ws, noise_mode: str = "const", key=None, stop: str | None = None):
        """Image (N, img_channels, R, R) from ws: (N, num_ws, w_dim) (NVlabs, float32).

        ``noise_mode``: 'const' (stored noise), 'random' (fresh N(0, 1) noise from ``key``,
        independent over layers and samples), 'none'. Returns the value named ``stop``
        instead when given: 'synthesis.b<res>' (block features), 'synthesis.b<res>.conv0' /
        '.conv1' (layer outputs), 'synthesis.b<res>.img' (running image of a block that has
        one).
        """
        cfg = self.config
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if noise_mode == "random" and cfg.use_noise and key is None:
            raise ValueError("noise_mode='random' needs an explicit jax.random key: pass key=...")
        ws = jnp.asarray(ws, compute_dtype(ws))
        if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
            raise ValueError(f"ws must have shape (N, {cfg.num_ws}, {cfg.w_dim}), got {ws.shape}")
        noise = self._noise(ws.shape[0], noise_mode, key, ws.dtype)
        x = img = None
        for res in cfg.block_resolutions:
            names = [s.name for s in cfg.synthesis_layers if s.res == res]
            styles = {nm: self.style(ws, res, nm) for nm in names}
            noises = {nm: noise[(res, nm)] for nm in names if (res, nm) in noise}
            x, img, stopped = getattr(self, f"b{res}")(x, img, styles, noises, stop)
            if stopped is not None:
                return stopped
        return img


# ----------------------------------------------------------------------------- on a params pytree

def mapping_layers(config: StyleGAN2Config, params, z, c=None, stop: str | None = None):
    """:meth:`MappingNetwork.layers` on a params pytree.

    Args:
      config: the generator's hyper-parameters.
      params: the generator's nested params (with ``'mapping'``).
      z: (N, z_dim) latents; c: (N, c_dim) labels or None.
      stop: an intermediate to return instead (``'mapping.embed'``, ``'mapping.fc<i>'``).

    Returns:
      w: (N, w_dim) before truncation, or the value named ``stop``.
    """
    return MappingNetwork(config).apply({"params": params["mapping"]}, z, c, stop,
                                        method=MappingNetwork.layers)


def synthesis(config: StyleGAN2Config, params, ws, noise_mode: str = "const", key=None,
              stop: str | None = None):
    """:class:`SynthesisNetwork` on a params pytree.

    Args:
      config, params: as in :func:`mapping_layers`.
      ws: (N, num_ws, w_dim).
      noise_mode, key: 'const', 'random' (from ``key``) or 'none'.
      stop: an intermediate to return instead (see :meth:`SynthesisNetwork.__call__`).

    Returns:
      images (N, img_channels, R, R), or the value named ``stop``.
    """
    return SynthesisNetwork(config).apply({"params": params["synthesis"]}, ws, noise_mode, key,
                                          stop)
