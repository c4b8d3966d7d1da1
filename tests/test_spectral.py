"""Matrix-free top-k singular triplets against dense SVD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.engine.spectral import top_singular


def _spectrum_map(s):
    rng = np.random.RandomState(0)
    u, _ = np.linalg.qr(rng.standard_normal((40, len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((30, len(s))))
    a = jnp.asarray((u * s) @ v.T, jnp.float32)
    return (lambda z: jnp.sin(z @ a.T) * 0.0 + z @ a.T), np.asarray(s)


def test_known_spectrum():
    f, s = _spectrum_map(np.geomspace(10, 0.1, 20))
    z = jnp.zeros((3, 30))
    # float32 floor of the residual ~1e-7 * (s_1 / s_5)^2 ~ 1e-6 here: ask for 1e-5
    res = top_singular(f, z, k=5, key=jax.random.key(0), oversample=8, tol=1e-5)
    np.testing.assert_allclose(res.singular_values, np.broadcast_to(s[:5], (3, 5)), rtol=1e-5)
    assert res.basis.shape == (3, 40, 5) and res.directions.shape == (3, 30, 5)
    assert np.all(np.asarray(res.residual) <= 1e-5) and np.all(np.asarray(res.converged))
    jac = np.asarray(jax.jacfwd(lambda x: f(x[None])[0])(z[0]))
    np.testing.assert_allclose(jac @ np.asarray(res.directions[0]), np.asarray(res.basis[0]) * np.asarray(res.singular_values[0]),
                               atol=1e-4)


def test_iteration_cap_and_independent_of_chunking():
    f, _ = _spectrum_map(np.linspace(1.0, 0.9, 20))  # tiny gaps: slow convergence
    z = jnp.zeros((4, 30))
    with pytest.warns(RuntimeWarning, match="stopped after max_iter=2"):
        capped = top_singular(f, z, k=3, key=jax.random.key(1), max_iter=2, tol=0.0)
    assert np.all(np.asarray(capped.iterations) == 2) and not np.any(np.asarray(capped.converged))
    a = top_singular(f, z, k=3, key=jax.random.key(1), max_iter=3, tol=0.0)
    b = top_singular(f, z, k=3, key=jax.random.key(1), max_iter=3, tol=0.0, chunk_size=3)
    # chunks of 4 and of 3: two compiled programs whose float32 rounding differs; five rounds of
    # Krylov rounds carry it on unamplified (Rayleigh-Ritz values are stable): 1e-5
    np.testing.assert_allclose(a.singular_values, b.singular_values, rtol=1e-5)


def test_k_out_of_range():
    f, _ = _spectrum_map(np.ones(5))
    with pytest.raises(ValueError, match="k must lie in"):
        top_singular(f, jnp.zeros((1, 30)), k=31, key=jax.random.key(0))


def test_defaults_converge_on_a_slowly_decaying_spectrum(x64):
    """Default arguments reach relative 1e-4 on every kept value, checked against float64 SVD.

    A tanh MLP 64 -> 96 -> 80 whose Jacobian spectrum decays slowly (s_20 / s_1 ~ 0.4, gaps of
    a few %): the case where plain subspace iteration stops far from the answer.
    """
    rng = np.random.RandomState(3)
    w1 = jnp.asarray(rng.standard_normal((96, 64)) / 8, jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((80, 96)) / 10, jnp.float32)
    f = lambda x: jnp.tanh(jnp.tanh(x @ w1.T) @ w2.T)  # noqa: E731
    z = jnp.asarray(rng.standard_normal((6, 64)), jnp.float32)
    res = top_singular(f, z, k=20, key=jax.random.key(0))
    assert np.all(np.asarray(res.converged)) and np.all(np.asarray(res.residual) <= 1e-4)
    f64 = lambda x: jnp.tanh(jnp.tanh(x @ w1.T.astype(jnp.float64)) @ w2.T.astype(jnp.float64))  # noqa: E731
    jac = np.stack([np.asarray(jax.jacfwd(lambda x: f64(x[None])[0])(z[i].astype(jnp.float64)))
                    for i in range(6)])
    u, s, vt = np.linalg.svd(jac, full_matrices=False)
    # the residual bounds each value's relative error (1e-4); float32 products add ~1e-6
    np.testing.assert_allclose(res.singular_values, s[:, :20], rtol=1.1e-4)
    # each right vector's angle to the true one is at most residual / relative gap
    gap = np.min(np.abs(np.diff(s[:, :21], axis=1)) / s[:, :20], axis=1)
    cos = np.abs(np.einsum("nik,nki->nk", np.asarray(res.directions, np.float64), vt[:, :20]))
    assert np.all(np.arccos(np.minimum(cos, 1)).max(axis=1) <= 1e-4 / gap + 1e-3)


def test_solver_program_runs_its_decompositions_one_after_another():
    from jaxlatent.engine.linalg import unordered_lapack_calls
    from jaxlatent.engine.spectral import _top_singular_rows

    w = jax.random.normal(jax.random.key(0), (40, 12))
    fn = jax.tree_util.Partial(_top_singular_rows, lambda z: jnp.tanh(z @ w.T), 3, 2, 7, 10, 1e-4, False)
    z = jax.random.normal(jax.random.key(1), (4, 12))
    keys = jax.random.key_data(jax.random.split(jax.random.key(2), 4))
    assert unordered_lapack_calls(jax.jit(fn), (z, keys)) == []


def _conv_tap():
    k = jax.random.normal(jax.random.key(5), (4, 2, 3, 3)) / 3.0

    def f(z):  # (N, 8) -> (N, 4, 2, 2): a dense layer, then a 3x3 convolution
        x = jnp.tanh(z).reshape(-1, 2, 2, 2)
        return jnp.tanh(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                     dimension_numbers=("NCHW", "OIHW", "NCHW")))
    return f


def test_host_loop_equals_device_loop():
    f = _conv_tap()
    z = jax.random.normal(jax.random.key(6), (5, 8))
    dev = top_singular(f, z, k=3, key=jax.random.key(7), block_size=2, oversample=2, tol=1e-5, loop="device")
    host = top_singular(f, z, k=3, key=jax.random.key(7), block_size=2, oversample=2, tol=1e-5, loop="host")
    assert np.all(np.asarray(host.converged)) and np.all(np.asarray(dev.converged))
    # the same arithmetic split into three programs (start, one round, finish) instead of one:
    # float32 rounding of O(1) values; a stop may fall one round apart, well within tol
    np.testing.assert_allclose(host.singular_values, dev.singular_values, rtol=1e-5)
    cos = np.abs(np.einsum("nik,nik->nk", np.asarray(host.directions), np.asarray(dev.directions)))
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)
    assert np.all(np.abs(np.asarray(host.iterations) - np.asarray(dev.iterations)) <= 1)
    jac = np.stack([np.asarray(jax.jacfwd(lambda x: f(x[None]).ravel())(zi)) for zi in z])
    np.testing.assert_allclose(host.singular_values, np.linalg.svd(jac, compute_uv=False)[:, :3], rtol=1e-4)


def test_loop_choice():
    from jaxlatent.engine.jacobian import has_convolution
    from jaxlatent.engine.spectral import resolve_loop

    z = jnp.zeros((1, 8))
    mlp = lambda x: jnp.tanh(x)  # noqa: E731
    assert has_convolution(_conv_tap(), z) and has_convolution(jax.jit(_conv_tap()), z)
    assert not has_convolution(mlp, z)
    assert resolve_loop("auto", mlp, z) == "device"
    assert resolve_loop("auto", _conv_tap(), z) == ("host" if jax.default_backend() == "cpu" else "device")
    assert resolve_loop("device", _conv_tap(), z) == "device"
    with pytest.raises(ValueError, match="loop must be one of"):
        resolve_loop("gpu", mlp, z)


def test_host_loop_round_program_runs_its_decompositions_one_after_another():
    from jaxlatent.engine.linalg import unordered_lapack_calls
    from jaxlatent.engine.spectral import _start_rows, _step_rows

    w = jax.random.normal(jax.random.key(0), (40, 12))
    tap = lambda z: jnp.tanh(z @ w.T)  # noqa: E731
    z = jax.random.normal(jax.random.key(1), (4, 12))
    keys = jax.random.key_data(jax.random.split(jax.random.key(2), 4))
    start = jax.tree_util.Partial(_start_rows, tap, 3, 2, 7, 10, 1e-4)
    step = jax.tree_util.Partial(_step_rows, tap, 3, 2, 7, 10, 1e-4)
    assert unordered_lapack_calls(jax.jit(start), (z, keys)) == []
    assert unordered_lapack_calls(jax.jit(step), ((z, keys), start((z, keys)))) == []
