"""Grassmannian metrics: subspaces with chosen principal angles, numpy reference formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.localbasis.grassmann import METRICS, grassmann_distance, pairwise_grassmann, principal_angles
from jaxlatent.engine.sampling import random_orthonormal


def _pair(angles, n=12, seed=0):
    """Orthonormal A, B (n, k) whose principal angles are ``angles``."""
    k = len(angles)
    q, _ = np.linalg.qr(np.random.RandomState(seed).standard_normal((n, 2 * k)))
    a = q[:, :k]
    b = q[:, :k] * np.cos(angles) + q[:, k:] * np.sin(angles)
    r, _ = np.linalg.qr(np.random.RandomState(seed + 1).standard_normal((k, k)))
    return a, b @ r  # rotate B within its span: same subspace


def test_chosen_angles_including_tiny_ones():
    angles = np.array([1e-6, 1e-3, 0.4, 1.2, np.pi / 2])
    a, b = _pair(angles)
    theta = principal_angles(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(theta, angles, atol=2e-6, rtol=1e-4)


def test_metrics_match_reference_formulas():
    angles = np.array([0.1, 0.5, 0.9])
    a, b = _pair(angles)
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    pa, pb = a @ a.T, b @ b.T
    expect = {
        "geodesic": np.linalg.norm(angles),
        "proj": np.linalg.norm(pa - pb, 2),                    # the Local Basis code's 'proj'
        "proj_f": np.linalg.norm(pa - pb) / np.sqrt(2),
        "chordal": np.linalg.norm(2 * np.sin(angles / 2)),
        "chordal_2": 2 * np.sin(0.9 / 2),
        "fubini_study": np.arccos(np.prod(np.cos(angles))),
        "binet_cauchy": np.sqrt(1 - np.prod(np.cos(angles) ** 2)),
        "max_angle": 0.9,
    }
    assert set(expect) == set(METRICS)
    for metric, value in expect.items():
        np.testing.assert_allclose(grassmann_distance(a32, b32, metric=metric), value, rtol=1e-5, err_msg=metric)
    # Procrustes: min over orthogonal alignments of ||A Q - B||_F equals the chordal distance
    u, _, vt = np.linalg.svd(a.T @ b)
    np.testing.assert_allclose(np.linalg.norm(a @ u @ vt - b), expect["chordal"], rtol=1e-6)


def test_first_d_columns_and_batching():
    a = random_orthonormal(key=jax.random.key(0), n=12, k=5, batch=(3,))
    b = random_orthonormal(key=jax.random.key(1), n=12, k=5, batch=(3,))
    d2 = grassmann_distance(a, b, k=2)
    # two programs (slicing inside vs before the call); float32 angles of O(1): rounding only
    np.testing.assert_allclose(d2, grassmann_distance(a[..., :2], b[..., :2]), rtol=1e-5)
    assert d2.shape == (3,)
    assert grassmann_distance(a, b[0]).shape == (3,)          # broadcast
    with pytest.raises(ValueError, match="k must lie in"):
        grassmann_distance(a, b, k=6)
    with pytest.raises(ValueError, match="metric must be one of"):
        grassmann_distance(a, b, metric="cosine")


def test_pairwise_matches_loops_in_chunks():
    bases = random_orthonormal(key=jax.random.key(3), n=10, k=3, batch=7)
    pw = pairwise_grassmann(bases, metric="geodesic", chunk_size=3)
    assert pw.shape == (7, 7)
    np.testing.assert_allclose(np.diag(pw), 0.0)
    for i in range(7):
        for j in range(7):
            if i != j:
                np.testing.assert_allclose(pw[i, j], grassmann_distance(bases[i], bases[j]), rtol=1e-5)
    np.testing.assert_allclose(pairwise_grassmann(bases, metric="proj", k=2),
                               pairwise_grassmann(bases[..., :2], metric="proj"), rtol=1e-5)  # two programs


def test_principal_angles_of_tall_bases_need_no_square_workspace():
    """XLA's CPU SVD without vectors allocates n x n per matrix; ours stays O(n k)."""
    a = jnp.zeros((4, 8192, 30), jnp.float32)
    stats = jax.jit(principal_angles).lower(a, a).compile().memory_analysis()
    assert stats is not None, "the compiled program reports no memory analysis on this backend"
    assert stats.temp_size_in_bytes < 64 * 2**20, stats.temp_size_in_bytes   # n^2 would be 1 GB


def test_pairwise_cosine_formula_matches_the_stable_one_on_distant_subspaces(x64):
    bases = random_orthonormal(key=jax.random.key(8), n=12, k=3, batch=9, dtype=jnp.float64)
    cos = pairwise_grassmann(bases, metric="geodesic", formula="cosine")
    np.testing.assert_array_equal(np.diag(cos), 0.0)
    np.testing.assert_array_equal(cos, cos.T)
    # Haar 3-planes in R^12 are far apart (angles >> sqrt(eps)): both formulas agree to float64 rounding
    np.testing.assert_allclose(cos, pairwise_grassmann(bases, metric="geodesic"), atol=1e-10)
    with pytest.raises(ValueError, match="formula must be one of"):
        pairwise_grassmann(bases, formula="sine")


def test_pairwise_in_blocks_inside_jit_equals_eager():
    bases = random_orthonormal(key=jax.random.key(9), n=10, k=3, batch=7)
    eager = pairwise_grassmann(bases, chunk_size=3)
    # the same blocks compiled into one program instead of three: float32 rounding may differ by ulps
    np.testing.assert_allclose(jax.jit(lambda b: pairwise_grassmann(b, chunk_size=3))(bases), eager, atol=1e-6)
