"""LPIPS (Zhang et al., CVPR 2018) as a Flax module, variables named as the ``lpips`` package's.

``d(x, y) = sum_l mean_hw( w_l . (f_l(x) - f_l(y))^2 )`` where ``f_l`` are the unit-normalised
(over channels) activations of layer ``l`` of a backbone (AlexNet, VGG16 or SqueezeNet 1.1 from
torchvision) on the inputs scaled by the package's ScalingLayer, and ``w_l >= 0`` the learned
1x1 "lin" weights. The parameter tree nests the ``lpips.LPIPS`` state-dict keys at their dots:
``net.slice<k>.<i>.weight`` (the backbone's ``features.<i>`` grouped in the package's slices),
``lin<k>.model.1.weight`` ``(1, C_k, 1, 1)``. The ScalingLayer's shift and scale are constants
of the method (checked by the converter, not parameters).

Inputs are NCHW images in [-1, 1] (the package's ``normalize=False``). The package computes in
evaluation mode (dropout off); so does this module.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models.resize import resize_bilinear
from jaxlatent.models.torch_layers import Conv2d, max_pool2d, relu

__all__ = ["NETS", "SHIFT", "SCALE", "LPIPS", "LPIPSOutput", "backbone_slices", "lpips_from_variables"]

#: the ScalingLayer of the ``lpips`` package (ImageNet statistics mapped to [-1, 1] inputs)
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)

# Backbone layers as torchvision's ``features`` Sequential: ("conv", in, out, k, stride, pad),
# ("fire", in, squeeze, expand), ("max", k, stride, ceil_mode), ("relu",). Index = position.
_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), ("max", 3, 2, False), ("conv", 64, 192, 5, 1, 2),
         ("relu",), ("max", 3, 2, False), ("conv", 192, 384, 3, 1, 1), ("relu",),
         ("conv", 384, 256, 3, 1, 1), ("relu",), ("conv", 256, 256, 3, 1, 1), ("relu",)]
_VGG = []
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_c = 3
for _v in _VGG_CFG:
    if _v == "M":
        _VGG.append(("max", 2, 2, False))
    else:
        _VGG += [("conv", _c, _v, 3, 1, 1), ("relu",)]
        _c = _v
_SQUEEZE = [("conv", 3, 64, 3, 2, 0), ("relu",), ("max", 3, 2, True), ("fire", 64, 16, 64),
            ("fire", 128, 16, 64), ("max", 3, 2, True), ("fire", 128, 32, 128), ("fire", 256, 32, 128),
            ("max", 3, 2, True), ("fire", 256, 48, 192), ("fire", 384, 48, 192), ("fire", 384, 64, 256),
            ("fire", 512, 64, 256)]

#: net -> (torchvision features layers, slice boundaries as the lpips package cuts them, channels)
NETS = {
    "alex": (_ALEX, (0, 2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
    "vgg": (_VGG, (0, 4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
    "squeeze": (_SQUEEZE, (0, 2, 5, 8, 10, 11, 12, 13), (64, 128, 256, 384, 384, 512, 512)),
}


def backbone_slices(net: str) -> list[list[int]]:
    """Indices of torchvision's ``features`` layers in each LPIPS slice (``slice1`` first)."""
    _, bounds, _ = NETS[net]
    return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]


class _Fire(nn.Module):
    """SqueezeNet's Fire block: 1x1 squeeze, then 1x1 and 3x3 expands concatenated (all ReLU)."""

    in_channels: int
    squeeze: int
    expand: int

    @nn.compact
    def __call__(self, x):
        s = relu(Conv2d(self.in_channels, self.squeeze, 1, name="squeeze")(x))
        e1 = relu(Conv2d(self.squeeze, self.expand, 1, name="expand1x1")(s))
        e3 = relu(Conv2d(self.squeeze, self.expand, 3, padding=1, name="expand3x3")(s))
        return jnp.concatenate([e1, e3], axis=1)


class _Slice(nn.Module):
    """Consecutive layers of a torchvision ``features`` Sequential, named by their index."""

    layers: tuple
    indices: tuple

    @nn.compact
    def __call__(self, x):
        for i, layer in zip(self.indices, self.layers):
            kind = layer[0]
            if kind == "conv":
                _, c_in, c_out, k, s, p = layer
                x = Conv2d(c_in, c_out, k, stride=s, padding=p, name=str(i))(x)
            elif kind == "fire":
                x = _Fire(*layer[1:], name=str(i))(x)
            elif kind == "relu":
                x = relu(x)
            else:
                _, k, s, ceil = layer
                x = max_pool2d(x, k, s, ceil_mode=ceil)
        return x


class _Backbone(nn.Module):
    net: str

    @nn.compact
    def __call__(self, x):
        layers, _, _ = NETS[self.net]
        outs = []
        for k, idx in enumerate(backbone_slices(self.net), start=1):
            x = _Slice(tuple(layers[i] for i in idx), tuple(idx), name=f"slice{k}")(x)
            outs.append(x)
        return outs


class _Lin(nn.Module):
    """The 1x1 convolution without bias of ``NetLinLayer`` (stored as ``model.1.weight``)."""

    channels: int

    @nn.compact
    def __call__(self, x):
        return _LinModel(self.channels, name="model")(x)


class _LinModel(nn.Module):
    """``NetLinLayer.model``: index 0 is the (evaluation-time identity) dropout, 1 the convolution."""

    channels: int

    @nn.compact
    def __call__(self, x):
        return Conv2d(self.channels, 1, 1, use_bias=False, name="1")(x)


class LPIPSOutput(NamedTuple):
    """``distance (N,)`` or ``(N, 1, H, W)`` when spatial; ``layers``: one term per backbone layer,
    each ``(N,)`` or ``(N, 1, H, W)``, summing to ``distance``."""

    distance: jnp.ndarray
    layers: tuple


def _unit(f, eps: float = 1e-10):
    return f / (jnp.sqrt(jnp.sum(f * f, axis=1, keepdims=True)) + eps)


class LPIPS(nn.Module):
    """LPIPS distance between NCHW image batches in [-1, 1] (``lpips.LPIPS(net=...)``, v0.1).

    ``__call__(x, y, spatial=False) -> LPIPSOutput``: with ``spatial=False`` each layer's weighted
    squared difference is averaged over its pixels (the package's ``spatial_average``); with
    ``spatial=True`` each layer's map is upsampled bilinearly to the input size
    (``align_corners=False``) and the maps are summed.
    """

    net: str = "alex"

    @nn.compact
    def __call__(self, x, y, spatial: bool = False) -> LPIPSOutput:
        if self.net not in NETS:
            raise ValueError(f"LPIPS: net must be one of {sorted(NETS)}, found {self.net!r}")
        shift = jnp.asarray(SHIFT, x.dtype)[None, :, None, None]
        scale = jnp.asarray(SCALE, x.dtype)[None, :, None, None]
        n = x.shape[0]
        feats = _Backbone(self.net, name="net")((jnp.concatenate([x, y]) - shift) / scale)
        terms = []
        for k, f in enumerate(feats):
            fx, fy = _unit(f[:n]), _unit(f[n:])
            d = fx - fy
            t = _Lin(f.shape[1], name=f"lin{k}")(d * d)  # d * d, not ** 2: ops.normalize_2nd_moment
            terms.append(resize_bilinear(t, x.shape[2:]) if spatial else jnp.mean(t, axis=(1, 2, 3)))
        return LPIPSOutput(sum(terms[1:], terms[0]), tuple(terms))


def _lpips_call(net, variables, x, y, spatial: bool = False, layers: bool = False):
    out = LPIPS(net).apply(variables, x, y, spatial=spatial)
    return out if layers else out.distance


def lpips_from_variables(variables, net: str = "alex"):
    """The LPIPS callable for given variables (``{"params": ...}`` as :class:`LPIPS` lays out)."""
    return jax.tree_util.Partial(partial(_lpips_call, net), variables)
