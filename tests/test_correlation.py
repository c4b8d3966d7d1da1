"""Concept effects: the toy oracle, a float64 numpy loop, bootstrap intervals, chunks and devices."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.correlation.effects import bootstrap_weights, concept_effects

D = 10


def oracle_g(z):
    """A generator whose "image" is the latent squashed: every dim reaches the image."""
    return (jnp.tanh(z / 4) * 4)[:, None, :]


def oracle_classifier(x):
    """Three concepts; only dims 3 and 7 decide them: class 1 needs x3 - x7 > 4, class 2 < -4."""
    u = x[:, 0, 3] - x[:, 0, 7]
    return jnp.stack([jnp.zeros_like(u), 3 * (u - 4), 3 * (-u - 4)], axis=1)


def test_oracle_importance_only_on_dims_3_and_7():
    z = jax.random.normal(jax.random.key(0), (64, D))
    e = concept_effects(oracle_g, oracle_classifier, z, key=jax.random.key(1), num_bootstrap=50)
    others = [i for i in range(D) if i not in (3, 7)]
    for field in (e.sensitivity, e.effect, e.correlation):
        assert np.abs(np.asarray(field)[others]).max() < 1e-6
    sens = np.asarray(e.sensitivity)
    assert sens[[3, 7]].min() > 0.05
    eff = np.asarray(e.effect)
    assert eff[3, 1] > 0 and eff[7, 1] < 0 and eff[3, 2] < 0 and eff[7, 2] > 0
    corr = np.asarray(e.correlation)
    assert corr[3, 1] > 0.2 and corr[7, 1] < -0.2
    low, high = np.asarray(e.intervals.sensitivity)
    assert np.all(low <= sens + 1e-7) and np.all(sens <= high + 1e-7) and low[3, 1] > 0
    assert e.intervals.effect.shape == (2, D, 3) and e.base_probs.shape == (64, 3)


def _measures_numpy(g, clf, z, values):
    """Plain loops over samples, dims and values in float64; returns per-sample arrays."""
    n, d = z.shape
    softmax = lambda a: np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    base = np.stack([softmax(clf(g(z[i]))) for i in range(n)])
    c = base.shape[1]
    p = np.zeros((n, d, len(values), c))
    for i in range(n):
        for j in range(d):
            for k, v in enumerate(values):
                zz = z[i].copy()
                zz[j] = v
                p[i, j, k] = softmax(clf(g(zz)))
    return base, p


def _summaries(base, p, values, w):
    n, d, nv, c = p.shape
    values = np.asarray(values, np.float64)
    sens, eff, corr, flip = (np.zeros((d, c)) for _ in range(4))
    hi, lo = int(np.argmax(values)), int(np.argmin(values))
    label = base.argmax(1)
    for j in range(d):
        for ci in range(c):
            sens[j, ci] = sum(w[i] * np.abs(p[i, j] [:, ci] - base[i, ci]).max() for i in range(n)) / w.sum()
            eff[j, ci] = sum(w[i] * (p[i, j, hi, ci] - p[i, j, lo, ci]) for i in range(n)) / w.sum()
            xs = np.repeat(values[None], n, 0).ravel()
            ys = p[:, j, :, ci].ravel()
            ws = np.repeat(w[:, None], nv, 1).ravel()
            mx, my = np.average(xs, weights=ws), np.average(ys, weights=ws)
            cov = np.average((xs - mx) * (ys - my), weights=ws)
            sd = np.sqrt(np.average((xs - mx) ** 2, weights=ws) * np.average((ys - my) ** 2, weights=ws))
            corr[j, ci] = cov / sd
            out = label != ci
            moved = (p[:, j].argmax(-1) == ci).any(-1) & out
            flip[j, ci] = (w * moved).sum() / (w * out).sum() if (w * out).sum() > 0 else np.nan
    return sens, eff, corr, flip


def test_float64_reference_and_bootstrap(x64):
    rs = np.random.RandomState(3)
    a, b = rs.randn(6, 4), rs.randn(3, 6)
    g_np = lambda z: np.tanh(a @ z)
    clf_np = lambda x: 2.0 * b @ x
    g = lambda z: jnp.tanh(z @ jnp.asarray(a).T)
    clf = lambda x: 2.0 * x @ jnp.asarray(b).T
    z = rs.randn(9, 4)
    values = [-2.0, 0.5, 1.5]
    key = jax.random.key(4)
    e = concept_effects(g, clf, z, values=values, key=key, num_bootstrap=30, level=0.8)
    base, p = _measures_numpy(g_np, clf_np, z, values)
    np.testing.assert_allclose(e.base_probs, base, atol=1e-12)
    want = _summaries(base, p, values, np.ones(9))
    got = (e.sensitivity, e.effect, e.correlation, e.flip_rate)
    for x, y in zip(got, want):
        np.testing.assert_allclose(np.asarray(x), y, atol=1e-10)
    # percentile intervals over the same resamples, recomputed by the loops above
    reps = np.stack([np.stack(_summaries(base, p, values, w)) for w in np.asarray(bootstrap_weights(key, 30, 9))])
    fields = e.intervals
    for f, field in enumerate((fields.sensitivity, fields.effect, fields.correlation, fields.flip_rate)):
        want = np.nanquantile(reps[:, f], [0.1, 0.9], axis=0)
        np.testing.assert_allclose(np.asarray(field), want, atol=1e-10)


def test_chunking_does_not_change_effects():
    z = jax.random.normal(jax.random.key(5), (13, D))
    one = concept_effects(oracle_g, oracle_classifier, z, values=(-3.0, 0.0, 3.0))
    chunked = concept_effects(oracle_g, oracle_classifier, z, values=(-3.0, 0.0, 3.0), chunk_size=4)
    # the same float32 program on other batch shapes: rounding of probabilities <= 1 only
    for x, y in zip(one[:4], chunked[:4]):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)


DEVICES = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    assert len(jax.devices()) == 4, jax.devices()
    from jaxlatent.engine.parallel import batch_mesh
    from jaxlatent.correlation.effects import concept_effects
    from jaxlatent.correlation.controlling import controlling_set
    from jaxlatent.correlation.translation import translate

    g = lambda z: (jnp.tanh(z / 4) * 4)[:, None, :]
    def clf(x):
        u = x[:, 0, 3] - x[:, 0, 7]
        return jnp.stack([jnp.zeros_like(u), 3 * (u - 4), 3 * (-u - 4)], axis=1)
    z = jax.random.normal(jax.random.key(0), (37, 10))
    single, mesh = batch_mesh([jax.devices()[0]]), batch_mesh()
    def close(a, b):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)   # float32 rounding
    key = jax.random.key(1)
    ref = concept_effects(g, clf, z, mesh=single)
    close(concept_effects(g, clf, z, mesh=mesh, chunk_size=8), ref)
    close(concept_effects(g, clf, z, use_pmap=True, chunk_size=64), ref)
    cs = controlling_set(g, clf, z, target=1, mesh=single, chunk_size=64)
    close(controlling_set(g, clf, z, target=1, mesh=mesh, chunk_size=64), cs)
    tr = translate(g, clf, z, target=1, dims=cs.dims, signs=cs.all_signs, key=key, mesh=single, chunk_size=64)
    close(translate(g, clf, z, target=1, dims=cs.dims, signs=cs.all_signs, key=key, mesh=mesh, chunk_size=64), tr)
    print("OK", cs.dims.tolist())
""")


def test_four_host_devices_equal_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", DEVICES], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and "OK [3, 7]" in proc.stdout, proc.stderr[-3000:]
