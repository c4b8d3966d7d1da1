"""Labels of a conditional StyleGAN2 through the analyses: one class broadcast, one label per latent.

The generator is the NVlabs conditional golden model (``tests/golden/stylegan2/cond16.npz``: z 24,
5 classes, w 32, 16x16). Every batched result is compared with the same analysis run one latent
at a time with that latent's label, and across chunk sizes (chunks and Jacobian pieces split the
labels with the latents).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from jaxlatent.engine.aligned import Aligned, take_rows
from jaxlatent.engine.parallel import Pieces, map_batched
from helpers import golden_stylegan2

N = 4


@pytest.fixture(scope="module")
def model():
    return golden_stylegan2("cond16")


@pytest.fixture(scope="module")
def z(model):
    return jaxlatent.latents_from_seeds(range(N), model.z_dim)


def one_hot(classes, c_dim):
    return np.eye(c_dim, dtype=np.float32)[np.asarray(classes)]


def test_one_class_broadcasts_in_every_form(model, z):
    """An index, a (c_dim,) one-hot and a (1, c_dim) one-hot are the same callable for any batch."""
    want = np.asarray(model.fn("w", c=one_hot([2] * N, model.c_dim))(z))
    for c in (2, np.int64(2), one_hot(2, model.c_dim), one_hot([2], model.c_dim)):
        f = model.fn("w", c=c)
        np.testing.assert_allclose(np.asarray(f(z)), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(f(z[:1])), want[:1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model.mapping(z, c=one_hot([2], model.c_dim))[:, 0]), want,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("c", ["index", "row"])
def test_local_basis_with_one_class_for_one_and_several_latents(model, z, c):
    """Closed-over one-class labels (the chunk rule traces batches of one and two) work for N = 1 and 4."""
    label = 3 if c == "index" else one_hot([3], model.c_dim)
    f = model.fn("w", c=label)
    many = jaxlatent.local_basis(f, z, k=5)
    single = jaxlatent.local_basis(f, z[:1], k=5)
    np.testing.assert_allclose(np.asarray(single.singular_values), np.asarray(many.singular_values[:1]), rtol=1e-4)


def _call(f, x):
    return f(x)


def test_per_latent_labels_follow_their_latents(model, z):
    """(N, c_dim) labels: batched (chunks of 1, 3 and N, pieces of 1) equals one latent at a time."""
    classes = [0, 3, 1, 4]
    c = one_hot(classes, model.c_dim)
    f = model.fn("mapping.fc1", c=c)
    assert isinstance(f, Aligned)
    single = np.concatenate([np.asarray(jaxlatent.local_basis(model.fn("mapping.fc1", c=k), z[i:i + 1]).singular_values)
                             for i, k in enumerate(classes)])
    for chunk in (None, 1, 3):
        got = jaxlatent.local_basis(f, z, chunk_size=chunk)
        np.testing.assert_allclose(np.asarray(got.singular_values), single, rtol=1e-4, atol=1e-6)
    # the labels matter: another assignment gives other spectra
    other = jaxlatent.local_basis(model.fn("mapping.fc1", c=one_hot(classes[::-1], model.c_dim)), z)
    assert not np.allclose(np.asarray(other.singular_values), single, rtol=1e-3)
    # Jacobian pieces inside a chunk split the labels too (rows of 1 inside a chunk of 4)
    jac = jaxlatent.jacobian(f, z, mode="rev", chunk_size=2)
    rows = map_batched((Pieces(jax.tree_util.Partial(_call, f), 1),), z, chunk_size=4)
    np.testing.assert_allclose(np.asarray(rows), np.asarray(f(z)), rtol=1e-6, atol=1e-6)
    for i, k in enumerate(classes):
        want = jaxlatent.jacobian(model.fn("mapping.fc1", c=k), z[i:i + 1], mode="fwd")
        np.testing.assert_allclose(np.asarray(jac[i:i + 1]), np.asarray(want), rtol=1e-4, atol=1e-6)


def test_per_latent_labels_in_dimension_distortion_metric_and_traversal(model, z):
    classes = [4, 0, 2, 2]
    c = one_hot(classes, model.c_dim)
    f = model.fn("w", c=c)
    dims = jaxlatent.local_dimension(f, z, chunk_size=3)
    dims1 = [int(jaxlatent.local_dimension(model.fn("w", c=k), z[i:i + 1]).dimension[0]) for i, k in enumerate(classes)]
    assert np.asarray(dims.dimension).tolist() == dims1
    d = jaxlatent.distortion(f, z, key=jax.random.PRNGKey(0), k=3)
    assert np.isfinite(float(d.distortion)) and d.near_distances.shape == (N,)
    # the metric in z, full and LOBPCG (one latent per loop, each with its own label)
    g = model.fn("image", c=c, noise_mode="none")
    full = jaxlatent.metric_tensor(g, z, method="full", chunk_size=3)
    top = jaxlatent.metric_tensor(g, z, k=2, method="lobpcg", key=jax.random.PRNGKey(1))
    for i, k in enumerate(classes):
        one = jaxlatent.metric_tensor(model.fn("image", c=k, noise_mode="none"), z[i:i + 1], method="full")
        np.testing.assert_allclose(np.asarray(full.eigenvalues[i]), np.asarray(one.eigenvalues[0]), rtol=2e-3,
                                   atol=1e-6 * float(one.eigenvalues[0, 0]))
        np.testing.assert_allclose(np.asarray(top.eigenvalues[i]), np.asarray(one.eigenvalues[0, :2]), rtol=2e-3)
    tr = jaxlatent.iterative_traversal(f, z, index=0, sigma=0.1, steps=4, frames=3, chunk_size=3)
    for i, k in enumerate(classes):
        want = np.asarray(model.fn("w", c=k)(tr.latents[i]))
        np.testing.assert_allclose(np.asarray(tr.values[i]), want, rtol=1e-5, atol=1e-6)


def test_per_latent_labels_refuse_another_batch(model, z):
    f = model.fn("w", c=one_hot([0, 1, 2, 3], model.c_dim))
    np.testing.assert_allclose(np.asarray(take_rows(f, [2])(z[2:3])), np.asarray(model.fn("w", c=2)(z[2:3])),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="per-latent inputs for 4 latents"):
        f(z[:2])
    with pytest.raises(ValueError, match="per-latent inputs for 4 latents"):
        jaxlatent.local_basis(f, z[:3])
    with pytest.raises(ValueError, match="class index 7 outside 0..4"):
        model.fn("w", c=7)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        model.fn("w", c=np.zeros((2, 3), np.float32))


def test_labels_travel_over_a_device_mesh(model, z):
    mesh = jaxlatent.engine.parallel.batch_mesh()
    f = model.fn("w", c=one_hot([1, 2, 3, 4], model.c_dim))
    got = jaxlatent.local_basis(f, z, k=4, mesh=mesh, chunk_size=2)
    want = jaxlatent.local_basis(f, z, k=4)
    np.testing.assert_allclose(np.asarray(got.singular_values), np.asarray(want.singular_values), rtol=1e-5)
    jnp.asarray(got.basis).block_until_ready()
