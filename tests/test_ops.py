"""jaxlatent.models.ops against direct float64 numpy references of the NVlabs definitions.

upfirdn2d is checked against its definition (zero insertion, pad/crop, convolution, decimation)
written with explicit loops; conv2d_resample against the generic order "upsample with the
filter, convolve, downsample" (every fast path must equal it); modulated_conv2d against the
per-sample (fused) weights of StyleGAN2; bias_act against elementwise formulas.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.models import ops

RNG = np.random.default_rng(0)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


# ----- references ------------------------------------------------------------------------
def ref_upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False):
    """The definition with a 2-D filter (gain already applied)."""
    x = np.asarray(x, np.float64)
    f = np.ones((1, 1)) if f is None else np.asarray(f, np.float64)
    upx, upy = (up, up) if isinstance(up, int) else up
    dx, dy = (down, down) if isinstance(down, int) else down
    px0, px1, py0, py1 = ops._pad4(padding)
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * upy, w * upx))
    u[:, :, ::upy, ::upx] = x
    u = np.pad(u, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[:, :, max(-py0, 0):u.shape[2] - max(-py1, 0), max(-px0, 0):u.shape[3] - max(-px1, 0)]
    k = f if flip_filter else f[::-1, ::-1]  # convolution = correlation with the flipped kernel
    kh, kw = k.shape
    out = np.zeros((n, c, u.shape[2] - kh + 1, u.shape[3] - kw + 1))
    for a in range(kh):
        for b in range(kw):
            out += k[a, b] * u[:, :, a:a + out.shape[2], b:b + out.shape[3]]
    return out[:, :, ::dy, ::dx]


def ref_upfirdn2d_gain(x, f, gain=1.0, **kw):
    f = np.ones((1, 1)) if f is None else np.asarray(f, np.float64)
    f = f * gain ** (f.ndim / 2)
    if f.ndim == 1:
        f = np.outer(f, f)
    return ref_upfirdn2d(x, f, **kw)


def ref_conv2d(x, w, flip_weight=True, stride=1):
    """PyTorch conv2d (correlation, no padding) in float64; a true convolution when not flip."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    if not flip_weight:
        w = w[:, :, ::-1, ::-1]
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return np.einsum("nchwab,ocab->nohw", win, w)[:, :, ::stride, ::stride]


def ref_conv2d_resample(x, w, f, up=1, down=1, padding=0, flip_weight=True):
    fw, fh = ops.filter_size(f)
    px0, px1, py0, py1 = ops._pad4(padding)
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
    x = ref_upfirdn2d_gain(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1],
                           gain=up ** 2)
    x = ref_conv2d(x, w, flip_weight=flip_weight)
    if down > 1:
        x = ref_upfirdn2d_gain(x, f, down=down)
    return x


# ----- setup_filter -----------------------------------------------------------------------
def test_setup_filter():
    f = ops.setup_filter([1, 3, 3, 1])
    np.testing.assert_allclose(f, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64, rtol=1e-7)
    assert f.dtype == np.float32
    assert ops.setup_filter(None).shape == (1, 1)
    assert ops.setup_filter(2.0).tolist() == [[1.0]]
    sep = ops.setup_filter(np.arange(1, 9))  # >= 8 taps: separable by default
    assert sep.shape == (8,) and math.isclose(sep.sum(), 1, rel_tol=1e-6)
    g = ops.setup_filter([1, 2], normalize=False, flip_filter=True, gain=4)
    np.testing.assert_allclose(g, 4 * np.outer([2, 1], [2, 1]))
    with pytest.raises(ValueError):
        ops.setup_filter(np.ones((2, 2, 2)))


# ----- upfirdn2d --------------------------------------------------------------------------
@pytest.mark.parametrize("f,up,down,padding", [
    ([1, 3, 3, 1], 2, 1, [2, 1, 2, 1]),
    ([1, 3, 3, 1], 1, 2, [1, 1, 1, 1]),
    ([1, 2, 1], 2, 2, 1),
    ("rand2d", (2, 1), (1, 3), [1, -1, 0, 2]),
    ("rand2d", 3, 1, [-1, 2, 1, 0]),
    ("sep8", 1, 1, [3, -2, -1, 2]),
    ("sep8", 2, 2, 0),
    (None, 2, 1, 0),
    (None, 1, 1, [2, -1, 0, 1]),
])
def test_upfirdn2d(f, up, down, padding):
    if f == "rand2d":
        f = RNG.standard_normal((3, 2)).astype(np.float32)  # not separable, not square
    elif f == "sep8":
        f = ops.setup_filter(RNG.random(8) + 0.1)
    elif f is not None:
        f = ops.setup_filter(f)
    x = RNG.standard_normal((2, 3, 12, 11)).astype(np.float32)
    for flip in (False, True):
        got = ops.upfirdn2d(jnp.asarray(x), f, up=up, down=down, padding=padding,
                            flip_filter=flip, gain=1.7)
        want = ref_upfirdn2d_gain(x, f, up=up, down=down, padding=padding, flip_filter=flip,
                                  gain=1.7)
        assert got.shape == want.shape
        assert rel(got, want) < 1e-6


@pytest.mark.parametrize("f", [[1, 3, 3, 1], [1, 2, 1], [1, 1]])
def test_up_and_downsample2d(f):
    f = ops.setup_filter(f)
    x = RNG.standard_normal((1, 2, 6, 5)).astype(np.float32)
    up = ops.upsample2d(jnp.asarray(x), f)
    assert up.shape == (1, 2, 12, 10)
    fw, fh = ops.filter_size(f)
    want = ref_upfirdn2d_gain(x, f, up=2, gain=4, padding=[(fw + 1) // 2, (fw - 2) // 2,
                                                          (fh + 1) // 2, (fh - 2) // 2])
    assert rel(up, want) < 1e-6
    down = ops.downsample2d(jnp.asarray(x[..., :4]), f)
    assert down.shape == (1, 2, 3, 2)
    # a constant image keeps its value away from the borders (unit DC gain)
    ones = ops.upsample2d(jnp.ones((1, 1, 8, 8)), f)
    np.testing.assert_allclose(ones[0, 0, 4:-4, 4:-4], 1, rtol=1e-6)


# ----- conv2d_resample --------------------------------------------------------------------
@pytest.mark.parametrize("k,up,down,padding,filt", [
    (3, 1, 1, 1, [1, 3, 3, 1]),
    (3, 1, 1, [1, 0, 2, 1], [1, 3, 3, 1]),   # asymmetric padding: generic path
    (3, 2, 1, 1, [1, 3, 3, 1]),              # StyleGAN2 upsampling conv (transposed path)
    (3, 2, 1, 1, [1, 2, 1]),
    (3, 1, 2, 1, [1, 3, 3, 1]),              # strided downsampling path
    (3, 2, 2, 0, [1, 2, 1]),
    (1, 2, 1, 0, [1, 3, 3, 1]),              # resnet skip: 1x1 then upsample
    (1, 2, 1, 0, [1, 2, 1]),
    (1, 1, 2, 0, [1, 3, 3, 1]),              # 1x1 after downsampling
    (1, 1, 1, 0, [1, 3, 3, 1]),
])
def test_conv2d_resample(k, up, down, padding, filt):
    f = ops.setup_filter(filt)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = RNG.standard_normal((4, 3, k, k)).astype(np.float32)
    for flip_weight in (True, False):
        got = ops.conv2d_resample(jnp.asarray(x), jnp.asarray(w), f=f, up=up, down=down,
                                  padding=padding, flip_weight=flip_weight)
        want = ref_conv2d_resample(x, w, f, up=up, down=down, padding=padding,
                                   flip_weight=flip_weight)
        assert got.shape == want.shape, (got.shape, want.shape)
        assert rel(got, want) < 2e-6


def test_conv_transpose2d_matches_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 3, 5, 4)).astype(np.float32)
    w = RNG.standard_normal((6, 3, 3, 3)).astype(np.float32)  # (out, in, kh, kw)
    want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x),
                                                torch.from_numpy(w).transpose(0, 1),
                                                stride=2, padding=1).numpy()
    got = ops.conv_transpose2d(jnp.asarray(x), jnp.asarray(w), stride=2, padding=(1, 1))
    assert rel(got, want) < 1e-6


# ----- modulated_conv2d -------------------------------------------------------------------
@pytest.mark.parametrize("up,demodulate,k", [(1, True, 3), (2, True, 3), (1, False, 1)])
def test_modulated_conv2d_matches_per_sample_weights(up, demodulate, k):
    f = ops.setup_filter([1, 3, 3, 1])
    x = RNG.standard_normal((3, 4, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((5, 4, k, k)).astype(np.float32)
    s = RNG.standard_normal((3, 4)).astype(np.float32)
    noise = RNG.standard_normal((6 * up, 6 * up)).astype(np.float32)
    pad = k // 2
    got = ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), noise=noise,
                               up=up, padding=pad, resample_filter=f, demodulate=demodulate,
                               flip_weight=(up == 1))
    want = []
    for i in range(3):  # StyleGAN2 eqs. 1 and 3 with explicit per-sample weights
        wi = w.astype(np.float64) * s[i][None, :, None, None]
        if demodulate:
            wi = wi / np.sqrt((wi ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        want.append(ref_conv2d_resample(x[i:i + 1], wi, f, up=up, padding=pad,
                                        flip_weight=(up == 1))[0])
    want = np.stack(want) + noise
    assert rel(got, want) < 2e-6


# ----- bias_act, dense layer --------------------------------------------------------------
def test_bias_act():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    xb = x + b[None, :, None]
    np.testing.assert_allclose(ops.bias_act(x, b), xb, rtol=1e-6)
    lrelu = np.where(xb >= 0, xb, 0.2 * xb) * np.sqrt(2)
    np.testing.assert_allclose(ops.bias_act(x, b, act="lrelu"), lrelu, rtol=1e-6)
    np.testing.assert_allclose(ops.bias_act(x, b, act="lrelu", gain=0.5, clamp=0.3),
                               np.clip(np.where(xb >= 0, xb, 0.2 * xb) * 0.5, -0.3, 0.3), rtol=1e-6)
    np.testing.assert_allclose(ops.bias_act(x, b, act="relu", alpha=0.1),
                               np.maximum(xb, 0) * np.sqrt(2), rtol=1e-6)
    b2 = RNG.standard_normal(4).astype(np.float32)
    np.testing.assert_allclose(ops.bias_act(x, b2, dim=2, act="lrelu", alpha=0.1, gain=1),
                               np.where(x + b2 >= 0, x + b2, 0.1 * (x + b2)), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        ops.bias_act(x, act="gelu2")


def test_fully_connected_and_normalize():
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    w = RNG.standard_normal((4, 5)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    lin = x @ (w * 0.01 / np.sqrt(5)).T + b * 0.01
    np.testing.assert_allclose(ops.fully_connected(x, w, b, lr_multiplier=0.01), lin, rtol=1e-5)
    np.testing.assert_allclose(ops.fully_connected(x, w, b, "lrelu", 0.01),
                               np.where(lin >= 0, lin, 0.2 * lin) * np.sqrt(2), rtol=1e-5)
    n = ops.normalize_2nd_moment(jnp.asarray(x))
    np.testing.assert_allclose(np.mean(np.square(n), axis=1), 1, rtol=1e-5)


def test_ops_are_differentiable_and_jittable():
    f = ops.setup_filter([1, 3, 3, 1])
    w = jnp.asarray(RNG.standard_normal((2, 2, 3, 3)).astype(np.float32))

    def g(x):
        return jnp.sum(ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False) ** 2)

    x = jnp.asarray(RNG.standard_normal((1, 2, 4, 4)).astype(np.float32))
    grad = jax.jit(jax.grad(g))(x)
    v = jnp.asarray(RNG.standard_normal(x.shape).astype(np.float32))
    eps = 1e-2
    fd = (g(x + eps * v) - g(x - eps * v)) / (2 * eps)
    assert abs(float(jnp.vdot(grad, v)) - float(fd)) < 1e-2 * abs(float(fd)) + 1e-3
