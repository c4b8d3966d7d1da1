"""A generator as the callables analyses take: taps, images and the latent spaces Z and W.

Every caller names the model options the same way: ``truncation_psi`` (StyleGAN2; ``None``: the
model's default, no truncation; BigGAN: its truncation, which selects the batch-norm statistics
and scales the latents drawn) and ``class_idx`` (the label of a conditional StyleGAN2 or of a
BigGAN). Both are refused for FastGAN, which has neither. Latents come from seeds
(:func:`seed_latents`) or PRNG keys (:func:`key_latents`), BigGAN's as the truncated draws it is
used with. Taps and images are deterministic: ``model.fn`` uses StyleGAN2's constant noise and
no FastGAN noise, so every number can be recomputed.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.latents import class_labels, latents_from_seeds
from jaxlatent.ganspace.population import KeyLatents, TruncatedKeyLatents

__all__ = ["SPACES", "Space", "is_stylegan2", "is_biggan", "is_conditional", "default_space", "check_space",
           "model_options", "seed_latents", "key_latents", "z_units", "tap_fn", "render", "latent_space"]

SPACES = ("z", "w")


def is_stylegan2(model) -> bool:
    """StyleGAN2 (mapping network, W, labels, truncation) rather than FastGAN (z straight in)."""
    return model.config.family == "stylegan2"


def is_biggan(model) -> bool:
    """BigGAN-deep: class-conditional, no mapping network, truncation picks batch-norm statistics."""
    return model.config.family == "biggan"


def is_conditional(model) -> bool:
    """A class-conditional generator (StyleGAN2 with ``c_dim > 0``, or BigGAN): every call needs a class."""
    return is_biggan(model) or (is_stylegan2(model) and int(model.config.c_dim or 0) > 0)


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
    if is_biggan(model):  # class-conditional: a class is required; truncation picks statistics
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


def _truncation(truncation_psi: float | None) -> float:
    return 1.0 if truncation_psi is None else float(truncation_psi)


def seed_latents(model, seeds, *, truncation_psi: float | None = None) -> np.ndarray:
    """``z: (len(seeds), z_dim)`` float32, one latent per seed.

    Row i is ``RandomState(seeds[i]).randn(z_dim)`` (the NVlabs convention); for a BigGAN, the
    package's truncated draw ``truncated_noise_sample(1, z_dim, truncation, seeds[i])``
    (``truncation * TN(0, 1; [-2, 2])``, ``truncation_psi`` or 1), the latents its truncation expects.
    """
    if is_biggan(model):
        return model.sample_latents(list(seeds), _truncation(truncation_psi))
    return latents_from_seeds(seeds, int(model.z_dim))


def key_latents(model, seed: int, n: int, *, truncation_psi: float | None = None):
    """A population of ``n`` latents from a PRNG seed, sliced lazily (GANSpace's fits, the edit FID).

    :class:`~jaxlatent.ganspace.population.KeyLatents` (N(0, I) rows); for a BigGAN,
    :class:`~jaxlatent.ganspace.population.TruncatedKeyLatents` with bound 2 and scale the
    truncation (``truncation_psi`` or 1), the distribution of its truncated draws.
    """
    if is_biggan(model):
        return TruncatedKeyLatents(seed, n, int(model.z_dim), bound=2.0, scale=_truncation(truncation_psi))
    return KeyLatents(seed, n, int(model.z_dim))


def z_units(model, *, truncation_psi: float | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The standard units ``(center (z_dim,), scale (z_dim,))`` of interventions on z, or
    ``(None, None)`` where they are z's own (N(0, I) latents).

    A BigGAN's latents are the truncated draws ``t TN(0, 1; [-2, 2])``: centre 0 and scale their
    standard deviation ``t * 0.8796`` (``model.latent_std(t)``), so that a value ``a`` reaches as
    far into the population as on the other families.
    """
    if not is_biggan(model):
        return None, None
    d = int(model.z_dim)
    return np.zeros(d, np.float32), np.full(d, model.latent_std(_truncation(truncation_psi)), np.float32)


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
