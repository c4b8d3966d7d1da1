"""The analyses on a BigGAN-deep: Local Basis, local dimension, Grassmann, the metric, GANSpace.

A tiny random BigGAN (16x16, z_dim 8, self-attention inside) through the library functions,
checked against float64 numpy references and the closed form of the ``gen_z`` tap: ``gen_z`` is
affine in the condition vector, so its Jacobian in z is the first ``z_dim`` columns of the folded
``gen_z`` weight at every latent.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.geometry.metric import metric_tensor
from jaxlatent.localbasis.grassmann import grassmann_distance
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.localdim.thresholds import rank_tolerance
from jaxlatent.models.biggan import BigGAN, BigGANConfig
from jaxlatent.workflows.ganspace import fit_directions
from jaxlatent.workflows.taps import default_edit_tap

CLASS, TRUNC = 1, 0.5


@pytest.fixture(scope="module")
def model():
    config = BigGANConfig(z_dim=8, channel_width=8, num_classes=4,
                          layers=((False, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)),
                          attention_layer_position=2, n_stats=11)
    return BigGAN.init(config, jax.random.key(3))


@pytest.fixture(scope="module")
def z(model):
    return model.sample_latents([0, 1, 2], truncation=TRUNC)


def _jac64(f, z):
    """Per-latent Jacobians (N, out, in) by reverse mode (the analyses use forward mode), float64."""
    g = lambda z1: f(z1[None])[0].reshape(-1)  # noqa: E731
    return np.asarray(jax.jit(jax.vmap(jax.jacrev(g)))(jnp.asarray(z)), np.float64)


def test_gen_z_closed_form_dimension_and_grassmann(model, z):
    f = model.fn("gen_z", c=CLASS, truncation=TRUNC)
    est = local_dimension(f, z, rule=rank_tolerance)
    assert np.all(np.asarray(est.dimension) == model.z_dim)
    w = np.asarray(model.params["generator"]["gen_z"]["weight"], np.float64)[:, : model.z_dim]
    want = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(np.asarray(est.singular_values), np.broadcast_to(want, (3, 8)), rtol=1e-4)
    # a gen_z whose latent columns have rank 3: the numerical rank finds 3 at every latent
    params = jax.tree_util.tree_map(lambda a: a, model.params)
    weight = np.asarray(params["generator"]["gen_z"]["weight"]).copy()
    rng = np.random.default_rng(0)
    weight[:, : model.z_dim] = rng.standard_normal((weight.shape[0], 3)) @ rng.standard_normal((3, model.z_dim)) / 40
    params["generator"]["gen_z"]["weight"] = weight
    low = BigGAN(model.config, params).fn("gen_z", c=CLASS, truncation=TRUNC)
    assert np.all(np.asarray(local_dimension(low, z, rule=rank_tolerance).dimension) == 3)
    lb = local_basis(f, z, k=4)
    d = grassmann_distance(lb.basis[0], lb.basis[1])
    assert float(d) < 1e-2  # the same subspace at every latent: the tap is affine


def test_local_basis_on_a_block_matches_float64_svd(model, z):
    f = model.fn("layers.1", c=CLASS, truncation=TRUNC)
    lb = local_basis(f, z, k=5)
    jac = _jac64(f, z)
    for i in range(len(z)):
        u, s, vt = np.linalg.svd(jac[i], full_matrices=False)
        np.testing.assert_allclose(np.asarray(lb.singular_values[i]), s[:5], rtol=1e-4)
        # each basis vector up to sign
        overlap = np.abs(np.sum(np.asarray(lb.basis[i], np.float64) * u[:, :5], axis=0))
        assert np.all(overlap > 1 - 1e-3), overlap
    far = grassmann_distance(lb.basis[0], lb.basis[1])
    assert float(far) > 1e-2  # a nonlinear block: tangent spaces turn between latents


@pytest.mark.parametrize("wrt", ["z", "class"])
def test_metric_tensor_is_2_over_n_jtj(model, z, wrt):
    if wrt == "z":
        g, x = model.fn("image", c=CLASS, truncation=TRUNC), z[:2]
    else:  # GAN-Geometry's class space: the embedding moves, the latent stays
        g = model.fn("image", truncation=TRUNC, wrt="class", z=z[0])
        x = np.asarray(model.embed([0, 3]))
    metric = metric_tensor(g, x, method="full")
    jac = _jac64(g, x)
    n = jac.shape[1]
    want = 2.0 / n * np.einsum("noi,noj->nij", jac, jac)
    np.testing.assert_allclose(np.asarray(metric.matrix, np.float64), want, rtol=2e-3,
                               atol=2e-4 * np.abs(want).max())
    eig = np.linalg.eigvalsh(want)[:, ::-1]
    np.testing.assert_allclose(np.asarray(metric.eigenvalues), eig, rtol=2e-3, atol=1e-4 * eig.max())


def test_ganspace_pca_at_gen_z_lifted_to_z(model):
    # GANSpace on BigGAN: PCA of an early feature tap, components lifted to the latent by regression
    assert default_edit_tap(model) == "gen_z"
    latents = model.sample_latents(range(300), truncation=TRUNC)
    options = {"c": CLASS, "truncation": TRUNC}
    fit = fit_directions(model, "gen_z", "pca", latents, k=4, key=jax.random.key(0), truncation_psi=TRUNC,
                         class_idx=CLASS)
    assert fit.space == "z" and fit.directions.shape == (4, model.z_dim)
    feats = np.asarray(model.fn("gen_z", **options)(latents), np.float64).reshape(len(latents), -1)
    centred = feats - feats.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    overlap = np.abs(np.sum(np.asarray(fit.result.components, np.float64) * vt[:4], axis=1))
    assert np.all(overlap > 1 - 1e-4), overlap
    acts = centred @ vt[:4].T
    m = np.linalg.lstsq(acts, latents.astype(np.float64), rcond=None)[0]
    want = m / np.linalg.norm(m, axis=1, keepdims=True)
    cos = np.abs(np.sum(want * np.asarray(fit.directions, np.float64), axis=1))
    assert np.all(cos > 1 - 1e-3), cos
    ica = fit_directions(model, "gen_z", "ica", latents, k=4, key=jax.random.key(0), truncation_psi=TRUNC,
                         class_idx=CLASS)
    assert ica.space == "z" and ica.directions.shape == (4, model.z_dim)
    np.testing.assert_allclose(np.linalg.norm(ica.directions, axis=1), 1.0, rtol=1e-5)
    # an edit along the first direction moves the image
    img = model.fn("image", **options)
    x0 = latents[:1]
    assert float(jnp.abs(img(x0 + 2.0 * fit.directions[:1]) - img(x0)).mean()) > 1e-3
