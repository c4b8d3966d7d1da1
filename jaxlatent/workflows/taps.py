"""Which taps an analysis looks at when the user names none, and the check of names they give."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from jaxlatent.workflows.spaces import is_biggan, is_stylegan2

__all__ = ["default_taps", "default_traversal_taps", "default_edit_tap", "default_tap", "mapping_taps", "check_taps"]


def default_taps(model, max_tap_size: int = 8192) -> list[str]:
    """Taps analysed by default, in computation order.

    StyleGAN2: every mapping layer but the last (which equals ``w`` without truncation), ``w``,
    the block outputs ``synthesis.b<res>`` and ``image`` holding at most ``max_tap_size``
    numbers per sample. FastGAN: its taps under the same size bound (always at least one).
    """
    size = lambda t: int(np.prod(model.tap_shape(t)))  # noqa: E731
    taps = model.taps()
    if is_stylegan2(model):
        n_map = model.config.mapping_layers
        chosen = [f"mapping.fc{i}" for i in range(n_map - 1)] + ["w"]
        chosen += [t for t in taps if (t.startswith("synthesis.b") and t.count(".") == 1) or t == "image"]
    else:
        chosen = list(taps)
    small = [t for t in chosen if t.startswith("mapping.") or t == "w" or size(t) <= max_tap_size]
    return small or [min(taps, key=size)]


def default_traversal_taps(model, taps: list[str]) -> list[str]:
    """Taps traversed by default: a middle mapping layer, ``w`` and a middle feature map."""
    mapping = [t for t in taps if t.startswith("mapping.")]
    maps = [t for t in taps if len(model.tap_shape(t)) == 3 and t != "image"]
    chosen = []
    if mapping:
        chosen.append(mapping[len(mapping) // 2])
    if "w" in taps:
        chosen.append("w")
    if maps:
        chosen.append(maps[(len(maps) - 1) // 2])   # a middle one, the smaller if two
    return chosen or taps[:1]


def default_edit_tap(model) -> str:
    """``w`` for StyleGAN2 (GANSpace); the first feature map for other generators (FastGAN's init,
    BigGAN's ``gen_z``, where GANSpace fits BigGAN)."""
    if is_stylegan2(model):
        return "w"
    return next(t for t in model.taps() if t != "image")


def default_tap(model) -> str:
    """The one tap a single-tap command analyses by default (``local-basis``, ``grassmann``, runs):
    ``w`` for StyleGAN2 (the Local Basis paper's space); for a FastGAN, which has no mapping
    network, its first feature map (``init``, the 4x4 features right after z); for a BigGAN the
    first block's output ``layers.0`` (its first feature map ``gen_z`` is linear in z, so its
    Jacobian, and every local analysis of it, is the same at every latent)."""
    if is_biggan(model):
        return "layers.0"
    return "w" if is_stylegan2(model) else default_edit_tap(model)


def mapping_taps(model) -> list[str]:
    """The taps whose local dimension and Distortion are compared by default.

    StyleGAN2: every mapping-network tap and ``w`` (the layers Choi et al. compare). FastGAN has
    no mapping network: its first two feature maps (``init``, ``feat_8``) stand in.
    """
    taps = [t for t in model.taps() if t.startswith("mapping.") or t == "w"]
    if taps:
        return taps
    return [t for t in model.taps() if t != "image" and len(model.tap_shape(t)) == 3][:2] or model.taps()[:1]


def check_taps(model, names: Iterable[str], flag: str = "--taps") -> list[str]:
    """``names`` as a list when every one is a tap of ``model``; else a ``ValueError`` naming them.

    An empty selection is an error too (an analysis of no tap would write empty results)."""
    names = list(names)
    available = list(model.taps())
    if not names:
        raise ValueError(f"{flag}: no tap selected; this model has {available}")
    unknown = [t for t in names if t not in available]
    if unknown:
        raise ValueError(f"{flag}: unknown tap(s) {unknown}; this model has {available}")
    return names
