"""StyleGAN2 generator (NVlabs stylegan2-ada-pytorch / stylegan3 StyleGAN2) in JAX.

``StyleGAN2(config, params)`` reproduces the official generator to float32 rounding
(Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020; code
NVlabs/stylegan2-ada-pytorch ``training/networks.py``). ``params`` is the NVlabs state dict
nested at its dots (``docs/architecture.md``).

Taps (``model.taps()``; shapes without the batch axis; see ``docs/taps.md``):

=============================  =====================================================
``mapping.embed``              label embedding (c_dim > 0 only), (embed_features,)
``mapping.fc<i>``              output of mapping layer i after its activation, (features,)
``w``                          truncated w = ``ws[:, 0]``, (w_dim,)
``ws``                         W+: every layer's w after truncation, (num_ws, w_dim)
``style.b<res>.<layer>``       S space: the affine output s of a modulated layer, (in_channels,)
                               for layer in conv0 (res > 4), conv1, torgb (skip: every block;
                               otherwise the last)
``styles``                     every style vector concatenated in execution order, (sum,)
``synthesis.b<res>.conv0``     output of a block's upsampling layer, (C, res, res)
``synthesis.b<res>.conv1``     output of a block's second layer, (C, res, res)
``synthesis.b<res>``           block features x (after the resnet skip sum), (C, res, res)
``synthesis.b<res>.img``       running RGB image after the block (skip: every block)
``image``                      the generated image, (img_channels, R, R), in about [-1, 1]
=============================  =====================================================

Every tap computes only what it needs: a mapping tap never runs the synthesis network.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.aligned import Aligned
from jaxlatent.models.errors import UnknownTapError
from jaxlatent.models.stylegan2.layers import NOISE_MODES, MappingNetwork, SynthesisNetwork
from jaxlatent.models.stylegan2.net import Generator, check_wrt, tap_shapes, tap_value
from jaxlatent.models.stylegan2.config import (SynthesisLayerSpec, StyleGAN2Config,
                                               expected_shapes, params_from_state_dict,
                                               random_params)

__all__ = ["StyleGAN2", "StyleGAN2Config", "Generator", "MappingNetwork", "SynthesisNetwork",
           "expected_shapes", "params_from_state_dict", "random_params", "SynthesisLayerSpec",
           "tap_value"]


@functools.partial(jax.jit, static_argnames=("config", "tap", "truncation_psi",
                                             "truncation_cutoff", "noise_mode", "wrt"))
def _tap_jit(params, z, c, key, *, config, tap, truncation_psi, truncation_cutoff, noise_mode,
             wrt="z"):
    return tap_value(config, params, tap, z, c, truncation_psi, truncation_cutoff, noise_mode, key,
                     wrt)


@functools.partial(jax.jit, static_argnames=("config", "noise_mode"))
def _synthesis_jit(params, ws, key, *, config, noise_mode):
    return SynthesisNetwork(config).apply({"params": params["synthesis"]}, ws, noise_mode, key)


def labels(c, c_dim: int, where: str = "StyleGAN2"):
    """Class labels as the generator takes them: ``None``, one label ``(c_dim,)`` for every latent,
    or one per latent ``(N, c_dim)``.

    Args:
      c: ``None``; a class index (int), which becomes its one-hot; a one-hot or soft label
        ``(c_dim,)`` or ``(1, c_dim)`` (broadcast to every latent); or ``(N, c_dim)``, one row per
        latent (N > 1).
      c_dim: the generator's number of classes (0: unconditional).
      where: what error messages name.

    Returns:
      ``None``, a ``(c_dim,)`` float32 array, or an ``(N, c_dim)`` float32 array with N > 1.
    """
    if c is None:
        return None
    if c_dim == 0:
        raise ValueError(f"{where}: labels c given, but this generator is unconditional (c_dim=0)")
    if isinstance(c, (int, np.integer)) or (np.ndim(c) == 0 and np.issubdtype(np.asarray(c).dtype, np.integer)):
        idx = int(c)
        if not 0 <= idx < c_dim:
            raise ValueError(f"{where}: class index {idx} outside 0..{c_dim - 1}")
        return jnp.zeros((c_dim,), jnp.float32).at[idx].set(1.0)
    c = jnp.asarray(c, jnp.float32)
    if c.ndim == 2 and c.shape[0] == 1:
        c = c[0]
    if c.shape[-1:] != (c_dim,) or c.ndim not in (1, 2):
        raise ValueError(f"{where}: labels c must be a class index, ({c_dim},), (1, {c_dim}) or (N, {c_dim}); "
                         f"found shape {tuple(c.shape)}")
    return c


class StyleGAN2:
    """A StyleGAN2 generator: ``config``, ``params`` and pure functions of latents.

    Images are NCHW float32 in about [-1, 1], not clipped, as the reference returns them.

    Attributes:
      config: :class:`StyleGAN2Config`.
      params: nested dict of arrays keyed like the NVlabs state dict, PyTorch layouts.
      source: provenance (what the converter read: file, format, which network), or None.
      module: the Flax linen :class:`Generator`; ``module.apply(variables, z)`` is the image.
      variables: ``{"params": params}``, the module's variables.
    """

    family = "stylegan2"

    def __init__(self, config: StyleGAN2Config, params, source: dict | None = None):
        self.config = config
        self.params = params
        self.source = source

    @property
    def module(self) -> Generator:
        """The generator as a Flax linen module (:class:`Generator`)."""
        return Generator(self.config)

    @property
    def variables(self) -> dict:
        """``{"params": params}``: the variables of :attr:`module`."""
        return {"params": self.params}

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def init(cls, config: StyleGAN2Config, key: jax.Array) -> "StyleGAN2":
        """Model with parameters drawn as the NVlabs constructors draw them.

        Args:
          config: the generator's hyper-parameters.
          key: ``jax.random`` key.

        Returns:
          a :class:`StyleGAN2` with :func:`random_params`.
        """
        return cls(config, random_params(config, key))

    @classmethod
    def from_state_dict(cls, config: StyleGAN2Config, state_dict, source: str = "<state dict>"):
        """Model from a flat NVlabs state dict.

        Args:
          config: the generator's hyper-parameters.
          state_dict: flat ``{'mapping.fc0.weight': array, ...}`` (see
            :func:`params_from_state_dict`).
          source: names the dict in error messages and in ``model.source``.

        Returns:
          a :class:`StyleGAN2`; ``ValueError`` names every missing or misshapen key.
        """
        return cls(config, params_from_state_dict(config, state_dict, source),
                   source={"format": "nvlabs-state-dict", "file": source})

    # ----- sizes --------------------------------------------------------------------------
    z_dim = property(lambda self: self.config.z_dim)
    c_dim = property(lambda self: self.config.c_dim)
    w_dim = property(lambda self: self.config.w_dim)
    num_ws = property(lambda self: self.config.num_ws)
    img_resolution = property(lambda self: self.config.img_resolution)
    img_channels = property(lambda self: self.config.img_channels)

    def __repr__(self):
        c = self.config
        return (f"StyleGAN2(z_dim={c.z_dim}, c_dim={c.c_dim}, w_dim={c.w_dim}, "
                f"img_resolution={c.img_resolution}, architecture={c.architecture!r}, "
                f"num_ws={c.num_ws})")

    # ----- forward passes -----------------------------------------------------------------
    def _check_noise(self, noise_mode, key):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if noise_mode == "random" and key is None and self.config.use_noise:
            raise ValueError("noise_mode='random' needs an explicit jax.random key: pass key=...")

    def _run(self, tap, z, c, truncation_psi, truncation_cutoff, noise_mode, key):
        self._check_noise(noise_mode, key)
        z = jnp.asarray(z)
        c = labels(c, self.config.c_dim, f"StyleGAN2 {tap}")
        if c is not None and c.ndim == 1:
            c = jnp.broadcast_to(c, (z.shape[0], c.shape[0]))
        return _tap_jit(self.params, z, c, key, config=self.config, tap=tap,
                        truncation_psi=float(truncation_psi),
                        truncation_cutoff=_cutoff(truncation_cutoff), noise_mode=noise_mode)

    def mapping(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None):
        """Mapping network f: Z -> W+ with truncation (NVlabs ``G.mapping``).

        Args:
          z: (N, z_dim) latents.
          c: labels of a conditional generator (see :func:`labels`: a class index, one label
            ``(c_dim,)`` / ``(1, c_dim)`` for every latent, or ``(N, c_dim)``), else None.
          truncation_psi, truncation_cutoff: the truncation trick (Karras et al. 2019, section
            3) towards ``w_avg`` on the first ``cutoff`` rows (all when None).

        Returns:
          ws: (N, num_ws, w_dim).
        """
        return self._run("ws", z, c, truncation_psi, truncation_cutoff, "const", None)

    def synthesis(self, ws, noise_mode: str = "const", key=None):
        """Synthesis network g: W+ -> image (NVlabs ``G.synthesis``).

        Args:
          ws: (N, num_ws, w_dim).
          noise_mode: 'const' (stored noise), 'random' (from ``key``) or 'none'.
          key: ``jax.random`` key for ``noise_mode='random'``.

        Returns:
          images (N, img_channels, R, R) in about [-1, 1].
        """
        self._check_noise(noise_mode, key)
        return _synthesis_jit(self.params, ws, key, config=self.config, noise_mode=noise_mode)

    def generate(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                 noise_mode: str = "const", key=None):
        """Images from latents; NVlabs ``G(z, c, truncation_psi, truncation_cutoff, noise_mode)``.

        Args:
          z: (N, z_dim) latents.
          c: labels of a conditional generator, as in :meth:`mapping`, else None.
          truncation_psi, truncation_cutoff: as in :meth:`mapping`.
          noise_mode, key: as in :meth:`synthesis`.

        Returns:
          images (N, img_channels, R, R) in about [-1, 1], not clipped.
        """
        return self._run("image", z, c, truncation_psi, truncation_cutoff, noise_mode, key)

    # ----- taps ---------------------------------------------------------------------------
    def taps(self) -> list[str]:
        """Names accepted by :meth:`fn`, in computation order."""
        return list(tap_shapes(self.config))

    def tap_shape(self, tap: str) -> tuple[int, ...]:
        """Shape of one sample of a tap.

        Args:
          tap: a name from :meth:`taps`.

        Returns:
          the shape without the batch axis; :class:`UnknownTapError` for an unknown name.
        """
        shapes = tap_shapes(self.config)
        if tap not in shapes:
            raise UnknownTapError(f"unknown StyleGAN2 tap {tap!r}; known taps: {list(shapes)}")
        return shapes[tap]

    def fn(self, tap: str, c=None, truncation_psi: float = 1.0,
           truncation_cutoff: int | None = None, noise_mode: str = "const", key=None, *,
           wrt: str = "z") -> Callable:
        """Pure batched callable ``f(x) -> (N, *tap_shape(tap))`` for analyses.

        jit/vmap/jacfwd/grad all apply; under ``vmap`` of a single-sample wrapper 'random'
        noise is the same draw for every sample.

        ``f`` is a ``jax.tree_util.Partial`` whose leaves are the parameters: pass it *as an
        argument* to a jitted function (``jax.jit(lambda f, z: ...)(f, z)``) and the weights
        reach the compiled program as inputs; closing over it instead embeds every weight as a
        constant, which makes compilation several times slower for large generators.

        Args:
          tap: a name from :meth:`taps`.
          c: labels of a conditional generator (``wrt='z'`` only: W and W+ inputs already carry
            the label): a class index, or one label ``(c_dim,)`` / ``(1, c_dim)``, used for every
            latent of any batch; or ``(N, c_dim)``, one per latent: ``f`` is then an
            :class:`jaxlatent.engine.aligned.Aligned` whose labels travel with their latents
            through an analysis's chunks, pieces and devices (called directly, it takes
            exactly those N latents). ``docs/conditioning.md``.
          truncation_psi, truncation_cutoff: truncation trick (Karras et al. 2019), applied to
            the mapped w when ``wrt='z'``; W and W+ inputs are used as given (truncate them
            with ``model.mapping(z, truncation_psi=...)`` when drawing them).
          noise_mode: 'const' (stored noise), 'random' (from ``key``) or 'none'.
          key: ``jax.random`` key for ``noise_mode='random'``.
          wrt: the input space: ``'z'`` (x = z: (N, z_dim)), ``'w'`` (x = w: (N, w_dim), one w
            per sample broadcast to every layer, as in GANSpace and GAN geometry, Shao et al.
            2018 / Wang & Ponce 2021) or ``'ws'`` (x = W+ ws: (N, num_ws, w_dim)). Mapping
            taps exist only for ``'z'``.

        Returns:
          ``f(x: (N, *input_shape)) -> (N, *tap_shape(tap))``.
        """
        self.tap_shape(tap)
        check_wrt(tap, wrt)
        self._check_noise(noise_mode, key)
        c = labels(c, self.config.c_dim, f"StyleGAN2.fn({tap!r})")
        if wrt != "z":  # truncation acts on mapped z only: equal calls share compiled code
            truncation_psi, truncation_cutoff = 1.0, None
            c = None    # labels act in the mapping network only
        call = _TapCall(self.config, tap, float(truncation_psi), _cutoff(truncation_cutoff),
                        noise_mode, wrt)
        if c is not None and c.ndim == 2:   # one label per latent: they travel with the latents
            return Aligned(jax.tree_util.Partial(_labelled, call, self.params, key), c)
        return jax.tree_util.Partial(call, self.params, c, key)


def _labelled(call, params, key, z, c):
    return call(params, c, key, z)


def _cutoff(truncation_cutoff):
    # a static jit argument: numpy integers become plain ints so that equal values share code
    return None if truncation_cutoff is None else int(truncation_cutoff)


@dataclasses.dataclass(frozen=True)
class _TapCall:
    """Static part of a tap function; hashable so that equal taps share compiled code."""

    config: StyleGAN2Config
    tap: str
    truncation_psi: float
    truncation_cutoff: int | None
    noise_mode: str
    wrt: str = "z"

    def __call__(self, params, c, key, z):
        z = jnp.asarray(z)
        if self.wrt != "z":
            c = None  # labels act in the mapping network only
        elif c is not None and c.ndim == 1:
            c = jnp.broadcast_to(c, (z.shape[0], c.shape[0]))
        return _tap_jit(params, z, c, key, config=self.config, tap=self.tap,
                        truncation_psi=self.truncation_psi,
                        truncation_cutoff=self.truncation_cutoff, noise_mode=self.noise_mode,
                        wrt=self.wrt)
