"""FID Inception weights -> variables of :class:`jaxlatent.models.features.inception.FIDInceptionV3`.

Reads pytorch-fid's weights file (``pt_inception-2015-12-05-6726825d.pth``, the state dict of
torchvision's Inception3 with the FID blocks: ``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ...), the same arrays as ``.npz`` or a mapping, or the
state dict of pytorch-fid's ``InceptionV3`` wrapper (``blocks.<b>.<j>.*``), whose block
positions are renamed onto the Inception3 names. ``fc.*``, ``AuxLogits.*`` and
``num_batches_tracked`` are not used by the features and are ignored.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from jaxlatent.converters.state_dicts import read_state_dict, to_variables
from jaxlatent.models.features.inception import FIDInceptionV3

__all__ = ["read_inception", "expected_variables"]

# pytorch-fid's InceptionV3.blocks: position -> Inception3 attribute (pools have no weights)
_BLOCKS = (("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None),
           ("Conv2d_3b_1x1", "Conv2d_4a_3x3", None),
           ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),
           ("Mixed_7a", "Mixed_7b", "Mixed_7c", None))
_WRAPPED = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.*)$")


def expected_variables():
    """Shapes of the FID Inception's variables (a pytree of ShapeDtypeStruct)."""
    x = jnp.zeros((1, 3, 75, 75), jnp.float32)
    return jax.eval_shape(lambda: FIDInceptionV3(resize=False).init(jax.random.key(0), x))


def read_inception(src) -> tuple[dict, str]:
    """Read FID Inception weights (path or mapping); returns ``(variables, source description)``."""
    flat, name = read_state_dict(src, "FID Inception weights")
    for key in list(flat):
        m = _WRAPPED.match(key)
        if m:
            b, j = int(m.group(1)), int(m.group(2))
            if b < len(_BLOCKS) and j < len(_BLOCKS[b]) and _BLOCKS[b][j]:
                flat.setdefault(f"{_BLOCKS[b][j]}.{m.group(3)}", flat[key])
    return to_variables(expected_variables(), flat, name), name
