"""Local Basis: closed forms, float64 numpy SVD, matrix-free top-k, and the reference code's outputs."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.localbasis.grassmann import grassmann_distance, principal_angles
from jaxlatent.engine.jacobian import jacobian
from jaxlatent.localbasis.basis import (LocalBasis, decomposition_bytes, fix_signs, local_basis,
                                            local_basis_topk)

GOLDEN = pathlib.Path(__file__).parent / "golden" / "localbasis" / "map512.npz"
TOOL = pathlib.Path(__file__).parent / "golden" / "tools" / "make_localbasis_golden.py"


def _mlp(key, sizes, dtype=jnp.float32):
    keys = jax.random.split(key, len(sizes) - 1)
    ws = [jax.random.normal(k, (o, i), dtype) / np.sqrt(i) for k, i, o in zip(keys, sizes[:-1], sizes[1:])]

    def f(z):
        h = z
        for w in ws:
            h = jnp.tanh(h @ w.T)
        return h

    return f


def test_linear_map_closed_form():
    rng = np.random.RandomState(0)
    u, _ = np.linalg.qr(rng.standard_normal((12, 4)))
    v, _ = np.linalg.qr(rng.standard_normal((6, 4)))
    s = np.array([5.0, 3.0, 2.0, 0.5])
    a = jnp.asarray((u * s) @ v.T, jnp.float32)                       # rank 4, (12, 6)
    z = jnp.asarray(rng.standard_normal((3, 6)), jnp.float32)
    res = local_basis(lambda x: x @ a.T, z, k=4)
    assert isinstance(res, LocalBasis)
    assert res.singular_values.shape == (3, 4) and res.basis.shape == (3, 12, 4)
    assert res.directions.shape == (3, 6, 4)
    np.testing.assert_allclose(res.singular_values, np.broadcast_to(s, (3, 4)), rtol=1e-5)
    assert float(jnp.max(principal_angles(res.basis, jnp.asarray(u, jnp.float32)))) < 1e-3
    full = local_basis(lambda x: x @ a.T, z)
    assert full.singular_values.shape == (3, 6)
    np.testing.assert_allclose(full.singular_values[:, 4:], 0.0, atol=1e-5)  # rank 4


def test_sphere_tangent_space():
    # stereographic-like chart of the unit sphere S^2 in R^3, embedded in R^7 by an isometry
    q, _ = np.linalg.qr(np.random.RandomState(1).standard_normal((7, 3)))
    q = jnp.asarray(q, jnp.float32)

    def f(z):
        p = jnp.stack([jnp.cos(z[:, 0]) * jnp.cos(z[:, 1]), jnp.cos(z[:, 0]) * jnp.sin(z[:, 1]),
                       jnp.sin(z[:, 0])], axis=-1)
        return p @ q.T

    z = jnp.asarray([[0.3, 0.2], [-0.7, 1.1], [0.1, -2.0]], jnp.float32)
    res = local_basis(f, z)
    p = f(z)
    # the tangent plane is orthogonal to the position vector, inside span(q)
    assert float(jnp.max(jnp.abs(jnp.einsum("no,nok->nk", p, res.basis)))) < 1e-5
    proj = jnp.einsum("ok,nol->nkl", q, res.basis)
    np.testing.assert_allclose(jnp.linalg.norm(proj, axis=1), 1.0, atol=1e-5)
    # metric of the chart: singular values 1 and cos(latitude)
    expect = np.sort(np.stack([np.ones(3), np.abs(np.cos(np.asarray(z[:, 0])))], 1), axis=1)[:, ::-1]
    np.testing.assert_allclose(res.singular_values, expect, rtol=1e-5)


def test_float64_against_numpy_svd_and_signs(x64):
    f = _mlp(jax.random.key(0), [5, 16, 9], jnp.float64)
    z = jax.random.normal(jax.random.key(1), (4, 5), jnp.float64)
    res = local_basis(f, z, chunk_size=3)
    assert res.singular_values.dtype == jnp.float64
    jac = np.asarray(jacobian(f, z))
    for n in range(4):
        u, s, vt = np.linalg.svd(jac[n], full_matrices=False)
        np.testing.assert_allclose(res.singular_values[n], s, rtol=1e-12)
        sign = np.sign(vt[np.arange(5), np.argmax(np.abs(vt), axis=1)])
        np.testing.assert_allclose(res.directions[n], (vt * sign[:, None]).T, atol=1e-10)
        np.testing.assert_allclose(res.basis[n], u * sign, atol=1e-10)
    gram = local_basis(f, z, method="gram")
    np.testing.assert_allclose(gram.singular_values, res.singular_values, rtol=1e-8)
    np.testing.assert_allclose(gram.basis, res.basis, atol=1e-7)


def test_fix_signs_convention():
    v = jnp.asarray([[[0.1, -0.9], [-0.8, 0.2]]])
    u = jnp.asarray([[[1.0, 1.0], [0.0, 0.0]]])
    u2, v2 = fix_signs(u, v)
    np.testing.assert_allclose(v2, [[[-0.1, 0.9], [0.8, -0.2]]])
    np.testing.assert_allclose(u2, [[[-1.0, -1.0], [0.0, 0.0]]])


def test_gram_solver_wide_jacobian():
    f = _mlp(jax.random.key(2), [10, 6])            # out < in: the Gram of J J^T
    z = jax.random.normal(jax.random.key(3), (3, 10))
    a, b = local_basis(f, z), local_basis(f, z, method="gram")
    np.testing.assert_allclose(b.singular_values, a.singular_values, rtol=1e-4)
    np.testing.assert_allclose(b.directions, a.directions, atol=1e-4)


def test_topk_matches_full():
    f = _mlp(jax.random.key(4), [8, 32, 24])
    z = jax.random.normal(jax.random.key(5), (5, 8))
    full = local_basis(f, z, k=3)
    top = local_basis_topk(f, z, k=3, key=jax.random.key(6), tol=1e-5, chunk_size=2)
    assert np.all(np.asarray(top.converged)) and np.all(np.asarray(top.residual) <= 1e-5)
    np.testing.assert_allclose(top.singular_values, full.singular_values, rtol=1e-4)
    np.testing.assert_allclose(top.basis, full.basis, atol=1e-3)
    np.testing.assert_allclose(top.directions, full.directions, atol=1e-3)


def test_auto_chunk_size_rule():
    from jaxlatent.engine.parallel import CPU_CHUNK_BYTES, auto_chunk_size

    per = decomposition_bytes(512, 512)                    # float32 512 x 512: 8 MiB a latent
    assert per == 4 * 8 * 512 * 512
    assert auto_chunk_size(per, 1000) == CPU_CHUNK_BYTES // per
    assert auto_chunk_size(per, 3) == 3                    # never more than the batch
    assert auto_chunk_size(10 ** 12, 50) == 1              # at least one latent
    assert auto_chunk_size(per, 1000) & (auto_chunk_size(per, 1000) - 1) == 0  # a power of two


def test_default_options_equal_explicit_chunks():
    f = _mlp(jax.random.key(7), [6, 20, 9])
    z = jax.random.normal(jax.random.key(8), (11, 6))
    auto = local_basis(f, z)
    one = local_basis(f, z, chunk_size=1)
    # batch of 11 against batches of 1: two compiled programs, float32 rounding of O(1) values,
    # singular vectors amplified by 1 / (relative gap ~ 0.05)
    for a, b in zip(auto, one):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_bad_inputs_say_what_was_found():
    f = _mlp(jax.random.key(0), [4, 3])
    with pytest.raises(ValueError, match="found shape"):
        local_basis(f, jnp.ones((4,)))
    with pytest.raises(ValueError, match="k must lie in"):
        local_basis(f, jnp.ones((2, 4)), k=7)
    with pytest.raises(ValueError, match="method"):
        local_basis(f, jnp.ones((2, 4)), method="qr")


# ----- golden data from the reference Local Basis code (isno0907/localbasis) --------------------

def _golden_mapping():
    spec = importlib.util.spec_from_file_location("make_localbasis_golden", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config

    config = StyleGAN2Config(z_dim=512, w_dim=512, mapping_layers=8, mapping_lr_multiplier=0.01,
                             img_resolution=4, channel_base=64, channel_max=8)
    model = StyleGAN2.init(config, jax.random.key(0))
    layers = tool.mapping_weights()
    for k, (w, b) in enumerate(layers):  # rosinality style.{k+1} -> NVlabs mapping.fc{k}, unchanged
        model.params["mapping"][f"fc{k}"]["weight"] = jnp.asarray(w)
        model.params["mapping"][f"fc{k}"]["bias"] = jnp.asarray(b)
    return model, layers


@pytest.fixture(scope="module")
def golden():
    data = dict(np.load(GOLDEN))
    model, layers = _golden_mapping()
    np.testing.assert_allclose([w.astype(np.float64).sum() for w, _ in layers], data["weight_checksum"])
    f = model.fn("w")
    res = local_basis(f, jnp.asarray(data["z"]), k=64)
    return data, f, res


def test_golden_mapping_and_jacobian(golden):
    data, f, _ = golden
    np.testing.assert_allclose(f(jnp.asarray(data["z"])), data["w"], rtol=1e-5, atol=1e-5)
    jac = jacobian(f, jnp.asarray(data["z"][:2]))
    scale = np.abs(data["jacobian"]).max()
    np.testing.assert_allclose(jac / scale, data["jacobian"] / scale, atol=2e-5)
    jac_rev = jacobian(f, jnp.asarray(data["z"][:2]), mode="rev")
    np.testing.assert_allclose(jac_rev / scale, data["jacobian"] / scale, atol=2e-5)


def test_golden_singular_values_and_subspaces(golden):
    data, _, res = golden
    s_ref = data["singular_values"][:, :64]
    # the Jacobian's spectrum decays fast; float32 resolves values down to ~1e-2 of the largest
    keep = s_ref / s_ref[:, :1] > 1e-2
    rel = np.abs(np.asarray(res.singular_values) - s_ref) / s_ref
    assert rel[keep].max() < 1e-4
    for d in (1, 2, 5, 10, 30):
        theta = principal_angles(res.basis[:, :, :d], jnp.asarray(data["U"][:, :, :d]))
        assert float(jnp.max(theta)) < 2e-3, d
        theta_v = principal_angles(res.directions[:, :, :d], jnp.asarray(data["V"][:, :, :d]))
        assert float(jnp.max(theta_v)) < 2e-3, d


def test_golden_grassmann_distances(golden):
    data, f, res = golden
    near = local_basis(f, jnp.asarray(data["z_near"]), k=64)
    for metric in ("geodesic", "proj"):
        for j, d in enumerate(data["subspace_dims"]):
            got = grassmann_distance(res.basis[jnp.asarray([0, 2])], res.basis[jnp.asarray([1, 3])],
                                     metric=metric, k=int(d))
            np.testing.assert_allclose(got, data[f"dist_{metric}_pairs"][:, j], rtol=1e-3, atol=1e-3)
            got_near = grassmann_distance(res.basis[0], near.basis[0], metric=metric, k=int(d))
            np.testing.assert_allclose(got_near, data[f"dist_{metric}_near"][j], rtol=1e-3, atol=2e-3)


def test_cli_local_basis_and_grassmann(tmp_path):
    import argparse

    import jaxlatent
    from jaxlatent.cli import grassmann
    from jaxlatent.cli import local_basis
    from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config

    def main(argv):  # the geometry commands alone, as jaxlatent.cli.main dispatches them
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        local_basis.register(sub)
        grassmann.register(sub)
        args = parser.parse_args(argv)
        try:
            return args.func(args)
        except ValueError:
            return 2

    config = StyleGAN2Config(z_dim=8, w_dim=12, mapping_layers=2, img_resolution=4, channel_base=16,
                             channel_max=4)
    ckpt = jaxlatent.save(StyleGAN2.init(config, jax.random.key(0)), tmp_path / "model")
    out = tmp_path / "lb"
    assert main(["local-basis", str(ckpt), "--tap", "w", "--seeds", "0-5", "--k", "4", "--out", str(out),
                 "--chunk-size", "4"]) == 0
    data = np.load(out / "local_basis.npz")
    assert data["singular_values"].shape == (6, 4) and data["basis"].shape == (6, 12, 4)
    assert (out / "spectrum.png").exists()
    out = tmp_path / "gr"
    assert main(["grassmann", str(ckpt), "--seeds", "0-7", "--k", "3", "--out", str(out)]) == 0
    data = np.load(out / "grassmann.npz")
    assert data["distances"].shape == (8, 8) and data["warpage/haar"].shape == (4, 3)
    assert (out / "distances.png").exists() and (out / "warpage.png").exists()
    assert main(["grassmann", str(ckpt), "--tap", "nope", "--out", str(out)]) == 2


def test_golden_mapping_batches_of_nine_equal_one_at_a_time(golden):
    """Forward-mode Jacobians of a whole batch: every row, not only the first, is its latent's.

    (On this 8x512 mapping network, vmap over samples around jacfwd computed every row but the
    first of a batch of 8 or more ~10 % off under XLA 0.10 on CPU; the batch is now pushed
    forward at once.)
    """
    _, f, _ = golden
    z = jax.random.normal(jax.random.key(9), (9, 512))
    batch = jacobian(f, z, chunk_size=9)
    one = jacobian(f, z, chunk_size=1)
    # batch of 9 against batches of 1: two compiled programs, float32 rounding of the 8 products
    scale = float(jnp.max(jnp.abs(one)))
    np.testing.assert_allclose(batch / scale, one / scale, atol=1e-5)
