"""analysis.linalg: ordered decompositions, thin spectra, and every program of ours checked for
LAPACK calls that jaxlib 0.10 could run side by side (the deadlock of the linalg module docstring).

Workloads of deadlock-prone sizes run in a subprocess with a time limit, so that a regression
fails with a message instead of hanging the test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.engine import sampling
from jaxlatent.geometry import metric as geometry
from jaxlatent.localbasis import basis as local_basis
from jaxlatent.localbasis import grassmann, traversal, warpage
from jaxlatent.localdim import dimension as local_dimension
from jaxlatent.localdim import distortion
from jaxlatent.engine.linalg import after, qr_each, singular_values, unordered_lapack_calls

LIMIT_S = 240


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False,
                              timeout=LIMIT_S, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish in {LIMIT_S} s: two LAPACK calls of one program ran side by side "
                    "(jaxlatent/engine/linalg.py)")


def test_after_leaves_values_alone_whatever_the_dependency_holds():
    x = jnp.arange(6.0).reshape(2, 3)
    for dep in (jnp.array([jnp.nan, 1.0]), jnp.array([jnp.inf]), jnp.array([-jnp.inf, 2.0]),
                jnp.arange(4, dtype=jnp.int32), jnp.array([2**31 - 1], jnp.int32),
                jnp.array([1 + 2j], jnp.complex64)):
        np.testing.assert_array_equal(np.asarray(jax.jit(after)(x, dep)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(after(x)), np.asarray(x))
    half = jnp.ones(3, jnp.float16)                      # an int beyond float16's range stays harmless
    np.testing.assert_array_equal(np.asarray(after(half, jnp.array([100000], jnp.int32))), np.ones(3))
    assert after(x, jnp.ones(3)).dtype == x.dtype


def test_after_passes_gradients_to_x_only():
    x = jnp.array([1.0, 2.0])
    y = jnp.array([3.0])
    gx, gy = jax.grad(lambda x, y: jnp.sum(after(x, y * 5.0) ** 2), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(np.asarray(gx), 2 * np.asarray(x))
    np.testing.assert_array_equal(np.asarray(gy), 0.0)


@pytest.mark.parametrize("tied", [False, True])
def test_after_orders_the_compiled_program(tied):
    """The tie survives XLA's optimisation: the second QR then reads the first one's output."""
    def two(x, y):
        a = jnp.linalg.qr(x)[0]
        return a, jnp.linalg.qr(after(y, a) if tied else y)[0]

    x = jnp.ones((4, 8, 3))
    assert (unordered_lapack_calls(two, x, x) == []) == tied


@pytest.mark.parametrize("shape", [(7, 4), (1, 7, 4), (3, 7, 4), (2, 3, 4, 7)])
def test_qr_each_equals_the_batched_qr(shape, x64):
    x = jax.random.normal(jax.random.key(1), shape, jnp.float64)
    q, r = qr_each(x)
    q0, r0 = jnp.linalg.qr(x)
    np.testing.assert_allclose(np.asarray(q), np.asarray(q0), atol=1e-13)
    np.testing.assert_allclose(np.asarray(r), np.asarray(r0), atol=1e-13)
    np.testing.assert_allclose(np.asarray(qr_each(x, mode="r")), np.asarray(r0), atol=1e-13)
    np.testing.assert_allclose(np.asarray(q @ r), np.asarray(x), atol=1e-12)


@pytest.mark.slow
def test_our_functions_finish_beside_a_callers_decompositions():
    """A caller's jit with two independent principal-angle calls and its own SVD (no ties)."""
    r = _run("""
        import jax, jax.numpy as jnp
        from jaxlatent.engine import sampling
        from jaxlatent.localbasis import grassmann

        @jax.jit
        def mine(a, b, c):
            return (grassmann.principal_angles(a, b).sum() + grassmann.principal_angles(a, c).sum()
                    + jnp.linalg.svd(c, compute_uv=False).sum()
                    + sampling.random_orthonormal(key=jax.random.key(0), n=512, k=30, batch=64).sum())

        for i in range(3):
            abc = sampling.random_orthonormal(key=jax.random.key(i), n=512, k=30, batch=(3, 64))
            float(mine(abc[0], abc[1], abc[2]))
        print("done")
    """)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]


@pytest.mark.slow
def test_qr_programs_finish_when_ordered():
    """Two batched QRs in one program, tied by `after`: completes (untied they hang on 2 cores)."""
    r = _run("""
        import jax, jax.numpy as jnp
        from jaxlatent.engine.linalg import after

        @jax.jit
        def two(ka, kb):
            a = jnp.linalg.qr(jax.random.normal(ka, (64, 512, 30)))[0]
            c = jnp.linalg.qr(after(jax.random.normal(kb, (64, 512, 30)), a))[0]
            return jnp.sum(a) + jnp.sum(c)

        for i in range(5):
            ka, kb = jax.random.split(jax.random.key(i))
            float(two(ka, kb))
        print("done")
    """)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]


@pytest.mark.slow
def test_grassmann_programs_finish_on_deadlock_prone_sizes():
    r = _run("""
        import jax, jax.numpy as jnp
        from jaxlatent.engine import sampling
        from jaxlatent.localbasis import grassmann, warpage
        from jaxlatent.localdim import distortion

        for i in range(3):
            key = jax.random.key(i)
            ab = sampling.random_orthonormal(key=key, n=512, k=30, batch=(2, 64))
            float(grassmann.principal_angles(ab[0], ab[1]).sum())
            float(grassmann.pairwise_grassmann(ab[0, :24], chunk_size=5).sum())
            float(warpage._curves(ab[0], ab[1], tuple(range(1, 31)), "geodesic").sum())
            float(distortion._random_baseline(key, 64, 512, 30, jnp.dtype("float32"), "geodesic"))
            float(distortion._far_near(ab[0, :24], ab[1, :24], "geodesic")[2])
        print("done")
    """)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]


def test_unordered_lapack_calls_finds_independent_decompositions():
    x = jnp.ones((4, 8, 8))

    def eigh(m):
        return jnp.linalg.eigh(m)[0]

    def svd(m):
        return jnp.linalg.svd(m, compute_uv=False)

    pairs = unordered_lapack_calls(lambda a, b: (eigh(a), svd(b)), x, x)
    assert len(pairs) == 1 and {pairs[0][1].split(".")[0], pairs[0][2].split(".")[0]} == {"eigh", "svd"}
    # a data dependence orders them; single matrices never wait on the pool
    assert unordered_lapack_calls(lambda a, b: (e := eigh(a), svd(after(b, e))), x, x) == []
    assert unordered_lapack_calls(lambda a, b: (eigh(a[0]), svd(b[0])), x, x) == []
    # inside a loop body, and a loop beside a decomposition outside it
    in_body = unordered_lapack_calls(lambda a: jax.lax.map(lambda m: (svd(m), eigh(m)), a.reshape(2, 2, 8, 8)), x)
    assert len(in_body) == 1 and in_body[0][0] != "main"
    beside = unordered_lapack_calls(lambda a, b: (jax.lax.map(svd, a.reshape(2, 2, 8, 8)), eigh(b)), x, x)
    assert len(beside) == 1 and any(name.startswith("while") for name in beside[0][1:])


def _programs():
    key = jax.random.key(0)
    ab = sampling.random_orthonormal(key=key, n=40, k=6, batch=(2, 8))
    weights = jax.random.normal(key, (40, 5))

    def tap(z):
        return jnp.tanh(z @ weights.T)

    z = jax.random.normal(key, (4, 5))
    jac = jax.random.normal(key, (4, 40, 5))
    f32 = jnp.dtype("float32")
    return {
        "principal_angles": (jax.jit(grassmann.principal_angles), (ab[0], ab[1])),
        "grassmann_distance": (grassmann.grassmann_distance, (ab[0], ab[1])),
        "warpage curves": (warpage._curves, (ab[0], ab[1], (1, 2, 3), "geodesic")),
        "pairwise_grassmann stable, in blocks": (jax.jit(lambda b: grassmann.pairwise_grassmann(b, chunk_size=3)),
                                                 (ab[0],)),
        "pairwise_grassmann cosine (remainder)": (jax.jit(lambda b: grassmann.pairwise_grassmann(
            b, formula="cosine")), (ab[0],)),
        "random_orthonormal": (sampling._haar, (key, 40, 6, (2, 8), f32)),
        "pca_basis": (warpage.pca_basis, (jax.random.normal(key, (16, 40)), 3)),
        "jacobian_spectrum values": (jax.jit(jax.tree_util.Partial(local_dimension._spectrum_rows, 0)), (jac,)),
        "jacobian_spectrum svd": (jax.jit(jax.tree_util.Partial(local_dimension._spectrum_rows, 3)), (jac,)),
        "dimension_from_spectrum": (jax.jit(lambda s: local_dimension.dimension_from_spectrum(s, (40, 5))),
                                    (jnp.ones((4, 5)),)),
        "distortion far/near": (distortion._far_near, (ab[0], ab[1], "geodesic")),
        "distortion baseline": (distortion._random_baseline, (key, 8, 40, 6, f32, "geodesic")),
        "local_basis svd": (jax.jit(local_basis.svd_triplets), (jac,)),
        "local_basis gram": (jax.jit(local_basis.gram_triplets), (jac,)),
        "metric krylov (rounds in the program)": (
            jax.jit(jax.tree_util.Partial(geometry._krylov_rows, tap, None, True, (1, 1, 3, 5, 1e-4))),
            ((z, jax.random.key_data(jax.random.split(key, 4))),)),
        "iterative traversal": (jax.jit(traversal.traversal_program(tap, "fwd", 1.0, 4, False, True, 3)),
                                ((z, jnp.zeros(4, jnp.int32)),)),
    }


@pytest.mark.parametrize("name", list(_programs()))
def test_our_programs_run_their_decompositions_one_after_another(name):
    """Every compiled program of ours chains its batched LAPACK calls (none can deadlock another)."""
    fn, args = _programs()[name]
    assert unordered_lapack_calls(fn, *args) == []


@pytest.mark.slow
def test_tied_eigh_programs_finish():
    """Two batched eighs in one program, tied by `after`, finish (untied, they can hang on 2 cores)."""
    r = _run("""
        import jax, jax.numpy as jnp
        from jaxlatent.engine.linalg import after

        @jax.jit
        def two(ka, kb):
            a, b = jax.random.normal(ka, (64, 512, 30)), jax.random.normal(kb, (64, 512, 30))
            ea = jnp.linalg.eigh(a @ jnp.swapaxes(a, -1, -2))[0]
            b = after(b, ea)
            return jnp.sum(ea) + jnp.sum(jnp.linalg.eigh(b @ jnp.swapaxes(b, -1, -2))[0])

        for i in range(5):
            float(two(*jax.random.split(jax.random.key(i))))
        print("done")
    """)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]


def test_singular_values_of_tall_wide_and_square_matrices():
    rng = np.random.RandomState(0)
    for shape in [(3, 50, 7), (3, 7, 50), (2, 6, 6)]:
        x = rng.randn(*shape)
        # float32 SVD of O(1) matrices: absolute error a few ulp of s_1 (~1e-6)
        np.testing.assert_allclose(singular_values(jnp.asarray(x, jnp.float32)),
                                   np.linalg.svd(x, compute_uv=False), rtol=1e-5, atol=1e-5)
