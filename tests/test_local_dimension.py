"""Local dimension (Choi et al., Local Dimension Estimation): exact ranks, rank plus a noise bulk,
closed forms, float64 reference, the per-layer summary and the CLI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.localdim.dimension import dimension_from_spectrum, layer_dimensions, local_dimension
from jaxlatent.localdim.thresholds import optimal_coefficient_approx, relative_threshold
from helpers import low_rank_plus_noise


def test_linear_map_rank_recovered_batched_and_chunked():
    rng = np.random.default_rng(2)
    a = low_rank_plus_noise(rng, 96, 48, [8.0, 6, 5, 4, 3, 2.5], 0.02)
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
    assert bool(np.all(est.noise_bulk))      # the small full-rank path is the noise bulk


def test_relative_threshold_for_small_noiseless_maps():
    # the median rule cannot work on a 3x3 Jacobian; a numerical-rank cut can
    f = lambda z: z * jnp.array([1.0, 2.0, 0.0])  # noqa: E731
    est = local_dimension(f, jnp.ones((2, 3)), threshold_fn=relative_threshold(1e-6))
    np.testing.assert_array_equal(est.dimension, 2)


def _tanh_tap(rank, dtype, seed=0, noise=0.0):
    """tanh(0.05 z A^T) with A = G1 @ G2 (128 x 64) of the given rank, plus ``noise`` * z B^T (B Gaussian)."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    a = jax.random.normal(k1, (128, rank), dtype) @ jax.random.normal(k2, (rank, 64), dtype)
    b = noise * jax.random.normal(k3, (128, 64), dtype)
    return lambda z: jnp.tanh(0.05 * z @ a.T) + z @ b.T


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_rank_through_a_nonlinearity(dtype, request):
    """An exactly rank-r tap has local dimension r: rounding is never signal, signal never noise."""
    if dtype == "float64":
        request.getfixturevalue("x64")
    z = jax.random.normal(jax.random.key(5), (6, 64), dtype)
    for rank in (1, 10, 40, 64):
        est = local_dimension(_tanh_tap(rank, jnp.dtype(dtype)), z)
        assert est.singular_values.dtype == jnp.dtype(dtype)
        np.testing.assert_array_equal(est.dimension, rank, err_msg=f"rank {rank}")
        # no noise bulk in a noiseless spectrum: the numerical rank decided
        assert not bool(np.any(est.noise_bulk)), f"rank {rank}"
        s = np.asarray(est.singular_values, np.float64)
        np.testing.assert_allclose(est.tolerance, s[:, 0] * 128 * np.finfo(dtype).eps, rtol=1e-6)


@pytest.mark.parametrize("noise", [1e-4, 1e-3, 1e-2])
def test_rank_plus_a_noise_bulk(noise):
    """Rank r plus a small full-rank Gaussian part: the Gavish-Donoho rule finds the bulk and cuts it."""
    z = jax.random.normal(jax.random.key(6), (6, 64))
    for rank in (3, 10):
        est = local_dimension(_tanh_tap(rank, jnp.float32, noise=noise), z)
        np.testing.assert_array_equal(est.dimension, rank, err_msg=f"rank {rank}")
        assert bool(np.all(est.noise_bulk)), f"rank {rank}"


def test_flat_spectra_and_pure_noise():
    """The two spectra behind the report's note for dimension < 1: an isometry has no noise bulk and
    counts every direction; a Gaussian linear tap is one Marchenko-Pastur bulk, read as all noise."""
    q = jnp.linalg.qr(jax.random.normal(jax.random.key(7), (96, 48)))[0]
    z = jnp.ones((2, 48))
    flat = local_dimension(lambda x: x @ q.T, z)
    np.testing.assert_array_equal(flat.dimension, 48)
    assert not bool(np.any(flat.noise_bulk))
    g = jax.random.normal(jax.random.key(8), (96, 48))
    noise = local_dimension(lambda x: x @ g.T, z)
    np.testing.assert_array_equal(noise.dimension, 0)
    assert bool(np.all(noise.noise_bulk))
    # what the report's --rtol suggests instead: every direction above 1% of the largest
    np.testing.assert_array_equal(local_dimension(lambda x: x @ g.T, z, threshold_fn=relative_threshold(0.01)).dimension, 48)


def test_dimension_from_spectrum_is_jittable_and_vmappable():
    s = jnp.linalg.svd(jax.random.normal(jax.random.PRNGKey(0), (3, 7, 64, 32)), compute_uv=False)
    s = s.at[..., :3].add(100.0)
    dims = jax.jit(lambda x: dimension_from_spectrum(x, (64, 32)).dimension)(s)
    np.testing.assert_array_equal(dims, 3)
    # values below the tolerance never count, whatever the threshold function says
    low = jnp.concatenate([s[0, 0, :4], jnp.zeros(28)])[None]
    est = dimension_from_spectrum(low, (64, 32), lambda v, shape: jnp.zeros(v.shape[:-1]))
    assert int(est.dimension[0]) == 4 and float(est.threshold[0]) == float(est.tolerance[0])


def test_layer_dimensions_summary():
    rng = np.random.default_rng(5)
    fns = {}
    for name, r in [("low", 3), ("high", 9)]:
        a = jnp.asarray(low_rank_plus_noise(rng, 64, 40, [6.0] * r, 0.02), jnp.float32)
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
        family = "stylegan2"
        c_dim = 0

    z_dim = 32

    def __init__(self):
        rng = np.random.default_rng(6)
        self.mats = {"mapping.fc0": low_rank_plus_noise(rng, 48, 32, [6.0] * 5, 0.02),
                     "w": low_rank_plus_noise(rng, 40, 32, [6.0] * 3, 0.02)}

    def taps(self):
        return ["mapping.fc0", "w", "image"]

    def fn(self, tap, truncation_psi=1.0):
        a = jnp.asarray(self.mats[tap], jnp.float32)
        return lambda z: z @ a.T


def run_cli(monkeypatch, argv):
    import argparse
    import jaxlatent
    from jaxlatent.cli import distortion, local_dim

    # setitem, not setattr: reading the old value would import jaxlatent.io through the lazy namespace
    monkeypatch.setitem(vars(jaxlatent), "load", lambda path: _TinyModel())
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    local_dim.register(sub)
    distortion.register(sub)
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
    from jaxlatent.engine.latents import parse_seeds

    assert parse_seeds("0-2, 5") == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("a-b")
