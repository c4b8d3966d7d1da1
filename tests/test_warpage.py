"""Warpage curves (Local Basis paper's Grassmannian experiment): linear and curved maps, PCA basis."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.localbasis.warpage import pca_basis, warpage


def test_warpage_on_linear_and_curved_maps():
    a = jax.random.normal(jax.random.key(4), (12, 6))
    z = jax.random.normal(jax.random.key(5), (16, 6))
    lin = warpage(lambda x: x @ a.T, z, key=jax.random.key(6), ks=[1, 2, 6])
    # a linear map has one tangent space everywhere; all 6 of it is the span of its image's PCA axes
    assert float(jnp.max(lin.random_pairs)) < 1e-3 and float(jnp.max(lin.neighbours)) < 1e-3
    assert float(jnp.max(lin.to_global[:, -1])) < 1e-2
    assert lin.random_pairs.shape == (8, 3) and lin.haar.shape == (8, 3)
    w = jax.random.normal(jax.random.key(7), (48, 6))  # wide enough that Haar subspaces are far apart
    cur = warpage(lambda x: jnp.tanh(x @ w.T), z, key=jax.random.key(6), ks=[1, 2, 3])
    assert jnp.mean(cur.neighbours) < jnp.mean(cur.random_pairs) < jnp.mean(cur.haar)



def test_pca_basis_against_numpy(x64):
    x = np.random.default_rng(0).normal(size=(20, 3, 4)) * np.arange(1, 13).reshape(3, 4)
    basis = np.asarray(pca_basis(jnp.asarray(x), 3))
    flat = x.reshape(20, -1) - x.reshape(20, -1).mean(0)
    ref = np.linalg.svd(flat, full_matrices=False)[2][:3].T
    np.testing.assert_allclose(np.abs(basis.T @ ref), np.eye(3), atol=1e-10)   # same axes up to sign
