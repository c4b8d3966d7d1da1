"""Every place the library maps a forward-mode transform over samples, at batch 16 on the
512-wide mapping network, equals the same call one latent at a time.

jaxlib 0.10.2 miscompiled vmapped forward-mode Jacobians on CPU (docs/known-issues.md); the
library's own engine pushes a whole batch through one ``jvp``/``linearize``, and these tests
guard each such place at the size where the fault showed: Jacobians in both modes, the Local
Basis (full and top-k), local dimension, the metric tensor by every method with the default
distance and with a user distance that squares before reducing (the distance's
Hessian-vector products), the iterative traversal, Hessian-aware inversion and the
correlation analysis's concept effects.

Batched and one-at-a-time calls are different programs: values agree to float32 rounding of
the same quantity (relative 1e-4; the fault was 5e-2 and more), directions by ``|cos|``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from helpers import golden_stylegan2

N = 16


@pytest.fixture(scope="module")
def model():
    return golden_stylegan2("map512")


@pytest.fixture(scope="module")
def z(model):
    """16 latents away from leaky-ReLU kinks (one-at-a-time fwd and rev Jacobians of w agree)."""
    f = model.fn("w")
    g = lambda z1: f(z1[None])[0]
    fwd, rev = jax.jit(jax.jacfwd(g)), jax.jit(jax.jacrev(g))
    cand = np.random.RandomState(7).randn(24, model.z_dim).astype(np.float32)
    keep = [c for c in cand if rel(fwd(c), rev(c)) < 1e-5]
    assert len(keep) >= N
    return jnp.asarray(np.stack(keep[:N]))


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def one_at_a_time(call, z):
    """``call`` on each latent alone, results stacked along the batch axis."""
    outs = [call(z[i:i + 1]) for i in range(z.shape[0])]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *outs)


def same_values(batched, single, tol=1e-4):
    for i in range(N):
        assert rel(batched[i], single[i]) < tol, (i, rel(batched[i], single[i]))


def same_directions(batched, single, k, tol=1e-3):
    """Columns ``[..., :k]`` equal up to sign (k with clear gaps to the next value)."""
    for i in range(N):
        cos = np.abs(np.sum(np.asarray(batched[i])[..., :k] * np.asarray(single[i])[..., :k], axis=0))
        assert np.all(cos > 1 - tol), (i, cos)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobian(model, z, mode):
    f = model.fn("w")
    same_values(jaxlatent.jacobian(f, z, mode=mode), one_at_a_time(lambda x: jaxlatent.jacobian(f, x, mode=mode), z))


def test_local_basis_and_dimension(model, z):
    f = model.fn("mapping.fc3")
    got = jaxlatent.local_basis(f, z)
    want = one_at_a_time(lambda x: jaxlatent.local_basis(f, x), z)
    same_values(got.singular_values, want.singular_values)
    same_directions(got.directions, want.directions, 3)
    dims = jaxlatent.local_dimension(f, z).dimension
    assert np.array_equal(dims, one_at_a_time(lambda x: jaxlatent.local_dimension(f, x).dimension, z))


def test_top_singular(model, z):
    f = model.fn("w")
    key = jax.random.key(0)
    got = jaxlatent.local_basis_topk(f, z, k=8, key=key)
    want = one_at_a_time(lambda x: jaxlatent.local_basis_topk(f, x, k=8, key=key), z)
    same_values(got.singular_values, want.singular_values)
    same_directions(got.directions, want.directions, 3)


# a user's distance that squares before it reduces: the pattern jaxlib 0.10.2 miscompiled
def squared_log_distance(x0, x):
    d = jnp.reshape(x - x0, (x.shape[0], -1))
    return jnp.mean(jnp.log1p(jnp.square(d)), axis=1)


@pytest.mark.parametrize("method,distance", [("full", None), ("krylov", None), ("lobpcg", None),
                                             ("full", squared_log_distance),
                                             ("krylov", squared_log_distance)])
def test_metric_tensor(model, z, method, distance):
    g = model.fn("w")
    opts = dict(method=method, distance=distance)
    if method != "full":
        opts.update(k=6, key=jax.random.key(1))
    got = jaxlatent.metric_tensor(g, z, **opts)
    want = one_at_a_time(lambda x: jaxlatent.metric_tensor(g, x, **opts), z)
    same_values(got.eigenvalues, want.eigenvalues, tol=1e-4 if method != "lobpcg" else 1e-3)
    same_directions(got.eigenvectors, want.eigenvectors, 3, tol=1e-3)


def test_iterative_traversal(model, z):
    f = model.fn("mapping.fc3")
    got = jaxlatent.iterative_traversal(f, z, index=0, sigma=2.0, steps=6, frames=3)
    want = one_at_a_time(lambda x: jaxlatent.iterative_traversal(f, x, index=0, sigma=2.0, steps=6, frames=3), z)
    same_values(got.latents, want.latents, tol=1e-4)


def test_inversion(model, z):
    g = model.fn("w")
    targets = g(z + 0.3)
    basis = jaxlatent.metric_tensor(g, z, method="full").eigenvectors
    got = jaxlatent.invert(g, targets, z, basis=basis, k=32, steps=5)
    want = one_at_a_time(lambda x: jaxlatent.invert(g, g(x + 0.3), x,
                                                    basis=jaxlatent.metric_tensor(g, x, method="full").eigenvectors,
                                                    k=32, steps=5), z)
    same_values(got.z, want.z, tol=1e-4)


def test_concept_effects(model, z):
    g = model.fn("image")
    w = np.random.RandomState(3).randn(3 * 8 * 8, 4).astype(np.float32) / 14
    classifier = lambda x: jnp.reshape(x, (x.shape[0], -1)) @ w  # logits of 4 concepts
    got = jaxlatent.concept_effects(g, classifier, z, dims=np.arange(6))
    assert got.sensitivity.shape == (6, 4)
    # the per-latent probabilities behind the means: batch against one latent at a time
    same_values(got.base_probs, one_at_a_time(
        lambda x: jaxlatent.concept_effects(g, classifier, x, dims=np.arange(6)).base_probs, z))
