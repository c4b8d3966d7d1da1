"""Flax layers whose variables are laid out as PyTorch's, for networks ported from torchvision.

The feature networks of the image metrics (LPIPS backbones, the FID Inception) are torchvision
modules; their weights arrive as state dicts. These layers name and shape their variables as
``torch.nn`` does (``weight`` ``(O, I, kh, kw)``, ``bias`` ``(O,)``; batch-norm ``weight``,
``bias`` and the running statistics), so a state dict nested at its dots *is* the variables of
the Flax module, with no transposes. Images are NCHW throughout, as in PyTorch.

Batch norm runs in evaluation mode only (running statistics, in the ``batch_stats``
collection): the ported networks are frozen feature extractors.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxlatent.models.ops import conv2d

__all__ = ["Conv2d", "BatchNorm2d", "max_pool2d", "avg_pool2d", "relu"]


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Conv2d(nn.Module):
    """``torch.nn.Conv2d``: ``weight (out, in, kh, kw)``, optional ``bias (out,)``, NCHW.

    ``kernel_init`` is what ``module.init`` draws for the weight (a network's own
    ``weights_init``); converted weights replace it.
    """

    in_channels: int
    out_channels: int
    kernel_size: int | Sequence[int]
    stride: int = 1
    padding: int | Sequence[int] = 0
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal(in_axis=(1, 2, 3), out_axis=0)

    @nn.compact
    def __call__(self, x):
        kh, kw = _pair(self.kernel_size)
        w = self.param("weight", self.kernel_init, (self.out_channels, self.in_channels, kh, kw))
        y = conv2d(x, w, padding=_pair(self.padding), stride=self.stride)
        if self.use_bias:
            b = self.param("bias", nn.initializers.zeros, (self.out_channels,))
            y = y + b.astype(y.dtype)[None, :, None, None]
        return y


class BatchNorm2d(nn.Module):
    """``torch.nn.BatchNorm2d``: ``(x - mean) / sqrt(var + eps)`` scaled by ``weight``, shifted by ``bias``.

    ``use_batch_stats=False`` (evaluation mode) normalises with ``running_mean``/``running_var``;
    ``True`` (PyTorch's training mode, which FastGAN's official generation keeps) with the biased
    statistics of the batch; running statistics are read, never updated. They live in the
    ``stats_collection`` collection (``"params"`` where a converter lays them beside the weights).
    """

    num_features: int
    eps: float = 1e-5
    use_batch_stats: bool = False
    stats_collection: str = "batch_stats"
    scale_init: Callable = nn.initializers.ones

    @nn.compact
    def __call__(self, x):
        c = self.num_features
        scale = self.param("weight", self.scale_init, (c,)).astype(x.dtype)
        shift = self.param("bias", nn.initializers.zeros, (c,)).astype(x.dtype)
        running_mean = self.variable(self.stats_collection, "running_mean", jnp.zeros, (c,)).value
        running_var = self.variable(self.stats_collection, "running_var", jnp.ones, (c,)).value
        if self.use_batch_stats:
            mean = jnp.mean(x, axis=(0, 2, 3))
            d = x - mean[None, :, None, None]
            var = jnp.mean(d * d, axis=(0, 2, 3))  # d * d, not square: ops.normalize_2nd_moment
        else:
            mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        inv = scale * lax.rsqrt(var + self.eps)
        return (x - mean[None, :, None, None]) * inv[None, :, None, None] + shift[None, :, None, None]


def relu(x):
    return jnp.maximum(x, 0)


def max_pool2d(x, kernel_size: int, stride: int, padding: int = 0, ceil_mode: bool = False):
    """``torch.nn.functional.max_pool2d`` on NCHW (implicit ``-inf`` padding; ``ceil_mode``
    adds windows that start inside the input and run past its end)."""
    pads = []
    for size in x.shape[2:]:
        span = size + 2 * padding - kernel_size
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= size + padding:  # PyTorch drops a window starting in the padding
            out -= 1
        extra = max((out - 1) * stride + kernel_size - (size + 2 * padding), 0)
        pads.append((padding, padding + extra))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, kernel_size, kernel_size),
                             (1, 1, stride, stride), [(0, 0), (0, 0)] + pads)


def avg_pool2d(x, kernel_size: int, stride: int, padding: int = 0, count_include_pad: bool = True):
    """``torch.nn.functional.avg_pool2d`` on NCHW; with ``count_include_pad=False`` each window's
    sum is divided by the number of input pixels it covers, not by ``kernel_size ** 2``."""
    window, strides = (1, 1, kernel_size, kernel_size), (1, 1, stride, stride)
    pads = [(0, 0), (0, 0), (padding, padding), (padding, padding)]
    total = lax.reduce_window(x, 0.0, lax.add, window, strides, pads)
    if count_include_pad or padding == 0:
        return total / (kernel_size * kernel_size)
    ones = jnp.ones((1, 1) + x.shape[2:], x.dtype)
    count = lax.reduce_window(ones, 0.0, lax.add, window, strides, pads)
    return total / count
