"""FastICA in JAX: the independent components that replace PCA in GANSpace.

Palaev, Lukmanov and Khan ("Exploring Semantic Variations in GAN Latent Spaces via Matrix
Factorization", ICLR 2023 Tiny Papers) fit ``sklearn.decomposition.FastICA`` with default
settings to GANSpace's population and use the rows of ``components_`` as edit directions.
:func:`fast_ica` is the same algorithm (Hyvärinen and Oja 2000, "Independent component
analysis: algorithms and applications", Neural Networks 13(4)) with sklearn's defaults and
result fields, as one jitted program:

1. Whitening by PCA: with ``X_c = X - mean`` (N x d) and ``X_c^T = U D V^T``,
   ``K = (U / D)^T[:k]`` (k x d) and ``X_1 = sqrt(N) K X_c^T`` (k x N, identity covariance).
   ``U`` comes from ``eigh`` of the smaller Gram matrix (d x d or N x N); each column of U
   is flipped so that its first entry is positive, sklearn's convention, so that a given
   ``w_init`` starts from the same point as sklearn's.
2. Fixed-point iterations on ``W`` (k x k), ``g`` = logcosh' = tanh (or exp, cube):
   parallel: ``W <- sym(E[g(W X_1) X_1^T] - diag(E[g'(W X_1)]) W)`` with the symmetric
   decorrelation ``sym(W) = (W W^T)^{-1/2} W`` (an ``eigh`` of k x k), until
   ``max_i | |<w_i^new, w_i>| - 1 | < tol``; deflation: one row at a time, Gram-Schmidt
   against the rows already found. The loop is a ``lax.while_loop`` (one decomposition per
   step, each depending on the last, so no two LAPACK calls can run side by side).
3. ``whiten="unit-variance"``: rows of ``W`` rescaled so that the sources ``W K X_c^T`` have
   unit variance. ``components = W K`` (k x d), ``mixing = pinv(components)`` (d x k), which is
   ``U D W^T diag(1 / |w_i|^2)`` since K and W have orthogonal rows.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.engine.linalg import after

__all__ = ["ICA", "fast_ica", "FUNCTIONS", "ALGORITHMS", "WHITEN"]

FUNCTIONS = ("logcosh", "exp", "cube")
ALGORITHMS = ("parallel", "deflation")
WHITEN = ("unit-variance", "arbitrary-variance")


class ICA(NamedTuple):
    """A FastICA fit (a pytree; the fields of sklearn's fitted ``FastICA``).

    components: (k, d) unmixing applied to centred data, ``unmixing @ whitening``
    (sklearn ``components_``). mixing: (d, k), its pseudo-inverse (``mixing_``).
    mean: (d,) (``mean_``). whitening: (k, d) PCA whitening K (``whitening_``).
    unmixing: (k, k) W in the whitened space. iterations: () iterations run (the most
    over rows for deflation; sklearn's ``n_iter_``). converged: () bool, every tolerance test passed
    within ``max_iter``.
    """

    components: jax.Array
    mixing: jax.Array
    mean: jax.Array
    whitening: jax.Array
    unmixing: jax.Array
    iterations: jax.Array
    converged: jax.Array


def _contrast(fun, x, alpha):
    """(g(x), mean over samples of g'(x)) for x: (..., N); the derivative of the contrast G."""
    if fun == "logcosh":
        gx = jnp.tanh(alpha * x)
        return gx, jnp.mean(alpha * (1 - gx * gx), axis=-1)
    if fun == "exp":
        e = jnp.exp(-(x * x) / 2)
        return x * e, jnp.mean((1 - x * x) * e, axis=-1)
    return x ** 3, jnp.mean(3 * x * x, axis=-1)


def _sym_decorrelation(w):
    """``(W W^T)^{-1/2} W`` by an eigh of the k x k Gram matrix (eigenvalues clipped at ``tiny``)."""
    s, u = jnp.linalg.eigh(w @ w.T)
    s = jnp.maximum(s, jnp.finfo(w.dtype).tiny)
    return (u * (1 / jnp.sqrt(s))) @ u.T @ w


def _whiten(x, k):
    """mean (d,), K (k, d), X_1 = sqrt(N) K X_c^T (k, N) and K's pseudo-inverse U D (d, k) for x: (N, d)."""
    n, d = x.shape
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    if n >= d:
        evals, evecs = jnp.linalg.eigh(xc.T @ xc)
        u = evecs[:, ::-1][:, :k]
        s = jnp.sqrt(jnp.maximum(evals[::-1][:k], 0))
    else:
        evals, evecs = jnp.linalg.eigh(xc @ xc.T)
        s = jnp.sqrt(jnp.maximum(evals[::-1][:k], 0))
        u = xc.T @ evecs[:, ::-1][:, :k] / s
    u = u * jnp.where(u[0] < 0, -1, 1).astype(u.dtype)
    whitening = (u / s).T
    return mean, whitening, (whitening @ xc.T) * jnp.sqrt(jnp.asarray(n, x.dtype)), u * s


def _parallel(x1, w_init, fun, alpha, tol, max_iter):
    n = x1.shape[1]

    def body(state):
        w, i, _ = state
        gwtx, g_wtx = _contrast(fun, w @ x1, alpha)
        w1 = _sym_decorrelation(gwtx @ x1.T / n - g_wtx[:, None] * w)
        lim = jnp.max(jnp.abs(jnp.abs(jnp.sum(w1 * w, axis=1)) - 1))
        return w1, i + 1, lim

    def cond(state):
        _, i, lim = state
        return (i < max_iter) & (lim >= tol)

    w0 = _sym_decorrelation(w_init)
    w, n_iter, lim = jax.lax.while_loop(cond, body, (w0, jnp.int32(0), jnp.asarray(jnp.inf, x1.dtype)))
    return w, n_iter, lim < tol


def _deflation(x1, w_init, fun, alpha, tol, max_iter):
    k = w_init.shape[0]

    def one_row(j, state):
        big_w, most, ok = state

        def body(s):
            w, i, _ = s
            gwtx, g_wtx = _contrast(fun, w @ x1, alpha)
            w1 = jnp.mean(x1 * gwtx, axis=1) - g_wtx * w
            w1 = w1 - (w1 @ big_w.T) @ big_w  # rows >= j of big_w are still zero
            w1 = w1 / jnp.sqrt(jnp.sum(w1 * w1))
            return w1, i + 1, jnp.abs(jnp.abs(jnp.sum(w1 * w)) - 1)

        def cond(s):
            _, i, lim = s
            return (i < max_iter) & (lim >= tol)

        w = w_init[j] / jnp.sqrt(jnp.sum(w_init[j] ** 2))
        w, i, lim = jax.lax.while_loop(cond, body, (w, jnp.int32(0), jnp.asarray(jnp.inf, x1.dtype)))
        return big_w.at[j].set(w), jnp.maximum(most, i), ok & (lim < tol)

    return jax.lax.fori_loop(0, k, one_row, (jnp.zeros_like(w_init), jnp.int32(0), jnp.bool_(True)))


@functools.partial(jax.jit, static_argnames=("k", "fun", "algorithm", "whiten", "max_iter"))
def _fast_ica(x, w_init, alpha, tol, *, k, fun, algorithm, whiten, max_iter):
    mean, whitening, x1, scaled_u = _whiten(x, k)
    w_init = after(w_init.astype(x.dtype), x1)
    run = _parallel if algorithm == "parallel" else _deflation
    w, n_iter, converged = run(x1, w_init, fun, alpha, tol, max_iter)
    if whiten == "unit-variance":
        sources = w @ x1 / jnp.sqrt(jnp.asarray(x.shape[0], x.dtype))  # = W K X_c^T
        w = w / jnp.std(sources, axis=1, keepdims=True)
    components = w @ whitening
    # pinv(W K) = K^+ W^-1 = (U D) W^T diag(1 / |w_i|^2): K has orthogonal rows and the rows of
    # W are orthogonal (both algorithms end on orthogonalised rows), so no SVD is needed
    mixing = scaled_u @ (w.T / jnp.sum(w * w, axis=1))
    return ICA(components, mixing, mean, whitening, w, n_iter, converged)


def fast_ica(x, *, k: int, key: jax.Array | None = None, w_init=None, fun: str = "logcosh",
             fun_alpha: float = 1.0, algorithm: str = "parallel", whiten: str = "unit-variance",
             max_iter: int = 200, tol: float = 1e-4) -> ICA:
    """FastICA of the rows of ``x`` (Hyvärinen and Oja 2000), sklearn's ``FastICA`` in JAX.

    Args:
        x: (N, d) samples, N >= 2. Computed in x's dtype (float64 with x64 for sklearn parity).
        k: number of independent components, 1 <= k <= min(N, d).
        key: PRNG key for ``w_init ~ N(0, 1)`` (k, k); exactly one of key and w_init.
        w_init: (k, k) initial unmixing in the whitened space (sklearn's ``w_init``).
        fun: contrast ``"logcosh"`` (G(u) = log cosh(fun_alpha u) / fun_alpha), ``"exp"``
            (-exp(-u^2/2)) or ``"cube"`` (u^4/4). fun_alpha: logcosh's ``fun_args["alpha"]`` in sklearn.
        algorithm: ``"parallel"`` (symmetric decorrelation) or ``"deflation"`` (one
            component at a time).
        whiten: ``"unit-variance"`` (sources rescaled to unit variance, sklearn's default)
            or ``"arbitrary-variance"``.
        max_iter: iteration limit (per component for deflation). tol: tolerance on
            ``| |<w_new, w_old>| - 1 |``.

    Returns:
        :class:`ICA` with components (k, d), mixing (d, k), mean (d,), whitening (k, d),
        unmixing (k, k), iterations (), converged (); ``converged`` is False (no warning) when
        ``max_iter`` ran out. Given the same ``w_init``, float64 components equal sklearn's
        ``FastICA(whiten_solver="eigh")`` (and, on well-conditioned data, "svd") up to rounding.
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fast_ica: expected samples of shape (N >= 2, d), found {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    n, d = x.shape
    k = int(k)
    if not 1 <= k <= min(n, d):
        raise ValueError(f"fast_ica: k must lie in [1, {min(n, d)}] for {n} samples of "
                         f"dimension {d}, found {k}")
    for name, value, allowed in (("fun", fun, FUNCTIONS), ("algorithm", algorithm, ALGORITHMS),
                                 ("whiten", whiten, WHITEN)):
        if value not in allowed:
            raise ValueError(f"fast_ica: {name} must be one of {allowed}, found {value!r}")
    if int(max_iter) < 1:
        raise ValueError(f"fast_ica: max_iter must be >= 1, found {max_iter}")
    if (key is None) == (w_init is None):
        raise ValueError("fast_ica: pass exactly one of key (random w_init) and w_init")
    if w_init is None:
        w_init = jax.random.normal(key, (k, k), x.dtype)
    w_init = jnp.asarray(w_init, x.dtype)
    if w_init.shape != (k, k):
        raise ValueError(f"fast_ica: w_init must have shape {(k, k)}, found {w_init.shape}")
    return _fast_ica(x, w_init, jnp.asarray(fun_alpha, x.dtype), jnp.asarray(tol, x.dtype), k=k, fun=fun,
                     algorithm=algorithm, whiten=whiten, max_iter=int(max_iter))
