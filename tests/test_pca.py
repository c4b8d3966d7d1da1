"""PCA (GANSpace, Härkönen et al. 2020): closed form, sklearn parity, streamed and randomized variants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import PCA as SKPCA

from jaxlatent.engine.linalg import unordered_lapack_calls
from jaxlatent.ganspace.pca import _pca, flip_signs, pca, pca_from_moments, pca_randomized, population_pca, transform
from jaxlatent.ganspace.population import moments_of


def _with_covariance(rng, n, cov, mean):
    """n samples whose sample mean and (n - 1) covariance are exactly ``mean`` and ``cov``."""
    x = rng.randn(n, cov.shape[0])
    x -= x.mean(axis=0)
    evals, evecs = np.linalg.eigh(x.T @ x / (n - 1))
    x = x @ evecs / np.sqrt(evals) @ evecs.T                    # sample covariance exactly I
    evals, evecs = np.linalg.eigh(cov)
    return x @ (evecs * np.sqrt(evals)) @ evecs.T + mean


def test_pca_of_data_with_a_known_covariance(x64):
    rng = np.random.RandomState(0)
    d = 6
    q = np.linalg.qr(rng.randn(d, d))[0]
    lam = np.array([9.0, 5.0, 3.0, 2.0, 1.0, 0.5])
    x = _with_covariance(rng, 500, (q * lam) @ q.T, mean=np.arange(d, dtype=float))
    res = pca(x, k=4)
    np.testing.assert_allclose(np.asarray(res.explained_variance), lam[:4], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(res.explained_variance_ratio), lam[:4] / lam.sum(), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(res.mean), np.arange(d), atol=1e-12)
    # axes are the eigenvectors of the covariance, each with our sign (largest entry positive)
    np.testing.assert_allclose(np.asarray(res.components), flip_signs(q[:, :4].T), atol=1e-10)
    np.testing.assert_allclose(np.asarray(res.singular_values), np.sqrt(lam[:4] * 499), rtol=1e-10)


@pytest.mark.parametrize("shape,k", [((300, 12), 5), ((300, 12), 12), ((20, 50), 7)])
def test_pca_equals_sklearn_with_signs(shape, k, x64):
    x = np.random.RandomState(1).randn(*shape) @ np.random.RandomState(2).randn(shape[1], shape[1]) + 2.0
    ours, ref = pca(x, k=k), SKPCA(k, svd_solver="full").fit(x)
    # float64 eigh of the Gram matrix against LAPACK's SVD: both backward stable, a few ulp of
    # the largest variance per entry
    np.testing.assert_allclose(np.asarray(ours.components), ref.components_, atol=1e-10)
    np.testing.assert_allclose(np.asarray(ours.explained_variance), ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.explained_variance_ratio), ref.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.singular_values), ref.singular_values_, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.mean), ref.mean_, atol=1e-12)
    np.testing.assert_allclose(np.asarray(transform(ours, x)), ref.transform(x), atol=1e-9)


def test_streamed_moments_and_randomized_pca_equal_the_in_memory_pca(x64):
    rng = np.random.RandomState(3)
    scales = np.r_[[10.0, 7.0, 5.0, 4.0], 0.5 * np.ones(26)]      # a gap after the 4th axis
    x = rng.randn(700, 30) * scales @ np.linalg.qr(rng.randn(30, 30))[0] + 5.0
    ref = pca(x, k=4)
    weights = jnp.asarray(rng.randn(30, 30) / 6)

    def tap(z):                       # a batched "tap" whose population is x, fed by x itself
        return z @ jnp.eye(30, dtype=z.dtype) + 0 * weights[0, 0]

    streamed = population_pca(tap, x, k=4, chunk_size=128)          # 700 = 5 x 128 + 60: padded last chunk
    for res in (streamed, pca_from_moments(moments_of(x, chunk_size=97), k=4)):
        np.testing.assert_allclose(np.asarray(res.components), np.asarray(ref.components), atol=1e-10)
        np.testing.assert_allclose(np.asarray(res.explained_variance), np.asarray(ref.explained_variance), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(res.explained_variance_ratio),
                                   np.asarray(ref.explained_variance_ratio), rtol=1e-10)
    rand = pca_randomized(tap, x, k=4, key=jax.random.key(0), oversample=6, steps=6, chunk_size=200)
    # subspace iteration: error ~ (lambda_{k+p} / lambda_k)^(2 iters), (0.25 / 16)^12 here: converged
    np.testing.assert_allclose(np.asarray(rand.components), np.asarray(ref.components), atol=1e-8)
    np.testing.assert_allclose(rand.explained_variance, np.asarray(ref.explained_variance), rtol=1e-9)
    np.testing.assert_allclose(rand.explained_variance_ratio, np.asarray(ref.explained_variance_ratio), rtol=1e-9)


def test_pca_float32_and_errors():
    x = np.random.RandomState(4).randn(200, 8).astype(np.float32) * np.arange(1, 9)
    res = pca(x, k=3)
    assert res.components.shape == (3, 8) and res.components.dtype == jnp.float32
    ref = SKPCA(3, svd_solver="full").fit(x.astype(np.float64))
    # float32 Gram matrix: eigenvectors to ~eps32 * lambda_1 / gap (gaps >= 13 % of lambda_1 here)
    np.testing.assert_allclose(np.asarray(res.components), ref.components_, atol=2e-5)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 8\].*found 9"):
        pca(x, k=9)
    with pytest.raises(ValueError, match="expected samples of shape"):
        pca(x[0], k=1)


def test_pca_program_orders_its_decompositions():
    x = jnp.ones((16, 5))
    assert unordered_lapack_calls(lambda a: _pca(a, 3), x) == []
    assert unordered_lapack_calls(lambda a: _pca(a, 3), jnp.ones((4, 9))) == []
