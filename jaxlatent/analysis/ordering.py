"""Run one LAPACK call after another inside a compiled program (a jaxlib CPU deadlock guard).

In jaxlib 0.10 every batched LAPACK kernel on CPU (QR, SVD, eigh, Cholesky, LU, triangular
solve) splits its batch over XLA's intra-op thread pool and blocks its thread until the pieces
finish. XLA's CPU runtime runs independent operations of one program at the same time, on the
same pool. When two batched decompositions run side by side, every pool thread can end up
blocked inside a kernel waiting for work that only a pool thread could do: the program never
finishes. On a 2-core machine (a pool of 2 threads) two independent ``(64, 512, 30)`` QRs in one
``jit`` hang every time, two eighs of ``(64, 512, 512)`` hung in 3 runs of 3; the same calls with
a data dependence between them, or in separate programs, never do. jaxlib 0.11.1 and later do
not split batches in open-source builds (upstream commit 859992407d).

The rule: within one compiled program, batched decompositions run one after another.

- :func:`qr_each` factors a batch one matrix at a time (``lax.map``): a single-matrix call never
  waits on the pool, so our QRs cannot hang whatever runs beside them in one program, ours or
  a caller's (measured: 64 QRs of 512 x 30 take 59 ms instead of 51 on 2 cores).
- :func:`after` makes an array a data dependant of others without changing it, which orders the
  decompositions that read it after those that made the others: ``principal_angles`` ties its
  cosine SVD to the sine's QR (a caller's ``vmap`` batches that QR again), warpage's curves run
  one subspace dimension after another, Distortion's near pairs after its far pairs.
  (``lax.optimization_barrier`` does not order calls on XLA's CPU runtime: measured, it still hangs.)
- :func:`unordered_lapack_calls` lists the pairs of batched LAPACK calls that a compiled program
  may still run side by side; ``tests/test_ordering.py`` asserts there are none in ours.
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
    """``jnp.linalg.qr(x, mode)`` for ``x: (..., m, n)``, one matrix at a time over the batch axes.

    Same results as the batched call (the same LAPACK routine per matrix); see the module
    docstring for why. ``mode``: ``"reduced"`` -> ``(q, r)``, ``"r"`` -> ``r``, as numpy.
    """
    x = jnp.asarray(x)
    batch = x.shape[:-2]
    if math.prod(batch) <= 1:
        return jnp.linalg.qr(x, mode=mode)
    flat = jnp.reshape(x, (-1,) + x.shape[-2:])
    out = jax.lax.map(lambda mat: jnp.linalg.qr(mat, mode=mode), flat)
    return jax.tree_util.tree_map(lambda a: jnp.reshape(a, batch + a.shape[1:]), out)


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

    ``fn`` is jitted (if it is not already) and compiled for ``args``; in every computation of
    the optimised program (the entry, loop bodies, called computations), each instruction that
    is, or contains, a batched LAPACK custom call (QR, SVD, eigh, Cholesky, LU, triangular
    solve, ...) must be reachable from every other such instruction through data dependences.
    Returns ``(computation, instruction, instruction)`` for each pair that is not: on jaxlib
    0.10's CPU runtime such a pair can deadlock a machine with few cores (module docstring).
    An empty list means the program is safe in this respect. CPU only (other backends do not
    lower to LAPACK custom calls and always give an empty list).
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
