"""The BigGAN-deep model object: ``(config, params)`` and pure functions of latents.

Brock, Donahue & Simonyan, ICLR 2019, as huggingface's ``pytorch-pretrained-biggan`` 0.1.1 runs
it in evaluation mode. ``docs/biggan.md`` states what is supported and how it differs from
StyleGAN2 (class conditioning; truncation selects batch-norm statistics).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models.biggan.config import (BigGANConfig, check_params, random_params,
                                            statistic_mix, statistic_weights, tap_shapes)
from jaxlatent.models.biggan.network import WRT, BigGANModule, forward
from jaxlatent.models.biggan.sampling import class_vectors, latent_std, latents_from_seeds
from jaxlatent.models.errors import UnknownTapError

__all__ = ["BigGAN"]


@functools.partial(jax.jit, static_argnames=("config", "taps", "wrt"))
def _forward_jit(params, x, fixed, mix, *, config, taps, wrt):
    return forward(config, params, x, fixed, mix, taps, wrt)


def _truncation(value, config: BigGANConfig) -> float:
    statistic_weights(value, config.n_stats)  # checks (0, 1]
    return float(value)


def _mix(value, config: BigGANConfig) -> tuple:
    return tuple(jnp.asarray(a) for a in statistic_mix(value, config.n_stats))


def _check_input(config: BigGANConfig, x, wrt: str, where: str):
    want = 2 * config.z_dim if wrt == "cond" else config.z_dim
    if x.ndim != 2 or x.shape[1] != want:
        name = {"z": "z", "class": "the class embedding", "cond": "[z, embedding]"}[wrt]
        raise ValueError(f"{where}: {name} must have shape (N, {want}); found {tuple(x.shape)}")


def _rows(fixed, n: int, what: str, where: str):
    if fixed is not None and fixed.shape[0] not in (1, n):
        raise ValueError(f"{where}: {fixed.shape[0]} rows of {what} for a batch of {n} (give 1 or {n})")


@dataclasses.dataclass(frozen=True)
class _TapCall:
    """Static part of a tap function; hashable so that equal taps share compiled code."""

    config: BigGANConfig
    tap: str
    wrt: str

    def __call__(self, params, fixed, mix, x):
        x = jnp.asarray(x)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
        where = f"BigGAN.fn({self.tap!r}, wrt={self.wrt!r})"
        _check_input(self.config, x, self.wrt, where)
        _rows(fixed, x.shape[0], "the fixed input", where)
        # jitted inside: cheap eager calls, and still composable with jit/vmap/jacfwd/grad
        return _forward_jit(params, x, fixed, mix, config=self.config, taps=(self.tap,),
                            wrt=self.wrt)[self.tap]


class BigGAN:
    """A BigGAN-deep generator: ``config``, ``params`` and pure functions of latents.

    Images are NCHW float32 in [-1, 1] (tanh). Every call names a class (``c``: an index, indices
    (N,), one-hot or dense class vectors) and a truncation in (0, 1] that selects the batch-norm
    statistics; latents drawn for truncation t are ``t * TN(0, 1; [-2, 2])``
    (:meth:`sample_latents`, :func:`~jaxlatent.models.biggan.sampling.truncated_noise_sample`).

    Attributes:
      config: :class:`BigGANConfig`.
      params: nested dict of arrays keyed like the package's state dict (spectral norm folded).
      source: what the converter read (files, sha256), or None.
      module: the Flax linen :class:`BigGANModule`; ``module.apply(variables, z, class_vector,
        truncation)`` is the image.
      variables: ``{"params": params}``, the module's variables.
    """

    family = "biggan"

    def __init__(self, config: BigGANConfig, params: dict, source: dict | None = None):
        check_params(config, params)
        self.config = config
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
        self.source = source

    z_dim = property(lambda self: self.config.z_dim)
    num_classes = property(lambda self: self.config.num_classes)
    resolution = property(lambda self: self.config.resolution)

    @property
    def module(self) -> BigGANModule:
        """The generator as a Flax linen module (:class:`BigGANModule`)."""
        return BigGANModule(self.config)

    @property
    def variables(self) -> dict:
        """``{"params": params}``: the variables of :attr:`module`."""
        return {"params": self.params}

    @classmethod
    def init(cls, config: BigGANConfig, key) -> "BigGAN":
        """Model with :func:`random_params` (for tests and benchmarks); ``key``: ``jax.random`` key."""
        return cls(config, random_params(config, key), source={"format": "random"})

    def __repr__(self):
        c = self.config
        return (f"BigGAN(resolution={c.resolution}, z_dim={c.z_dim}, channel_width={c.channel_width}, "
                f"num_classes={c.num_classes}, blocks={len(c.layers)}, source={self.source})")

    # ----- inputs -------------------------------------------------------------------------
    def class_vectors(self, c, batch: int | None = None) -> np.ndarray:
        """``c`` (index, indices (N,), one-hot or dense vectors) -> float32 (N or 1, num_classes)."""
        return class_vectors(c, self.config.num_classes, batch)

    def embed(self, c) -> jax.Array:
        """Class embeddings ``(N or 1, z_dim)`` of ``c`` (any form :meth:`class_vectors` takes):
        the inputs of ``fn(..., wrt="class")``."""
        return self.module.apply(self.variables, jnp.asarray(self.class_vectors(c)), method="embed")

    def sample_latents(self, seeds, truncation: float = 1.0) -> np.ndarray:
        """One latent per seed as the package draws it: ``(len(seeds), z_dim)`` float32, row i
        ``truncated_noise_sample(1, z_dim, truncation, seeds[i])``."""
        return latents_from_seeds(seeds, self.config.z_dim, _truncation(truncation, self.config))

    def latent_std(self, truncation: float = 1.0) -> float:
        """Standard deviation of each coordinate of :meth:`sample_latents`'s draws at ``truncation``
        (``truncation * 0.8796``, :func:`~jaxlatent.models.biggan.sampling.latent_std`)."""
        return latent_std(_truncation(truncation, self.config))

    # ----- evaluation ---------------------------------------------------------------------
    def taps(self) -> list[str]:
        """Tap names in forward order: ``gen_z``, ``layers.0`` .. ``layers.<M-1>``, ``image``."""
        return list(tap_shapes(self.config))

    def _tap(self, tap: str) -> str:
        name = tap[len("generator."):] if tap.startswith("generator.") else tap
        if name not in tap_shapes(self.config):
            raise UnknownTapError(f"unknown BigGAN tap {tap!r}; known taps: {self.taps()} "
                                  "(the package's module paths, 'generator.' optional)")
        return name

    def tap_shape(self, tap: str) -> tuple[int, ...]:
        """Shape of one sample of ``tap`` (a name from :meth:`taps`, ``generator.`` optional)."""
        return tap_shapes(self.config)[self._tap(tap)]

    def features(self, z, c, taps: Sequence[str] = ("image",), truncation: float = 1.0) -> dict:
        """Several taps from one jitted forward pass.

        Args:
          z: (N, z_dim) latents. c: the class (see :meth:`class_vectors`).
          taps: names from :meth:`taps`. truncation: in (0, 1].

        Returns:
          ``{tap: (N, *tap_shape)}`` keyed by the names given.
        """
        z = jnp.asarray(z)
        z = z if jnp.issubdtype(z.dtype, jnp.floating) else z.astype(jnp.float32)
        _check_input(self.config, z, "z", "BigGAN.features")
        names = {t: self._tap(t) for t in taps}
        vectors = self.class_vectors(c, z.shape[0])
        vectors = jnp.asarray(np.broadcast_to(vectors, (z.shape[0], vectors.shape[1])))  # one program per batch size
        out = _forward_jit(self.params, z, vectors, _mix(truncation, self.config), config=self.config,
                           taps=tuple(dict.fromkeys(names.values())), wrt="z")
        return {t: out[n] for t, n in names.items()}

    def generate(self, z, c, truncation: float = 1.0):
        """Images: the package's ``BigGAN(z, class_vector, truncation)`` in evaluation mode.

        Args:
          z: (N, z_dim) latents (the package draws ``truncated_noise_sample(N, z_dim, truncation)``).
          c: the class: an index, indices (N,), a one-hot or dense vector (num_classes,), or
            vectors (N, num_classes).
          truncation: in (0, 1]; selects (and mixes) the batch-norm statistic tables.

        Returns:
          (N, 3, R, R) images in [-1, 1].
        """
        return self.features(z, c, ("image",), truncation)["image"]

    def fn(self, tap: str = "image", c=None, truncation: float = 1.0, *, wrt: str = "z",
           z=None) -> Callable:
        """A pure batched function for analyses; only the layers the tap needs run.

        ``f`` is a ``jax.tree_util.Partial`` whose leaves are the parameters (and the fixed class
        vectors or latent): pass it as an argument to jitted code and the weights reach the
        compiled program as inputs. ``jit``/``vmap``/``jacfwd``/``grad`` apply.

        Args:
          tap: a name from :meth:`taps` (``generator.`` optional).
          c: the class, for ``wrt="z"`` (any form of :meth:`class_vectors`); one class (a scalar
            index or one vector) is shared by every sample, which per-sample Jacobians need.
          truncation: in (0, 1]; selects the batch-norm statistics (it does not rescale the input).
            It reaches the compiled program as data: every truncation shares one program.
          wrt: the input space: ``"z"`` (x = z: (N, z_dim)); ``"class"`` (x = the class embedding
            (N, z_dim), :meth:`embed`, with the latent fixed by ``z``; GAN-Geometry's class
            space, Wang & Ponce 2021); ``"cond"`` (x = ``[z, embedding]``: (N, 2 z_dim), the
            condition vector every block reads).
          z: the fixed latent for ``wrt="class"``: (z_dim,) shared, or (N, z_dim).

        Returns:
          ``f(x: (N, in)) -> (N, *tap_shape(tap))``.
        """
        name = self._tap(tap)
        if wrt not in WRT:
            raise ValueError(f"BigGAN.fn: wrt must be one of {WRT}; got {wrt!r}")
        mix = _mix(truncation, self.config)
        fixed = None
        if wrt == "z":
            if z is not None:
                raise ValueError("BigGAN.fn: z= fixes the latent for wrt='class'; with wrt='z' z is the input")
            fixed = jnp.asarray(self.class_vectors(c))
        elif wrt == "class":
            if c is not None:
                raise ValueError("BigGAN.fn: with wrt='class' the class embedding is the input; "
                                 "do not pass c (use model.embed(c) for the starting points)")
            if z is None:
                raise ValueError(f"BigGAN.fn: wrt='class' needs the fixed latent z=(z_dim,) = ({self.z_dim},)")
            if np.ndim(z) not in (1, 2) or np.shape(z)[-1] != self.z_dim:
                raise ValueError(f"BigGAN.fn: z must have shape ({self.z_dim},) or (N, {self.z_dim}); "
                                 f"found {np.shape(z)}")
            fixed = jnp.asarray(z, jnp.float32).reshape(-1, self.z_dim)
        elif c is not None or z is not None:
            raise ValueError("BigGAN.fn: wrt='cond' takes [z, embedding] as its input; pass neither c nor z")
        return jax.tree_util.Partial(_TapCall(self.config, name, wrt), self.params, fixed, mix)
