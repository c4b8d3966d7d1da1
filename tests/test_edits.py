"""GANSpace edits (Z, W, W+ layer ranges), least-squares lifting, and the ganspace / edit-fid commands."""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import jaxlatent
import pytest

from jaxlatent.ganspace.edits import _lift, edit, edit_grid, lift_activations, lift_directions, normalize
from jaxlatent.engine.linalg import unordered_lapack_calls
from jaxlatent.ganspace.pca import pca
from jaxlatent.ganspace.population import KeyLatents
from jaxlatent.cli import edit_fid as edit_fid_cli
from jaxlatent.cli import ganspace as cli
from jaxlatent.models.digits import assets_dir
from jaxlatent.models.fastgan.model import FastGAN, FastGANConfig
from jaxlatent.workflows.ganspace import fit_directions
from jaxlatent.workflows.spaces import latent_space
from jaxlatent.workflows.taps import default_edit_tap


def test_edit_in_z_w_and_a_layer_range():
    x = jnp.asarray(np.random.RandomState(0).randn(3, 4), jnp.float32)
    d = jnp.array([1.0, 0.0, -2.0, 0.5])
    np.testing.assert_allclose(np.asarray(edit(x, d, strength=2.0)), np.asarray(x) + 2.0 * np.asarray(d), rtol=1e-6)
    alpha = jnp.array([0.0, 1.0, -3.0])
    np.testing.assert_allclose(np.asarray(edit(x, d, strength=alpha)), np.asarray(x) + np.asarray(alpha)[:, None] * np.asarray(d),
                               rtol=1e-6)
    ws = jnp.asarray(np.random.RandomState(1).randn(2, 6, 4), jnp.float32)
    out = np.asarray(edit(ws, d, strength=1.5, layers=(1, 3)))
    ref = np.asarray(ws).copy()
    ref[:, 1:3] += 1.5 * np.asarray(d)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(edit(ws, d, strength=1.5, layers=(4, None))[:, :4]), np.asarray(ws)[:, :4])
    np.testing.assert_allclose(np.asarray(edit(ws, d, strength=1.5)), np.asarray(ws) + 1.5 * np.asarray(d), rtol=1e-6)
    with pytest.raises(ValueError, match="needs W\\+ latents"):
        edit(x, d, strength=1.0, layers=(0, 2))
    with pytest.raises(ValueError, match="does not match latents"):
        edit(x, d[:3], strength=1.0)
    with pytest.raises(ValueError, match="strength must be a scalar or \\(3,\\)"):
        edit(x, d, strength=jnp.ones(2))


def test_edit_grid_is_every_direction_by_every_strength():
    x = jnp.asarray(np.random.RandomState(2).randn(2, 5, 3), jnp.float32)
    dirs, alphas = normalize(jnp.asarray(np.random.RandomState(3).randn(4, 3), jnp.float32)), jnp.array([-1.0, 0.0, 2.0])
    grid = edit_grid(x, dirs, strengths=alphas, layers=(0, 2))
    assert grid.shape == (4, 3, 2, 5, 3)
    for i in range(4):
        for j in range(3):
            np.testing.assert_allclose(np.asarray(grid[i, j]), np.asarray(edit(x, dirs[i], strength=alphas[j], layers=(0, 2))), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(dirs), axis=1), 1.0, rtol=1e-6)


def test_lifting_a_linear_tap_recovers_its_inverse(x64):
    """f(z) = z M: PCA activations A = z M C^T, so z = A (M C^T)^-1 exactly (centred z, k = z_dim)."""
    rng = np.random.RandomState(4)
    z = rng.randn(200, 3)
    z -= z.mean(axis=0)
    m = rng.randn(3, 8)
    feats = z @ m
    res = pca(feats, k=3)
    lifted = lift_directions(res, feats, z)
    exact = np.linalg.inv(m @ np.asarray(res.components).T)
    assert float(lifted.residual) < 1e-12
    np.testing.assert_allclose(np.asarray(lifted.coefficients), exact, atol=1e-10)
    np.testing.assert_allclose(np.asarray(lifted.directions), exact / np.linalg.norm(exact, axis=1, keepdims=True),
                               atol=1e-10)
    # against numpy's least squares on a noisy, non-linear tap
    feats = np.tanh(z @ m) + 0.1 * rng.randn(200, 8)
    acts = rng.randn(200, 3)
    ref = np.linalg.lstsq(acts, z, rcond=None)[0]
    np.testing.assert_allclose(np.asarray(lift_activations(acts, z).coefficients), ref, atol=1e-10)
    with pytest.raises(ValueError, match="expected \\(N, k\\) with N = 200"):
        lift_activations(acts[:10], z)
    assert unordered_lapack_calls(_lift, jnp.ones((20, 3)), jnp.ones((20, 4))) == []


def _run(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    edit_fid_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_ganspace_and_edit_fid_commands_on_the_digits_model(tmp_path):
    out = str(tmp_path)
    assert _run(["ganspace", assets_dir(), "--n", "300", "--k", "4", "--seeds", "0", "--strengths", "3",
                 "--grid-directions", "2", "--out", out]) == 0
    for method in ("pca", "ica"):
        with np.load(os.path.join(out, f"directions_{method}.npz")) as data:
            assert data["directions"].shape == (4, 64) and str(data["space"]) == "w"
            np.testing.assert_allclose(np.linalg.norm(data["directions"], axis=1), 1.0, rtol=1e-5)
            assert data["result/components"].shape == (4, 64)
    assert os.path.exists(os.path.join(out, "grid_seed0000.png"))
    summary = json.load(open(os.path.join(out, "ganspace.json")))
    assert summary["tap"] == "w" and summary["methods"] == ["pca", "ica"] and summary["n"] == 300
    assert _run(["edit-fid", assets_dir(), out, "--n", "64", "--variant", "code", "--out", out]) == 0
    table = json.load(open(os.path.join(out, "edit_fid.json")))
    assert table["methods"] == ["ICA 4", "PCA 4"] and len(table["fid"]) == 1 and table["variant"] == "code"
    assert all(v > 0 for v in table["fid"][0])
    with pytest.raises(ValueError, match="--method: expected pca, ica"):
        _run(["ganspace", assets_dir(), "--method", "svd", "--out", out])
    with pytest.raises(ValueError, match="layer ranges apply to StyleGAN2 W\\+"):
        latent_space(jaxlatent.load(assets_dir()), "z", layers=True)


def test_fastgan_feature_tap_directions_are_lifted_to_z():
    model = FastGAN.init(FastGANConfig(im_size=256, nz=8, ngf=4), jax.random.key(1))
    assert default_edit_tap(model) == "init"
    latents = KeyLatents(0, 300, 8)
    pca_dirs = fit_directions(model, "init", "pca", latents, k=5, key=jax.random.key(0))
    ica_dirs = fit_directions(model, "init", "ica", latents, k=5, key=jax.random.key(0))
    for d in (pca_dirs, ica_dirs):
        assert d.space == "z" and d.directions.shape == (5, 8) and 0 < d.residual < 1
        np.testing.assert_allclose(np.linalg.norm(d.directions, axis=1), 1.0, rtol=1e-5)
    # ICA's k components span PCA's top-k subspace (both whiten onto it): the same least-squares fit
    assert ica_dirs.residual == pytest.approx(pca_dirs.residual, rel=1e-3)


def test_features_flag(tmp_path):
    digits = jaxlatent.load(assets_dir())
    flag = lambda text, model=digits, ckpt=assets_dir(): edit_fid_cli.features_from_flag(model, ckpt, text)  # noqa: E731
    assert callable(flag(os.path.join(assets_dir(), "classifier")))
    assert callable(flag(None)) and callable(flag("classifier"))
    with pytest.raises(ValueError, match="pytorch-fid's weights file"):
        flag("inception")
    with pytest.raises(FileNotFoundError, match="no such file"):
        flag(str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="must be a classifier"):
        flag(str(tmp_path))
    # another model gets no default, and the digit classifier cannot read 3-channel 256x256 images
    other = FastGAN.init(FastGANConfig(im_size=256, nz=8, ngf=2), jax.random.key(0))
    with pytest.raises(ValueError, match="--features is needed"):
        flag(None, other, str(tmp_path))
    with pytest.raises(ValueError, match=r"cannot read this model's images of shape \(3, 256, 256\)"):
        flag(os.path.join(assets_dir(), "classifier"), other, str(tmp_path))
