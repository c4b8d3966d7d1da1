"""GANSpace edits: moving latents along global directions, in Z, W or a layer range of W+.

Härkönen et al. (GANSpace, NeurIPS 2020, section 3): a direction ``v`` found in W edits a
latent as ``w' = w + alpha v``; StyleGAN2 applies it to a range of the per-layer copies of W+
only (``ws[:, start:stop] += alpha v``: early layers move pose and shape, late ones colour
and texture). Palaev, Lukmanov and Khan (ICLR 2023 Tiny Papers) add the normalised direction
to every layer. For a generator without W (FastGAN, BigGAN) the directions are found at a
feature tap and *lifted* to the latent by least squares (GANSpace section 3.1, "the
regression on the latents"): with the activations ``A = transform(result, f(Z))`` (N x k) of
the components on the features of latents ``Z`` (N x z_dim), solve ``min_M ||A M - Z||`` and
take the rows of ``M`` (k x z_dim), each normalised, as latent directions; edits are
``z + alpha d``.

Pairing: :func:`lift_directions` regresses on the latents that produced the features, as the
Palaev et al. ICA notebook does. Their PCA notebook (``ganspace_fastgan.ipynb``) pairs the
features with a second, independent draw of latents, which makes the regression target
independent of its inputs: its solution is then noise around zero.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlatent.ganspace.pca import transform

__all__ = ["edit", "edit_grid", "lift_directions", "lift_activations", "normalize", "Lifted"]


def normalize(directions) -> jax.Array:
    """Rows of ``directions: (k, d)`` scaled to unit Euclidean norm."""
    d = jnp.asarray(directions)
    return d / jnp.linalg.norm(d, axis=-1, keepdims=True)


def edit(x, direction, *, strength, layers: tuple[int, int] | None = None) -> jax.Array:
    """Move latents along a direction: ``x + strength d`` (GANSpace edit; a linear traversal step).

    Args:
        x: (N, d) latents in Z or W, or (N, num_ws, w_dim) in W+.
        direction: (d,) shared by every latent, or (N, d) one per latent (used as given; see
            :func:`normalize`).
        strength: a scalar or (N,) (one per latent).
        layers: for W+ input only, ``(start, stop)``: the edit is added to ``ws[:, start:stop]``
            (GANSpace's layer range; Python slice semantics). Default: every layer.

    Returns:
        The edited latents, x's shape and dtype.
    """
    x = jnp.asarray(x)
    direction = jnp.asarray(direction, x.dtype)
    strength = jnp.asarray(strength, x.dtype)
    if direction.shape not in (x.shape[-1:], (x.shape[0], x.shape[-1])):
        raise ValueError(f"edit: direction of shape {direction.shape} does not match latents of shape "
                         f"{x.shape} (expected ({x.shape[-1]},) or ({x.shape[0]}, {x.shape[-1]}))")
    if strength.ndim not in (0, 1) or (strength.ndim == 1 and strength.shape[0] != x.shape[0]):
        raise ValueError(f"edit: strength must be a scalar or ({x.shape[0]},), found shape {strength.shape}")
    if direction.ndim == 2 and x.ndim == 3:
        direction = direction[:, None, :]                  # one direction per latent, every layer
    shift = strength.reshape((-1,) + (1,) * (x.ndim - 1)) * direction
    if layers is None:
        return x + shift
    if x.ndim != 3:
        raise ValueError(f"edit: layers=(start, stop) needs W+ latents (N, num_ws, w_dim), found {x.shape}")
    start, stop = slice(*layers).indices(x.shape[1])[:2]
    mask = ((jnp.arange(x.shape[1]) >= start) & (jnp.arange(x.shape[1]) < stop)).astype(x.dtype)
    return x + shift * mask[:, None]


def edit_grid(x, directions, *, strengths, layers: tuple[int, int] | None = None) -> jax.Array:
    """Every latent moved along every direction by every strength.

    Args:
        x: (N, ...) latents (see :func:`edit`). directions: (D, d) shared, or (D, N, d) per latent.
        strengths: (S,). layers: W+ layer range, as in :func:`edit`.

    Returns:
        (D, S, N, ...) edited latents: entry [i, j, n] is ``edit(x[n], directions[i], strength=strengths[j])``.
    """
    directions = jnp.asarray(directions)
    strengths = jnp.asarray(strengths)
    one = lambda d, s: edit(x, d, strength=s, layers=layers)  # noqa: E731
    return jax.vmap(lambda d: jax.vmap(lambda s: one(d, s))(strengths))(directions)


class Lifted(NamedTuple):
    """Latent directions lifted from a feature tap by least squares.

    directions: (k, z_dim) unit rows, one per component. coefficients: (k, z_dim) the
    least-squares solution M before normalisation. residual: () relative residual
    ``||A M - Z||_F / ||Z||_F``: near 1 means the components barely predict the latents.
    """

    directions: jax.Array
    coefficients: jax.Array
    residual: jax.Array


@jax.jit
def _lift(activations, z):
    m = jnp.linalg.lstsq(activations, z)[0]
    res = jnp.linalg.norm(activations @ m - z) / jnp.linalg.norm(z)
    return Lifted(normalize(m), m, res)


def lift_activations(activations, z) -> Lifted:
    """Latent directions from component activations: normalised rows of ``argmin_M ||A M - z||``.

    Args:
        activations: (N, k) activations A of k components (e.g. ``transform(result, features)``).
        z: (N, z_dim) the latents that produced them.

    Returns:
        :class:`Lifted` with directions (k, z_dim).
    """
    z = jnp.asarray(z)
    activations = jnp.asarray(activations, z.dtype)
    if activations.ndim != 2 or activations.shape[0] != z.shape[0]:
        raise ValueError(f"lift_activations: activations of shape {activations.shape} for latents of "
                         f"shape {z.shape}: expected (N, k) with N = {z.shape[0]}")
    return _lift(activations, z)


def lift_directions(result, features, z) -> Lifted:
    """Latent directions of components found at a non-latent tap (GANSpace's regression).

    Args:
        result: a :class:`~jaxlatent.ganspace.pca.PCA` or :class:`~jaxlatent.ganspace.ica.ICA`
            fitted on the tap (components (k, d), mean (d,)).
        features: (N, ...) tap values of the latents ``z`` (flattened to (N, d)); N >= k.
        z: (N, z_dim) the latents that produced ``features`` (see the module docstring).

    Returns:
        :class:`Lifted` with directions (k, z_dim): the normalised rows of
        ``argmin_M ||transform(result, features) M - z||``.
    """
    return lift_activations(transform(result, features), z)
