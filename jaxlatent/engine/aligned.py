"""Per-latent inputs that travel with the latents: labels of a conditional generator, and the like.

An analysis takes a batched callable ``f(z: (N, in)) -> (N, ...)`` and latents ``z``. Some
callables need one more input per latent, aligned with ``z`` (a class label ``c: (N, c_dim)``
for each latent of a conditional StyleGAN2). Closing over such an array ties ``f`` to one batch
size, which breaks as soon as the work is split: :func:`jaxlatent.engine.parallel.map_batched`
calls ``f`` on chunks, Jacobian pieces, device shards and shape traces of one or two rows.

:class:`Aligned` is the callable that carries them: ``Aligned(fn, rows)(x) = fn(x, rows)``, where
``rows`` is a pytree of arrays whose leading axis matches the latents. Rows of length one are
broadcast to any batch (one class for every latent). ``map_batched`` finds every ``Aligned``
inside the stages it runs (:func:`detach`), slices its rows together with the latents for each
chunk, piece and device, and puts the slice back (:func:`attach`) inside the compiled program,
so row ``i`` of ``rows`` always meets latent ``i``. Shape traces use :func:`shape_view` (the first
row, broadcast). A model hands one out from ``model.fn(tap, c=c)`` when ``c`` has a row per
latent (``docs/conditioning.md``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Aligned", "num_rows", "detach", "attach", "aligned_rows", "shape_view", "take_rows",
           "repeat_rows"]


def num_rows(tree) -> int:
    """Leading size shared by the array leaves of ``tree`` (``ValueError`` when they differ or none)."""
    sizes = {int(np.shape(a)[0]) for a in jax.tree_util.tree_leaves(tree) if np.ndim(a) > 0}
    if len(sizes) != 1:
        raise ValueError(f"per-latent rows must share one leading size, found {sorted(sizes) or 'no arrays'}")
    return sizes.pop()


@jax.tree_util.register_pytree_node_class
class Aligned:
    """``f(x) = fn(x, rows)``: a batched callable with per-latent inputs aligned with its latents.

    Args:
      fn: ``fn(x: (n, ...), rows: pytree with leading axis n) -> (n, ...)``; a pytree callable
        (e.g. ``jax.tree_util.Partial`` holding weights) keeps its weights as program inputs.
      rows: pytree of arrays with leading axis ``N`` (one row per latent) or ``1`` (broadcast
        to every latent).

    Calling it on ``n`` latents needs ``N == n`` or ``N == 1``; any other batch is a
    ``ValueError``. Analyses need no such care: they split the rows with the latents.
    """

    def __init__(self, fn: Callable, rows: Any):
        self.fn = fn
        self.rows = rows

    def tree_flatten(self):
        return (self.fn, self.rows), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    def __repr__(self):
        shapes = jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), self.rows)
        return f"Aligned({self.fn!r}, rows {shapes})"

    def __call__(self, x):
        if self.rows is None:
            raise ValueError("Aligned: its per-latent rows were detached by the engine and not put back")
        n = num_rows(x)
        m = num_rows(self.rows)
        rows = self.rows
        if m == 1 and n != 1:
            rows = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n,) + tuple(a.shape[1:])), rows)
        elif m != n:
            raise ValueError(
                f"this callable carries per-latent inputs for {m} latents (e.g. labels c of shape ({m}, c_dim)) "
                f"but was called on {n}: pass it to an analysis together with its {m} latents (the rows are "
                f"split with them), or select rows with jaxlatent.engine.aligned.take_rows")
        return self.fn(x, rows)


def _is_aligned(node) -> bool:
    return isinstance(node, Aligned)


def _aligned_nodes(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=_is_aligned)
    return leaves, treedef


def _travels(node) -> bool:
    # rows of length one broadcast anywhere: they stay inside the callable
    return _is_aligned(node) and node.rows is not None and num_rows(node.rows) > 1


def detach(tree) -> tuple[Any, tuple]:
    """``(tree without per-latent rows, rows)``: every :class:`Aligned` in ``tree`` with more than
    one row gives up its rows (in flattening order); :func:`attach` puts them back."""
    leaves, treedef = _aligned_nodes(tree)
    if not any(_travels(leaf) for leaf in leaves):
        return tree, ()
    rows = tuple(leaf.rows for leaf in leaves if _travels(leaf))
    bare = [Aligned(leaf.fn, None) if _travels(leaf) else leaf for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, bare), rows


def attach(tree, rows: tuple):
    """The inverse of :func:`detach`: ``rows[i]`` into the i-th detached :class:`Aligned` of ``tree``."""
    if not rows:
        return tree
    leaves, treedef = _aligned_nodes(tree)
    it = iter(rows)
    filled = [Aligned(leaf.fn, next(it)) if _is_aligned(leaf) and leaf.rows is None else leaf for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, filled)


def aligned_rows(tree) -> int | None:
    """The number of latents the per-latent rows inside ``tree`` belong to (``None``: none travel)."""
    _, rows = detach(tree)
    return num_rows(rows) if rows else None


def _map_rows(tree, fn):
    leaves, treedef = _aligned_nodes(tree)
    out = [Aligned(leaf.fn, jax.tree_util.tree_map(fn, leaf.rows)) if _travels(leaf) else leaf for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, out)


def shape_view(tree):
    """``tree`` with each :class:`Aligned`'s rows cut to the first (broadcast to any batch): for
    tracing shapes and costs on a batch of one or two (no values computed from it are kept)."""
    return _map_rows(tree, lambda a: a[:1])


def take_rows(tree, index):
    """``tree`` whose per-latent rows are ``rows[index]``: the callable for the latents ``z[index]``."""
    index = np.asarray(index)
    return _map_rows(tree, lambda a: a[index])


def repeat_rows(tree, times: int):
    """``tree`` whose per-latent rows each appear ``times`` times in a row: the callable for a batch
    holding ``times`` consecutive points per latent (``jnp.repeat(z, times, axis=0)`` order)."""
    return _map_rows(tree, lambda a: jnp.repeat(a, times, axis=0))
