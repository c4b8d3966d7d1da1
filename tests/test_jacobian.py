"""Jacobian engine: modes, chunking, dtypes, matrix-free operators, against closed forms and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.engine.jacobian import (gram_operator, jacobian, jvp_operator, resolve_mode, tangent_bytes,
                                        vjp_operator)


def _f(a):
    def f(z):  # (N, 3) -> (N, 2, 4): a tap with several axes, flattened in C order
        h = jnp.tanh(z @ a.T)
        return jnp.stack([h, h ** 2], axis=1)
    return f


def _closed_form(a, z):
    t = np.tanh(np.asarray(z) @ np.asarray(a).T)                  # (N, 4)
    d1 = (1 - t ** 2)[:, :, None] * np.asarray(a)[None]           # d tanh / dz
    d2 = 2 * t[:, :, None] * d1
    return np.concatenate([d1, d2], axis=1)                        # (N, 8, 3)


@pytest.mark.parametrize("mode", ["fwd", "rev", "auto"])
def test_modes_match_closed_form(mode):
    a = jax.random.normal(jax.random.key(0), (4, 3))
    z = jax.random.normal(jax.random.key(1), (7, 3))
    jac = jacobian(_f(a), z, mode=mode)
    assert jac.shape == (7, 8, 3)
    np.testing.assert_allclose(jac, _closed_form(a, z), rtol=1e-5, atol=1e-6)


def test_chunking_pads_and_agrees():
    a = jax.random.normal(jax.random.key(0), (4, 3))
    z = jax.random.normal(jax.random.key(1), (7, 3))
    whole = jacobian(_f(a), z)
    for chunk in (1, 3, 7, 100):
        # each chunk size is its own compiled program (XLA may vectorise tanh and the products
        # differently per batch shape and CPU): float32 entries of size <= 2 agree to a few ulp
        np.testing.assert_allclose(jacobian(_f(a), z, chunk_size=chunk), whole, rtol=1e-6, atol=1e-6)


def test_float64_finite_differences(x64):
    a = jax.random.normal(jax.random.key(0), (4, 3), jnp.float64)
    z = jax.random.normal(jax.random.key(1), (3, 3), jnp.float64)
    f = _f(a)
    jac = jacobian(f, z, mode="rev")
    assert jac.dtype == jnp.float64
    h = 1e-6
    for i in range(3):
        e = jnp.zeros(3).at[i].set(h)
        fd = (f(z + e) - f(z - e)).reshape(3, -1) / (2 * h)
        np.testing.assert_allclose(jac[:, :, i], fd, atol=1e-8)


def test_resolve_mode():
    assert resolve_mode("auto", 512, 512) == "fwd"
    assert resolve_mode("auto", 512, 10) == "rev"
    with pytest.raises(ValueError, match="mode must be one of"):
        resolve_mode("forward", 1, 1)


def test_matrix_free_operators():
    a = jax.random.normal(jax.random.key(0), (4, 3))
    z = jax.random.normal(jax.random.key(1), (5, 3))
    jac = jacobian(_f(a), z)
    v = jax.random.normal(jax.random.key(2), (5, 3, 2))
    u = jax.random.normal(jax.random.key(3), (5, 8))
    np.testing.assert_allclose(jvp_operator(_f(a), z)(v), jac @ v, atol=1e-5)
    np.testing.assert_allclose(jvp_operator(_f(a), z)(v[..., 0]), (jac @ v)[..., 0], atol=1e-5)
    np.testing.assert_allclose(vjp_operator(_f(a), z)(u), jnp.einsum("noi,no->ni", jac, u), atol=1e-5)
    gram = jnp.swapaxes(jac, 1, 2) @ jac
    np.testing.assert_allclose(gram_operator(_f(a), z)(v), gram @ v, atol=1e-4)


def test_model_partial_compiles_once():
    # a tree_util.Partial carrying weights: new objects with equal structure reuse the compiled code
    from jaxlatent.engine.parallel import _call_jit

    def tap(w, z):
        return jnp.sin(z @ w.T)

    w = jnp.ones((2, 3))
    jacobian(jax.tree_util.Partial(tap, w), jnp.ones((2, 3)))
    after_first = _call_jit._cache_size()
    jac = jacobian(jax.tree_util.Partial(tap, 2 * w), jnp.ones((2, 3)))
    assert _call_jit._cache_size() == after_first
    np.testing.assert_allclose(jac[0], 2 * np.cos(6.0) * np.ones((2, 3)), rtol=1e-5)


def test_tangent_bytes_closed_form():
    # per sample, f computes z @ a.T (4 floats), tanh (4), its square (4) and the stacked (2, 4)
    # output (8): 20 float32 values; a weight-only value (a scaled copy of ``a``) does not count
    a = jnp.ones((4, 3))

    def f(z):
        h = jnp.tanh(z @ (2.0 * a).T)
        return jnp.stack([h, h ** 2], axis=1)

    z = jnp.ones((5, 3))
    assert tangent_bytes(f, z, "fwd") == 3 * 20 * 4      # 3 tangents
    assert tangent_bytes(f, z, "rev") == 8 * 20 * 4      # 8 cotangents
    # values inside a jitted sub-function count too
    assert tangent_bytes(jax.jit(f), z, "fwd") == 3 * 20 * 4


def test_default_chunk_pieces_agree_with_one_program(monkeypatch):
    # the default splits Jacobians into pieces on CPU; with a budget of two latents' tangent
    # working set, a batch of 6 runs as pieces of 2. Other batch shapes are other programs:
    # float32 rounding of O(1) entries
    import jaxlatent.engine.parallel as parallel

    w = jax.random.normal(jax.random.key(3), (16, 40)) / 4.0
    f = jax.tree_util.Partial(lambda w, z: jnp.tanh(jnp.tanh(z @ w) @ w.T), w)
    z = jax.random.normal(jax.random.key(4), (6, 16))
    monkeypatch.setattr(parallel, "CPU_TANGENT_BYTES", 2 * tangent_bytes(f, z, "fwd"))
    assert parallel.piece_size(tangent_bytes(f, z, "fwd"), 6) == 2
    np.testing.assert_allclose(jacobian(f, z), jacobian(f, z, chunk_size=6), atol=2e-6, rtol=0)


def test_errors():
    with pytest.raises(ValueError, match=r"expected latents of shape \(N, in\)"):
        jacobian(jnp.sin, jnp.ones(3))
    with pytest.raises(ValueError, match="empty"):
        jacobian(jnp.sin, jnp.ones((0, 3)))
