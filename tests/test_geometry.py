"""metric_tensor (Wang & Ponce 2021): closed forms, finite differences, LOBPCG, statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_stylegan2

from jaxlatent.geometry import metric as geometry
from jaxlatent.geometry.metric import Metric, eigen_axis_latents, equal_distance_steps, metric_tensor, mse_distance
from jaxlatent.geometry.stats import anisotropy, average_metric, hessian_corr, spectrum_summary
from jaxlatent.engine.linalg import unordered_lapack_calls
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.engine.parallel import batch_mesh

A = np.random.RandomState(0).randn(2 * 3 * 3, 10)
B = np.random.RandomState(1).randn(6, 18)


def linear(z):
    return jnp.reshape(z @ jnp.asarray(A, z.dtype).T, (-1, 2, 3, 3))


def quadratic(x0, x):
    """A feature distance ||B (x - x0)||^2: its Hessian in x is M = 2 B^T B."""
    d = jnp.reshape(x - x0, (x.shape[0], -1)) @ jnp.asarray(B, x.dtype).T
    return jnp.sum(d * d, axis=1)


def test_linear_generator_with_the_default_distance_gives_2_over_n_AtA(x64):
    z = jax.random.normal(jax.random.key(0), (3, 10), jnp.float64)
    m = metric_tensor(linear, z)
    ref = 2.0 / 18 * A.T @ A
    np.testing.assert_allclose(np.asarray(m.matrix), np.broadcast_to(ref, (3, 10, 10)), atol=1e-13)
    w, v = np.linalg.eigh(ref)
    np.testing.assert_allclose(np.asarray(m.eigenvalues[0]), w[::-1], rtol=1e-12)
    # eigenvectors: orthonormal, H v = l v, largest-magnitude entry positive
    vec = np.asarray(m.eigenvectors[0])
    np.testing.assert_allclose(ref @ vec, vec * w[::-1], atol=1e-12)
    assert np.all(vec[np.abs(vec).argmax(axis=0), range(10)] > 0)
    # the default distance spelled out is the same metric
    np.testing.assert_allclose(np.asarray(metric_tensor(linear, z, distance=mse_distance).matrix), np.asarray(m.matrix))


def test_quadratic_feature_distance_gives_JtMJ(x64):
    z = jax.random.normal(jax.random.key(1), (2, 10), jnp.float64)
    m = metric_tensor(linear, z, distance=quadratic)
    ref = A.T @ (2 * B.T @ B) @ A
    np.testing.assert_allclose(np.asarray(m.matrix[1]), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_reverse_mode_when_the_image_is_smaller_than_the_latent(x64):
    a = np.random.RandomState(2).randn(4, 10)
    g = lambda z: z @ jnp.asarray(a).T
    z = jnp.ones((2, 10))
    np.testing.assert_allclose(np.asarray(metric_tensor(g, z).matrix[0]), 2 / 4 * a.T @ a, atol=1e-13)


@pytest.fixture(scope="module")
def small_stylegan2():
    config = StyleGAN2Config(z_dim=6, w_dim=6, img_resolution=8, mapping_layers=2, channel_base=32, channel_max=8)
    return random_stylegan2(config, 3)


def mse_plus_top_row(x0, x):
    """A distance weighting the first image row more: M is not a multiple of the identity."""
    return mse_distance(x0, x) + jnp.sum((x - x0)[:, 0, 0] ** 2, axis=1)


def test_stylegan2_metric_equals_finite_differences_of_the_distance(small_stylegan2, x64):
    g = small_stylegan2.fn("image")
    z = jax.random.normal(jax.random.key(2), (2, 6), jnp.float64)      # the metric of latent 1 is checked
    m = metric_tensor(g, z, distance=mse_plus_top_row)
    assert m.matrix.dtype == jnp.float64
    h = 1e-4
    eye = np.eye(6)
    for i in (1,):
        z0 = np.asarray(z[i])
        x0 = g(jnp.asarray(z0)[None])

        f_jit = jax.jit(lambda zz: mse_plus_top_row(x0, g(zz[None]))[0])

        def f(zz):
            return float(f_jit(jnp.asarray(zz)))

        fd = np.empty((6, 6))
        for a in range(6):
            for b in range(6):
                ea, eb = h * eye[a], h * eye[b]
                fd[a, b] = (f(z0 + ea + eb) - f(z0 + ea - eb) - f(z0 - ea + eb) + f(z0 - ea - eb)) / (4 * h * h)
        # central second differences: O(h^2) truncation plus ~1e-16 / h^2 rounding, both ~1e-8 relative
        np.testing.assert_allclose(np.asarray(m.matrix[i]), fd, atol=1e-6 * np.abs(fd).max())


W1 = np.random.RandomState(5).randn(16, 20) / 4
W2 = np.random.RandomState(6).randn(18, 16)


def mlp(z):
    """A small nonlinear generator: 20 latent values -> 16 tanh units -> (2, 3, 3) image."""
    h = jnp.tanh(z @ jnp.asarray(W1, z.dtype).T)
    return jnp.reshape(h @ jnp.asarray(W2, z.dtype).T, (-1, 2, 3, 3))


@pytest.mark.parametrize("distance", [None, quadratic])
def test_lobpcg_top_k_equals_the_full_metric(distance):
    z = jax.random.normal(jax.random.key(3), (4, 20))
    full = metric_tensor(mlp, z, distance=distance, method="full")
    top = metric_tensor(mlp, z, distance=distance, k=3, method="lobpcg", key=jax.random.key(0))
    assert top.matrix is None and top.eigenvectors.shape == (4, 20, 3)
    # float32 LOBPCG at its default tolerance (residual ~ float eps * 10 * in * l): a few 1e-6 relative
    np.testing.assert_allclose(np.asarray(top.eigenvalues), np.asarray(full.eigenvalues[:, :3]), rtol=1e-4)
    overlap = np.abs(np.sum(np.asarray(top.eigenvectors) * np.asarray(full.eigenvectors[:, :, :3]), axis=1))
    np.testing.assert_allclose(overlap, 1, atol=1e-3)


def conv_generator(z):
    """20 latent values -> a (2, 3, 3) image through a 3x3 convolution (the host loop's case)."""
    k = jnp.asarray(np.random.RandomState(7).randn(2, 2, 3, 3) / 3, z.dtype)
    h = jnp.reshape(jnp.tanh(z @ jnp.asarray(np.random.RandomState(8).randn(18, 20) / 4, z.dtype).T), (-1, 2, 3, 3))
    return jax.lax.conv_general_dilated(h, k, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))


@pytest.mark.parametrize("distance", [None, quadratic])
@pytest.mark.parametrize("gen,loop", [(mlp, "auto"), (conv_generator, "auto"), (conv_generator, "device")])
def test_krylov_top_k_equals_the_full_metric(distance, gen, loop):
    z = jax.random.normal(jax.random.key(3), (4, 20))
    full = metric_tensor(gen, z, distance=distance, method="full")
    top = metric_tensor(gen, z, distance=distance, k=3, method="krylov", key=jax.random.key(0), tol=1e-5, loop=loop)
    assert top.matrix is None and top.eigenvectors.shape == (4, 20, 3)
    # the relative residual 1e-5 bounds each eigenvalue's relative error by ~1e-5 (squared for
    # well-separated ones); float32 products of O(1) values add ~1e-6
    np.testing.assert_allclose(np.asarray(top.eigenvalues), np.asarray(full.eigenvalues[:, :3]), rtol=2e-5)
    overlap = np.abs(np.sum(np.asarray(top.eigenvectors) * np.asarray(full.eigenvectors[:, :, :3]), axis=1))
    np.testing.assert_allclose(overlap, 1, atol=1e-3)


def test_krylov_says_when_it_stops_short():
    z = jax.random.normal(jax.random.key(3), (2, 20))
    with pytest.warns(RuntimeWarning, match="stopped after max_iter=1"):
        metric_tensor(mlp, z, k=3, method="krylov", key=jax.random.key(0), max_iter=1, tol=0.0)


def test_results_do_not_depend_on_chunking_or_the_mesh(x64):
    z = jax.random.normal(jax.random.key(4), (5, 10), jnp.float64)
    a = metric_tensor(mlp, z[:, :10].repeat(2, axis=1), distance=quadratic)
    b = metric_tensor(mlp, z[:, :10].repeat(2, axis=1), distance=quadratic, chunk_size=2, mesh=batch_mesh())
    np.testing.assert_allclose(np.asarray(a.eigenvalues), np.asarray(b.eigenvalues), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(a.matrix), np.asarray(b.matrix), rtol=1e-12, atol=1e-14)


def test_errors_name_what_was_wrong():
    z = jnp.ones((2, 10))
    with pytest.raises(ValueError, match="method must be one of"):
        metric_tensor(linear, z, method="arpack")
    with pytest.raises(ValueError, match="5 k < 10"):
        metric_tensor(linear, z, k=3, method="lobpcg", key=jax.random.key(0))
    with pytest.raises(ValueError, match="explicit jax.random key"):
        metric_tensor(linear, z, k=1, method="lobpcg")
    with pytest.raises(ValueError, match=r"k must lie in \[1, 10\]"):
        metric_tensor(linear, z, k=11)
    assert geometry.resolve_method("auto", 512, 3 * 256 * 256, 10) == "krylov"
    with pytest.raises(ValueError, match="method 'krylov' needs k with 5 k < 10"):
        metric_tensor(linear, z, k=3, method="krylov", key=jax.random.key(0))
    assert geometry.resolve_method("auto", 64, 256, 10) == "full"


def test_programs_run_their_decompositions_one_after_another():
    """No two batched LAPACK calls in one of our programs may run side by side (jaxlib 0.10 CPU deadlock)."""
    z = jnp.ones((3, 10))
    h = jnp.broadcast_to(jnp.eye(10), (3, 10, 10))
    assert unordered_lapack_calls(geometry._Eigh(4), h) == []
    assert unordered_lapack_calls(geometry._MetricMatrix(linear, quadratic, "fwd", False), z) == []
    start = jnp.ones((3, 10, 1))
    assert unordered_lapack_calls(geometry._TopK(linear, quadratic, 1, 20, None, False), (z, start)) == []
    m = Metric(jnp.ones((3, 10)), jnp.broadcast_to(jnp.eye(10), (3, 10, 10)), None)
    assert unordered_lapack_calls(average_metric, m) == []


def test_anisotropy_and_spectrum_summary_closed_form(x64):
    vals = jnp.array([[8.0, 1.0, 0.5, 0.5], [4.0, 2.0, 1.0, 1.0]])
    an = anisotropy(vals, fractions=(0.5, 0.9, 1.0))
    # cumulative shares: (0.8, 0.9, 0.95, 1.0) and (0.5, 0.75, 0.875, 1.0)
    np.testing.assert_array_equal(np.asarray(an.dims), [[1, 2, 4], [1, 4, 4]])
    power = jnp.arange(1.0, 9.0)[None] ** -2.5
    np.testing.assert_allclose(float(anisotropy(power).slope[0]), -2.5, rtol=1e-12)
    s = spectrum_summary(jnp.array([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]]) * jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(s.mean), [4.0, 2.0])
    np.testing.assert_allclose(np.asarray(s.low), [np.percentile([2, 6, 4], 5), np.percentile([3, 1, 2], 5)])


def test_homogeneity_is_one_for_equal_metrics_and_step_sizes_match_the_metric(x64):
    z = jnp.zeros((3, 10))
    m = metric_tensor(linear, z)                        # a linear map: the same metric everywhere
    corr = hessian_corr(m)
    np.testing.assert_allclose(np.asarray(corr.lin), 1.0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(corr.log), 1.0, atol=1e-10)
    steps = equal_distance_steps(m.eigenvalues, length=0.1, n_side=2)
    assert steps.shape == (3, 10, 5)
    # for a linear g and the MSE distance the quadratic form is exact: d(t v_i) = 1/2 l_i t^2,
    # so every step moves the metric length sqrt(d) by the same 0.1, on every axis
    lat = eigen_axis_latents(z, m, length=0.1, n_side=2)                       # (3, 10, 5, 10)
    x0 = linear(z[:1])
    for axis in (0, 4, 9):
        d = mse_distance(jnp.broadcast_to(x0, (5, 2, 3, 3)), linear(lat[0, axis]))
        np.testing.assert_allclose(np.sqrt(np.asarray(d)), [0.2, 0.1, 0.0, 0.1, 0.2], rtol=1e-10, atol=1e-12)
