"""Low-level StyleGAN2 operations in JAX, NCHW, with NVlabs semantics.

These reproduce the operations of NVlabs ``torch_utils/ops`` (``upfirdn2d``, ``conv2d_resample``,
``bias_act``) and the ``modulated_conv2d`` of ``training/networks.py`` (Karras et al., "Analyzing
and Improving the Image Quality of StyleGAN", CVPR 2020, section 2.2) to float32 rounding.
Arrays are NCHW; convolution weights are ``(out, in, kh, kw)`` as in PyTorch; filters are the
2-D (or separable 1-D) FIR kernels that :func:`setup_filter` returns.

Only the operations a StyleGAN2 generator needs are fast paths; every function is pure and
traceable (``jit``, ``vmap``, ``jacfwd``, ``grad``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NCHW", "OIHW", "NCHW")

# name -> (function, default alpha, default gain); gains keep unit variance (He et al. 2015).
ACTIVATIONS = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: jax.nn.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: jnp.where(x >= 0, x, x * a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: jnp.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: jax.nn.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, a: jax.nn.elu(x), 0.0, 1.0),
    "selu": (lambda x, a: jax.nn.selu(x), 0.0, 1.0),
    "softplus": (lambda x, a: jax.nn.softplus(x), 0.0, 1.0),
    "swish": (lambda x, a: jax.nn.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def _pad4(padding) -> tuple[int, int, int, int]:
    """Padding as ``(x0, x1, y0, y1)`` from an int, ``[x, y]`` or ``[x0, x1, y0, y1]``."""
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1]; got {padding}")
    return tuple(padding)


def setup_filter(f=None, normalize: bool = True, flip_filter: bool = False, gain: float = 1.0,
                 separable: bool | None = None) -> np.ndarray:
    """FIR filter for :func:`upfirdn2d`, as NVlabs ``upfirdn2d.setup_filter`` prepares it.

    1-D taps become their outer product unless ``separable`` (default: 1-D with at least 8
    taps).

    Args:
      f: ``None`` (identity), a scalar, 1-D taps or a 2-D kernel.
      normalize: scale to unit sum; flip_filter: flip the taps.
      gain: the filter is scaled by ``gain ** (ndim / 2)``.
      separable: keep 1-D taps separable (None: decide by size).

    Returns:
      a float32 numpy array ``(fh, fw)`` or ``(taps,)``: a constant, never a parameter.
    """
    f = np.asarray(1.0 if f is None else f, dtype=np.float32)
    if f.ndim > 2 or f.size == 0:
        raise ValueError(f"filter must be a scalar, 1-D or 2-D and non-empty; got shape {f.shape}")
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"a separable filter must be 1-D; got shape {f.shape}")
    if normalize:
        f = f / f.sum(dtype=np.float32)
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    return np.ascontiguousarray(f * np.float32(gain ** (f.ndim / 2)), dtype=np.float32)


def filter_size(f) -> tuple[int, int]:
    """``(fw, fh)`` of a filter ``f`` from :func:`setup_filter` (``(1, 1)`` for None)."""
    if f is None:
        return 1, 1
    f = np.asarray(f)
    return int(f.shape[-1]), int(f.shape[0])


def _correlate_axis(x, taps, axis):
    """VALID correlation of ``x`` along one axis with constant 1-D ``taps``."""
    n_out = x.shape[axis] - len(taps) + 1
    out = None
    for i, t in enumerate(taps):
        if t == 0:
            continue
        term = lax.slice_in_dim(x, i, i + n_out, axis=axis) * jnp.asarray(t, x.dtype)
        out = term if out is None else out + term
    if out is None:
        shape = list(x.shape)
        shape[axis] = n_out
        out = jnp.zeros(shape, x.dtype)
    return out


def _rank_one(f: np.ndarray):
    """``(u, v)`` with ``outer(u, v) == f`` when the 2-D filter is separable, else ``None``."""
    i, j = np.unravel_index(np.argmax(np.abs(f)), f.shape)
    if f[i, j] == 0:
        return None
    u, v = f[:, j], f[i, :] / f[i, j]
    if np.allclose(np.outer(u, v), f, rtol=1e-6, atol=1e-9 * np.abs(f).max()):
        return u, v
    return None


def _correlate2d(x, f: np.ndarray):
    """VALID correlation of every channel of ``x: (N, C, H, W)`` with a constant filter.

    Written as sums of shifted slices (separable filters in two 1-D passes): XLA fuses them
    into one loop, far faster on CPU than a depthwise convolution.
    """
    if f.ndim == 1:
        return _correlate_axis(_correlate_axis(x, f, 3), f, 2)
    uv = _rank_one(f)
    if uv is not None:
        return _correlate_axis(_correlate_axis(x, uv[1], 3), uv[0], 2)
    kh, kw = f.shape
    ho, wo = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = jnp.zeros(x.shape[:2] + (ho, wo), x.dtype)
    for a in range(kh):
        for b in range(kw):
            if f[a, b] != 0:
                out = out + x[:, :, a:a + ho, b:b + wo] * jnp.asarray(f[a, b], x.dtype)
    return out


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter: bool = False, gain: float = 1.0):
    """Upsample, pad, FIR-filter and downsample a batch of images (NVlabs ``upfirdn2d``).

    Zeros are inserted after each pixel, the result padded, convolved with ``f`` (correlation
    when ``flip_filter``) scaled by ``gain ** (f.ndim / 2)``, and every ``down``-th pixel kept.

    Args:
      x: (N, C, H, W); f: filter from :func:`setup_filter` or None.
      up, down: int or ``[x, y]``.
      padding: with respect to the upsampled image, negative crops: int, ``[x, y]`` or
        ``[x0, x1, y0, y1]``.
      flip_filter, gain: as above.

    Returns:
      (N, C, H', W').
    """
    upx, upy = (up, up) if isinstance(up, int) else up
    downx, downy = (down, down) if isinstance(down, int) else down
    px0, px1, py0, py1 = _pad4(padding)
    f = np.ones((1, 1), np.float32) if f is None else np.asarray(f, np.float32)
    n, c, h, w = x.shape

    # Zero insertion and padding/cropping in one lax.pad: interior padding inserts up-1 zeros
    # between pixels; the up-1 zeros after the last pixel join the high-side padding.
    zero = jnp.zeros((), x.dtype)
    x = lax.pad(x, zero, [(0, 0, 0), (0, 0, 0), (py0, py1 + upy - 1, upy - 1),
                          (px0, px1 + upx - 1, upx - 1)])
    f = f * np.float32(gain ** (f.ndim / 2))
    if not flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    x = _correlate2d(x, f)
    return x[:, :, ::downy, ::downx]


def upsample2d(x, f, up: int = 2, padding=0, flip_filter: bool = False, gain: float = 1.0):
    """Upsample x: (N, C, H, W) by ``up`` with FIR filter ``f`` (NVlabs ``upsample2d``).

    Other arguments as in :func:`upfirdn2d`. Returns (N, C, up H, up W) (plus padding).
    """
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2,
         py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * up * up)


def downsample2d(x, f, down: int = 2, padding=0, flip_filter: bool = False, gain: float = 1.0):
    """Downsample x: (N, C, H, W) by ``down`` with FIR filter ``f`` (NVlabs ``downsample2d``).

    Other arguments as in :func:`upfirdn2d`. Returns (N, C, H / down, W / down) (plus padding).
    """
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2,
         py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def conv2d(x, w, padding=(0, 0), stride: int = 1, flip_weight: bool = True):
    """Plain 2-D convolution, PyTorch ``conv2d`` semantics (correlation when ``flip_weight``).

    Args:
      x: (N, I, H, W); w: (O, I, kh, kw), PyTorch layout.
      padding: ``(py, px)`` symmetric zero padding; stride: along both axes.
      flip_weight: correlation (PyTorch) when True, true convolution when False.

    Returns:
      (N, O, H', W').
    """
    if not flip_weight:
        w = w[:, :, ::-1, ::-1]
    py, px = padding
    return lax.conv_general_dilated(x, w.astype(x.dtype), (stride, stride), [(py, py), (px, px)],
                                    dimension_numbers=_DIMS)


def conv_transpose2d(x, w, stride: int = 2, padding=(0, 0), flip_weight: bool = True):
    """PyTorch ``conv_transpose2d`` for weights given as ``(O, I, kh, kw)``.

    Scatters every input pixel times the kernel onto a grid ``stride`` times finer:
    ``y[o, s*i + a] += x[c, i] * w[o, c, a]`` (with ``flip_weight=False`` the kernel is flipped
    first, as NVlabs' wrapper does).

    Args:
      x: (N, I, H, W); w: (O, I, kh, kw).
      stride: upsampling factor; padding: ``(py, px)`` removed from each side.
      flip_weight: see above.

    Returns:
      (N, O, (H - 1) stride + kh - 2 py, (W - 1) stride + kw - 2 px).
    """
    if not flip_weight:
        w = w[:, :, ::-1, ::-1]
    kh, kw = w.shape[2:]
    py, px = padding
    # A transposed convolution is a correlation of the zero-stuffed input with the flipped kernel.
    return lax.conv_general_dilated(
        x, w[:, :, ::-1, ::-1].astype(x.dtype), (1, 1),
        [(kh - 1 - py, kh - 1 - py), (kw - 1 - px, kw - 1 - px)],
        lhs_dilation=(stride, stride), dimension_numbers=_DIMS)


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding=0,
                    flip_weight: bool = True, flip_filter: bool = False):
    """Convolution with optional FIR up/downsampling (NVlabs ``conv2d_resample``).

    The result equals upsampling with ``f`` (gain ``up**2``), padding, convolving (correlation
    when ``flip_weight``) and downsampling with ``f``; the cheaper equivalent order the
    reference picks is used.

    Args:
      x: (N, I, H, W); w: (O, I, kh, kw).
      f: resampling filter from :func:`setup_filter`; up, down: integer factors.
      padding: with respect to the upsampled image, as in :func:`upfirdn2d`.
      flip_weight, flip_filter: correlation / flipped filter, as NVlabs.

    Returns:
      (N, O, H', W').
    """
    o, i, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kh == 1 and kw == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv2d(x, w, flip_weight=flip_weight)
    if kh == 1 and kw == 1 and up > 1 and down == 1:
        x = conv2d(x, w, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2,
                         flip_filter=flip_filter)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv2d(x, w, stride=down, flip_weight=flip_weight)
    if up > 1:
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = conv_transpose2d(x, w, stride=up, padding=(pyt, pxt), flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return conv2d(x, w, padding=(py0, px0), flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    x = conv2d(x, w, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def bias_act(x, b=None, dim: int = 1, act: str = "linear", alpha: float | None = None,
             gain: float | None = None, clamp: float | None = None):
    """Add bias ``b`` along axis ``dim``, apply ``act``, scale by ``gain``, clamp to ±``clamp``.

    NVlabs ``bias_act`` semantics.

    Args:
      x: any shape; b: (x.shape[dim],) or None; dim: the channel axis.
      act: a name of :data:`ACTIVATIONS`.
      alpha, gain: default to the activation's own (lrelu: slope 0.2, gain sqrt 2).
      clamp: None disables clamping.

    Returns:
      an array of x's shape and dtype.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    func, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + jnp.reshape(b, shape).astype(x.dtype)
    x = func(x, alpha)
    if gain != 1:
        x = x * jnp.asarray(gain, x.dtype)
    if clamp is not None and clamp >= 0:
        x = jnp.clip(x, -clamp, clamp)
    return x


def normalize_2nd_moment(x, axis: int = 1, eps: float = 1e-8):
    """Pixel norm of the latent: ``x / sqrt(mean(x**2) + eps)`` along ``axis``; x's shape.

    The square is written ``x * x``: ``jnp.square`` (or ``x ** 2``) before the reduction makes
    jaxlib 0.10.2's CPU backend miscompile ``jit(vmap(jacfwd))`` of the per-sample map
    (docs/known-issues.md); the product is the same function and compiles correctly.
    """
    return x * lax.rsqrt(jnp.mean(x * x, axis=axis, keepdims=True) + eps)


def fully_connected(x, weight, bias=None, activation: str = "linear", lr_multiplier: float = 1.0):
    """Equalised-learning-rate dense layer (NVlabs ``FullyConnectedLayer``).

    Computes ``act(x @ (weight * lr / sqrt(in)).T + bias * lr)`` with the activation's gain
    (Karras et al. 2018, equalised learning rate).

    Args:
      x: (N, in); weight: (out, in), stored divided by ``lr_multiplier``; bias: (out,) or None.
      activation: a name of :data:`ACTIVATIONS`; lr_multiplier: the layer's learning-rate
        multiplier.

    Returns:
      (N, out).
    """
    w = weight.astype(x.dtype) * jnp.asarray(lr_multiplier / np.sqrt(weight.shape[1]), x.dtype)
    b = None
    if bias is not None:
        b = bias.astype(x.dtype)
        if lr_multiplier != 1:
            b = b * jnp.asarray(lr_multiplier, x.dtype)
    x = x @ w.T
    if activation == "linear":
        return x if b is None else x + b
    return bias_act(x, b, act=activation)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, down: int = 1, padding=0,
                     resample_filter=None, demodulate: bool = True, flip_weight: bool = True):
    """Modulated (and demodulated) convolution of StyleGAN2 (Karras et al. 2020, eqs. 1-3).

    Computes, per sample, ``w'_oik = s_i w_oik``, ``w''_oik = w'_oik / sqrt(sum_ik w'_oik**2 +
    1e-8)`` (when ``demodulate``) and the :func:`conv2d_resample` of x with w'' plus noise.
    The per-sample weights are never built: scaling the input by s, convolving with the shared
    weight and scaling the output by the demodulation coefficients is the same sum, and it is a
    batched convolution that ``vmap``/``jacfwd`` keep batched.

    Args:
      x: (N, I, H, W); weight: (O, I, kh, kw); styles: (N, I), the per-sample scales s_i.
      noise: broadcastable to the output, or None.
      up, down, padding, resample_filter, flip_weight: as in :func:`conv2d_resample`.
      demodulate: apply eq. 3.

    Returns:
      (N, O, H', W').
    """
    n = x.shape[0]
    styles = styles.astype(x.dtype)
    x = x * styles[:, :, None, None]
    x = conv2d_resample(x, weight.astype(x.dtype), f=resample_filter, up=up, down=down,
                        padding=padding, flip_weight=flip_weight)
    if demodulate:
        # sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 (sum_k w_oik^2)
        wsq = jnp.sum(jnp.square(weight.astype(x.dtype)), axis=(2, 3))  # (O, I)
        dcoefs = lax.rsqrt((styles * styles) @ wsq.T + 1e-8)  # (N, O); x * x: normalize_2nd_moment
        x = x * dcoefs.reshape(n, -1, 1, 1)
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return x
