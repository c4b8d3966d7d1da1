"""Distortion (Choi et al., Local Dimension Estimation): closed forms on a circle and linear maps,
numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.localdim.distortion import distortion, layer_distortions
from jaxlatent.engine.sampling import neighbours
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.localdim.thresholds import relative_threshold
from test_local_dimension import _tanh_tap


def _circle(a):
    # tangent line at z is the direction angle a*z + pi/2: it turns at rate a
    return lambda z: jnp.concatenate([jnp.cos(a * z), jnp.sin(a * z)], -1)


def _line_angle(t1, t2):
    d = np.abs(t1 - t2) % np.pi
    return np.minimum(d, np.pi - d)


def test_circle_closed_form(x64):
    a, eps, n = 1.3, 0.1, 12
    z = jax.random.normal(jax.random.PRNGKey(0), (n, 1))
    res = distortion(_circle(a), z, key=jax.random.PRNGKey(1), k=1, eps=eps, rule=1e-6)
    t = a * np.asarray(z[:, 0])
    far = _line_angle(t[:, None], t[None]).sum() / (n * (n - 1))
    assert float(res.far) == pytest.approx(far, rel=1e-10)
    assert float(res.near) == pytest.approx(a * eps, rel=1e-10)  # a 1-d neighbour is z +- eps
    assert float(res.distortion) == pytest.approx(far / (a * eps), rel=1e-10)
    np.testing.assert_allclose(res.far_distances, _line_angle(t[:, None], t[None]), atol=1e-12)
    assert int(res.k) == 1 and res.dimension.shape == (n,)


def test_far_grows_with_curvature(x64):
    z = jax.random.normal(jax.random.PRNGKey(0), (10, 1))
    key, thr = jax.random.PRNGKey(1), relative_threshold(1e-6)
    fars = [float(distortion(_circle(a), z, key=key, k=1, rule=thr).far) for a in (0.1, 0.3, 0.6)]
    assert fars[0] < fars[1] < fars[2]


def test_linear_map_has_constant_tangent_space(x64):
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.normal(size=(48, 4)))[0]
    v = np.linalg.qr(rng.normal(size=(32, 4)))[0]
    a = u @ np.diag([8.0, 6, 5, 4]) @ v.T + 0.01 * rng.normal(size=(48, 32))
    z = jnp.asarray(rng.normal(size=(6, 32)))
    res = distortion(lambda x: x @ a.T, z, key=jax.random.PRNGKey(2))
    assert int(res.k) == 4  # median of the estimated local dimensions
    np.testing.assert_array_equal(res.dimension, 4)
    assert float(res.far) < 1e-6 and float(res.near) < 1e-6
    assert float(res.baseline) > 1.0  # random 4-planes in R^48 are far apart


def test_numpy_reference_on_a_warped_map(x64):
    rng = np.random.default_rng(1)
    w1, w2 = rng.normal(size=(24, 8)), rng.normal(size=(16, 24)) / 4
    f = lambda z: jnp.tanh(z @ w1.T) @ w2.T  # noqa: E731
    z = jnp.asarray(rng.normal(size=(5, 8)))
    key, k = jax.random.PRNGKey(3), 3
    res = distortion(f, z, key=key, k=k, rule=relative_threshold(1e-8))

    def basis(x):
        jac = w2 @ np.diag(1 - np.tanh(w1 @ x) ** 2) @ w1
        return np.linalg.svd(jac)[0][:, :k]

    def geodesic(p, q):
        c = np.clip(np.linalg.svd(p.T @ q, compute_uv=False), -1, 1)
        return np.sqrt(np.sum(np.arccos(c) ** 2))

    zn = np.asarray(neighbours(key=jax.random.split(key)[0], z=z, eps=0.1))
    bs = [basis(x) for x in np.asarray(z)]
    far = np.array([[geodesic(p, q) if i != j else 0 for j, q in enumerate(bs)] for i, p in enumerate(bs)])
    near = np.array([geodesic(p, basis(x)) for p, x in zip(bs, zn)])
    np.testing.assert_allclose(res.far_distances, far, atol=1e-6)
    np.testing.assert_allclose(res.near_distances, near, atol=1e-6)
    assert float(res.distortion) == pytest.approx(far.sum() / 20 / near.mean(), rel=1e-5)
    assert float(res.distortion) > 1.0


def test_k_is_the_median_local_dimension_of_the_rule():
    """k defaults to the median local dimension: the paper's count unless ``rule`` says otherwise
    (on an exactly rank-40 tap of 64 inputs: about 24 by the median rule, 40 by the numerical)."""
    f, z, key = _tanh_tap(40, jnp.float32), jax.random.normal(jax.random.key(5), (5, 64)), jax.random.PRNGKey(2)
    for rule in ("paper", "numerical"):
        res = distortion(f, z, key=key, rule=rule)
        dims = np.asarray(local_dimension(f, z, rule=rule).dimension)
        np.testing.assert_array_equal(res.dimension, dims)
        assert int(res.k) == int(np.floor(np.median(dims) + 0.5)), rule
    assert int(res.k) == 40
    with pytest.raises(ValueError, match="local dimension rule"):
        distortion(f, z, key=key, rule="median")


def test_layer_distortions_and_errors():
    fns = {"slow": _circle(0.2), "fast": _circle(1.0)}
    z = jax.random.normal(jax.random.PRNGKey(0), (6, 1))
    res = layer_distortions(fns, z, key=jax.random.PRNGKey(1), k=1, rule=1e-6)
    assert list(res) == ["slow", "fast"] and float(res["slow"].far) < float(res["fast"].far)
    with pytest.raises(ValueError, match="N >= 2"):
        distortion(fns["slow"], z[:1], key=jax.random.PRNGKey(1), k=1)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 1\]"):
        distortion(fns["slow"], z, key=jax.random.PRNGKey(1), k=2)


def test_cli_distortion(monkeypatch, tmp_path):
    import json

    from test_local_dimension import run_cli

    argv = ["distortion", "ckpt", "--taps", "w", "--seeds", "0-4", "--out", str(tmp_path)]
    assert run_cli(monkeypatch, argv) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["taps"]["w"]["k"] == 3 and res["taps"]["w"]["far"] < 1e-2 and res["rule"] == "paper"
    assert run_cli(monkeypatch, argv + ["--rule", "numerical"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["taps"]["w"]["k"] == 32 and res["rule"] == "numerical"
    assert np.load(tmp_path / "results.npz")["w/far_distances"].shape == (5, 5)
    assert (tmp_path / "distortion.png").exists()
