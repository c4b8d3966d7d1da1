"""Linear-algebra leaf of the analyses: ordered decompositions, thin spectra, a program checker.

jaxlib 0.10's batched CPU LAPACK kernels (QR, SVD, eigh, Cholesky, LU, triangular solve) split
their batch over XLA's intra-op thread pool and block a pool thread until the pieces finish; two
such calls that one compiled program runs side by side can deadlock the pool. The rule for every
program of the method packages: batched decompositions run one after another, either chained
by a data dependence (:func:`after`) or done one matrix at a time (:func:`qr_each`: a single-matrix
call never waits on the pool). :func:`unordered_lapack_calls` lists the pairs of a compiled program
that break the rule. ``docs/architecture.md`` links here. (jaxlib 0.11.1 and later no longer split
batches in open-source builds.)
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp


def after(x: jax.Array, *deps: jax.Array) -> jax.Array:
    """``x`` unchanged, but computed only once every array in ``deps`` is.

    Adds ``0.0 * isnan(d)`` for one element ``d`` of each dependency (``0.0 * (d == 0)``
    for integers): always exactly 0, never NaN whatever ``d`` holds, and not folded away by
    XLA, which keeps ``0.0 * y`` for floats. No gradient flows through the tie.
    (``lax.optimization_barrier`` does not order calls on XLA's CPU runtime.)

    Args:
      x: any array.
      *deps: arrays that must be computed before ``x`` is used.

    Returns:
      ``x``, same shape and dtype.
    """
    x = jnp.asarray(x)
    tie = jnp.zeros((), x.dtype)
    for d in deps:
        d = jax.lax.stop_gradient(jnp.ravel(jnp.asarray(d))[:1])
        # a 0-or-1 stand-in for d that XLA cannot evaluate early: isnan(d), or d == 0 for integers
        v = jnp.isnan(jnp.real(d)) if jnp.issubdtype(d.dtype, jnp.inexact) else d == 0
        tie = tie + jnp.sum(v.astype(x.dtype)) * 0.0
    return x + tie


def qr_each(x: jax.Array, mode: str = "reduced"):
    """``jnp.linalg.qr(x, mode)``, one matrix at a time over the batch axes (``lax.map``).

    Same results as the batched call (the same LAPACK routine per matrix), but it never waits
    on the thread pool, so it cannot deadlock beside another decomposition (module docstring).

    Args:
      x: (..., m, n).
      mode: ``"reduced"`` or ``"r"``, as :func:`jax.numpy.linalg.qr`.

    Returns:
      ``(q (..., m, p), r (..., p, n))`` for ``"reduced"``, ``r`` for ``"r"``; ``p = min(m, n)``.
    """
    x = jnp.asarray(x)
    batch = x.shape[:-2]
    if math.prod(batch) <= 1:
        return jnp.linalg.qr(x, mode=mode)
    flat = jnp.reshape(x, (-1,) + x.shape[-2:])
    out = jax.lax.map(lambda mat: jnp.linalg.qr(mat, mode=mode), flat)
    return jax.tree_util.tree_map(lambda a: jnp.reshape(a, batch + a.shape[1:]), out)



def singular_values(x: jax.Array) -> jax.Array:
    """Singular values only, no vectors: the thin spectrum of ``x``.

    A tall or wide matrix is first reduced to its ``min(m, n)``-square triangular factor
    (:func:`qr_each`, same singular values to float rounding); then an SVD without vectors.
    Calling ``jnp.linalg.svd(x, compute_uv=False)`` on the tall matrix directly makes XLA's CPU
    SVD allocate a ``max(m, n)^2`` workspace per matrix (1 GB for four 8192 x 30 bases).

    Args:
      x: (..., m, n).

    Returns:
      (..., min(m, n)) singular values, descending.
    """
    x = jnp.asarray(x)
    m, n = x.shape[-2:]
    if m > n:
        x = qr_each(x, mode="r")
    elif n > m:
        x = qr_each(jnp.swapaxes(x, -1, -2), mode="r")
    return jnp.linalg.svd(x, compute_uv=False)


_HEADER = re.compile(r"^(ENTRY )?%([\w.\-]+) .*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$")
_CALLED = re.compile(r"\b(?:calls|body|condition|to_apply|called_computations|branch_computations)="
                     r"(\{[^}]*\}|%[\w.\-]+)")
_LAPACK = re.compile(r'custom_call_target="(lapack_\w+)"')
_OPERAND_SHAPE = re.compile(r"operand_layout_constraints=\{\w+\[([\d,]*)\]")


def _parse_hlo(text: str) -> dict[str, dict[str, tuple[set[str], set[str], str]]]:
    """computation -> instruction -> (operands, called computations, lapack target or "")."""
    comps: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        head = _HEADER.match(line)
        if head:
            current = comps.setdefault(head.group(2), {})
            continue
        if line.strip() == "}":
            current = None
            continue
        m = _INSTRUCTION.match(line) if current is not None else None
        if not m:
            continue
        rest = m.group(2)
        called = set()
        for group in _CALLED.findall(rest):
            called.update(re.findall(r"%([\w.\-]+)", group))
        operands = set(re.findall(r"%([\w.\-]+)", rest)) - called
        target = ""
        lapack = _LAPACK.search(rest)
        if lapack:
            shape = _OPERAND_SHAPE.search(rest)
            dims = [int(d) for d in shape.group(1).split(",") if d] if shape else None
            # a single matrix never waits on the pool; unknown shapes count as batched
            if dims is None or math.prod(dims[:-2]) > 1:
                target = lapack.group(1)
        current[m.group(1)] = (operands, called, target)
    return comps


def unordered_lapack_calls(fn, *args, **kwargs) -> list[tuple[str, str, str]]:
    """Pairs of batched LAPACK calls that one compiled program of ``fn`` may run at the same time.

    In every computation of the optimised program (the entry, loop bodies, called
    computations), each instruction that is, or contains, a batched LAPACK custom call must be
    reachable from every other such instruction through data dependences; a pair that is not
    can deadlock jaxlib 0.10's CPU runtime (module docstring). Single-matrix calls never wait
    on the pool and are not counted. CPU only: other backends do not lower to LAPACK custom
    calls and always give an empty list.

    Args:
      fn: a function of arrays (jitted here if it is not already).
      *args, **kwargs: example arguments to compile ``fn`` for.

    Returns:
      ``[(computation, instruction, instruction), ...]``, empty when the program is safe.
    """
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    comps = _parse_hlo(jitted.lower(*args, **kwargs).compile().as_text())
    contains: dict[str, bool] = {}

    def has_lapack(comp):  # the computation, or one it calls, holds a batched LAPACK call
        if comp not in contains:
            contains[comp] = any(t or any(map(has_lapack, called)) for _, called, t in comps.get(comp, {}).values())
        return contains[comp]

    found = []
    for comp, body in comps.items():
        marked = [n for n, (_, called, t) in body.items() if t or any(map(has_lapack, called))]
        if len(marked) < 2:
            continue
        ancestors = {}
        for node in marked:
            seen, todo = set(), list(body[node][0])
            while todo:
                x = todo.pop()
                if x in body and x not in seen:
                    seen.add(x)
                    todo.extend(body[x][0])
            ancestors[node] = seen
        found += [(comp, a, b) for i, a in enumerate(marked) for b in marked[i + 1:]
                  if a not in ancestors[b] and b not in ancestors[a]]
    return found
