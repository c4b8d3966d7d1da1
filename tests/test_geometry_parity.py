"""Parity with GAN-Geometry (Wang & Ponce 2021): ``hessian_compute`` and ``hessian_analysis_tools``.

The golden data (``tests/golden/geometry/hessian.npz``, made by
``tests/golden/tools/make_geometry_golden.py``; see the README there) hold a small torch generator's
and an LPIPS-style distance's weights, which are replayed here in JAX layer by layer.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.geometry.metric import Metric, metric_tensor
from jaxlatent.models.features.lpips import lpips_from_variables
from jaxlatent.models.features.lpips import LPIPS
from jaxlatent.geometry.stats import (average_metric, hessian_corr, offdiag_summary,
                                               vector_hessian_corr)

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "geometry", "hessian.npz")
SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as f:
        return dict(f)


def _conv(x, w, b=None, stride=1, padding=0):
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y if b is None else y + b[None, :, None, None]


def replay(gold, dtype):
    """(generator, mse, lpips_like) in JAX, the golden tool's torch modules layer for layer."""
    p = {k: jnp.asarray(v, dtype) for k, v in gold.items() if k[:2] in ("g_", "d_")}

    def generator(z):
        h = jnp.tanh(z @ p["g_fc1_w"].T + p["g_fc1_b"])
        h = (h @ p["g_fc2_w"].T + p["g_fc2_b"]).reshape(-1, 8, 4, 4)
        h = jnp.repeat(jnp.repeat(h, 2, axis=2), 2, axis=3)                # nearest 2x
        return jnp.tanh(_conv(h, p["g_conv_w"], p["g_conv_b"], padding=1))

    def feats(x):
        x = (x - jnp.asarray(SHIFT, dtype)[None, :, None, None]) / jnp.asarray(SCALE, dtype)[None, :, None, None]
        f1 = jax.nn.relu(_conv(x, p["d_conv1_w"], p["d_conv1_b"], padding=1))
        f2 = jax.nn.relu(_conv(f1, p["d_conv2_w"], p["d_conv2_b"], stride=2, padding=1))
        return f1, f2

    def unit(f):
        return f / (jnp.sqrt(jnp.sum(f ** 2, axis=1, keepdims=True)) + 1e-10)

    def lpips_like(x0, x1):
        total = 0.0
        for f0, f1, lin in zip(feats(x0), feats(x1), ("d_lin1_w", "d_lin2_w")):
            total = total + jnp.mean(_conv((unit(f0) - unit(f1)) ** 2, p[lin]), axis=(1, 2, 3))
        return total

    def mse(x0, x1):
        return jnp.mean((x0 - x1) ** 2, axis=(1, 2, 3))

    return generator, {"mse": mse, "lpips": lpips_like}


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", ["mse", "lpips"])
def test_full_metric_equals_their_bp_in_float64(golden, name, x64):
    g, dist = replay(golden, jnp.float64)
    n = golden[f"{name}_bp64_H"].shape[0]
    m = metric_tensor(g, jnp.asarray(golden["z"][:n]), distance=dist[name], method="full")
    assert m.matrix.dtype == jnp.float64
    # same function, both in float64: only rounding separates them
    assert _rel(m.matrix, golden[f"{name}_bp64_H"]) < 1e-6


@pytest.mark.parametrize("name", ["mse", "lpips"])
def test_full_metric_equals_their_bp_in_float32(golden, name):
    g, dist = replay(golden, jnp.float32)
    n = golden[f"{name}_bp32_H"].shape[0]
    m = metric_tensor(g, jnp.asarray(golden["z"][:n], jnp.float32), distance=dist[name], method="full")
    # second derivatives through the normalised LPIPS features lose digits in float32 (both sides)
    assert _rel(m.matrix, golden[f"{name}_bp32_H"]) < 2e-3


@pytest.mark.parametrize("name", ["mse", "lpips"])
def test_top_eigenvalues_agree_with_their_iterative_methods(golden, name, x64):
    g, dist = replay(golden, jnp.float64)
    bi, fi = golden[f"{name}_backwarditer_eigvals"], golden[f"{name}_forwarditer_eigvals"]
    n, k = bi.shape
    m = metric_tensor(g, jnp.asarray(golden["z"][:n]), distance=dist[name], k=k, method="full")
    ours = np.asarray(m.eigenvalues)
    # BackwardIter: ARPACK in float32 on the HVP at z + 1e-4 N(0, I): a few 1e-4 relative
    np.testing.assert_allclose(bi, ours, rtol=5e-3)
    # ForwardIter: half the HVP (mean over its +/- pair) by central differences of size 1e-3 |z|
    np.testing.assert_allclose(2 * fi, ours, rtol=2e-2)


def test_statistics_equal_hessian_analysis_tools(golden, x64):
    vals, vecs = golden["stats_eigvals"], golden["stats_eigvecs"]
    metric = Metric(jnp.asarray(vals), jnp.asarray(vecs), None)
    corr = hessian_corr(metric)
    np.testing.assert_allclose(np.asarray(corr.log), golden["stats_corr_log"], atol=1e-6)
    np.testing.assert_allclose(np.asarray(corr.lin), golden["stats_corr_lin"], atol=1e-6)
    np.testing.assert_allclose(np.asarray(vector_hessian_corr(metric)), golden["stats_corr_vec"], atol=1e-6)
    avg = average_metric(metric)
    np.testing.assert_allclose(np.asarray(avg.matrix[0]), golden["stats_H_avg"], atol=1e-6 * np.abs(golden["stats_H_avg"]).max())
    np.testing.assert_allclose(np.asarray(avg.eigenvalues[0]), golden["stats_eva_avg"][::-1], rtol=1e-6, atol=1e-12)
    off = golden["stats_corr_log"].copy()
    np.fill_diagonal(off, np.nan)
    mean, median = offdiag_summary(corr.log)
    np.testing.assert_allclose([float(mean), float(median)], [np.nanmean(off), np.nanmedian(off)], atol=1e-6)


def test_metric_through_the_flax_lpips_equals_the_hessian_of_the_composite():
    """With the LPIPS port (random SqueezeNet backbone) as the distance: J^T M J = d^2/dz^2 d(g(z0), g(z))."""
    x = jax.ShapeDtypeStruct((1, 3, 32, 32), jnp.float32)
    shapes = jax.eval_shape(LPIPS("squeeze").init, jax.random.key(0), x, x)
    rs = np.random.RandomState(0)        # numpy draws: no compiled initialiser (seconds for SqueezeNet)
    variables = jax.tree_util.tree_map(lambda s: jnp.asarray(np.abs(rs.randn(*s.shape)) * 0.1 + rs.randn(*s.shape)
                                                              * 0.1, s.dtype), shapes)
    lp = lpips_from_variables(variables, "squeeze")
    a = jax.random.normal(jax.random.key(1), (3 * 32 * 32, 6)) * 0.3
    g = lambda z: jnp.tanh(z @ a.T).reshape(-1, 3, 32, 32)
    z = jax.random.normal(jax.random.key(2), (1, 6))
    m = metric_tensor(g, z, distance=lp)
    h = jax.jit(jax.hessian(lambda z1: lp(g(z), g(z1[None]))[0]))(z[0])
    # float32 second derivatives through unit-normalised features: ~1e-6 of the largest entry
    np.testing.assert_allclose(np.asarray(m.matrix[0]), np.asarray(h), atol=2e-4 * float(jnp.abs(h).max()))
