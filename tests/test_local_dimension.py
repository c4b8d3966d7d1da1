"""Local dimension estimation (seed 000): threshold rule, closed forms, float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.analysis.local_dimension import (
    dimension_from_spectrum,
    layer_dimensions,
    local_dimension,
    marchenko_pastur_median,
    optimal_coefficient,
    optimal_coefficient_approx,
    optimal_rank,
    optimal_threshold,
    relative_threshold,
)


def _low_rank_plus_noise(rng, out, inn, gains, noise):
    r = len(gains)
    u = np.linalg.qr(rng.normal(size=(out, r)))[0]
    v = np.linalg.qr(rng.normal(size=(inn, r)))[0]
    return u @ np.diag(gains) @ v.T + noise * rng.normal(size=(out, inn))


def test_optimal_coefficient_matches_gavish_donoho():
    # their Section III.E: omega(1) ~ 2.858; the cubic fit is within 0.02 of the exact value
    assert optimal_coefficient(1.0) == pytest.approx(2.858, abs=1e-3)
    for beta in np.linspace(0.02, 1.0, 15):
        assert optimal_coefficient(beta) == pytest.approx(optimal_coefficient_approx(beta), abs=0.02)


def test_marchenko_pastur_median_against_sampled_wishart():
    rng = np.random.default_rng(0)
    for m, n in [(300, 600), (400, 400)]:
        x = rng.normal(size=(m, n))
        eig = np.linalg.eigvalsh(x @ x.T / n)
        assert marchenko_pastur_median(m / n) == pytest.approx(np.median(eig), abs=0.02)


def test_rank_of_low_rank_plus_noise_matrices():
    rng = np.random.default_rng(1)
    for out, inn, gains in [(128, 64, [9.0, 7, 5, 4, 3]), (96, 96, [6.0] * 12), (40, 200, [4.0, 2.5])]:
        mats = np.stack([_low_rank_plus_noise(rng, out, inn, gains, 0.02) for _ in range(3)])
        s = jnp.linalg.svd(jnp.asarray(mats, jnp.float32), compute_uv=False)
        assert np.all(np.asarray(optimal_rank(s, (out, inn))) == len(gains))


def test_threshold_needs_the_full_spectrum():
    with pytest.raises(ValueError, match="all 8 singular values"):
        optimal_threshold(jnp.ones((2, 3)), (10, 8))


def test_linear_map_rank_recovered_batched_and_chunked():
    rng = np.random.default_rng(2)
    a = _low_rank_plus_noise(rng, 96, 48, [8.0, 6, 5, 4, 3, 2.5], 0.02)
    f = lambda z: z @ jnp.asarray(a.T, jnp.float32)  # noqa: E731
    z = jnp.asarray(rng.normal(size=(5, 48)), jnp.float32)
    est = local_dimension(f, z)
    assert est.dimension.shape == (5,) and est.singular_values.shape == (5, 48)
    assert np.all(np.asarray(est.dimension) == 6)
    chunked = local_dimension(f, z, chunk_size=2)
    np.testing.assert_array_equal(chunked.dimension, est.dimension)
    np.testing.assert_allclose(chunked.threshold, est.threshold, rtol=1e-5)


def test_torus_embedding_has_its_dimension():
    # k angles theta = A z (rows of A orthonormal, gain 5) mapped onto a flat k-torus in R^(2k),
    # embedded isometrically in R^96, plus a small full-rank linear "noise" term
    rng = np.random.default_rng(3)
    k, inn, out = 4, 64, 96
    a = 5.0 * np.linalg.qr(rng.normal(size=(inn, k)))[0].T
    e = np.linalg.qr(rng.normal(size=(out, 2 * k)))[0]
    noise = 0.02 * rng.normal(size=(out, inn))
    a, e, noise = (jnp.asarray(x, jnp.float32) for x in (a, e, noise))

    def f(z):
        theta = z @ a.T
        return jnp.concatenate([jnp.cos(theta), jnp.sin(theta)], -1) @ e.T + z @ noise.T

    z = jnp.asarray(rng.normal(size=(6, inn)), jnp.float32)
    np.testing.assert_array_equal(local_dimension(f, z).dimension, k)


def test_float64_reference_on_a_small_network(x64):
    # f(z) = W2 tanh(W1 z) + c W3 z: a rank-6 bottleneck plus a small full-rank path.
    rng = np.random.default_rng(4)
    inn, hid, out, c = 48, 6, 64, 0.002
    w1, w2, w3 = rng.normal(size=(hid, inn)) / 6, rng.normal(size=(out, hid)), rng.normal(size=(out, inn))
    f = lambda z: jnp.tanh(z @ w1.T) @ w2.T + c * z @ w3.T  # noqa: E731
    z = rng.normal(size=(4, inn))
    est = local_dimension(f, jnp.asarray(z))
    for i in range(len(z)):
        jac = w2 @ np.diag(1 - np.tanh(w1 @ z[i]) ** 2) @ w1 + c * w3  # closed-form Jacobian
        s = np.linalg.svd(jac, compute_uv=False)
        tau = optimal_coefficient_approx(inn / out) * np.median(s)
        np.testing.assert_allclose(est.singular_values[i], s, rtol=1e-10, atol=1e-12)
        assert float(est.threshold[i]) == pytest.approx(tau, rel=2e-3)
        assert int(est.dimension[i]) == int(np.sum(s > tau)) == hid


def test_relative_threshold_for_small_noiseless_maps():
    # the median rule cannot work on a 3x3 Jacobian; a numerical-rank cut can
    f = lambda z: z * jnp.array([1.0, 2.0, 0.0])  # noqa: E731
    est = local_dimension(f, jnp.ones((2, 3)), threshold_fn=relative_threshold(1e-6))
    np.testing.assert_array_equal(est.dimension, 2)


def test_dimension_from_spectrum_is_jittable_and_vmappable():
    s = jnp.linalg.svd(jax.random.normal(jax.random.PRNGKey(0), (3, 7, 64, 32)), compute_uv=False)
    s = s.at[..., :3].add(100.0)
    dims = jax.jit(lambda x: dimension_from_spectrum(x, (64, 32)).dimension)(s)
    np.testing.assert_array_equal(dims, 3)


def test_layer_dimensions_summary():
    rng = np.random.default_rng(5)
    fns = {}
    for name, r in [("low", 3), ("high", 9)]:
        a = jnp.asarray(_low_rank_plus_noise(rng, 64, 40, [6.0] * r, 0.02), jnp.float32)
        fns[name] = lambda z, a=a: z @ a.T
    z = jnp.asarray(rng.normal(size=(4, 40)), jnp.float32)
    table = layer_dimensions(fns, z)
    assert list(table) == ["low", "high"]
    assert table["low"].mean == 3 and table["low"].std == 0 and table["low"].median == 3
    assert (table["high"].min, table["high"].max) == (9, 9)
    assert table["high"].dimension.shape == (4,)


class _TinyModel:
    """Stands in for a loaded model: two taps of known rank on 32-d latents."""

    class config:
        z_dim = 32

    def __init__(self):
        rng = np.random.default_rng(6)
        self.mats = {"mapping.fc0": _low_rank_plus_noise(rng, 48, 32, [6.0] * 5, 0.02),
                     "w": _low_rank_plus_noise(rng, 40, 32, [6.0] * 3, 0.02)}

    def taps(self):
        return ["mapping.fc0", "w", "image"]

    def fn(self, tap, truncation_psi=1.0):
        a = jnp.asarray(self.mats[tap], jnp.float32)
        return lambda z: z @ a.T


def run_cli(monkeypatch, argv):
    import argparse
    import jaxlatent
    from jaxlatent.cli import dimension

    # setitem, not setattr: reading the old value would import jaxlatent.io through the lazy namespace
    monkeypatch.setitem(vars(jaxlatent), "load", lambda path: _TinyModel())
    parser = argparse.ArgumentParser()
    dimension.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_local_dim(monkeypatch, tmp_path):
    import json

    assert run_cli(monkeypatch, ["local-dim", "ckpt", "--seeds", "0-3,7", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["seeds"] == [0, 1, 2, 3, 7] and list(res["taps"]) == ["mapping.fc0", "w"]
    assert res["taps"]["mapping.fc0"]["mean"] == 5 and res["taps"]["w"]["median"] == 3
    arrays = np.load(tmp_path / "results.npz")
    assert arrays["w/singular_values"].shape == (5, 32)
    assert (tmp_path / "local_dimension.png").stat().st_size > 0 and (tmp_path / "spectra.png").exists()
    with pytest.raises(ValueError, match="unknown tap"):
        run_cli(monkeypatch, ["local-dim", "ckpt", "--taps", "nope", "--out", str(tmp_path)])


def test_parse_seeds():
    from jaxlatent.seeds import parse_seeds

    assert parse_seeds("0-2, 5") == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("a-b")
