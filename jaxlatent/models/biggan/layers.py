"""BigGAN-deep layers as Flax linen modules, variables named and shaped as the package's state dict.

Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural Image Synthesis"
(ICLR 2019), the deep generator as huggingface's ``pytorch-pretrained-biggan`` 0.1.1 builds it
(``model.py``: ``BigGANBatchNorm``, ``SelfAttn``, ``GenBlock``). Spectral norm is folded into
each ``weight`` at conversion; images and features are NCHW.

Every batch norm reads its statistics from tables of ``n_stats`` rows, one per truncation
``0, 1/(n_stats-1), ..., 1``, selected and mixed as the package does at the truncation passed to
``__call__``: a Python float, or the triple :func:`statistic_mix` makes of it (arrays, so that one
compiled program serves every truncation).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxlatent.models import torch_layers
from jaxlatent.models.biggan.config import REDUCTION, statistic_mix

__all__ = ["Linear", "BigGANBatchNorm", "SelfAttention", "GenBlock", "upsample_nearest"]

_INIT = nn.initializers.lecun_normal(in_axis=1, out_axis=0)


def upsample_nearest(x):
    """``F.interpolate(x, scale_factor=2, mode='nearest')`` on NCHW."""
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


class Linear(nn.Module):
    """``torch.nn.Linear``: ``weight (out, in)``, optional ``bias (out,)``."""

    in_features: int
    out_features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        w = self.param("weight", _INIT, (self.out_features, self.in_features))
        y = x @ w.astype(x.dtype).T
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.out_features,)).astype(x.dtype)
        return y


def _table_row(table, truncation, n_stats: int):
    start, low, high = statistic_mix(truncation, n_stats) if isinstance(truncation, (int, float)) else truncation
    nxt = jnp.minimum(start + 1, n_stats - 1)
    # the package's order: the fractional part weighs the lower row; weights rounded to the
    # tables' dtype as torch rounds a Python scalar in a float32 product
    return table[start] * jnp.asarray(low, table.dtype) + table[nxt] * jnp.asarray(high, table.dtype)


class BigGANBatchNorm(nn.Module):
    """Batch norm with per-truncation statistic tables ``running_means``/``running_vars``
    ``(n_stats, C)``; conditional (class- and latent-dependent gain ``1 + scale(cond)`` and shift
    ``offset(cond)``, both bias-free linear maps of the condition vector) or plain
    (``weight``, ``bias``)."""

    num_features: int
    cond_dim: int | None
    n_stats: int
    eps: float

    @nn.compact
    def __call__(self, x, truncation, cond=None):
        c = self.num_features
        means = self.param("running_means", nn.initializers.zeros, (self.n_stats, c))
        variances = self.param("running_vars", nn.initializers.ones, (self.n_stats, c))
        mean = _table_row(means, truncation, self.n_stats).astype(x.dtype)[None, :, None, None]
        var = _table_row(variances, truncation, self.n_stats).astype(x.dtype)[None, :, None, None]
        if self.cond_dim is None:
            weight = self.param("weight", nn.initializers.ones, (c,)).astype(x.dtype)[None, :, None, None]
            bias = self.param("bias", nn.initializers.zeros, (c,)).astype(x.dtype)[None, :, None, None]
            return (x - mean) * lax.rsqrt(var + self.eps) * weight + bias
        gain = 1 + Linear(self.cond_dim, c, use_bias=False, name="scale")(cond)[:, :, None, None]
        shift = Linear(self.cond_dim, c, use_bias=False, name="offset")(cond)[:, :, None, None]
        return (x - mean) / jnp.sqrt(var + self.eps) * gain + shift


def _conv(cin, cout, k, name, use_bias=True):
    return torch_layers.Conv2d(cin, cout, k, padding=k // 2, use_bias=use_bias, name=name)


class SelfAttention(nn.Module):
    """The package's ``SelfAttn`` (Zhang et al. 2019, self-attention GAN): 1x1 convolutions
    ``snconv1x1_theta``, ``_phi`` (C/8), ``_g`` (C/2), ``_o_conv`` (back to C), keys and values
    max-pooled 2x2, output ``x + gamma * o_conv(attention)``."""

    channels: int

    @nn.compact
    def __call__(self, x):
        n, ch, h, w = x.shape
        theta = _conv(ch, ch // 8, 1, "snconv1x1_theta", False)(x).reshape(n, ch // 8, h * w)
        phi = torch_layers.max_pool2d(_conv(ch, ch // 8, 1, "snconv1x1_phi", False)(x), 2, 2)
        phi = phi.reshape(n, ch // 8, h * w // 4)
        attn = jax.nn.softmax(jnp.einsum("nci,ncj->nij", theta, phi), axis=-1)
        g = torch_layers.max_pool2d(_conv(ch, ch // 2, 1, "snconv1x1_g", False)(x), 2, 2)
        g = g.reshape(n, ch // 2, h * w // 4)
        attn_g = jnp.einsum("ncj,nij->nci", g, attn).reshape(n, ch // 2, h, w)
        attn_g = _conv(ch // 2, ch, 1, "snconv1x1_o_conv", False)(attn_g)
        gamma = self.param("gamma", nn.initializers.zeros, (1,)).astype(x.dtype)
        return x + gamma * attn_g


class GenBlock(nn.Module):
    """A deep residual block (the package's ``GenBlock``): four (conditional BN, ReLU, conv)
    stages 1x1 -> 3x3 -> 3x3 -> 1x1 through ``in // 4`` channels, nearest x2 up-sampling before
    the first 3x3 when ``up_sample``; the skip keeps the first ``in // 2`` channels when the block
    halves its width ("channel dropping") and is up-sampled alike."""

    in_size: int
    out_size: int
    cond_dim: int
    up_sample: bool
    n_stats: int
    eps: float

    @nn.compact
    def __call__(self, x, cond, truncation):
        mid = self.in_size // REDUCTION
        x0 = x
        stages = ((self.in_size, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, self.out_size, 1))
        for k, (cin, cout, ks) in enumerate(stages):
            x = BigGANBatchNorm(cin, self.cond_dim, self.n_stats, self.eps, name=f"bn_{k}")(x, truncation, cond)
            x = jnp.maximum(x, 0)
            if k == 1 and self.up_sample:
                x = upsample_nearest(x)
            x = _conv(cin, cout, ks, f"conv_{k}")(x)
        if self.in_size != self.out_size:
            x0 = x0[:, : x0.shape[1] // 2]
        if self.up_sample:
            x0 = upsample_nearest(x0)
        return x + x0
