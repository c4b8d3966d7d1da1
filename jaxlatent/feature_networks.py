"""Image feature networks for the metrics: LPIPS and the FID Inception, loaded as pure callables.

``load_lpips(src, net)`` and ``load_inception(src)`` read weights the user brings (no weights can
be downloaded here) with the converters' safe readers and return ``jax.tree_util.Partial``
callables whose variables are leaves: they pass through ``jit``, ``vmap`` and ``grad`` (the GAN
geometry metric differentiates LPIPS twice) without baking the weights into compiled programs.
"""

from __future__ import annotations

from functools import partial

import jax

from jaxlatent.converters.inception import read_inception
from jaxlatent.converters.lpips import read_lpips
from jaxlatent.models.features.inception import FIDInceptionV3
from jaxlatent.models.features.lpips import LPIPS

__all__ = ["load_lpips", "load_inception", "lpips_from_variables", "inception_from_variables"]


def _lpips_call(net, variables, x, y, spatial: bool = False, layers: bool = False):
    out = LPIPS(net).apply(variables, x, y, spatial=spatial)
    return out if layers else out.distance


def lpips_from_variables(variables, net: str = "alex"):
    """The LPIPS callable for given variables (``{"params": ...}`` as :class:`LPIPS` lays out)."""
    return jax.tree_util.Partial(partial(_lpips_call, net), variables)


def load_lpips(src, net: str = "alex", backbone=None):
    """Load LPIPS (Zhang et al., CVPR 2018) as a pure callable.

    Args:
      src: a state dict of the whole ``lpips.LPIPS`` module (``.pth``, ``.npz`` or a mapping of
        arrays with the package's key names), or the package's lin weights file
        (``lpips/weights/v0.1/<net>.pth``) when ``backbone`` is given.
      net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
      backbone: a torchvision ``alexnet``/``vgg16``/``squeezenet1_1`` state dict (path or mapping).

    Returns:
      ``lp(x, y, spatial=False, layers=False)`` on NCHW images in [-1, 1] (the package's
      ``normalize=False``): distances ``(N,)``, or ``(N, 1, H, W)`` maps with ``spatial=True``;
      with ``layers=True`` an :class:`jaxlatent.models.features.lpips.LPIPSOutput` holding the per-layer
      terms as well.
    """
    variables, _ = read_lpips(src, net, backbone)
    return lpips_from_variables(variables, net)


def _inception_call(variables, x, resize: bool = True):
    return FIDInceptionV3(resize=resize).apply(variables, x)


def inception_from_variables(variables):
    """The FID Inception feature callable for given variables (``params`` and ``batch_stats``)."""
    return jax.tree_util.Partial(_inception_call, variables)


def load_inception(src):
    """Load the FID Inception (pytorch-fid's ``pt_inception-2015-12-05-*.pth``) as a pure callable.

    Args:
      src: the weights file (``.pth`` or ``.npz``) or a mapping of arrays with its key names.

    Returns:
      ``features(x, resize=True)``: ``x (N, 3, H, W)`` RGB in [-1, 1] -> ``(N, 2048)`` pool3
      features, the embedding of FID (Heusel et al., NeurIPS 2017).
    """
    variables, _ = read_inception(src)
    return inception_from_variables(variables)
