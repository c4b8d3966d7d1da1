"""FastGAN generator network as Flax linen modules (Liu et al., ICLR 2021; author's ``models.py``).

The modules mirror the official module tree, numbered ``nn.Sequential`` children included, so
their variables are ``{"params": params}`` with ``params`` the official state dict nested at its
dots (:func:`jaxlatent.models.fastgan.config.expected_shapes`): ``feat_8.1.weight`` is
``variables["params"]["feat_8"]["1"]["weight"]``, ``(out, in, kh, kw)`` as in PyTorch. Batch-norm
running statistics are params too (the converters' layout keeps them beside the weights).

* ``init``: a 4x4 transposed convolution of ``z`` (as ``(N, nz, 1, 1)``), batch norm, GLU, giving
  ``(16 * ngf, 4, 4)`` features;
* ``feat_<res>``: nearest up-sampling x2, 3x3 convolution, batch norm, GLU; the blocks at 8, 32,
  128 and 512 add a second convolution and inject noise (``x + w * noise``, before each batch
  norm); 64, 128, 256 and 512 are gated by skip-layer excitation (``se_<res>``) from 4, 8, 16
  and 32;
* outputs ``image`` (``to_big``, 3x3) and ``image128`` (``to_128``, 1x1), with the official
  quirk that only im_size 1024 applies ``tanh``.

Batch norm runs with running statistics (``batchnorm="running"``, evaluation mode) or with the
statistics of the batch (``"batch"``: what the official ``eval.py`` computes).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlatent.models import torch_layers
from jaxlatent.models.fastgan.config import (DEFAULT_BATCHNORM, NOISY, SE_SOURCE, FastGANConfig,
                                             tap_shapes)

_BN_EPS = 1e-5  # torch.nn.BatchNorm2d default, which the official code keeps
_INIT_STD = 0.02  # the official weights_init: conv N(0, 0.02), batch norm weight N(1, 0.02)


def _normal(mean: float = 0.0, std: float = _INIT_STD):
    return lambda key, shape, dtype=jnp.float32: mean + std * jax.random.normal(key, shape, dtype)


def _glu(x):
    half = x.shape[1] // 2
    return x[:, :half] * jax.nn.sigmoid(x[:, half:])


def _upsample(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


# ----------------------------------------------------------------------------- layers

def Conv2d(features: int, in_features: int, kernel: int, padding: int = 0, *, name: str):
    """Bias-free PyTorch ``conv2d`` (stride 1, zero padding), param ``weight: (out, in, k, k)``.

    ``module.init`` draws the official ``weights_init``, N(0, 0.02), without the spectral norm
    that converted weights carry folded in.
    """
    return torch_layers.Conv2d(in_features, features, kernel, padding=padding, use_bias=False,
                               kernel_init=_normal(), name=name)


def BatchNorm2d(features: int, batchnorm: str = DEFAULT_BATCHNORM, *, name: str):
    """``BatchNorm2d`` with ``weight, bias, running_mean, running_var`` (C,) all in ``params``
    (the converter's layout); ``batchnorm="running"`` is evaluation mode, ``"batch"`` training mode."""
    return torch_layers.BatchNorm2d(features, eps=_BN_EPS, use_batch_stats=batchnorm != "running",
                                    stats_collection="params", scale_init=_normal(1.0), name=name)


class NoiseInjection(nn.Module):
    """``x + weight * noise`` with a learnt scalar ``weight: (1,)`` (official init 0)."""

    @nn.compact
    def __call__(self, x, noise):
        w = self.param("weight", nn.initializers.zeros, (1,))
        return x + w.astype(x.dtype) * noise


class _InitSequential(nn.Module):
    """``init.init``: 4x4 transposed convolution of z (child ``0``), batch norm (``1``), GLU."""

    config: FastGANConfig
    batchnorm: str

    @nn.compact
    def __call__(self, z):
        c = self.config
        conv = _TransposedInput(c.nz, 2 * c.nfc(4), name="0")
        return _glu(BatchNorm2d(2 * c.nfc(4), self.batchnorm, name="1")(conv(z)))


class _TransposedInput(nn.Module):
    """4x4 ``ConvTranspose2d`` of a 1x1 input: z contracted with each kernel tap; param
    ``weight: (nz, out, 4, 4)`` (PyTorch's transposed layout)."""

    in_features: int
    features: int

    @nn.compact
    def __call__(self, z):
        w = self.param("weight", _normal(), (self.in_features, self.features, 4, 4))
        return jnp.einsum("nc,cohw->nohw", z, w.astype(z.dtype))


class InitLayer(nn.Module):
    """The official ``InitLayer``: (N, nz) -> (N, 16 ngf, 4, 4); child ``init``."""

    config: FastGANConfig
    batchnorm: str = DEFAULT_BATCHNORM

    @nn.compact
    def __call__(self, z):
        return _InitSequential(self.config, self.batchnorm, name="init")(z)


class UpBlock(nn.Module):
    """``feat_<res>``: the official ``UpBlock`` (children ``1``, ``2``) or, at 8, 32, 128, 512,
    ``UpBlockComp`` (``1`` conv, ``2`` noise, ``3`` BN, ``5`` conv, ``6`` noise, ``7`` BN)."""

    config: FastGANConfig
    res: int
    batchnorm: str = DEFAULT_BATCHNORM

    @nn.compact
    def __call__(self, x, noises=()):
        """x: (N, nfc(res / 2), res / 2, res / 2); ``noises``: this block's two noise inputs."""
        c, bn = self.config, self.batchnorm
        cin, cout = c.nfc(self.res // 2), c.nfc(self.res)
        x = Conv2d(2 * cout, cin, 3, 1, name="1")(_upsample(x))
        if self.res not in NOISY:
            return _glu(BatchNorm2d(2 * cout, bn, name="2")(x))
        x = NoiseInjection(name="2")(x, noises[0])
        x = _glu(BatchNorm2d(2 * cout, bn, name="3")(x))
        x = Conv2d(2 * cout, cout, 3, 1, name="5")(x)
        x = NoiseInjection(name="6")(x, noises[1])
        return _glu(BatchNorm2d(2 * cout, bn, name="7")(x))


class _ExciteMain(nn.Module):
    """``se_<res>.main``: 4x4 average pool, conv4x4 (``1``), swish, conv1x1 (``3``), sigmoid."""

    config: FastGANConfig
    res: int

    @nn.compact
    def __call__(self, small):
        c = self.config
        src, ch = c.nfc(SE_SOURCE[self.res]), c.nfc(self.res)
        n, k, h, w = small.shape
        # adaptive average pooling to 4x4; every FastGAN source size is a multiple of 4
        pooled = small.reshape(n, k, 4, h // 4, 4, w // 4).mean(axis=(3, 5))
        gate = Conv2d(ch, src, 4, name="1")(pooled)
        gate = gate * jax.nn.sigmoid(gate)
        return jax.nn.sigmoid(Conv2d(ch, ch, 1, name="3")(gate))


class SEBlock(nn.Module):
    """Skip-layer excitation ``big * gate(small)`` (the official ``SEBlock``); child ``main``."""

    config: FastGANConfig
    res: int

    @nn.compact
    def __call__(self, small, big):
        return big * _ExciteMain(self.config, self.res, name="main")(small)


# ----------------------------------------------------------------------------- the generator

class Generator(nn.Module):
    """The official FastGAN ``Generator``: children ``init``, ``feat_<res>``, ``se_<res>``,
    ``to_128``, ``to_big``.

    ``Generator(config).apply({"params": params}, z, noises, taps=("image",))`` runs the network
    as far as the requested taps need and returns ``{tap: (N, *tap_shape)}``.
    """

    config: FastGANConfig
    batchnorm: str = DEFAULT_BATCHNORM

    @nn.compact
    def __call__(self, z, noises: Sequence, taps: Sequence[str] = ("image",)) -> dict:
        """Args:
          z: (N, nz) latents.
          noises: one array per injection point, broadcastable to ``(N, 1, H, W)``, in
            :attr:`FastGANConfig.noise_shapes` order (zeros for no noise).
          taps: names from :func:`jaxlatent.models.fastgan.config.tap_shapes`.

        Returns:
          ``{tap: (N, *tap_shape)}``.
        """
        c, bn = self.config, self.batchnorm
        wanted = set(taps)
        order = list(tap_shapes(c))
        last = max(order.index(t) for t in wanted)
        if "image128" in wanted:
            last = max(last, order.index("feat_128"))
        out, feats = {}, {}
        noise = iter(noises)
        feats[4] = out["init"] = InitLayer(c, bn, name="init")(z)
        for res in c.resolutions:
            if order.index(f"feat_{res}") > last:
                break
            block_noise = (next(noise), next(noise)) if res in NOISY else ()
            x = UpBlock(c, res, bn, name=f"feat_{res}")(feats[res // 2], block_noise)
            if res in SE_SOURCE:
                x = SEBlock(c, res, name=f"se_{res}")(feats[SE_SOURCE[res]], x)
            feats[res] = out[f"feat_{res}"] = x
        act = jnp.tanh if c.tanh else (lambda a: a)
        # declared even when not run, so that init creates every output layer
        to_128 = Conv2d(c.nc, c.nfc(128), 1, name="to_128")
        to_big = Conv2d(c.nc, c.nfc(c.im_size), 3, 1, name="to_big")
        if "image128" in wanted:
            out["image128"] = act(to_128(feats[128]))
        if "image" in wanted:
            out["image"] = act(to_big(feats[c.im_size]))
        return {t: out[t] for t in taps}


def forward(config: FastGANConfig, params: dict, z, noises: Sequence,
            batchnorm: str = DEFAULT_BATCHNORM, taps: Sequence[str] = ("image",)) -> dict:
    """:class:`Generator` on a params pytree: ``{tap: (N, *tap_shape)}``.

    Args:
      config: the generator's :class:`FastGANConfig`.
      params: nested params (spectral norm folded), as the converter returns them.
      z: (N, nz) latents.
      noises: one array per injection point, broadcastable to ``(N, 1, H, W)``, in
        :attr:`FastGANConfig.noise_shapes` order.
      batchnorm: ``"running"`` or ``"batch"``.
      taps: names from :func:`jaxlatent.models.fastgan.config.tap_shapes`.

    Returns:
      ``{tap: (N, *tap_shape)}``.
    """
    return Generator(config, batchnorm).apply({"params": params}, z, noises, tuple(taps))


def draw_noise(config: FastGANConfig, key, batch: int, dtype=jnp.float32) -> list:
    """Standard normal noise ``(batch, 1, H, W)`` for each injection point from one explicit key.

    The draws cannot match ``torch.randn``; the order and shapes match the official forward pass.
    """
    keys = jax.random.split(key, len(config.noise_shapes))
    return [jax.random.normal(k, (batch, 1) + hw, dtype) for k, hw in zip(keys, config.noise_shapes)]
