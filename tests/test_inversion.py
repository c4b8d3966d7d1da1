"""invert (Wang & Ponce 2021, section 5): gradient-descent inversion, in z or in eigen-coordinates."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlatent.geometry.metric import metric_tensor
from jaxlatent.geometry.inversion import invert

A = np.random.RandomState(0).randn(2 * 4 * 4, 8)


def linear(z):
    return jnp.reshape(z @ jnp.asarray(A, z.dtype).T, (-1, 2, 4, 4))


def test_plain_gradient_descent_equals_a_numpy_loop(x64):
    z_true = np.random.RandomState(1).randn(3, 8)
    targets = linear(jnp.asarray(z_true))
    lr, steps = 0.2, 25
    res = invert(linear, targets, jnp.zeros(8), optimizer=optax.sgd(lr), steps=steps)
    n = 32
    z = np.zeros((3, 8))
    hist = []
    x = np.asarray(targets).reshape(3, -1)
    for _ in range(steps + 1):
        r = z @ A.T - x
        hist.append(np.mean(r * r, axis=1))
        z = z - lr * (2.0 / n) * r @ A
    z = z + lr * (2.0 / n) * r @ A                    # the last pass only measured
    np.testing.assert_allclose(np.asarray(res.history), np.stack(hist, 1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.z), z, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(res.distance), hist[-1], rtol=1e-12)


def test_adam_recovers_generated_targets_and_targets_are_independent(x64):
    z_true = np.random.RandomState(2).randn(4, 8)
    targets = linear(jnp.asarray(z_true))
    res = invert(linear, targets, jnp.zeros((4, 8)), optimizer=optax.adam(0.1), steps=400)
    np.testing.assert_allclose(np.asarray(res.z), z_true, atol=1e-4)
    assert np.all(np.asarray(res.history[:, -1]) < 1e-8 * np.asarray(res.history[:, 0]))
    # Adam is element-wise and the loss a sum: one target alone follows the same path
    alone = invert(linear, targets[2:3], jnp.zeros((1, 8)), optimizer=optax.adam(0.1), steps=400)
    # (the converged tail, ~1e-12 of the start, differs by rounding of a different batch shape)
    np.testing.assert_allclose(np.asarray(alone.history[0]), np.asarray(res.history[2]), rtol=1e-10,
                               atol=1e-12 * float(res.history[2, 0]))
    chunked = invert(linear, targets, jnp.zeros(8), optimizer=optax.adam(0.1), steps=400, chunk_size=3)
    np.testing.assert_allclose(np.asarray(chunked.z), np.asarray(res.z), rtol=1e-10)


def test_eigen_coordinates_full_basis_is_a_rotation_and_top_k_stays_in_its_span(x64):
    z_true = np.random.RandomState(3).randn(2, 8)
    targets = linear(jnp.asarray(z_true))
    z0 = jnp.asarray(np.random.RandomState(4).randn(2, 8))
    metric = metric_tensor(linear, z0)
    # plain SGD is rotation invariant: the full eigenbasis follows the same path in z
    plain = invert(linear, targets, z0, optimizer=optax.sgd(0.3), steps=30)
    eig = invert(linear, targets, z0, basis=metric, optimizer=optax.sgd(0.3), steps=30)
    np.testing.assert_allclose(np.asarray(eig.z), np.asarray(plain.z), rtol=1e-10, atol=1e-12)
    # top k: the move z - z0 lies in the span of the first k eigenvectors (per target here)
    top = invert(linear, targets, z0, basis=metric, k=3, steps=50)
    v = np.asarray(metric.eigenvectors[:, :, :3])
    move = np.asarray(top.z - z0)
    inside = np.einsum("nik,nk->ni", v, np.einsum("nik,ni->nk", v, move))
    np.testing.assert_allclose(move, inside, atol=1e-12)
    # a shared basis (in, k): the same as giving it per target
    shared = invert(linear, targets, z0, basis=metric.eigenvectors[0], k=3, steps=50)
    per = invert(linear, targets, z0, basis=jnp.broadcast_to(metric.eigenvectors[0], (2, 8, 8)), k=3, steps=50)
    np.testing.assert_allclose(np.asarray(shared.z), np.asarray(per.z), rtol=1e-12)


def test_errors_name_what_was_wrong():
    targets = jnp.zeros((2, 2, 4, 4))
    with pytest.raises(ValueError, match="2 targets but 3 starting latents"):
        invert(linear, targets, jnp.zeros((3, 8)))
    with pytest.raises(ValueError, match="basis must be"):
        invert(linear, targets, jnp.zeros(8), basis=jnp.zeros((7, 3)))
    with pytest.raises(ValueError, match="give a basis"):
        invert(linear, targets, jnp.zeros(8), k=2)
