"""The FID Inception network (InceptionV3 as TensorFlow's FID computes it) as a Flax module.

Heusel et al. (NeurIPS 2017) define FID on the 2048-d pool3 features of the Inception network of
TensorFlow's release 2015-12-05; ``pytorch-fid`` (Seitzer, version 0.3.0) rebuilt it as
``InceptionV3(use_fid_inception=True)``: torchvision's Inception3 trunk with the FID variants of
its blocks (average pooling that does not count padding in Mixed_5b-d, 6b-e and 7b; max pooling
in Mixed_7c's pool branch). This module computes the same features, with variables named as
that network's state dict (``pt_inception-2015-12-05-6726825d.pth``): ``Mixed_5b.branch1x1.conv.weight``,
``...bn.weight``/``bias`` in ``params``, ``...bn.running_mean``/``running_var`` in ``batch_stats``.

Input: NCHW RGB images in [-1, 1] (the generators' range), any size: they are resized to
299x299 bilinearly (``align_corners=False``) as pytorch-fid does. pytorch-fid takes [0, 1]
images and maps them to [-1, 1] after resizing; both maps are linear, so feeding ``(x + 1) / 2``
to it equals feeding ``x`` here up to rounding. Output: ``(N, 2048)`` pool3 features.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlatent.models.resize import resize_bilinear
from jaxlatent.models.torch_layers import BatchNorm2d, Conv2d, avg_pool2d, max_pool2d, relu

__all__ = ["FIDInceptionV3", "INPUT_SIZE", "FEATURES", "inception_from_variables"]

INPUT_SIZE = 299
FEATURES = 2048


class BasicConv2d(nn.Module):
    """torchvision's BasicConv2d: convolution without bias, batch norm (eps 1e-3), ReLU."""

    in_channels: int
    out_channels: int
    kernel_size: int | tuple = 1
    stride: int = 1
    padding: int | tuple = 0

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                   use_bias=False, name="conv")(x)
        return relu(BatchNorm2d(self.out_channels, eps=1e-3, name="bn")(x))


def _pool_avg(x):
    return avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    in_channels: int
    pool_features: int

    @nn.compact
    def __call__(self, x):
        c = self.in_channels
        b1 = BasicConv2d(c, 64, 1, name="branch1x1")(x)
        b5 = BasicConv2d(c, 48, 1, name="branch5x5_1")(x)
        b5 = BasicConv2d(48, 64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = BasicConv2d(c, 64, 1, name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(64, 96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = BasicConv2d(96, 96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = BasicConv2d(c, self.pool_features, 1, name="branch_pool")(_pool_avg(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=1)


class InceptionB(nn.Module):
    in_channels: int

    @nn.compact
    def __call__(self, x):
        c = self.in_channels
        b3 = BasicConv2d(c, 384, 3, stride=2, name="branch3x3")(x)
        bd = BasicConv2d(c, 64, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(64, 96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, 96, 3, stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, max_pool2d(x, 3, 2)], axis=1)


class InceptionC(nn.Module):
    in_channels: int
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c, c7 = self.in_channels, self.channels_7x7
        b1 = BasicConv2d(c, 192, 1, name="branch1x1")(x)
        b7 = BasicConv2d(c, c7, 1, name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv2d(c, c7, 1, name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(c7, 192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(c, 192, 1, name="branch_pool")(_pool_avg(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=1)


class InceptionD(nn.Module):
    in_channels: int

    @nn.compact
    def __call__(self, x):
        c = self.in_channels
        b3 = BasicConv2d(c, 192, 1, name="branch3x3_1")(x)
        b3 = BasicConv2d(192, 320, 3, stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv2d(c, 192, 1, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, 192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, 192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, 192, 3, stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, max_pool2d(x, 3, 2)], axis=1)


class InceptionE(nn.Module):
    """Mixed_7b (``max_pool=False``: average pool without padding counts) or Mixed_7c (max pool)."""

    in_channels: int
    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        c = self.in_channels
        b1 = BasicConv2d(c, 320, 1, name="branch1x1")(x)
        b3 = BasicConv2d(c, 384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate([BasicConv2d(384, 384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                              BasicConv2d(384, 384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=1)
        bd = BasicConv2d(c, 448, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(448, 384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([BasicConv2d(384, 384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                              BasicConv2d(384, 384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=1)
        pooled = max_pool2d(x, 3, 1, padding=1) if self.max_pool else _pool_avg(x)
        bp = BasicConv2d(c, 192, 1, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=1)


class FIDInceptionV3(nn.Module):
    """``__call__(x: (N, 3, H, W) in [-1, 1]) -> (N, 2048)``: pool3 features of the FID Inception.

    ``resize=False`` skips the resize to 299 (the network is fully convolutional up to the
    global average pool, as pytorch-fid's ``resize_input=False``).
    """

    resize: bool = True

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FID Inception: expected images (N, 3, H, W), found shape {x.shape}")
        if self.resize:
            x = resize_bilinear(x, (INPUT_SIZE, INPUT_SIZE))
        x = BasicConv2d(3, 32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, 32, 3, name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(32, 64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = max_pool2d(x, 3, 2)
        x = BasicConv2d(64, 80, 1, name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(80, 192, 3, name="Conv2d_4a_3x3")(x)
        x = max_pool2d(x, 3, 2)
        x = InceptionA(192, 32, name="Mixed_5b")(x)
        x = InceptionA(256, 64, name="Mixed_5c")(x)
        x = InceptionA(288, 64, name="Mixed_5d")(x)
        x = InceptionB(288, name="Mixed_6a")(x)
        x = InceptionC(768, 128, name="Mixed_6b")(x)
        x = InceptionC(768, 160, name="Mixed_6c")(x)
        x = InceptionC(768, 160, name="Mixed_6d")(x)
        x = InceptionC(768, 192, name="Mixed_6e")(x)
        x = InceptionD(768, name="Mixed_7a")(x)
        x = InceptionE(1280, name="Mixed_7b")(x)
        x = InceptionE(2048, max_pool=True, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(2, 3))


def _inception_call(variables, x, resize: bool = True):
    return FIDInceptionV3(resize=resize).apply(variables, x)


def inception_from_variables(variables):
    """The FID Inception feature callable for given variables (``params`` and ``batch_stats``)."""
    return jax.tree_util.Partial(_inception_call, variables)
