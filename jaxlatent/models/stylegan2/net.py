"""The StyleGAN2 generator as one Flax linen module, with a method per tap.

:class:`Generator` holds the mapping and synthesis networks of
:mod:`jaxlatent.models.stylegan2.layers` as submodules ``mapping`` and ``synthesis`` (NVlabs
``Generator``; Karras et al., CVPR 2020), so its variables are ``{"params": params}`` with the
converters' params. :meth:`Generator.tap` computes one tap from Z, W or W+ and calls only the
submodules the tap needs; :func:`tap_shapes` lists the taps and :func:`tap_value` applies the
module to a params pytree.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlatent.models.stylegan2.config import StyleGAN2Config
from jaxlatent.models.stylegan2.layers import MappingNetwork, SynthesisNetwork


WRT = ("z", "w", "ws")


def check_wrt(tap: str, wrt: str) -> None:
    """Check that ``tap`` is a function of the latent space ``wrt``.

    Args:
      tap: a tap name.
      wrt: ``'z'``, ``'w'`` or ``'ws'``.

    Returns:
      None; raises ``ValueError`` for an unknown space or a mapping tap from W or W+.
    """
    if wrt not in WRT:
        raise ValueError(f"wrt must be one of {WRT} (input space Z, W or W+), got {wrt!r}")
    if wrt != "z" and tap.startswith("mapping."):
        raise ValueError(f"tap {tap!r} lies upstream of w (in the mapping network), so it is not "
                         f"a function of {wrt!r}; use wrt='z' for mapping taps, or a tap from "
                         "'w' on")


class Generator(nn.Module):
    """StyleGAN2 generator (NVlabs ``Generator``): submodules ``mapping`` and ``synthesis``.

    ``Generator(config).apply({"params": params}, z, c, truncation_psi=...)`` is the image;
    :meth:`tap` is any tap, computing only what the tap needs.
    """

    config: StyleGAN2Config

    def setup(self):
        self.mapping = MappingNetwork(self.config)
        self.synthesis = SynthesisNetwork(self.config)

    def __call__(self, z, c=None, truncation_psi: float = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "const", key=None):
        """Image (N, img_channels, R, R) from z: (N, z_dim); NVlabs ``G(z, c, ...)``."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode, key)

    def _ws(self, x, wrt: str):
        """W+ from an input in W (broadcast to every layer) or W+ (as is); shapes checked."""
        cfg = self.config
        x = jnp.asarray(x)
        if wrt == "w":
            if x.ndim != 2 or x.shape[1] != cfg.w_dim:
                raise ValueError(f"wrt='w': w must have shape (N, {cfg.w_dim}), got {x.shape}")
            return jnp.broadcast_to(x[:, None, :], (x.shape[0], cfg.num_ws, cfg.w_dim))
        if x.ndim != 3 or x.shape[1:] != (cfg.num_ws, cfg.w_dim):
            raise ValueError(f"wrt='ws': ws must have shape (N, {cfg.num_ws}, {cfg.w_dim}), "
                             f"got {x.shape}")
        return x

    def tap(self, x, tap: str, c=None, truncation_psi: float = 1.0,
            truncation_cutoff: int | None = None, noise_mode: str = "const", key=None,
            wrt: str = "z"):
        """Value of one tap, computing only the submodules it needs.

        Args:
          x: z: (N, z_dim), w: (N, w_dim) or ws: (N, num_ws, w_dim), as ``wrt`` says.
          tap: a name of :meth:`jaxlatent.models.stylegan2.model.StyleGAN2.taps`.
          c: (N, c_dim) labels (``wrt='z'`` only).
          truncation_psi, truncation_cutoff: truncation of the mapped w (``wrt='z'`` only).
          noise_mode, key: as in :meth:`SynthesisNetwork.__call__`.
          wrt: ``'z'``, ``'w'`` or ``'ws'``.

        Returns:
          (N, *tap_shape).
        """
        cfg = self.config
        check_wrt(tap, wrt)
        if wrt == "z":
            x = jnp.asarray(x)
            if x.ndim != 2 or x.shape[1] != cfg.z_dim:
                raise ValueError(f"z must have shape (N, {cfg.z_dim}), got {x.shape}")
            if tap.startswith("mapping."):
                return self.mapping.layers(x, c, stop=tap)
            ws = self.mapping(x, c, truncation_psi, truncation_cutoff)
        else:
            ws = self._ws(x, wrt)
        if tap == "ws":
            return ws
        if tap == "w":
            return ws[:, 0]
        if tap == "styles":
            return self.synthesis.styles(ws)
        if tap.startswith("style."):
            _, block, name = tap.split(".")
            return self.synthesis.style(ws, int(block[1:]), name)
        return self.synthesis(ws, noise_mode, key, stop=None if tap == "image" else tap)


def tap_shapes(config: StyleGAN2Config) -> dict[str, tuple[int, ...]]:
    """The taps of a generator.

    Args:
      config: the generator's hyper-parameters.

    Returns:
      ``{tap: per-sample shape}`` in computation order (``docs/taps.md``).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    feats = config.mapping_features
    if config.c_dim > 0:
        shapes["mapping.embed"] = (config.embed_features,)
    for i in range(config.mapping_layers):
        shapes[f"mapping.fc{i}"] = (feats[i + 1],)
    shapes["w"] = (config.w_dim,)
    shapes["ws"] = (config.num_ws, config.w_dim)
    layers = config.synthesis_layers
    for s in layers:
        shapes[f"style.{'b%d' % s.res}.{s.name}"] = (s.in_channels,)
    shapes["styles"] = (sum(s.in_channels for s in layers),)
    for res in config.block_resolutions:
        c = config.block_channels(res)
        if res > 4:
            shapes[f"synthesis.b{res}.conv0"] = (c, res, res)
        shapes[f"synthesis.b{res}.conv1"] = (c, res, res)
        shapes[f"synthesis.b{res}"] = (c, res, res)
        if config.architecture == "skip" or res == config.img_resolution:
            shapes[f"synthesis.b{res}.img"] = (config.img_channels, res, res)
    r = config.img_resolution
    shapes["image"] = (config.img_channels, r, r)
    return shapes


def tap_value(config: StyleGAN2Config, params, tap: str, z, c=None, truncation_psi: float = 1.0,
              truncation_cutoff: int | None = None, noise_mode: str = "const", key=None,
              wrt: str = "z"):
    """Value of ``tap`` at a batch of latents: :meth:`Generator.tap` on ``params``; traceable.

    Args:
      config: the generator's :class:`StyleGAN2Config`.
      params: its nested parameters (``model.params``).
      tap: a name from :meth:`StyleGAN2.taps`.
      z: the input, in the space ``wrt`` names: z: (N, z_dim) for ``'z'``, w: (N, w_dim) for
        ``'w'`` (one w per sample, broadcast to every layer), ws: (N, num_ws, w_dim) for ``'ws'``.
      c: labels (N, c_dim) of a conditional generator (used by the mapping network only).
      truncation_psi, truncation_cutoff: the truncation trick (Karras et al. 2019, section 3),
        applied to the mapped w only: W and W+ inputs are used as given.
      noise_mode, key: see :meth:`StyleGAN2.fn`.
      wrt: ``'z'``, ``'w'`` or ``'ws'``.

    Returns:
      (N, *tap_shape) for the tap.
    """
    return Generator(config).apply({"params": params}, z, tap, c, truncation_psi,
                                   truncation_cutoff, noise_mode, key, wrt, method=Generator.tap)
