"""FastGAN generator (Liu et al., "Towards Faster and Stabilized GAN Training for High-fidelity
Few-shot Image Synthesis", ICLR 2021): the model object over the official state dict.

``FastGAN(config, params)`` holds a :class:`FastGANConfig` and params keyed like the official
state dict (spectral norm folded); its forward passes are the Flax linen :class:`Generator` of
:mod:`jaxlatent.models.fastgan.net` applied to ``{"params": params}``. Batch norm runs with
running statistics (evaluation mode, ``batchnorm="running"``, the default: each latent's output
is independent of the batch, which Jacobians need) or with the statistics of the batch
(``batchnorm="batch"``: what the official ``eval.py`` computes, as it never calls ``.eval()``).
See ``docs/fastgan.md``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxlatent.models.errors import UnknownTapError
from jaxlatent.models.fastgan.config import (BATCHNORM_MODES, DEFAULT_BATCHNORM, NOISE_MODES,
                                             FastGANConfig, check_params, expected_shapes,
                                             random_params, tap_shapes)
from jaxlatent.models.fastgan.net import Generator, draw_noise, forward

__all__ = ["FastGAN", "FastGANConfig", "Generator", "expected_shapes", "random_params", "resolve_noise_mode"]


@functools.partial(jax.jit, static_argnames=("config", "batchnorm", "taps"))
def _forward_jit(params, z, noises, *, config, batchnorm, taps):
    return forward(config, params, z, noises, batchnorm, taps)


def _check(config: FastGANConfig, z, batchnorm: str, where: str) -> None:
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"{where}: batchnorm must be one of {BATCHNORM_MODES}; got {batchnorm!r}")
    if z.ndim != 2 or z.shape[1] != config.nz:
        raise ValueError(f"{where}: z must have shape (N, {config.nz}); found {tuple(z.shape)}")


def _noises(config: FastGANConfig, batch, dtype, noise, noise_mode, key, where) -> list:
    """The noise inputs: given arrays (checked), zeros, or a draw from ``key``."""
    shapes = config.noise_shapes
    if noise is not None:
        noise = list(noise)
        if len(noise) != len(shapes):
            raise ValueError(
                f"{where}: noise must hold {len(shapes)} arrays (one per injection point, "
                f"(N, 1, H, W) with H, W = {[s[0] for s in shapes]}); got {len(noise)}")
        out = []
        for i, (arr, hw) in enumerate(zip(noise, shapes)):
            arr = jnp.asarray(arr, dtype)
            if arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[2:] != hw or arr.shape[0] not in (1, batch):
                raise ValueError(
                    f"{where}: noise[{i}] must have shape ({batch} or 1, 1, {hw[0]}, {hw[1]}); "
                    f"found {tuple(arr.shape)}")
            out.append(arr)
        return out
    if noise_mode == "none":
        return [jnp.zeros((1, 1) + hw, dtype) for hw in shapes]
    if noise_mode == "random":
        if key is None:
            raise ValueError(
                f"{where}: noise_mode='random' needs an explicit key=jax.random.key(...); "
                "or pass noise_mode='none' or noise=[...]")
        return draw_noise(config, key, batch, dtype)
    raise ValueError(f"{where}: noise_mode must be one of {NOISE_MODES} (or pass noise=[...]); "
                     f"got {noise_mode!r}")


def resolve_noise_mode(noise_mode: str | None, key) -> str:
    """The noise mode a call uses: as given, or for ``None`` ``"random"`` with a key and ``"none"`` without."""
    if noise_mode is None:
        return "none" if key is None else "random"
    return noise_mode


@dataclasses.dataclass(frozen=True)
class _TapCall:
    """Static part of a tap function; hashable so that equal taps share compiled code."""

    config: FastGANConfig
    tap: str
    noise_mode: str
    batchnorm: str

    def __call__(self, params, noise, key, z):
        z = jnp.asarray(z)
        where = f"FastGAN.fn({self.tap!r})"
        _check(self.config, z, self.batchnorm, where)
        noises = _noises(self.config, z.shape[0], z.dtype, noise, self.noise_mode, key, where)
        # jitted inside: cheap eager calls, and still composable with jit/vmap/jacfwd/grad
        return _forward_jit(params, z, noises, config=self.config, batchnorm=self.batchnorm,
                            taps=(self.tap,))[self.tap]


class FastGAN:
    """A FastGAN generator: ``(config, params)`` and pure functions of latents.

    Batch norm defaults to running statistics (``batchnorm="running"``, evaluation mode): each
    latent's output is then independent of the rest of the batch, as Jacobians and per-sample
    analyses need. The official ``eval.py`` never calls ``.eval()`` and so normalises with the
    statistics of each generated batch; ``batchnorm="batch"`` reproduces that (outputs then
    depend on the batch and its size). ``docs/fastgan.md`` shows how far the two differ.

    Attributes:
      config: :class:`FastGANConfig`.
      params: nested dict of arrays keyed like the official state dict (spectral norm folded).
      source: what the converter read (file, layout, which weights), or ``None``.
      module: the Flax linen :class:`Generator` (running batch-norm statistics).
      variables: ``{"params": params}``, the module's variables.
      batchnorm_default: ``"running"``.
    """

    family = "fastgan"
    batchnorm_default = DEFAULT_BATCHNORM

    def __init__(self, config: FastGANConfig, params: dict, source: dict | None = None):
        check_params(config, params)
        self.config = config
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
        self.source = source

    z_dim = property(lambda self: self.config.nz)

    @property
    def module(self) -> Generator:
        """The generator as a Flax linen module (:class:`Generator`, running statistics)."""
        return Generator(self.config, self.batchnorm_default)

    @property
    def variables(self) -> dict:
        """``{"params": params}``: the variables of :attr:`module`."""
        return {"params": self.params}

    @classmethod
    def init(cls, config: FastGANConfig, key) -> "FastGAN":
        """Model with random parameters (for tests and benchmarks).

        Args:
          config: the generator's hyper-parameters.
          key: ``jax.random`` key.

        Returns:
          a :class:`FastGAN` with :func:`random_params`.
        """
        return cls(config, random_params(config, key), source={"format": "random"})

    def __repr__(self):
        c = self.config
        return (f"FastGAN(im_size={c.im_size}, nz={c.nz}, ngf={c.ngf}, nc={c.nc}, "
                f"batchnorm default={self.batchnorm_default!r}, source={self.source})")

    def noise_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes of the noise inputs.

        Args:
          batch: leading size.

        Returns:
          ``(batch, 1, H, W)`` of each noise input, in the official draw order.
        """
        return [(batch, 1) + hw for hw in self.config.noise_shapes]

    # ------------------------------------------------------------------ evaluation
    def taps(self) -> list[str]:
        """Tap names in forward order: ``init``, ``feat_8`` .. ``feat_<im_size>``, ``image128``, ``image``."""
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
            raise UnknownTapError(f"unknown FastGAN tap {tap!r}; known taps: {list(shapes)}")
        return shapes[tap]

    def features(self, z, taps: Sequence[str] = ("image", "image128"), noise=None, noise_mode: str | None = None,
                 key=None, batchnorm: str = DEFAULT_BATCHNORM) -> dict:
        """Several taps from one jitted forward pass.

        Args:
          z: (N, nz) latents.
          taps: names from :meth:`taps`.
          noise, noise_mode, key, batchnorm: as in :meth:`generate`.

        Returns:
          ``{tap: (N, *tap_shape)}``.
        """
        z = jnp.asarray(z)
        z = z if jnp.issubdtype(z.dtype, jnp.floating) else z.astype(jnp.float32)
        _check(self.config, z, batchnorm, "FastGAN.features")
        for t in taps:
            self.tap_shape(t)
        noises = _noises(self.config, z.shape[0], z.dtype, noise, resolve_noise_mode(noise_mode, key), key,
                         "FastGAN.features")
        return _forward_jit(self.params, z, noises, config=self.config, batchnorm=batchnorm,
                            taps=tuple(taps))

    def generate(self, z, noise=None, noise_mode: str | None = None, key=None,
                 batchnorm: str = DEFAULT_BATCHNORM):
        """Images from latents.

        The noise is explicit: random noise needs a key, and without one the images are noise-free
        (the same inputs the analyses' taps see, :meth:`fn`). Nothing is drawn from a hidden key.

        Args:
          z: (N, nz) latents.
          noise: optional list of ``(N or 1, 1, H, W)`` arrays, one per injection point in the
            official draw order (:meth:`noise_shapes`); overrides ``noise_mode``.
          noise_mode: ``"random"`` (standard normal from ``key``, as the official generator
            draws it), ``"none"`` (no noise) or ``None`` (the default: ``"random"`` when a
            ``key`` is given, ``"none"`` otherwise).
          key: ``jax.random`` key of the random noise.
          batchnorm: ``"running"`` (evaluation mode, default) or ``"batch"`` (official ``eval.py``).

        Returns:
          (N, nc, im_size, im_size) images in about [-1, 1] (not clipped).
        """
        return self.features(z, ("image",), noise, noise_mode, key, batchnorm)["image"]

    def fn(self, tap: str = "image", noise=None, noise_mode: str | None = None, key=None,
           batchnorm: str = DEFAULT_BATCHNORM, *, wrt: str = "z") -> Callable:
        """A pure batched function of latents for analyses; only the blocks the tap needs run.

        ``f`` is a ``jax.tree_util.Partial`` whose leaves are the parameters (and ``noise``,
        ``key``): pass it as an argument to jitted code and the weights reach the compiled
        program as inputs, not constants. ``jit``/``vmap``/``jacfwd``/``grad`` apply.

        Args:
          tap: a name from :meth:`taps`.
          noise: explicit noise arrays as in :meth:`generate`; use batch 1 (shared by every
            sample) for Jacobians.
          noise_mode: ``"none"`` (noise-free Jacobians), ``"random"`` (needs ``key``; the same
            draw at every call with the same batch size) or ``None`` (the default: ``"random"``
            when a ``key`` is given, ``"none"`` otherwise).
          key: ``jax.random`` key of the random noise.
          batchnorm: ``"running"`` or ``"batch"``; the latter makes samples depend on each
            other, which breaks the per-sample convention of ``docs/architecture.md``.
          wrt: the input space; FastGAN has no mapping network, so only ``"z"``.

        Returns:
          ``f(z: (N, nz)) -> (N, *tap_shape(tap))``.
        """
        self.tap_shape(tap)
        if wrt != "z":
            raise ValueError(f"FastGAN.fn: wrt={wrt!r}: FastGAN has no mapping network, so its only "
                             "latent space is z; use wrt='z'")
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"FastGAN.fn: batchnorm must be one of {BATCHNORM_MODES}; got {batchnorm!r}")
        noise_mode = resolve_noise_mode(noise_mode, key)
        if noise is None and noise_mode == "random" and key is None:
            raise ValueError("FastGAN.fn: noise_mode='random' needs an explicit key=jax.random.key(...)")
        if noise is not None:
            noise = [jnp.asarray(n) for n in noise]
        return jax.tree_util.Partial(_TapCall(self.config, tap, noise_mode, batchnorm),
                                     self.params, noise, key)
