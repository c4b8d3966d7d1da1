"""FastICA (Hyvärinen and Oja 2000) in JAX: known mixtures recovered, sklearn's FastICA reproduced."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import FastICA

from jaxlatent.ganspace.ica import _fast_ica, fast_ica
from jaxlatent.engine.linalg import unordered_lapack_calls
from jaxlatent.ganspace.pca import transform


def _mixture(n=2000, seed=0):
    rng = np.random.RandomState(seed)
    t = np.arange(n)
    sources = np.c_[rng.laplace(size=n), rng.uniform(-1, 1, n), np.sin(t / 7.0),
                    np.sign(rng.randn(n)) + 0.1 * rng.randn(n)]
    mixing = rng.randn(4, 4) + 2 * np.eye(4)
    return sources, mixing, sources @ mixing.T + np.array([1.0, -2.0, 0.5, 3.0])


@pytest.mark.parametrize("algorithm", ["parallel", "deflation"])
def test_known_mixture_of_non_gaussian_sources_is_recovered(algorithm, x64):
    sources, mixing, x = _mixture()
    res = fast_ica(x, k=4, key=jax.random.key(0), algorithm=algorithm)
    assert bool(res.converged)
    # unmixing x mixing x source scales is a signed permutation: one entry per row carries the row
    p = np.asarray(res.components) @ mixing * sources.std(axis=0)
    p = p ** 2 / (p ** 2).sum(axis=1, keepdims=True)
    assert sorted(np.argmax(p, axis=1)) == [0, 1, 2, 3]
    assert p.max(axis=1).min() > 0.97
    # each estimated source correlates with one true source at |r| ~ 1 (sign and order free)
    est = np.asarray(transform(res, x))
    corr = np.abs(np.corrcoef(est.T, sources.T)[:4, 4:])
    assert corr.max(axis=1).min() > 0.99
    np.testing.assert_allclose(est.std(axis=0), 1.0, rtol=1e-10)       # whiten="unit-variance"
    np.testing.assert_allclose(np.asarray(res.components) @ np.asarray(res.mixing), np.eye(4), atol=1e-10)


def _sklearn(x, k, w_init, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FastICA(k, w_init=w_init, **kw).fit(x)


def _match(ours, ref):
    """Compare sklearn's fields with ours, each component's sign taken from sklearn."""
    c = np.asarray(ours.components)
    sign = np.sign(np.sum(c * ref.components_, axis=1))
    scale = np.abs(ref.components_).max()
    # float64 throughout; the whitening differs by solver (eigh vs LAPACK SVD) at ~1e-15 relative,
    # which the fixed-point iterations carry to ~1e-12: 1e-8 leaves ample room and is 1000x
    # tighter than the 1e-5 the project promises
    np.testing.assert_allclose(c * sign[:, None], ref.components_, atol=1e-8 * scale)
    np.testing.assert_allclose(np.asarray(ours.mixing) * sign[None, :], ref.mixing_,
                               atol=1e-8 * np.abs(ref.mixing_).max())
    np.testing.assert_allclose(np.asarray(ours.whitening), ref.whitening_, atol=1e-8 * np.abs(ref.whitening_).max())
    np.testing.assert_allclose(np.asarray(ours.mean), ref.mean_, atol=1e-12)


@pytest.mark.parametrize("algorithm,fun", [("parallel", "logcosh"), ("parallel", "exp"), ("parallel", "cube"),
                                           ("deflation", "logcosh"), ("deflation", "exp"), ("deflation", "cube")])
def test_equals_sklearn_fastica_with_the_same_w_init(algorithm, fun, x64):
    rng = np.random.RandomState(5)
    # six non-Gaussian sources carry the variance, four small Gaussian ones do not: whitening to
    # k = 6 keeps the identifiable part (Gaussian directions have no unique rotation to converge to)
    sources = np.c_[3 * rng.laplace(size=(1500, 3)), 6 * rng.uniform(-1, 1, (1500, 3)), 0.3 * rng.randn(1500, 4)]
    x = sources @ np.linalg.qr(rng.randn(10, 10))[0] + 1.0
    w_init = rng.randn(6, 6)
    # tight tolerance: both sides stop at the fixed point, not 1e-4 away from it along a slow direction
    ours = fast_ica(x, k=6, w_init=w_init, algorithm=algorithm, fun=fun, tol=1e-10, max_iter=2000)
    ref = _sklearn(x, 6, w_init, algorithm=algorithm, fun=fun, tol=1e-10, max_iter=2000, whiten_solver="eigh")
    _match(ours, ref)
    assert int(ours.iterations) == ref.n_iter_


def test_sklearn_defaults_the_papers_setting(x64):
    """FastICA(n_components) with default settings, as Palaev et al. fit W: also the iteration count."""
    rng = np.random.RandomState(6)
    x = np.c_[3 * rng.laplace(size=(3000, 5)), 0.5 * rng.randn(3000, 11)] @ np.linalg.qr(rng.randn(16, 16))[0]
    w_init = rng.randn(5, 5)
    ours, ref = fast_ica(x, k=5, w_init=w_init), _sklearn(x, 5, w_init)
    c = np.asarray(ours.components)
    sign = np.sign(np.sum(c * ref.components_, axis=1))[:, None]
    np.testing.assert_allclose(c * sign, ref.components_, atol=1e-5 * np.abs(ref.components_).max())
    assert int(ours.iterations) == ref.n_iter_ and bool(ours.converged) == (ref.n_iter_ < 200)


def test_wide_data_uses_the_sample_gram_and_equals_sklearn(x64):
    rng = np.random.RandomState(7)
    x = rng.laplace(size=(40, 4)) @ rng.randn(4, 60) + 0.01 * rng.randn(40, 60)
    w_init = rng.randn(4, 4)
    ours = fast_ica(x, k=4, w_init=w_init, tol=1e-10, max_iter=2000)
    _match(ours, _sklearn(x, 4, w_init, tol=1e-10, max_iter=2000))


def test_key_float32_convergence_flag_and_errors():
    _, _, x = _mixture(500, seed=1)
    x = x.astype(np.float32)
    a, b = fast_ica(x, k=3, key=jax.random.key(1)), fast_ica(x, k=3, key=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(a.components), np.asarray(b.components))
    assert a.components.shape == (3, 4) and a.mixing.shape == (4, 3) and a.components.dtype == jnp.float32
    one = fast_ica(x, k=3, key=jax.random.key(1), max_iter=1)
    assert int(one.iterations) == 1 and not bool(one.converged)
    with pytest.raises(ValueError, match="exactly one of key"):
        fast_ica(x, k=3)
    with pytest.raises(ValueError, match=r"w_init must have shape \(3, 3\)"):
        fast_ica(x, k=3, w_init=np.eye(2))
    with pytest.raises(ValueError, match="fun must be one of"):
        fast_ica(x, k=3, key=jax.random.key(0), fun="tanh")
    with pytest.raises(ValueError, match=r"k must lie in \[1, 4\]"):
        fast_ica(x, k=5, key=jax.random.key(0))


@pytest.mark.parametrize("algorithm", ["parallel", "deflation"])
def test_fast_ica_program_orders_its_decompositions(algorithm):
    x, w = jnp.ones((32, 6)), jnp.eye(3)
    fn = lambda a, b: _fast_ica(a, b, 1.0, 1e-4, k=3, fun="logcosh", algorithm=algorithm,
                                whiten="unit-variance", max_iter=5)
    assert unordered_lapack_calls(fn, x, w) == []
    # vmapped over problems (batched eighs): the whitening and the loop still run one after another
    assert unordered_lapack_calls(jax.vmap(fn), jnp.ones((2, 32, 6)), jnp.ones((2, 3, 3))) == []
