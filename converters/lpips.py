"""LPIPS weights -> variables of :class:`jaxlatent.models.features.lpips.LPIPS`.

Two ways to bring them (the ImageNet backbones cannot be downloaded here; users bring theirs):

* a state dict of the whole ``lpips.LPIPS`` module (``torch.save(model.state_dict())`` as
  ``.pth``, the same arrays as ``.npz``, or a mapping): keys ``net.slice<k>.<i>.weight``,
  ``lin<k>.model.1.weight`` (or the package's duplicate ``lins.<k>.model.1.weight``), and
  ``scaling_layer.shift``/``scale``, which must hold the package's constants;
* the ``lpips`` package's lin weights file (``lpips/weights/v0.1/<net>.pth``, keys
  ``lin<k>.model.1.weight``) plus a torchvision backbone state dict (``alexnet``, ``vgg16`` or
  ``squeezenet1_1``; keys ``features.<i>.*``), which is regrouped into the package's slices.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.converters import CheckpointError
from jaxlatent.converters.state_dicts import read_state_dict, to_variables
from jaxlatent.models.features.lpips import LPIPS, NETS, SCALE, SHIFT, backbone_slices

__all__ = ["read_lpips", "expected_variables"]

_LINS = re.compile(r"^lins\.(\d+)\.(.*)$")
_FEATURES = re.compile(r"^features\.(\d+)\.(.*)$")


def expected_variables(net: str):
    """Shapes of the LPIPS module's variables for ``net`` (a pytree of ShapeDtypeStruct)."""
    if net not in NETS:
        raise ValueError(f"LPIPS: net must be one of {sorted(NETS)}, found {net!r}")
    x = jnp.zeros((1, 3, 64, 64), jnp.float32)
    return jax.eval_shape(lambda: LPIPS(net).init(jax.random.key(0), x, x))


def _from_backbone(backbone: dict, net: str) -> dict:
    slice_of = {i: k for k, idx in enumerate(backbone_slices(net), start=1) for i in idx}
    out = {}
    for key, value in backbone.items():
        m = _FEATURES.match(key)
        if m and int(m.group(1)) in slice_of:
            i = int(m.group(1))
            out[f"net.slice{slice_of[i]}.{i}.{m.group(2)}"] = value
    return out


def read_lpips(src, net: str = "alex", backbone=None) -> tuple[dict, str]:
    """Read LPIPS weights; returns ``(variables, description of the source)``.

    Args:
      src: the whole module's state dict (path or mapping), or the lin weights file when
        ``backbone`` is given.
      net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
      backbone: optional torchvision backbone state dict (path or mapping) for ``net``.
    """
    expected = expected_variables(net)
    flat, name = read_state_dict(src, f"LPIPS {net} weights")
    for key in list(flat):
        m = _LINS.match(key)
        if m:
            flat.setdefault(f"lin{m.group(1)}.{m.group(2)}", flat[key])
    if backbone is not None:
        bb, bb_name = read_state_dict(backbone, f"torchvision {net} backbone")
        regrouped = _from_backbone(bb, net)
        if not regrouped:
            raise CheckpointError(f"{bb_name}: no 'features.<i>.*' keys of a torchvision {net} backbone; "
                                  f"found e.g. {sorted(bb)[:5]}")
        flat.update(regrouped)
        name = f"{name} + {bb_name}"
    elif not any(k.startswith("net.") for k in flat):
        raise CheckpointError(f"{name}: holds no backbone weights (no 'net.slice<k>.*' keys); pass the "
                              f"torchvision {net} state dict as backbone=")
    for key, const in (("scaling_layer.shift", SHIFT), ("scaling_layer.scale", SCALE)):
        if key in flat and not np.allclose(np.ravel(flat[key]), const, rtol=1e-6, atol=1e-7):
            raise CheckpointError(f"{name}: {key} is {np.ravel(flat[key]).tolist()}, expected the lpips "
                                  f"package's constants {const.tolist()}")
    return to_variables(expected, flat, name), name
