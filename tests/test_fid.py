"""Fréchet distance (pytorch-fid's convention), streamed feature statistics and the edit-FID protocol."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import jaxlatent
from jaxlatent.ganspace.fid import (edit_fid, edit_fid_table, edit_strengths, feature_statistics,
                                    frechet_distance)
from jaxlatent.models.digits import assets_dir, load_classifier
from jaxlatent.report.page import ReportPage
from jaxlatent.report.build import QUICK, section_context
from jaxlatent.report.sections import ganspace

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "ganspace", "fid.npz")


def _reference(mu1, s1, mu2, s2):
    """The formula in float64 numpy: Tr (S1 S2)^(1/2) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))."""
    evals, evecs = np.linalg.eigh(s1)
    root = (evecs * np.sqrt(np.maximum(evals, 0))) @ evecs.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.maximum(inner, 0))))


def _stats(seed, n, dim):
    rs = np.random.RandomState(seed)
    x = rs.randn(n, dim) @ rs.randn(dim, dim)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def test_frechet_distance_against_the_formula_closed_forms_and_zero():
    mu1, s1 = _stats(0, 100, 12)
    mu2, s2 = _stats(1, 100, 12)
    # sqrtm's Schur method against an eigendecomposition: ~1e-12 relative on these conditions
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference(mu1, s1, mu2, s2), rel=1e-9)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9
    # diagonal covariances: sum (m1 - m2)^2 + (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    d = frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
    assert d == pytest.approx(3 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-12)


def test_frechet_distance_equals_pytorch_fid():
    golden = np.load(GOLDEN)
    for case in ("full", "rank_deficient", "shifted"):
        args = [golden[f"{case}/{k}"] for k in ("mu1", "sigma1", "mu2", "sigma2")]
        # the same scipy sqrtm on the same float64 inputs: equal to rounding
        assert frechet_distance(*args) == pytest.approx(float(golden[f"{case}/fid"]), rel=1e-10, abs=1e-10)


def test_frechet_distance_singular_offset_and_imaginary_check(monkeypatch):
    calls = []
    real = scipy.linalg.sqrtm

    def sqrtm_failing_once(m):  # the first root not finite, as for an exactly singular product
        calls.append(m)
        return np.full_like(m, np.inf) if len(calls) == 1 else real(m)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_failing_once)
    s = np.diag([1.0, 0.0])
    with pytest.warns(RuntimeWarning, match="adding 1e-06"):
        d = frechet_distance(np.zeros(2), s, np.zeros(2), s)
    np.testing.assert_allclose(calls[1], (s + 1e-6 * np.eye(2)) @ (s + 1e-6 * np.eye(2)))
    assert d == pytest.approx(0.0, abs=1e-5)
    monkeypatch.setattr(scipy.linalg, "sqrtm", real)
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="covariances of shapes"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))


W_IMG = jnp.asarray(np.random.RandomState(3).randn(4, 2 * 3 * 3), jnp.float32) / 2


def render(x):
    """A toy generator: latents (n, 4) -> images (n, 2, 3, 3)."""
    return jnp.tanh(x @ W_IMG).reshape(x.shape[0], 2, 3, 3)


def features(images):
    flat = images.reshape(images.shape[0], -1)
    return jnp.concatenate([flat[:, :5], flat[:, 5:10] ** 2], axis=1)


def test_feature_statistics_stream_equals_numpy():
    x = np.random.RandomState(4).randn(90, 4).astype(np.float32)
    f = np.asarray(features(render(x)), np.float64)
    m = feature_statistics(features, x, render=render, chunk_size=32)
    # float32 features summed per chunk, merged in float64
    np.testing.assert_allclose(m.mean, f.mean(0), atol=1e-6)
    np.testing.assert_allclose(m.covariance, np.cov(f, rowvar=False), atol=1e-6)
    m2 = feature_statistics(features, np.asarray(render(x)), chunk_size=50)
    np.testing.assert_allclose(m2.covariance, m.covariance, atol=1e-6)


def test_edit_strengths_of_the_paper_and_of_its_code():
    key = jax.random.key(0)
    a = np.asarray(edit_strengths(key, 4000, "paper", 6.0))
    assert a.min() >= -6 and a.max() <= 6 and abs(a.mean()) < 0.2 and a.std() == pytest.approx(12 / np.sqrt(12), rel=0.05)
    c = np.asarray(edit_strengths(key, 4000, "code"))
    raw = 6.0 * np.asarray(jax.random.normal(key, (4000,)))
    np.testing.assert_allclose(c, np.where(np.abs(raw) < 0.5, 0.5 * np.sign(raw), raw), rtol=1e-6)
    assert np.abs(c).min() >= 0.5 and (np.abs(c) == 0.5).sum() > 100
    with pytest.raises(ValueError, match="variant must be one of"):
        edit_strengths(key, 3, "text")


def test_edit_fid_zero_for_null_edits_and_growing_with_strength():
    x = jnp.asarray(np.random.RandomState(5).randn(300, 4), jnp.float32)
    dirs = jnp.eye(4)[:3]
    key = jax.random.key(1)
    null = edit_fid(render, features, x, jnp.zeros((3, 4)), key=key)
    # identical image sets through two runs of one compiled program: the same floats
    assert abs(null.fid) < 1e-6
    small = edit_fid(render, features, x, dirs, key=key, max_strength=0.5, chunk_size=128)
    big = edit_fid(render, features, x, dirs, key=key, max_strength=3.0, chunk_size=128)
    assert 0 < small.fid < big.fid
    assert small.components.shape == (300,) and int(small.components.max()) < 3
    np.testing.assert_allclose(np.asarray(big.strengths), 6 * np.asarray(small.strengths), rtol=1e-5)
    # the FID is that of the features of the images edited as drawn
    edited = x + big.strengths[:, None] * dirs[big.components]
    ref = np.asarray(features(render(edited)), np.float64)
    np.testing.assert_allclose(big.edited.mean, ref.mean(0), atol=1e-5)


def test_edit_fid_table_shape_pairs_and_variants():
    x = jnp.asarray(np.random.RandomState(6).randn(200, 4), jnp.float32)
    sets = {"A 2": jnp.eye(4)[:2], "B 4": jnp.eye(4)}
    table = edit_fid_table(render, features, x, sets, key=jax.random.PRNGKey(3), chunk_size=100)
    assert table.methods == ("A 2", "B 4") and table.strengths == ("U[-3, 3]", "U[-6, 6]")
    assert table.fid.shape == (2, 2) and (table.fid[1] > table.fid[0]).all()
    assert table.variant == "paper" and table.n == 200
    one = edit_fid(render, features, x, sets["B 4"], key=jax.random.fold_in(jax.random.key(3), 1), max_strength=6.0)
    # padding a set with never-drawn zero rows leaves its draws and its FID alone
    assert table.fid[1, 1] == pytest.approx(one.fid, rel=1e-6)
    code = edit_fid_table(render, features, x, sets, key=jax.random.key(3), variant="code")
    assert code.fid.shape == (1, 2) and code.strengths[0].startswith("6 N(0,1)")


def test_report_section_on_the_digits_model(tmp_path):
    page, arrays = ReportPage(str(tmp_path), "test"), {}
    model = jaxlatent.load(assets_dir())
    ganspace.add_section(page, model, section_context(model, QUICK, classifier=load_classifier(), arrays=arrays))
    res = page.results["ganspace"]
    assert res["tap"] == "w" and res["space"] == "w"
    ratio = np.asarray(res["pca_explained_variance_ratio"])
    assert (np.diff(ratio) <= 0).all() and 0 < ratio.sum() <= 1
    table = res["edit_fid"]
    assert table.methods == ("PCA 8", "ICA 8") and table.fid.shape == (1, 2) and (table.fid > 0).all()
    assert arrays["ganspace/pca_8_directions"].shape == (8, 64)
    assert os.path.exists(page.path("ganspace_grid.png"))
    page.write()
