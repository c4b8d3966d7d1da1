"""Local dimension (Choi et al., Local Dimension Estimation): exact ranks, rank plus a noise bulk,
closed forms, float64 reference, the rules, the per-layer summary and the CLI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from jaxlatent.localdim.dimension import dimension_from_spectrum, layer_dimensions, local_dimension
from jaxlatent.localdim.thresholds import optimal_coefficient_approx, relative_threshold
from jaxlatent.models.digits import assets_dir
from jaxlatent.engine.latents import latents_from_seeds
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
    est = local_dimension(f, jnp.ones((2, 3)), rule=relative_threshold(1e-6))
    np.testing.assert_array_equal(est.dimension, 2)
    assert est.rule == "threshold"                      # a function is named by its __name__
    by_value = local_dimension(f, jnp.ones((2, 3)), rule=1e-6)
    np.testing.assert_array_equal(by_value.dimension, 2)
    assert by_value.rule == "rtol=1e-06"
    with pytest.raises(ValueError, match="expected one of"):
        local_dimension(f, jnp.ones((2, 3)), rule="gavish")
    with pytest.raises(ValueError, match=r"rtol must lie in \(0, 1\)"):
        local_dimension(f, jnp.ones((2, 3)), rule=2.0)


def _tanh_tap(rank, dtype, seed=0, noise=0.0):
    """tanh(0.05 z A^T) with A = G1 @ G2 (128 x 64) of the given rank, plus ``noise`` * z B^T (B Gaussian)."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    a = jax.random.normal(k1, (128, rank), dtype) @ jax.random.normal(k2, (rank, 64), dtype)
    b = noise * jax.random.normal(k3, (128, 64), dtype)
    return lambda z: jnp.tanh(0.05 * z @ a.T) + z @ b.T


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_rank_through_a_nonlinearity(dtype, request):
    """An exactly rank-r tap: the default (paper) rule gives r while r < m / 2 (the median is
    rounding, the tolerance floor decides); the numerical and bulk rules give r at every rank."""
    if dtype == "float64":
        request.getfixturevalue("x64")
    z = jax.random.normal(jax.random.key(5), (6, 64), dtype)
    for rank in (1, 3, 10, 40, 64):
        est = local_dimension(_tanh_tap(rank, jnp.dtype(dtype)), z)
        assert est.singular_values.dtype == jnp.dtype(dtype) and est.rule == "paper"
        if rank < 32:
            np.testing.assert_array_equal(est.dimension, rank, err_msg=f"rank {rank}")
            np.testing.assert_array_equal(est.threshold, est.tolerance)
        for rule in ("numerical", "bulk"):
            other = dimension_from_spectrum(est.singular_values, (128, 64), rule)
            np.testing.assert_array_equal(other.dimension, rank, err_msg=f"rank {rank}, {rule}")
            assert other.rule == rule
        # no noise bulk in a noiseless spectrum
        assert not bool(np.any(est.noise_bulk)), f"rank {rank}"
        s = np.asarray(est.singular_values, np.float64)
        np.testing.assert_allclose(est.tolerance, s[:, 0] * 128 * np.finfo(dtype).eps, rtol=1e-6)


def test_default_on_exact_ranks_3_10_and_10_plus_noise():
    """The paper's count on exactly low-rank taps is the rank; rank 40 of 64 needs the numerical
    rule, the median rule undercounts it (docs/methods-local-dimension.md, worked example)."""
    z = jax.random.normal(jax.random.key(5), (6, 64))
    for rank, noise in ((3, 0.0), (10, 0.0), (10, 1e-3)):
        np.testing.assert_array_equal(local_dimension(_tanh_tap(rank, jnp.float32, noise=noise), z).dimension,
                                      rank, err_msg=f"rank {rank}, noise {noise}")
    tap = _tanh_tap(40, jnp.float32)
    np.testing.assert_array_equal(local_dimension(tap, z, rule="numerical").dimension, 40)
    paper = np.asarray(local_dimension(tap, z).dimension)
    # the median of 64 values is the 32nd/33rd signal value: omega(0.5) ~ 2.2 times it cuts ~16 signal values
    assert np.all((paper >= 20) & (paper <= 30)), paper


@pytest.mark.parametrize("noise", [1e-4, 1e-3, 1e-2])
def test_rank_plus_a_noise_bulk(noise):
    """Rank r plus a small full-rank Gaussian part: the Gavish-Donoho rule finds the bulk and cuts it."""
    z = jax.random.normal(jax.random.key(6), (6, 64))
    for rank in (3, 10):
        est = local_dimension(_tanh_tap(rank, jnp.float32, noise=noise), z)
        np.testing.assert_array_equal(est.dimension, rank, err_msg=f"rank {rank}")
        assert bool(np.all(est.noise_bulk)), f"rank {rank}"
        np.testing.assert_array_equal(dimension_from_spectrum(est.singular_values, (128, 64), "bulk").dimension,
                                      rank)


def test_flat_spectra_and_pure_noise():
    """The two spectra behind the report's note for dimension < 1: an isometry (all values equal)
    and a Gaussian linear tap (one Marchenko-Pastur bulk) both read as all noise by the median
    rule; the isometry shows no bulk, so the bulk rule counts every direction."""
    q = jnp.linalg.qr(jax.random.normal(jax.random.key(7), (96, 48)))[0]
    z = jnp.ones((2, 48))
    flat = local_dimension(lambda x: x @ q.T, z)
    np.testing.assert_array_equal(flat.dimension, 0)
    assert not bool(np.any(flat.noise_bulk))
    np.testing.assert_array_equal(local_dimension(lambda x: x @ q.T, z, rule="bulk").dimension, 48)
    np.testing.assert_array_equal(local_dimension(lambda x: x @ q.T, z, rule="numerical").dimension, 48)
    g = jax.random.normal(jax.random.key(8), (96, 48))
    for rule in ("paper", "bulk"):
        noise = local_dimension(lambda x: x @ g.T, z, rule=rule)
        np.testing.assert_array_equal(noise.dimension, 0)
        assert bool(np.all(noise.noise_bulk))
    # what the report's note suggests instead: every direction above 1% of the largest
    np.testing.assert_array_equal(local_dimension(lambda x: x @ g.T, z, rule=0.01).dimension, 48)


def _mp_median_reference(beta, n=400_000):
    """Median of the Marchenko-Pastur law (float64 numpy), integrated in the singular value
    y = sqrt(lambda), whose density is bounded, by the midpoint rule."""
    a, b = abs(1 - np.sqrt(beta)), 1 + np.sqrt(beta)
    h = (b - a) / n
    y = a + h * (np.arange(n) + 0.5)
    cdf = np.cumsum(np.sqrt((b * b - y * y) * (y * y - a * a)) / (np.pi * beta * y)) * h
    return np.interp(0.5 * cdf[-1], cdf, y + h / 2) ** 2


def _paper_count_reference(jac, eps):
    """The paper's count on Jacobians (N, out, in) in float64 numpy: Gavish and Donoho's
    lambda*(beta) / sqrt(mu_beta) times the median of all singular values, floored at the
    numerical-rank tolerance of the computation's precision ``eps``. Returns (counts, s, tau)."""
    s = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
    out, inn = jac.shape[1:]
    beta = min(out, inn) / max(out, inn)
    lam = np.sqrt(2 * (beta + 1) + 8 * beta / (beta + 1 + np.sqrt(beta**2 + 14 * beta + 1)))
    tau = np.maximum(lam / np.sqrt(_mp_median_reference(beta)) * np.median(s, axis=1),
                     s[:, 0] * max(out, inn) * eps)
    return np.sum(s > tau[:, None], axis=1), s, tau


def test_default_equals_an_independent_paper_count_on_the_shipped_model():
    """Every default tap of the shipped digits StyleGAN2: the default rule gives the count of a
    float64 numpy implementation on Jacobians from jax.jacfwd, one step allowed only where a
    singular value lies within rounding (1e-4 relative) of the threshold."""
    model = jaxlatent.load(assets_dir())
    z = jnp.asarray(latents_from_seeds(range(8), model.z_dim))
    taps = ["mapping.fc0", "mapping.fc1", "mapping.fc2", "w", "synthesis.b4", "synthesis.b8",
            "synthesis.b16", "image"]
    for tap in taps:
        fn = model.fn(tap)
        jac = jax.vmap(jax.jacfwd(lambda v: fn(v[None])[0].ravel()))(z)
        want, s, tau = _paper_count_reference(jac, np.finfo(np.float32).eps)
        est = local_dimension(fn, z)
        assert est.rule == "paper"
        got = np.asarray(est.dimension)
        close = np.any(np.abs(s - tau[:, None]) <= 1e-4 * tau[:, None], axis=1)
        assert np.all(np.abs(got - want) <= close), f"{tap}: default {got}, reference {want}"
        assert np.all(want > 0) and np.all(want < 40), f"{tap}: {want}"   # not the numerical rank


def test_dimension_from_spectrum_is_jittable_and_vmappable():
    s = jnp.linalg.svd(jax.random.normal(jax.random.PRNGKey(0), (3, 7, 64, 32)), compute_uv=False)
    s = s.at[..., :3].add(100.0)
    dims = jax.jit(lambda x: dimension_from_spectrum(x, (64, 32)).dimension)(s)
    np.testing.assert_array_equal(dims, 3)
    # the whole estimate through jit and vmap: the rule's name is static data, not a leaf
    est = jax.jit(jax.vmap(lambda x: dimension_from_spectrum(x, (64, 32), "bulk")))(s)
    assert est.rule == "bulk" and est.dimension.shape == (3, 7) and len(jax.tree_util.tree_leaves(est)) == 5
    np.testing.assert_array_equal(est.dimension, 3)
    assert jax.tree_util.tree_map(lambda x: x[:1], est).rule == "bulk"
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
    assert res["rule"] == "paper" and res["taps"]["w"]["numerical_rank_mean"] == 32
    assert res["taps"]["w"]["noise_bulk_share"] == 1.0
    arrays = np.load(tmp_path / "results.npz")
    assert arrays["w/singular_values"].shape == (5, 32) and arrays["w/noise_bulk"].dtype == bool
    assert (tmp_path / "local_dimension.png").stat().st_size > 0 and (tmp_path / "spectra.png").exists()
    with pytest.raises(ValueError, match="unknown tap"):
        run_cli(monkeypatch, ["local-dim", "ckpt", "--taps", "nope", "--out", str(tmp_path)])
    for rule, name, want in (("numerical", "numerical", 32), ("0.5", "rtol=0.5", 3)):
        assert run_cli(monkeypatch, ["local-dim", "ckpt", "--taps", "w", "--rule", rule, "--seeds", "0-1",
                                     "--out", str(tmp_path)]) == 0
        res = json.loads((tmp_path / "results.json").read_text())
        assert res["rule"] == name and res["taps"]["w"]["mean"] == want, rule
    with pytest.raises(SystemExit):
        run_cli(monkeypatch, ["local-dim", "ckpt", "--rule", "gavish", "--out", str(tmp_path)])


def test_parse_seeds():
    from jaxlatent.engine.latents import parse_seeds

    assert parse_seeds("0-2, 5") == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("a-b")
