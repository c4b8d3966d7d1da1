"""Spreading over chunks and devices: results equal the single-device ones.

The multi-device checks run in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the flag must be set
before JAX starts), comparing sharded (shard_map over a batch mesh) and pmap
runs of the Jacobian, Local Basis, top-k and traversal with one-device runs.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.engine.parallel import CPU_TANGENT_BYTES, Pieces, batch_mesh, map_batched, piece_size, shard_batch
from helpers import run_jax_processes


def test_single_device_mesh_and_padding():
    mesh = batch_mesh()
    x, n = shard_batch(jnp.arange(5.0)[:, None], mesh)
    assert n == 5 and x.shape[0] % len(jax.devices()) == 0
    out = map_batched(lambda a: {"sq": a ** 2}, jnp.arange(7.0)[:, None], chunk_size=3, mesh=mesh)
    np.testing.assert_allclose(out["sq"][:, 0], np.arange(7.0) ** 2)
    out = map_batched(lambda a: a + 1, jnp.arange(7.0), chunk_size=4, use_pmap=True)
    np.testing.assert_allclose(out, np.arange(7.0) + 1)


def test_blas_threads_limited_during_calls_and_restored():
    from threadpoolctl import threadpool_info

    from jaxlatent.engine.threads import single_blas_thread

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    seen = []
    with single_blas_thread():
        seen = blas_threads()
    assert seen and all(n == 1 for n in seen)
    assert blas_threads() == before


def test_progress_option_spellings():
    from jaxlatent.engine.parallel import progress_wrapper

    assert progress_wrapper(False) is None and progress_wrapper(None) is None
    assert list(progress_wrapper(True)(range(3))) == [0, 1, 2]
    out = map_batched(lambda a: a * 2, jnp.arange(5.0), chunk_size=2, progress=True)
    np.testing.assert_allclose(out, np.arange(5.0) * 2)
    with pytest.raises(ValueError, match="progress"):
        progress_wrapper("yes")


def test_map_batched_pytrees_and_progress():
    seen = []

    def progress(it):
        for x in it:
            seen.append(x)
            yield x

    z = (jnp.arange(10.0), jnp.ones((10, 2)))
    out = map_batched(lambda t: t[0][:, None] * t[1], z, chunk_size=4, progress=progress)
    assert out.shape == (10, 2) and seen == [0, 4, 8]
    with pytest.raises(ValueError, match="empty"):
        map_batched(lambda a: a, jnp.ones((0, 2)))


def test_pieces_stage_runs_a_few_rows_at_a_time_with_one_program():
    calls = []

    def stage(x):                       # records the row count of every traced call
        calls.append(x.shape[0])
        return {"twice": 2 * x}

    # integer arithmetic: the same values whatever the pieces, so equality is exact
    x = jnp.arange(22, dtype=jnp.int32).reshape(11, 2)
    out = map_batched((Pieces(stage, 3), lambda d: d["twice"] + 1), x, chunk_size=8)
    np.testing.assert_array_equal(out, 2 * np.arange(22).reshape(11, 2) + 1)
    # chunks of 8 (the last padded), pieces of 3 (the last of each chunk padded): one shape
    assert set(calls) == {3}
    # rows at or above the chunk: the stage sees the whole chunk
    calls.clear()
    map_batched(Pieces(stage, 16), x, chunk_size=8)
    assert set(calls) == {8}


def test_piece_size_rule():
    work = 30 * 2 ** 20                  # a 128-d latent through a small conv generator
    assert piece_size(work, 64) == 4     # largest power of two within CPU_TANGENT_BYTES
    assert piece_size(work, 2) == 2      # never more than the chunk
    assert piece_size(10 ** 12, 64) == 1
    assert piece_size(1, 64) == 64
    assert 4 * work <= CPU_TANGENT_BYTES < 8 * work


SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    assert len(jax.devices()) == 4, jax.devices()
    from jaxlatent.engine.parallel import batch_mesh
    from jaxlatent.engine.jacobian import jacobian
    from jaxlatent.localbasis.basis import local_basis, local_basis_topk
    from jaxlatent.localbasis.traversal import iterative_traversal

    k1, k2 = jax.random.split(jax.random.key(0))
    w1 = jax.random.normal(k1, (24, 6)) / 2.0
    w2 = jax.random.normal(k2, (10, 24)) / 4.0
    f = jax.tree_util.Partial(lambda a, b, z: jnp.tanh(jnp.tanh(z @ a.T) @ b.T), w1, w2)
    z = jax.random.normal(jax.random.key(1), (11, 6))
    one = [jax.devices()[0]]
    mesh, single = batch_mesh(), batch_mesh(one)

    # each device runs its own batch shape (11, 5, 3 or 2 rows), so XLA compiles other kernels
    # whose float32 summation order differs: entries of size ~1 agree to a few ulp, and singular
    # vectors carry that over amplified by 1 / (gap between singular values), ~20 here: 1e-5
    def close(a, b, atol=1e-5):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)

    ref = jacobian(f, z, mesh=single)
    close(jacobian(f, z, mesh=mesh, chunk_size=5), ref)
    close(jacobian(f, z, use_pmap=True, chunk_size=5), ref)
    close(jacobian(f, z), ref)
    lb = local_basis(f, z, k=4, mesh=single)
    close(local_basis(f, z, k=4, mesh=mesh), lb)
    close(local_basis(f, z, k=4, use_pmap=True, chunk_size=8), lb)
    key = jax.random.key(2)
    tk = local_basis_topk(f, z, k=3, key=key, tol=1e-5, mesh=single)
    # an iterative solver stopped at tol 1e-5: on top of rounding, the stop may fall one round
    # apart in the two programs (values and vectors then differ by well under the tolerance)
    close(local_basis_topk(f, z, k=3, key=key, tol=1e-5, mesh=mesh, chunk_size=4), tk, atol=1e-4)
    tr = iterative_traversal(f, z[:5], index=0, sigma=0.5, steps=6, frames=3, mesh=single)
    close(iterative_traversal(f, z[:5], index=0, sigma=0.5, steps=6, frames=3, mesh=mesh), tr)
    print("OK")
""")


def test_four_host_devices_equal_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


MULTIHOST = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address="localhost:" + sys.argv[2], num_processes=2,
                               process_id=int(sys.argv[1]))
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils
    import jaxlatent
    from jaxlatent.engine.parallel import batch_mesh

    assert jax.process_count() == 2 and jax.device_count() == 2 * jax.local_device_count()
    w = jnp.asarray(np.random.RandomState(0).randn(5, 3), jnp.float32)
    f = jax.tree_util.Partial(lambda w, z: jnp.tanh(z @ w.T) + 0.1 * z[:, :1] ** 2, w)
    z = np.random.RandomState(1).randn(7, 3).astype(np.float32)   # same global batch on both hosts
    got = jaxlatent.local_basis(f, z, mesh=batch_mesh(), chunk_size=4)          # spans both hosts
    got = multihost_utils.process_allgather(got, tiled=True)
    want = jaxlatent.local_basis(f, z)                                          # this host alone
    for a, b in zip(got, want):
        assert a.shape == b.shape, (a.shape, b.shape)
        # chunks of 4 split over two processes against one batch of 7: two programs (see above)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    print("MULTIHOST OK", jax.process_index(), flush=True)
""")


def test_two_processes_under_jax_distributed_equal_one():
    """Multi-host: two processes (jax.distributed on localhost, gloo collectives) share one mesh."""
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    for i, (returncode, out, err) in enumerate(run_jax_processes(MULTIHOST, lambda i: [], env)):
        assert returncode == 0 and f"MULTIHOST OK {i}" in out, err[-3000:]
