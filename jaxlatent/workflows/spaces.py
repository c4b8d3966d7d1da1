"""A generator as the callables analyses take: taps, images and the latent spaces Z and W.

Every caller names the model options the same way: ``truncation_psi`` (StyleGAN2; ``None``: the
model's default, no truncation) and ``class_idx`` (the label of a conditional StyleGAN2). Both
are refused for FastGAN, which has neither. Taps and images are deterministic: ``model.fn``
uses StyleGAN2's constant noise and no FastGAN noise, so every number can be recomputed.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.latents import class_labels

__all__ = ["SPACES", "Space", "is_stylegan2", "is_conditional", "default_space", "check_space", "model_options",
           "tap_fn", "render", "latent_space"]

SPACES = ("z", "w")


def is_stylegan2(model) -> bool:
    """StyleGAN2 (mapping network, W, labels, truncation) rather than FastGAN (z straight in)."""
    return model.config.family == "stylegan2"


def is_conditional(model) -> bool:
    """A class-conditional generator (StyleGAN2 with ``c_dim > 0``): every call needs a class."""
    return is_stylegan2(model) and int(model.config.c_dim or 0) > 0


def default_space(model) -> str:
    """The latent space analysed when none is named: ``w`` for StyleGAN2 (one w broadcast to every
    layer, as Wang & Ponce and GANSpace use it), ``z`` for generators without a mapping network."""
    return "w" if is_stylegan2(model) else "z"


def check_space(model, space: str | None, *, flag: str = "--space", where: str = "model") -> str:
    """``space`` (or :func:`default_space` for ``None``) when the model has it; else a ``ValueError``
    that says what to pass instead."""
    if space is None:
        return default_space(model)
    if space not in SPACES:
        raise ValueError(f"{where}: {flag} must be one of {SPACES}, found {space!r}")
    if space == "w" and not is_stylegan2(model):
        raise ValueError(f"{where}: {flag} w needs a mapping network (StyleGAN2); this model is a "
                         f"{model.config.family}, whose only latent space is z: pass {flag} z")
    return space


def model_options(model, *, truncation_psi: float | None = None, class_idx: int | None = None,
                  batch: int | None = None, where: str = "model") -> dict:
    """Keyword arguments of ``model.fn`` / ``model.generate`` for a truncation and a class.

    ``c`` is one label ``(c_dim,)`` (broadcast by ``model.fn``), or ``(batch, c_dim)`` when
    ``batch`` is given (``model.generate``). Options left at ``None`` give no keyword. A
    truncation or class for a FastGAN, a class for an unconditional model or none for a
    conditional one is a ``ValueError`` naming ``where``. BigGAN: ``c`` (its class, required)
    and ``truncation`` (the truncation selects its batch-norm statistics).
    """
    if model.config.family == "biggan":  # class-conditional: a class is required; truncation picks statistics
        labels = class_labels(model.config.num_classes, class_idx, 1 if batch is None else batch,
                              where=f"{where} (BigGAN)")
        options = {"c": jnp.asarray(labels[0] if batch is None else labels)}
        if truncation_psi is not None:
            options["truncation"] = float(truncation_psi)
        return options
    if not is_stylegan2(model):
        if (truncation_psi is not None and truncation_psi != 1.0) or class_idx is not None:
            raise ValueError(f"{where}: truncation (--trunc) and class (--class) apply to StyleGAN2 "
                             f"models only, not {model.config.family}")
        return {}
    options: dict[str, Any] = {}
    if truncation_psi is not None:
        options["truncation_psi"] = float(truncation_psi)
    labels = class_labels(model.config.c_dim, class_idx, 1 if batch is None else batch, where=where)
    if labels is not None:
        options["c"] = jnp.asarray(labels[0] if batch is None else labels)
    return options


def tap_fn(model, tap: str, *, truncation_psi: float | None = None, class_idx: int | None = None,
           where: str = "model") -> Callable:
    """The batched callable ``z: (N, z_dim) -> (N, *model.tap_shape(tap))`` the analyses take."""
    return model.fn(tap, **model_options(model, truncation_psi=truncation_psi, class_idx=class_idx,
                                         where=where))


def render(model, z, *, truncation_psi: float | None = None, class_idx: int | None = None,
           batch: int = 256, where: str = "model") -> np.ndarray:
    """Images ``(N, C, H, W)`` in [-1, 1] for latents ``z: (N, z_dim)``, ``batch`` at a time."""
    z = jnp.asarray(z, jnp.float32)
    out = []
    for i in range(0, z.shape[0], batch):
        zb = z[i:i + batch]
        opts = model_options(model, truncation_psi=truncation_psi, class_idx=class_idx,
                             batch=zb.shape[0], where=where)
        out.append(np.asarray(model.generate(zb, **opts)))
    return np.concatenate(out)


class Space(NamedTuple):
    """A latent space of a generator.

    name: ``"z"`` or ``"w"``. points: ``z: (N, z_dim) -> x: (N, dim)``, the latents' points in the
    space (``z`` itself in Z; ``mapping(z)`` in W, or ``(N, num_ws, w_dim)`` W+ for ``layers``).
    image: the batched generator ``x -> (N, C, H, W)`` on the space.
    """

    name: str
    points: Callable
    image: Callable


def _identity(z):
    return jnp.asarray(z, jnp.float32)


def latent_space(model, space: str, *, truncation_psi: float | None = None, class_idx: int | None = None,
                 layers: bool = False, where: str = "model") -> Space:
    """The generator on ``space``: Z (any family) or W (StyleGAN2, one w for every layer).

    Truncation and class apply where the latent enters the mapping: in Z inside the image
    callable, in W inside ``points``. ``layers=True`` gives W+ points ``(N, num_ws, w_dim)``
    for edits restricted to a layer range (GANSpace).
    """
    check_space(model, space, flag="space", where=where)
    opts = model_options(model, truncation_psi=truncation_psi, class_idx=class_idx, where=where)
    if space == "z":
        if layers:
            raise ValueError(f"{where}: layer ranges apply to StyleGAN2 W+ edits, not to latent (z) directions")
        return Space("z", _identity, model.fn("image", **opts))
    wrt = "ws" if layers else "w"
    return Space("w", model.fn(wrt, **opts), model.fn("image", wrt=wrt))
