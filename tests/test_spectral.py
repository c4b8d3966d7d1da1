"""Matrix-free top-k singular triplets against dense SVD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.analysis.spectral import top_singular


def _spectrum_map(s):
    rng = np.random.RandomState(0)
    u, _ = np.linalg.qr(rng.standard_normal((40, len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((30, len(s))))
    a = jnp.asarray((u * s) @ v.T, jnp.float32)
    return (lambda z: jnp.sin(z @ a.T) * 0.0 + z @ a.T), np.asarray(s)


def test_known_spectrum():
    f, s = _spectrum_map(np.geomspace(10, 0.1, 20))
    z = jnp.zeros((3, 30))
    res = top_singular(f, z, 5, jax.random.key(0), oversample=8, tol=1e-6)
    np.testing.assert_allclose(res.singular_values, np.broadcast_to(s[:5], (3, 5)), rtol=1e-5)
    assert res.left.shape == (3, 40, 5) and res.right.shape == (3, 30, 5)
    assert np.all(np.asarray(res.residual) < 1e-5)
    jac = np.asarray(jax.jacfwd(lambda x: f(x[None])[0])(z[0]))
    np.testing.assert_allclose(jac @ np.asarray(res.right[0]), np.asarray(res.left[0]) * np.asarray(res.singular_values[0]),
                               atol=1e-4)


def test_iteration_cap_and_independent_of_chunking():
    f, _ = _spectrum_map(np.linspace(1.0, 0.9, 20))  # tiny gaps: slow convergence
    z = jnp.zeros((4, 30))
    capped = top_singular(f, z, 3, jax.random.key(1), iters=2, tol=0.0)
    assert np.all(np.asarray(capped.iterations) == 2)
    a = top_singular(f, z, 3, jax.random.key(1), iters=5)
    b = top_singular(f, z, 3, jax.random.key(1), iters=5, chunk_size=3)
    # chunks of 4 and of 3: two compiled programs whose float32 rounding differs; five rounds of
    # subspace iteration carry it on unamplified (Rayleigh-Ritz values are stable): 1e-5
    np.testing.assert_allclose(a.singular_values, b.singular_values, rtol=1e-5)


def test_k_out_of_range():
    f, _ = _spectrum_map(np.ones(5))
    with pytest.raises(ValueError, match="k must lie in"):
        top_singular(f, jnp.zeros((1, 30)), 31, jax.random.key(0))
