"""Linear and iterative curve traversal: straight lines for linear maps, circles on a sphere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.localbasis.traversal import frame_steps, iterative_traversal, linear_traversal


def test_linear_traversal():
    z = jnp.zeros((2, 3))
    path = linear_traversal(z, jnp.asarray([1.0, 0, 0]), strengths=jnp.asarray([-1.0, 0.0, 2.0]))
    assert path.shape == (2, 3, 3)
    np.testing.assert_allclose(path[1, :, 0], [-1, 0, 2])


def test_reference_frame_schedule():
    assert frame_steps(5, 100) == [25, 50]
    assert frame_steps(7, 100) == [16, 33, 50]


def test_linear_map_gives_straight_line():
    a = jnp.diag(jnp.asarray([3.0, 2.0, 1.0]))
    z = jnp.asarray([[1.0, 1.0, 1.0], [0.0, 2.0, -1.0]])
    tr = iterative_traversal(lambda x: x @ a.T, z, index=1, sigma=1.0, steps=10, frames=5)
    assert tr.latents.shape == (2, 5, 3) and tr.path.shape == (2, 11, 3) and tr.values.shape == (2, 5, 3)
    np.testing.assert_allclose(tr.latents[:, 2], z)
    # direction e_2 (sign fixed positive), frames at 2 and 5 of 5 steps of 0.2 each way
    np.testing.assert_allclose(tr.latents[0, :, 1], [0.0, 0.6, 1.0, 1.4, 2.0], atol=1e-6)
    np.testing.assert_allclose(tr.latents[0, :, [0, 2]], 1.0, atol=1e-6)
    np.testing.assert_allclose(tr.values, tr.latents @ a.T, atol=1e-6)
    scaled = iterative_traversal(lambda x: x @ a.T, z, index=1, sigma=1.0, steps=10,
                                 scale_by_singular_value=True)
    np.testing.assert_allclose(scaled.values[0, :, 1] - 2.0, [-1.0, -0.4, 0.0, 0.4, 1.0], atol=1e-5)


def test_curve_follows_sphere_where_line_leaves_it():
    # f: latitude/longitude chart of the unit sphere; the top direction is along latitude
    def f(z):
        return jnp.stack([jnp.cos(z[:, 0]) * jnp.cos(z[:, 1]), jnp.cos(z[:, 0]) * jnp.sin(z[:, 1]),
                          jnp.sin(z[:, 0])], axis=-1)

    z = jnp.asarray([[0.0, 0.5]])
    tr = iterative_traversal(f, z, index=0, sigma=0.6, steps=20, frames=3, follow_basis=True)
    np.testing.assert_allclose(jnp.linalg.norm(tr.values, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(tr.latents[0, :, 1], 0.5, atol=1e-5)       # longitude fixed
    np.testing.assert_allclose(jnp.abs(tr.latents[0, [0, 2], 0]), 0.6, atol=1e-5)
    assert np.all(np.asarray(tr.index) == 0)


def test_per_latent_indices_equal_separate_calls():
    """One batch of (latent, direction) pairs gives what one call per direction gives."""
    w = jnp.asarray(np.random.RandomState(0).randn(5, 3), jnp.float32)

    def f(z):
        return jnp.tanh(z @ w.T) + 0.1 * z[:, :1] ** 2

    z = jnp.asarray(np.random.RandomState(1).randn(2, 3), jnp.float32)
    zz = jnp.repeat(z, 3, axis=0)                        # latent 0 x directions 0,1,2, latent 1 x ...
    both = iterative_traversal(f, zz, index=np.tile(np.arange(3), 2), sigma=0.5, steps=12, frames=5)
    for i in range(3):
        one = iterative_traversal(f, z, index=i, sigma=0.5, steps=12, frames=5)
        np.testing.assert_allclose(both.latents[i::3], one.latents, atol=1e-5)
        np.testing.assert_array_equal(both.index[i::3], one.index)


def test_bad_arguments():
    f = lambda x: x
    with pytest.raises(ValueError, match="odd"):
        iterative_traversal(f, jnp.zeros((1, 2)), index=0, sigma=1.0, frames=4)
    with pytest.raises(ValueError, match="index must lie"):
        iterative_traversal(f, jnp.zeros((1, 2)), index=2, sigma=1.0)
    with pytest.raises(ValueError, match="index must be an int"):
        iterative_traversal(f, jnp.zeros((2, 2)), index=np.zeros(3, int), sigma=1.0)


def test_host_loop_equals_the_steps_inside_the_program():
    # a convolutional tap: on CPU, loop="auto" drives the steps from Python (one compiled step
    # per call); the same arithmetic as the scan, split into other programs: float32 rounding
    # of O(1) values carried over 8 steps, and the followed index must agree exactly
    k = jax.random.normal(jax.random.key(8), (3, 2, 3, 3)) / 3.0

    def tap(z):  # (N, 6) -> (N, 3, 3, 3)
        x = jnp.tanh(jnp.tile(z, (1, 3))).reshape(-1, 2, 3, 3)
        return jnp.tanh(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                     dimension_numbers=("NCHW", "OIHW", "NCHW")))

    z = jax.random.normal(jax.random.key(9), (3, 6))
    kwargs = dict(steps=16, frames=3, scale_by_singular_value=True, follow_basis=True)
    dev = iterative_traversal(tap, z, index=jnp.asarray([0, 1, 2]), sigma=0.5, loop="device", **kwargs)
    host = iterative_traversal(tap, z, index=jnp.asarray([0, 1, 2]), sigma=0.5, loop="host", **kwargs)
    np.testing.assert_array_equal(np.asarray(host.index), np.asarray(dev.index))
    np.testing.assert_allclose(np.asarray(host.path), np.asarray(dev.path), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(host.values), np.asarray(dev.values), atol=1e-5, rtol=0)
    # the host loop with the chunk split: the halves of a curve stay together
    split = iterative_traversal(tap, z, index=jnp.asarray([0, 1, 2]), sigma=0.5, loop="host", chunk_size=2, **kwargs)
    np.testing.assert_allclose(np.asarray(split.path), np.asarray(dev.path), atol=1e-5, rtol=0)
