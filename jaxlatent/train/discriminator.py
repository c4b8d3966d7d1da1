"""A StyleGAN2 residual discriminator (Karras et al., CVPR 2020, fig. 7c, appendix B).

Written for the shipped digit model as pure functions of ``(config, params)``, in the
generator's conventions: NCHW images, PyTorch weight layouts ``(out, in, kh, kw)``,
parameters nested like the NVlabs state-dict keys (``b16.fromrgb.weight``, ``b8.conv1.bias``,
``b4.fc.weight``, ...). Every weight is stored N(0, 1) and scaled by ``1/sqrt(fan_in)`` when
used (equalised learning rate, Karras et al., ICLR 2018, section 4.1); resolution halves
through FIR-filtered downsampling (:mod:`jaxlatent.models.ops`); each block is residual with
both branches scaled by ``sqrt(1/2)``; the 4x4 epilogue appends the minibatch standard
deviation (Karras et al. 2018, section 3) before its convolution and two dense layers.
"""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models import ops


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Hyper-parameters; channels at resolution r are ``min(channel_base // r, channel_max)``."""

    img_resolution: int = 16
    img_channels: int = 1
    channel_base: int = 512
    channel_max: int = 64
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    resample_filter: tuple = (1, 3, 3, 1)

    def __post_init__(self):
        object.__setattr__(self, "resample_filter", tuple(self.resample_filter))
        r = self.img_resolution
        if not isinstance(r, int) or r < 8 or r & (r - 1):
            raise ValueError(f"DiscriminatorConfig: img_resolution must be a power of 2 >= 8, "
                             f"got {r!r}")

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """Resolutions of the downsampling blocks, largest first (R, R/2, ..., 8)."""
        return tuple(2 ** i for i in range(int(np.log2(self.img_resolution)), 2, -1))

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DiscriminatorConfig":
        return cls(**json.loads(text))


def expected_shapes(config: DiscriminatorConfig) -> dict[str, tuple[int, ...]]:
    """Flat parameter name -> shape."""
    shapes = {}
    for i, res in enumerate(config.block_resolutions):
        c_in, c_out = config.channels(res), config.channels(res // 2)
        if i == 0:
            shapes[f"b{res}.fromrgb.weight"] = (c_in, config.img_channels, 1, 1)
            shapes[f"b{res}.fromrgb.bias"] = (c_in,)
        shapes[f"b{res}.conv0.weight"] = (c_in, c_in, 3, 3)
        shapes[f"b{res}.conv0.bias"] = (c_in,)
        shapes[f"b{res}.conv1.weight"] = (c_out, c_in, 3, 3)
        shapes[f"b{res}.conv1.bias"] = (c_out,)
        shapes[f"b{res}.skip.weight"] = (c_out, c_in, 1, 1)
    c4 = config.channels(4)
    shapes["b4.conv.weight"] = (c4, c4 + config.mbstd_num_channels, 3, 3)
    shapes["b4.conv.bias"] = (c4,)
    shapes["b4.fc.weight"] = (c4, c4 * 16)
    shapes["b4.fc.bias"] = (c4,)
    shapes["b4.out.weight"] = (1, c4)
    shapes["b4.out.bias"] = (1,)
    return shapes


def init_params(config: DiscriminatorConfig, key: jax.Array) -> dict:
    """Weights N(0, 1) (equalised learning rate), biases zero; nested at the dots."""
    shapes = expected_shapes(config)
    sizes = {k: int(np.prod(s)) for k, s in shapes.items() if k.endswith("weight")}
    # one draw for all weights: a draw per shape would compile once per shape
    values = jax.random.normal(key, (sum(sizes.values()),), jnp.float32)
    params: dict = {}
    start = 0
    for name, shape in shapes.items():
        node = params
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if name in sizes:
            node[leaf] = values[start:start + sizes[name]].reshape(shape)
            start += sizes[name]
        else:
            node[leaf] = jnp.zeros(shape, jnp.float32)
    return params


def _conv(x, p, f, down=1, act="lrelu", gain=1.0):
    """Equalised-lr convolution (``padding`` keeps the size before downsampling) + bias_act."""
    w = p["weight"]
    w = w * (1.0 / math.sqrt(w.shape[1] * w.shape[2] * w.shape[3]))
    x = ops.conv2d_resample(x, w, f=f, down=down, padding=w.shape[2] // 2)
    if "bias" not in p:
        return x * gain if gain != 1 else x
    _, _, act_gain = ops.ACTIVATIONS[act]
    return ops.bias_act(x, p["bias"], act=act, gain=act_gain * gain)


def minibatch_stddev(x, group_size: int = 4, num_channels: int = 1):
    """Append the minibatch standard deviation feature map(s) (Karras et al. 2018, section 3).

    x: (N, C, H, W) with N divisible by the group size ``min(group_size, N)``. Samples
    ``n = g * (N / G) + m`` form group m; for each group, the standard deviation over its G
    members of every feature, averaged over the features of each of ``num_channels`` channel
    slices, becomes an extra constant channel. Returns (N, C + num_channels, H, W).
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    if n % g:
        raise ValueError(f"minibatch_stddev: batch {n} is not divisible by group size {g}")
    y = x.reshape(g, n // g, num_channels, c // num_channels, h, w)
    y = y - jnp.mean(y, axis=0)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # (N/G, F, c, H, W)
    y = jnp.mean(y, axis=(2, 3, 4))  # (N/G, F)
    y = jnp.tile(y, (g, 1))[:, :, None, None]
    y = jnp.broadcast_to(y, (n, num_channels, h, w))
    return jnp.concatenate([x, y], axis=1)


def discriminate(config: DiscriminatorConfig, params, img):
    """Realness logits D(x): (N,) for images img: (N, img_channels, R, R) in [-1, 1]."""
    f = ops.setup_filter(config.resample_filter)
    x = None
    half = math.sqrt(0.5)
    for res in config.block_resolutions:
        bp = params[f"b{res}"]
        if x is None:
            x = _conv(img, bp["fromrgb"], f)
        y = _conv(x, bp["skip"], f, down=2, gain=half)
        x = _conv(x, bp["conv0"], f)
        x = _conv(x, bp["conv1"], f, down=2, gain=half)
        x = x + y
    p = params["b4"]
    x = minibatch_stddev(x, config.mbstd_group_size, config.mbstd_num_channels)
    x = _conv(x, p["conv"], f)
    x = ops.fully_connected(x.reshape(x.shape[0], -1), p["fc"]["weight"], p["fc"]["bias"],
                            activation="lrelu")
    return ops.fully_connected(x, p["out"]["weight"], p["out"]["bias"])[:, 0]
