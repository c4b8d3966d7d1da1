"""Interventions on latent dimensions: closed forms of each kind, the batched grid, chunking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlatent.correlation.interventions import (class_probs, apply_intervention, intervene, intervention_probs,
                                              select_samples, single_dim_grid)


def _toy():
    w = jnp.asarray(np.random.RandomState(0).randn(3, 5), jnp.float32)
    g = jax.tree_util.Partial(lambda w, z: jnp.tanh(z)[:, None, :] * 2.0 + z[:, None, :1] * w[None, :1], w)
    clf = jax.tree_util.Partial(lambda w, x: x[:, 0, :] @ w.T, w)
    return g, clf


def test_edit_kinds_closed_form():
    z = np.array([[1.0, -2.0, 4.0, 1.0]], np.float32)     # mean 1
    mask = np.array([[0.0, 1.0, 0.5, 0.0]], np.float32)
    a = np.array([[9.0, 3.0, 2.0, 9.0]], np.float32)
    np.testing.assert_allclose(apply_intervention(z, mask, a, "set"), [[1.0, 3.0, 3.0, 1.0]])
    np.testing.assert_allclose(apply_intervention(z, mask, a, "shift"), [[1.0, 1.0, 5.0, 1.0]])
    # the follow-up's multiplicative form: z_i (1 + a_i mean(z))
    np.testing.assert_allclose(apply_intervention(z, mask, a, "scale"), [[1.0, -8.0, 8.0, 1.0]])
    for kind in ("set", "shift", "scale"):     # a zero mask is the identity for every kind
        np.testing.assert_array_equal(apply_intervention(z, np.zeros_like(mask), a, kind), z)
    with pytest.raises(ValueError, match="kind must be one of"):
        apply_intervention(z, mask, a, "swap")


def test_intervene_grid_matches_a_loop():
    z = np.random.RandomState(1).randn(3, 5).astype(np.float32)
    dims, values = [4, 0], [-1.5, 0.0, 2.0]
    center, scale = np.arange(5.0), np.linspace(0.5, 1.5, 5)
    out = np.asarray(intervene(z, dims, values, kind="set", center=center, scale=scale))
    shifted = np.asarray(intervene(z, dims, values, kind="shift", center=center, scale=scale))
    assert out.shape == (3, 2, 3, 5)
    for n in range(3):
        for k, d in enumerate(dims):
            for v, val in enumerate(values):
                want = z[n].copy()
                want[d] = center[d] + val * scale[d]
                np.testing.assert_allclose(out[n, k, v], want, rtol=1e-6)
                want = z[n].copy()
                want[d] += val * scale[d]
                np.testing.assert_allclose(shifted[n, k, v], want, rtol=1e-6)
    mask, amount = single_dim_grid(5, dims, values)
    assert mask.shape == amount.shape == (6, 5) and float(mask.sum()) == 6.0


def test_probs_chunk_invariant_and_samples():
    g, clf = _toy()
    z = np.random.RandomState(2).randn(7, 5).astype(np.float32)
    mask, amount = single_dim_grid(5, range(5), [-2.0, 2.0])
    full = intervention_probs(g, clf, z, mask, amount)
    # other batch shapes of the same float32 program: rounding only (a few ulp of p <= 1)
    np.testing.assert_allclose(intervention_probs(g, clf, z, mask, amount, chunk_size=3), full, atol=1e-6)
    want = jax.nn.softmax(clf(g(jnp.asarray(intervene(z, range(5), [-2.0, 2.0])).reshape(-1, 5))))
    np.testing.assert_allclose(full, np.asarray(want).reshape(7, 10, 3), atol=1e-6)
    base = class_probs(g, clf, z)
    np.testing.assert_allclose(base, jax.nn.softmax(clf(g(z))), atol=1e-6)
    label = np.asarray(base).argmax(1)
    np.testing.assert_array_equal(select_samples(base, source=None, target=0), np.flatnonzero(label != 0))
    src = int(label[0])
    np.testing.assert_array_equal(select_samples(base, source=src, target=None), np.flatnonzero(label == src))
    with pytest.raises(ValueError, match="none of the 7 samples"):
        select_samples(base, source=src, target=None, min_prob=1.01)
    with pytest.raises(ValueError, match="masks have 4 dimensions"):
        intervention_probs(g, clf, z, np.zeros((2, 4)), 0.0)
