"""FastGAN generator network as pure functions: state-dict layout, layers, forward pass.

Split from :mod:`jaxlatent.models.fastgan` (which holds the config and the model object); see
that module's docstring for the architecture and ``docs/fastgan.md`` for the modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

if TYPE_CHECKING:
    from jaxlatent.models.fastgan import FastGANConfig

_DIMS = ("NCHW", "OIHW", "NCHW")
_BN_EPS = 1e-5  # torch.nn.BatchNorm2d default, which the official code keeps
NOISY = (8, 32, 128, 512)  # blocks with two convolutions and noise injection
SE_SOURCE = {64: 4, 128: 8, 256: 16, 512: 32}  # excited block -> resolution of its gate
DEFAULT_BATCHNORM = "running"


# ----------------------------------------------------------------------------- state-dict layout

def param_shapes(config: FastGANConfig) -> dict[str, tuple[int, ...]]:
    """Flat ``{dotted key: shape}`` of a converted generator, in official parameter order.

    Spectral-norm layers appear as their effective ``weight``; batch norms carry
    ``weight, bias, running_mean, running_var``; noise injections a ``weight`` of shape ``(1,)``.
    """
    c, shapes = config, {}

    def bn(prefix, ch):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (ch,)

    c4 = c.nfc(4)
    shapes["init.init.0.weight"] = (c.nz, 2 * c4, 4, 4)
    bn("init.init.1", 2 * c4)
    blocks = {}
    for res in c.resolutions:
        cin, cout = c.nfc(res // 2), c.nfc(res)
        keys = {f"feat_{res}.1.weight": (2 * cout, cin, 3, 3)}
        if res in NOISY:
            keys[f"feat_{res}.2.weight"] = (1,)
            keys.update({f"feat_{res}.3.{n}": (2 * cout,) for n in ("weight", "bias", "running_mean", "running_var")})
            keys[f"feat_{res}.5.weight"] = (2 * cout, cout, 3, 3)
            keys[f"feat_{res}.6.weight"] = (1,)
            keys.update({f"feat_{res}.7.{n}": (2 * cout,) for n in ("weight", "bias", "running_mean", "running_var")})
        else:
            keys.update({f"feat_{res}.2.{n}": (2 * cout,) for n in ("weight", "bias", "running_mean", "running_var")})
        blocks[res] = keys

    def se(res):
        src, ch = c.nfc(SE_SOURCE[res]), c.nfc(res)
        return {f"se_{res}.main.1.weight": (ch, src, 4, 4), f"se_{res}.main.3.weight": (ch, ch, 1, 1)}

    # module registration order of the official __init__ (parameters() and g_ema follow it)
    for res in (8, 16, 32, 64, 128, 256):
        shapes.update(blocks[res])
    for res in (64, 128, 256):
        shapes.update(se(res))
    shapes["to_128.weight"] = (c.nc, c.nfc(128), 1, 1)
    shapes["to_big.weight"] = (c.nc, c.nfc(c.im_size), 3, 3)
    if c.im_size > 256:
        shapes.update(blocks[512])
        shapes.update(se(512))
    if c.im_size > 512:
        shapes.update(blocks[1024])
    return shapes


def nest(flat: dict) -> dict:
    """``{'a.b.c': x}`` -> ``{'a': {'b': {'c': x}}}``."""
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten(tree: dict, prefix: str = "") -> dict:
    """Inverse of :func:`nest`."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def check_params(config: FastGANConfig, params: dict, source: str = "params") -> None:
    """Raise ``ValueError`` naming every missing, unexpected or misshapen key."""
    expected = param_shapes(config)
    found = {k: tuple(np.shape(v)) for k, v in flatten(params).items()}
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    wrong = [f"{k}: expected {expected[k]}, found {found[k]}" for k in expected
             if k in found and found[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        problems.append(f"unexpected keys {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    if wrong:
        problems.append("shapes that do not fit: " + "; ".join(wrong[:8]))
    if problems:
        raise ValueError(
            f"{source}: not a FastGAN generator for im_size={config.im_size}, nz={config.nz}, "
            f"ngf={config.ngf}, nc={config.nc}: " + "; ".join(problems)
        )


# ----------------------------------------------------------------------------- layers

def _conv(x, w, padding: int):
    """PyTorch ``conv2d`` (cross-correlation), stride 1, zero padding."""
    return lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), [(padding, padding)] * 2,
                                    dimension_numbers=_DIMS)


def _batch_norm(x, p, batchnorm: str):
    """``BatchNorm2d``: running statistics (eval mode) or biased batch statistics (train mode)."""
    if batchnorm == "running":
        mean, var = p["running_mean"], p["running_var"]
    else:
        mean = jnp.mean(x, axis=(0, 2, 3))
        var = jnp.mean(jnp.square(x - mean[None, :, None, None]), axis=(0, 2, 3))
    scale = p["weight"] * lax.rsqrt(var + _BN_EPS)
    return (x - mean[None, :, None, None]) * scale[None, :, None, None] + p["bias"][None, :, None, None]


def _glu(x):
    half = x.shape[1] // 2
    return x[:, :half] * jax.nn.sigmoid(x[:, half:])


def _upsample(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


def _excite(p, small, big):
    """Skip-layer excitation: ``big * sigmoid(conv1x1(swish(conv4x4(avgpool4(small)))))``."""
    n, c, h, w = small.shape
    # adaptive average pooling to 4x4; every FastGAN source size is a multiple of 4
    pooled = small.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5))
    gate = _conv(pooled, p["main"]["1"]["weight"], 0)
    gate = gate * jax.nn.sigmoid(gate)
    gate = jax.nn.sigmoid(_conv(gate, p["main"]["3"]["weight"], 0))
    return big * gate


def _up_block(p, x, res, noise, batchnorm):
    """``feat_<res>``; ``noise`` is an iterator over this block's two inputs (noisy blocks only)."""
    x = _conv(_upsample(x), p["1"]["weight"], 1)
    if res not in NOISY:
        return _glu(_batch_norm(x, p["2"], batchnorm))
    x = x + p["2"]["weight"].astype(x.dtype) * next(noise)
    x = _glu(_batch_norm(x, p["3"], batchnorm))
    x = _conv(x, p["5"]["weight"], 1)
    x = x + p["6"]["weight"].astype(x.dtype) * next(noise)
    return _glu(_batch_norm(x, p["7"], batchnorm))


def tap_shapes(config: FastGANConfig) -> dict[str, tuple[int, ...]]:
    """``{tap: per-sample shape}`` in forward order."""
    shapes = {"init": (config.nfc(4), 4, 4)}
    for res in config.resolutions:
        shapes[f"feat_{res}"] = (config.nfc(res), res, res)
    shapes["image128"] = (config.nc, 128, 128)
    shapes["image"] = (config.nc, config.im_size, config.im_size)
    return shapes


def forward(config: FastGANConfig, params: dict, z, noises: Sequence, batchnorm: str = DEFAULT_BATCHNORM,
            taps: Sequence[str] = ("image",)) -> dict:
    """Run the generator as far as the requested taps need.

    Args:
      config, params: the model (params nested, spectral norm folded).
      z: (N, nz) latents.
      noises: one array per injection point, broadcastable to ``(N, 1, H, W)``, in
        :attr:`FastGANConfig.noise_shapes` order (zeros for no noise).
      batchnorm: ``"running"`` or ``"batch"``.
      taps: names from :func:`tap_shapes`.

    Returns:
      ``{tap: (N, *tap_shape)}``.
    """
    wanted = set(taps)
    order = list(tap_shapes(config))
    last = max(order.index(t) for t in wanted)
    if "image128" in wanted:
        last = max(last, order.index("feat_128"))
    dtype = z.dtype
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    out, feats = {}, {}
    noise = iter(noises)

    # (N, nz, 1, 1) through a 4x4 transposed convolution is z contracted with each kernel tap
    x = jnp.einsum("nc,cohw->nohw", z, params["init"]["init"]["0"]["weight"])
    feats[4] = _glu(_batch_norm(x, params["init"]["init"]["1"], batchnorm))
    out["init"] = feats[4]
    for res in config.resolutions:
        if order.index(f"feat_{res}") > last:
            break
        x = _up_block(params[f"feat_{res}"], feats[res // 2], res, noise, batchnorm)
        if res in SE_SOURCE:
            x = _excite(params[f"se_{res}"], feats[SE_SOURCE[res]], x)
        feats[res] = out[f"feat_{res}"] = x
    act = jnp.tanh if config.tanh else (lambda a: a)
    if "image128" in wanted:
        out["image128"] = act(_conv(feats[128], params["to_128"]["weight"], 0))
    if "image" in wanted:
        out["image"] = act(_conv(feats[config.im_size], params["to_big"]["weight"], 1))
    return {t: out[t] for t in taps}


def draw_noise(config: FastGANConfig, key, batch: int, dtype=jnp.float32) -> list:
    """Standard normal noise ``(batch, 1, H, W)`` for each injection point from one explicit key.

    The draws cannot match ``torch.randn``; the order and shapes match the official forward pass.
    """
    keys = jax.random.split(key, len(config.noise_shapes))
    return [jax.random.normal(k, (batch, 1) + hw, dtype) for k, hw in zip(keys, config.noise_shapes)]


