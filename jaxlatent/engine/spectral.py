"""Matrix-free top-k singular triplets of tap Jacobians, to a stated tolerance.

When the Jacobian ``J (out, in)`` of a tap is too large to form (a feature map or an image:
``out`` in the millions), its leading singular triplets are found from products alone:
``J X`` (one forward-mode pass carrying a block of tangents) and ``J^T Y`` (one reverse-mode
pass). We find the top eigenpairs of ``A = J^T J`` by a thick-restart block Krylov (block
Davidson) iteration with Rayleigh-Ritz extraction, the unpreconditioned relative of LOBPCG
(Knyazev 2001) and of thick-restart Lanczos (Wu and Simon 2000):

    K: orthonormal basis (in, m), kept with Z = A K; at the start m - b columns
       [Q_0, orth(A Q_0), orth(A^2 Q_0), ...] from a random block Q_0 of b
    repeat:  H = K^T Z = W Theta W^T          (Rayleigh-Ritz, an m x m eigh)
             V = K W,  R = Z W - V Theta       (Ritz vectors and their residuals)
             stop when every one of the top k has ||R_i|| / theta_i <= tol
             K <- [V[:, :m - b], orth(b largest residuals)],  Z <- [Z W[:, :m - b], A orth(...)]

Each round costs ``b`` Jacobian-vector and ``b`` vector-Jacobian products. Restarting with
the leading Ritz vectors keeps the memory at ``O(in * m)`` and keeps the convergence of a
Krylov method (much faster than the plain subspace iteration of Halko et al. 2011 when
the spectrum decays slowly, as it does for StyleGAN2 mapping networks).

The result: ``v_i`` the Ritz vectors, ``s_i = ||J v_i||``, ``u_i = J v_i / s_i`` (so
``J v_i = s_i u_i`` holds by construction), and the residual of the other side,
``||J^T u_i - s_i v_i|| / s_i``, which bounds the relative error of ``s_i`` (the i-th
singular value of ``J`` lies within ``s_i (1 +- residual)``). In float32 the residual
cannot fall below about ``eps * (s_1 / s_k)^2`` (products with ``A`` carry the rounding
of ``s_1^2``): for a tolerance under that floor the solver stops at ``iters`` and says so.
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.engine.jacobian import check_latents, has_convolution, jvp_operator, output_size, vjp_operator
from jaxlatent.engine.parallel import HostLoop, auto_chunk_size, first_device, map_batched


class TopSingular(NamedTuple):
    """Top-k singular triplets per latent (descending) and how far they converged.

    singular_values: (N, k); basis: (N, out, k) left singular vectors u_i; directions: (N, in, k)
        right singular vectors v_i (the Local Basis names);
    residual: (N,) ``max_i ||J^T u_i - s_i v_i|| / s_i`` over the k (``J v_i = s_i u_i``
        exactly), a bound on the relative error of each singular value;
    iterations: (N,) rounds run; converged: (N,) bool, ``residual <= tol``.
    """

    singular_values: jax.Array
    basis: jax.Array
    directions: jax.Array
    residual: jax.Array
    iterations: jax.Array
    converged: jax.Array


def _ritz(k, basis, images):
    """Rayleigh-Ritz on span(basis): Ritz values (descending), vectors, their images under A,
    and the relative residual ``||A v_i - theta_i v_i|| / theta_i`` of the top k."""
    h = basis.T @ images
    theta, w = jnp.linalg.eigh(0.5 * (h + h.T))
    theta, w = theta[::-1], w[:, ::-1]
    v, av = basis @ w, images @ w
    tiny = jnp.finfo(theta.dtype).tiny
    res = jnp.linalg.norm(av - v * theta, axis=0) / jnp.maximum(theta, tiny)
    return theta, v, av, res


class KrylovState(NamedTuple):
    """The block Krylov iteration at N latents (every field batched on axis 0).

    v: (N, in, basis) Ritz vectors, descending; av: (N, in, basis) their images ``A v``;
    theta: (N, basis) Ritz values; res: (N, basis) relative residuals; worst: (N,) the largest
    of the top k; rounds: (N,) rounds run; active: (N,) ``worst > tol`` and ``rounds < iters``.
    """

    v: jax.Array
    av: jax.Array
    theta: jax.Array
    res: jax.Array
    worst: jax.Array
    rounds: jax.Array
    active: jax.Array


def _orthogonal_to(kept, r):
    """Orthonormal columns spanning ``r`` minus its part in span(kept) (kept orthonormal):
    classical Gram-Schmidt twice, QR, once more against ``kept``, normalised (one latent)."""
    for _ in range(2):
        r = r - kept @ (kept.T @ r)
    q = jnp.linalg.qr(r)[0]
    q = q - kept @ (kept.T @ q)
    return q / jnp.maximum(jnp.linalg.norm(q, axis=0), jnp.finfo(q.dtype).tiny)


def krylov_start(apply, n_in, dtype, key_data, k, block, basis, iters, tol) -> KrylovState:
    """The first Rayleigh-Ritz of the iteration at every latent, on a block Krylov space of
    ``basis - block`` directions: a random block ``Q_0`` and ``Q_{i+1} = orth(A Q_i)`` against
    the blocks before. Costs the same products as as many random directions, and starts closer:
    14 -> 10 rounds for k = 20 on a 512-wide mapping network.

    apply: ``X (N, in, p) -> A X (N, in, p)``, ``A`` symmetric positive semi-definite per
    latent. key_data: (N, ...) one key per latent.
    """
    keep = basis - block
    draw = lambda kd: jnp.linalg.qr(jax.random.normal(jax.random.wrap_key_data(kd), (n_in, block), dtype))[0]  # noqa: E731
    q = jax.vmap(draw)(key_data)
    blocks, images = [], []
    for _ in range(-(-keep // block)):
        blocks.append(q)
        images.append(apply(q))
        if len(blocks) * block < keep:
            q = jax.vmap(_orthogonal_to)(jnp.concatenate(blocks, axis=2), images[-1])
    k0, ak0 = jnp.concatenate(blocks, axis=2)[..., :keep], jnp.concatenate(images, axis=2)[..., :keep]

    def first(k0, ak0):
        theta, v, av, res = _ritz(k, k0, ak0)
        pad = lambda a: jnp.pad(a, ((0, 0), (0, block)))  # noqa: E731  (the state is (in, basis))
        worst, rounds = jnp.max(res[:k]), jnp.asarray(0, jnp.int32)
        return KrylovState(pad(v), pad(av), jnp.pad(theta, (0, block)), jnp.pad(res, (0, block)), worst,
                           rounds, (worst > tol) & (rounds < iters))

    return jax.vmap(first)(k0, ak0)


def _expansion(state: KrylovState, k, block, basis):
    """New directions at one latent: the residuals of the ``block`` least converged of the top
    k, orthonormalised against the kept Ritz vectors."""
    pick = jnp.argsort(-state.res[:k])[:block]
    r = jnp.take(state.av, pick, axis=1) - jnp.take(state.v, pick, axis=1) * state.theta[pick]
    return _orthogonal_to(state.v[:, :basis - block], r)


def _absorb(state: KrylovState, q, aq, k, block, basis, iters, tol) -> KrylovState:
    """Rayleigh-Ritz on the kept Ritz vectors and the new block at one latent; a finished
    latent (``active`` false) is returned unchanged, so that its result does not depend on
    which others share its batch."""
    keep = basis - block
    theta, v, av, res = _ritz(k, jnp.concatenate([state.v[:, :keep], q], axis=1),
                              jnp.concatenate([state.av[:, :keep], aq], axis=1))
    worst, rounds = jnp.max(res[:k]), state.rounds + 1
    new = KrylovState(v, av, theta, res, worst, rounds, (worst > tol) & (rounds < iters))
    return jax.tree_util.tree_map(lambda a, b: jnp.where(state.active, a, b), new, state)


def krylov_step(apply, state: KrylovState, k, block, basis, iters, tol) -> KrylovState:
    """One round at every latent: expand by ``block`` residual directions, apply ``A`` to them
    (one batched call), Rayleigh-Ritz."""
    q = jax.vmap(lambda st: _expansion(st, k, block, basis))(state)
    return jax.vmap(lambda st, q1, aq1: _absorb(st, q1, aq1, k, block, basis, iters, tol))(state, q, apply(q))


def krylov_device_loop(apply, state: KrylovState, k, block, basis, iters, tol) -> KrylovState:
    """Rounds of :func:`krylov_step` inside the compiled program (``lax.while_loop``) until no
    latent is active."""
    return jax.lax.while_loop(lambda st: jnp.any(st.active),
                              lambda st: krylov_step(apply, st, k, block, basis, iters, tol), state)


def _triplets(jmat, v, av, tol, iterations):
    """``s = ||J v||``, ``u = J v / s`` and the relative residual of ``J^T u = s v``, which is
    ``(A v - s^2 v) / s`` with ``A v = J^T J v`` already at hand (``av``); batched over latents."""
    y = jmat(v)

    def one(y, v, av):
        s = jnp.linalg.norm(y, axis=0)
        order = jnp.argsort(-s)
        s, y, v, av = s[order], y[:, order], v[:, order], av[:, order]
        safe = jnp.maximum(s, jnp.finfo(s.dtype).tiny)
        res = jnp.max(jnp.linalg.norm(av / safe - v * s, axis=0) / safe)
        return s, y / safe, v, res

    s, u, v, res = jax.vmap(one)(y, v, av)
    return TopSingular(s, u, v, res, iterations, res <= tol)


def _gram(f, z):
    """``J X`` and ``J^T J X`` for blocks ``X (N, in, p)`` at every latent of the batch."""
    jmat, jtmat = jvp_operator(f, z), vjp_operator(f, z)
    return jmat, (lambda x: jtmat(jmat(x)))


def _top_singular_rows(f, k, block, basis, iters, tol, dense, batch):
    """The whole solver in one program per chunk (the device loop)."""
    z, key_data = batch
    jmat, apply = _gram(f, z)
    if dense:   # small latent spaces (in <= basis): the Jacobian itself, in products, its SVD
        eye = jnp.broadcast_to(jnp.eye(z.shape[1], dtype=z.dtype), (z.shape[0],) + (z.shape[1],) * 2)
        _, _, vt = jnp.linalg.svd(jmat(eye), full_matrices=False)
        v = jnp.swapaxes(vt[:, :k], 1, 2)
        return _triplets(jmat, v, apply(v), tol, jnp.zeros(z.shape[0], jnp.int32))
    sizes = (k, block, basis, iters, tol)
    state = krylov_start(apply, z.shape[1], z.dtype, key_data, *sizes)
    state = krylov_device_loop(apply, state, *sizes)
    return _triplets(jmat, state.v[..., :k], state.av[..., :k], tol, state.rounds)


# the host loop: three programs per chunk, the rounds driven from Python (parallel.HostLoop)
def _start_rows(f, k, block, basis, iters, tol, batch):
    z, key_data = batch
    return krylov_start(_gram(f, z)[1], z.shape[1], z.dtype, key_data, k, block, basis, iters, tol)


def _step_rows(f, k, block, basis, iters, tol, batch_state):
    (z, _), state = batch_state
    return krylov_step(_gram(f, z)[1], state, k, block, basis, iters, tol)


def _finish_rows(f, k, tol, batch_state):
    (z, _), state = batch_state
    return _triplets(_gram(f, z)[0], state.v[..., :k], state.av[..., :k], tol, state.rounds)


def krylov_active(state: KrylovState) -> jax.Array:
    return state.active


LOOPS = ("auto", "device", "host")


def resolve_loop(loop: str, f: Callable, z: jax.Array, mesh=None) -> str:
    """``"device"`` or ``"host"`` for an iterative solver on the tap ``f``: ``"auto"`` takes the
    host on CPU when ``f`` has a convolution (:class:`jaxlatent.engine.parallel.HostLoop`)."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, found {loop!r}")
    if loop != "auto":
        return loop
    return "host" if first_device(mesh).platform == "cpu" and has_convolution(f, z) else "device"


def solver_sizes(k: int, n_in: int, n_out: int, block_size: int | None = None,
                 oversample: int | None = None) -> tuple[int, int]:
    """``(block, basis)`` of :func:`top_singular`'s iteration for k triplets of an (out, in) Jacobian.

    Defaults: ``block = min(k, 8)`` new directions per round (at most k), ``oversample = max(4, k)``
    Ritz vectors kept beyond the k, ``basis = k + oversample + block``. For k = 20 on a 512-wide
    mapping network, oversample 20 against 10: 93 products against 112, 8.1 ms a latent
    against 11.0 (the start's Krylov space does more of the work; docs/performance.md). ``basis >= in`` means the solver forms
    the Jacobian instead (it is no dearer there).
    """
    block = min(k, 8) if block_size is None else int(block_size)
    oversample = max(4, k) if oversample is None else int(oversample)
    if block < 1 or oversample < 0:
        raise ValueError(f"top_singular: block_size must be >= 1 and oversample >= 0, found "
                         f"{block} and {oversample}")
    block = min(block, k)  # residuals come from the top k only
    return block, k + oversample + block


def top_singular(f: Callable, z, *, k: int, key: jax.Array, tol: float = 1e-4, max_iter: int = 200,
                 block_size: int | None = None, oversample: int | None = None,
                 loop: str = "auto", chunk_size: int | None = None, mesh=None, use_pmap: bool = False,
                 progress: bool | Callable = False) -> TopSingular:
    """Top-k singular triplets of the tap Jacobian at each latent, without forming it.

    Converges to ``tol`` by default: it stops when every one of the top k has
    ``||J^T u_i - s_i v_i|| / s_i <= tol`` (``J v_i = s_i u_i`` holds exactly), which puts
    each singular value within relative ``tol`` of the true one; a ``RuntimeWarning`` says
    when some latent stopped at ``max_iter`` short of it. Method: thick-restart block Krylov
    on ``J^T J`` (module docstring).

    Args:
      f: batched callable ``(N, in) -> (N, *out_shape)``.
      z: ``(N, in)`` latents.
      k: triplets wanted, ``1 <= k <= min(out, in)``.
      key: PRNG key (one start block per latent, split from it, so results do not depend on
        chunking or devices).
      tol: relative residual to reach (default 1e-4; float32 cannot go below about
        ``1e-7 * (s_1 / s_k)^2``).
      max_iter: maximum rounds (each ``block`` forward and ``block`` backward products).
      block_size: new directions per round (default ``min(k, 8)``).
      oversample: Ritz vectors kept beyond k at a restart (default ``max(4, k)``).
      loop: where the rounds run: ``"device"`` (a ``while`` loop inside one compiled program),
        ``"host"`` (one compiled round at a time, driven from Python: :class:`HostLoop`) or
        ``"auto"``: the host on CPU when the tap has a convolution (XLA's CPU backend runs
        those ~20x slower inside a ``while`` loop), else the device.
      chunk_size: latents per compiled call (default: :func:`jaxlatent.engine.parallel.auto_chunk_size`
        from the ``(in + out) * basis`` floats a latent holds).
      mesh, use_pmap, progress: execution options, see :func:`jaxlatent.engine.parallel.map_batched`.

    Returns:
      :class:`TopSingular`: values ``(N, k)`` descending, left ``(N, out, k)``, right
      ``(N, in, k)`` (signs arbitrary; :func:`jaxlatent.localbasis.basis.local_basis_topk`
      fixes them), residual, iterations and converged ``(N,)``.
    """
    z = check_latents(z, "top_singular")
    n_in, n_out = z.shape[1], output_size(f, z)
    if not 1 <= k <= min(n_in, n_out):
        raise ValueError(f"top_singular: k must lie in [1, {min(n_in, n_out)}] for a {n_out}x{n_in} "
                         f"Jacobian, found {k}")
    block, basis = solver_sizes(k, n_in, n_out, block_size, oversample)
    dense = basis >= n_in
    if chunk_size is None:
        width = n_in if dense else basis
        per_latent = z.dtype.itemsize * (3 * n_in * width + 2 * n_out * max(block, k) + width * width)
        chunk_size = auto_chunk_size(per_latent, z.shape[0], mesh=mesh, use_pmap=use_pmap)
    keys = jax.random.key_data(jax.random.split(key, z.shape[0]))
    sizes = (int(k), int(block), int(basis), int(max_iter), float(tol))
    if not dense and resolve_loop(loop, f, z, mesh) == "host":
        fn = HostLoop(jax.tree_util.Partial(_start_rows, f, *sizes), jax.tree_util.Partial(_step_rows, f, *sizes),
                      jax.tree_util.Partial(_finish_rows, f, int(k), float(tol)), krylov_active)
    else:
        fn = jax.tree_util.Partial(_top_singular_rows, f, *sizes, bool(dense))
    out = map_batched(fn, (z, keys), chunk_size=chunk_size, mesh=mesh, use_pmap=use_pmap,
                      progress=progress)
    short = int(jnp.sum(~out.converged))
    if short:
        warnings.warn(f"top_singular: {short} of {z.shape[0]} latents stopped after max_iter={max_iter} "
                      f"rounds with a relative residual up to {float(jnp.max(out.residual)):.1e} "
                      f"> tol={tol:g}; raise max_iter, or tol (float32 floor ~1e-7 * (s_1/s_k)^2)",
                      RuntimeWarning, stacklevel=2)
    return out
