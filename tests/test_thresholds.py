"""Spectrum thresholds: Gavish-Donoho constants, the Marchenko-Pastur tables, the noise-bulk test,
the numerical-rank tolerance, and the combined rule on matrices of known rank."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.localdim.dimension import dimension_from_spectrum
from jaxlatent.localdim.thresholds import (_marchenko_pastur_table, gavish_donoho_threshold, marchenko_pastur_median,
                                           noise_bulk, optimal_coefficient, optimal_coefficient_approx,
                                           optimal_threshold, rank_tolerance, relative_threshold, threshold_rule)
from helpers import low_rank_plus_noise


def test_optimal_coefficient_matches_gavish_donoho():
    # their Section III.E: omega(1) ~ 2.858; the cubic fit is within 0.02 of the exact value
    assert optimal_coefficient(1.0) == pytest.approx(2.858, abs=1e-3)
    for beta in np.linspace(0.02, 1.0, 15):
        assert optimal_coefficient(beta) == pytest.approx(optimal_coefficient_approx(beta), abs=0.02)


def test_marchenko_pastur_median_and_table_against_sampled_wishart():
    rng = np.random.default_rng(0)
    for m, n in [(300, 600), (400, 400)]:
        x = rng.normal(size=(m, n))
        eig = np.linalg.eigvalsh(x @ x.T / n)
        assert marchenko_pastur_median(m / n) == pytest.approx(np.median(eig), abs=0.02)
        xs, cdf = _marchenko_pastur_table(m / n)
        # the tabulated CDF of singular values against the sampled one (finite-size error ~1/m)
        sv = np.sqrt(np.sort(eig))
        assert np.max(np.abs(np.interp(sv, xs, cdf) - np.arange(1, m + 1) / m)) < 0.02
        assert np.interp(0.5, cdf, xs) ** 2 == pytest.approx(marchenko_pastur_median(m / n), abs=1e-5)


def test_rank_of_low_rank_plus_noise_matrices():
    rng = np.random.default_rng(1)
    for out, inn, gains in [(128, 64, [9.0, 7, 5, 4, 3]), (96, 96, [6.0] * 12), (40, 200, [4.0, 2.5])]:
        mats = np.stack([low_rank_plus_noise(rng, out, inn, gains, 0.02) for _ in range(3)])
        s = jnp.linalg.svd(jnp.asarray(mats, jnp.float32), compute_uv=False)
        est = dimension_from_spectrum(s, (out, inn))
        np.testing.assert_array_equal(est.dimension, len(gains))
        assert bool(np.all(est.noise_bulk))
        # with a bulk, the combined rule is Gavish-Donoho's threshold itself
        np.testing.assert_array_equal(optimal_threshold(s, (out, inn)), gavish_donoho_threshold(s, (out, inn)))


def test_noise_bulk_on_shapes_of_spectra():
    m, shape = 64, (128, 64)
    gauss = jnp.linalg.svd(jax.random.normal(jax.random.key(0), (3, *shape)), compute_uv=False)
    spiked = gauss.at[:, :4].multiply(20.0)
    decay = jnp.broadcast_to(jnp.exp(-jnp.arange(m) / 8.0), (3, m))          # a deep net's smooth decay
    flat = jnp.ones((3, m))                                                   # an isometry
    deficient = gauss.at[:, -1].set(0.0)                                      # one exact zero
    assert bool(jnp.all(noise_bulk(gauss, shape))) and bool(jnp.all(noise_bulk(spiked, shape)))
    for s in (decay, flat, deficient):
        assert not bool(jnp.any(noise_bulk(s, shape)))
    np.testing.assert_array_equal(dimension_from_spectrum(spiked, shape).dimension, 4)
    np.testing.assert_array_equal(dimension_from_spectrum(decay, shape, "bulk").dimension, m)  # above rounding
    # the paper's count on the smooth decay s_i = exp(-i / 8): the median is exp(-31.5 / 8) up to
    # cosh(1 / 16), so tau = omega(1/2) * median and the count is the i with exp(-i / 8) > tau
    tau = optimal_coefficient(0.5) * (np.exp(-31 / 8) + np.exp(-32 / 8)) / 2
    assert float(gavish_donoho_threshold(decay, shape)[0]) == pytest.approx(tau, rel=1e-6)
    np.testing.assert_array_equal(dimension_from_spectrum(decay, shape).dimension, math.ceil(-8 * np.log(tau)))


def test_rank_tolerance_is_numpys_matrix_rank_rule(x64):
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        x = (rng.normal(size=(4, 30, 6)) @ rng.normal(size=(6, 20))).astype(dtype)  # rank 6
        s = jnp.linalg.svd(jnp.asarray(x), compute_uv=False)
        tol = rank_tolerance(s, (30, 20))
        np.testing.assert_allclose(tol, np.asarray(s)[:, 0] * 30 * np.finfo(dtype).eps, rtol=1e-6)
        counts = np.sum(np.asarray(s) > np.asarray(tol)[:, None], axis=-1)
        np.testing.assert_array_equal(counts, [np.linalg.matrix_rank(a) for a in x])
        np.testing.assert_array_equal(dimension_from_spectrum(s, (30, 20)).dimension, 6)


def test_thresholds_need_the_full_spectrum():
    for fn in (optimal_threshold, gavish_donoho_threshold, noise_bulk):
        with pytest.raises(ValueError, match="all 8 singular values"):
            fn(jnp.ones((2, 3)), (10, 8))


def test_gavish_donoho_threshold_uses_the_median_of_all_values():
    """The paper rule's median runs over all m values, values at rounding level included: on an
    exactly rank-2 spectrum it is tiny, and local dimension's tolerance floor gives the rank."""
    s = jnp.asarray([[10.0, 4.0] + [1e-9] * 6, [5.0, 4, 3, 2, 1, 0.5, 0.25, 0.0]], jnp.float32)
    omega = optimal_coefficient(8 / 20)
    np.testing.assert_allclose(gavish_donoho_threshold(s, (20, 8)), omega * np.median(np.asarray(s), axis=1),
                               rtol=1e-6)
    est = dimension_from_spectrum(s, (20, 8))
    assert est.dimension.tolist() == [2, int(np.sum(np.asarray(s[1]) > omega * 1.5))]
    assert float(est.threshold[0]) == float(est.tolerance[0])


def test_threshold_rule_names():
    assert threshold_rule("paper") == ("paper", gavish_donoho_threshold)
    assert threshold_rule("bulk") == ("bulk", optimal_threshold)
    assert threshold_rule("numerical") == ("numerical", rank_tolerance)
    assert threshold_rule(optimal_threshold)[0] == "bulk"               # a named rule's own function
    s = jnp.asarray([[4.0, 2.0, 0.5, 0.01]])
    for spelled in (0.1, "0.1", "rtol=0.1", np.float32(0.1)):
        name, fn = threshold_rule(spelled)
        assert name == "rtol=0.1" and float(fn(s, (4, 4))[0]) == pytest.approx(0.4)
    assert threshold_rule(threshold_rule(0.25)[0])[0] == "rtol=0.25"       # names round-trip
    assert threshold_rule(relative_threshold(0.5))[0] == "threshold"
    assert threshold_rule(lambda v, shape: v[..., 0])[0] == "<lambda>"
    for bad in ("gd", "rtol=x", 0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="local dimension rule"):
            threshold_rule(bad)
    with pytest.raises(TypeError, match="local dimension rule"):
        threshold_rule(None)
