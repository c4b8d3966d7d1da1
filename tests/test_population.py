"""Streaming a tap's population: chunks, float64 moments, latents from seeds and keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.ganspace.population import (KeyLatents, Moments, SeedLatents, TruncatedKeyLatents, collect,
                                           empty_moments, moments, moments_of, stream)
from jaxlatent.engine.parallel import batch_mesh
from jaxlatent.engine.latents import latents_from_seeds

W = jnp.asarray(np.random.RandomState(0).randn(5, 7), jnp.float32)


def tap(z):
    return jnp.tanh(z @ W) * 3.0 + 1.0


def two_taps(z):
    return {"a": tap(z), "b": (z ** 2).reshape(z.shape[0], 5, 1)}


@pytest.mark.parametrize("chunk", [None, 64, 7, 1000])
def test_moments_equal_numpy_whatever_the_chunks(chunk):
    z = np.random.RandomState(1).randn(200, 5).astype(np.float32)
    ref = np.asarray(tap(z), np.float64)
    m = moments(tap, z, chunk_size=chunk)
    assert m.count == 200 and m.mean.dtype == np.float64
    # per-chunk sums in float32 on the device (a few ulp of |x| ~ 4), merged in float64
    np.testing.assert_allclose(m.mean, ref.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(m.covariance, np.cov(ref, rowvar=False), atol=1e-5)


def test_chan_merge_is_exact_in_float64_and_survives_a_large_offset(x64):
    rng = np.random.RandomState(2)
    x = 1e6 + rng.randn(301, 4) * np.array([1e-2, 1.0, 3.0, 0.1])
    parts = [moments_of(x[a:b]) for a, b in ((0, 100), (100, 101), (101, 301))]
    merged = empty_moments(4)
    for p in parts:
        merged = merged.merge(p)
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-15)
    # centred on each chunk's mean: no 1e12 cancels against a 1e-4 covariance entry; the bound is
    # the reference's own rounding (x - mean with |x| = 1e6 leaves eps * 1e6 ~ 2e-10 per entry)
    np.testing.assert_allclose(merged.covariance, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="at least 2 samples"):
        moments_of(x[:1]).covariance


def test_pytree_outputs_collect_and_a_mesh():
    z = np.random.RandomState(3).randn(50, 5).astype(np.float32)
    m = moments(two_taps, z, chunk_size=16)
    assert isinstance(m["a"], Moments) and m["b"].mean.shape == (5,)
    np.testing.assert_allclose(m["b"].mean, (z.astype(np.float64) ** 2).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(collect(tap, z, chunk_size=16), np.asarray(tap(z)), rtol=1e-6)
    on_mesh = moments(tap, z, chunk_size=16, mesh=batch_mesh())
    # the same float32 chunk programs with and without a (one-device) mesh
    np.testing.assert_allclose(on_mesh.covariance, moments(tap, z, chunk_size=16).covariance, rtol=1e-6)
    chunks = list(stream(tap, z, chunk_size=16))
    assert [c.count for c in chunks] == [16, 16, 16, 2] and all(c.x.shape == (16, 7) for c in chunks)


def test_seed_and_key_latents():
    seeds = SeedLatents([5, 9, 2, 7], 6)
    np.testing.assert_array_equal(seeds[1:3], latents_from_seeds([9, 2], 6))
    assert len(seeds) == 4 and seeds.shape == (4, 6)
    keys = KeyLatents(3, 10, 5)
    whole = keys[:]
    assert whole.shape == (10, 5) and whole.dtype == np.float32
    # a row does not depend on how the population is sliced
    np.testing.assert_array_equal(np.concatenate([keys[0:3], keys[3:10]]), whole)
    np.testing.assert_array_equal(whole[4], np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(3), 4), (5,))))
    np.testing.assert_allclose(moments(tap, keys, chunk_size=4).mean, np.asarray(tap(whole)).mean(0), atol=1e-6)
    with pytest.raises(TypeError, match="row slices"):
        keys[3]
    with pytest.raises(ValueError, match="empty"):
        next(stream(tap, np.zeros((0, 5), np.float32)))


def test_truncated_key_latents():
    """BigGAN's population: scale * TN(0, 1; [-bound, bound]) per row, whatever the slicing."""
    keys = TruncatedKeyLatents(3, 4000, 6, bound=2.0, scale=0.5)
    whole = keys[:]
    assert whole.shape == (4000, 6) and whole.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([keys[0:7], keys[7:4000]]), whole)
    assert np.abs(whole).max() <= 1.0
    # the truncated normal's standard deviation: 0.8796 at bound 2, times the scale
    assert abs(whole.std() - 0.5 * 0.8796) < 0.01
    with pytest.raises(ValueError, match="bound and scale"):
        TruncatedKeyLatents(0, 2, 2, bound=2.0, scale=0.0)
