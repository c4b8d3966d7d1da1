"""FastGAN generator (Liu et al., "Towards Faster and Stabilized GAN Training for High-fidelity
Few-shot Image Synthesis", ICLR 2021) as pure JAX functions over the official state dict.

The network is the one in the author's ``models.py`` (``Generator``), for ``im_size`` 256, 512
and 1024 and any ``nz``/``ngf``:

* ``init``: a 4x4 transposed convolution of ``z`` (as ``(N, nz, 1, 1)``), batch norm, GLU, giving
  ``(16 * ngf, 4, 4)`` features -- the 16384 values at ngf 64 that seed 002 calls "conv1";
* ``feat_<res>``: nearest up-sampling x2, 3x3 convolution, batch norm, GLU; the blocks at 8, 32,
  128 and 512 add a second convolution and inject noise (``x + w * noise``, before each batch
  norm); 64, 128, 256 and 512 are gated by skip-layer excitation from 4, 8, 16 and 32;
* outputs ``image`` (``to_big``, 3x3) and ``image128`` (``to_128``, 1x1), with the official
  quirk that only im_size 1024 applies ``tanh`` (at 256 and 512 both outputs are raw).

Parameters are the official state-dict keys nested at the dots with spectral norm already folded
into ``weight`` (``docs/architecture.md``); batch-norm layers keep ``running_mean``/``running_var``.
Batch norm runs with running statistics (evaluation mode, ``batchnorm="running"``, the default:
each latent's output is independent of the batch, which Jacobians need) or with the statistics of
the batch (``batchnorm="batch"``: what the official ``eval.py`` computes, as it never calls
``.eval()``). See ``docs/fastgan.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models.errors import UnknownTapError
from jaxlatent.models.fastgan_net import (  # noqa: F401  (re-exported)
    DEFAULT_BATCHNORM, NOISY, SE_SOURCE, check_params, draw_noise, flatten, forward, nest,
    param_shapes, tap_shapes)

log = logging.getLogger(__name__)

# channel multipliers of ngf per resolution, as the official generator defines them
_NFC_MULTI = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
NOISE_MODES = ("random", "none")
BATCHNORM_MODES = ("running", "batch")


@dataclasses.dataclass(frozen=True)
class FastGANConfig:
    """Hyper-parameters of an official FastGAN generator.

    Attributes:
      im_size: output resolution, 256, 512 or 1024.
      nz: latent size (``z: (N, nz)``); the official trainer uses 256.
      ngf: channel width; the ``init`` tap has ``16 * ngf * 4 * 4`` values.
      nc: image channels.
    """

    im_size: int = 1024
    nz: int = 256
    ngf: int = 64
    nc: int = 3
    family: str = "fastgan"

    def __post_init__(self):
        if self.family != "fastgan":
            raise ValueError(f"FastGANConfig.family must be 'fastgan', got {self.family!r}")
        if self.im_size not in (256, 512, 1024):
            raise ValueError(f"FastGAN im_size must be 256, 512 or 1024, got {self.im_size}")
        for name in ("nz", "ngf", "nc"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FastGAN {name} must be a positive integer, got {getattr(self, name)}")
        if self.nfc(self.im_size) < 1:
            raise ValueError(
                f"FastGAN ngf={self.ngf} leaves no channels at {self.im_size}x{self.im_size} "
                f"(int({_NFC_MULTI[self.im_size]} * ngf) = 0); use ngf >= {int(1 / _NFC_MULTI[self.im_size])}"
            )

    @property
    def z_dim(self) -> int:
        """Latent size under the name every model family uses (``nz``)."""
        return self.nz

    def nfc(self, res: int) -> int:
        """Channels of the ``feat_<res>`` features (the official ``int(multiplier * ngf)``)."""
        return int(_NFC_MULTI[res] * self.ngf)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Resolutions of the up-sampling blocks, 8 .. im_size."""
        return tuple(2 ** k for k in range(3, int(np.log2(self.im_size)) + 1))

    @property
    def noise_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(H, W)`` of each noise input, in the order the official forward pass draws them."""
        return tuple((r, r) for r in self.resolutions if r in NOISY for _ in range(2))

    @property
    def tanh(self) -> bool:
        """Whether the outputs pass through tanh (official code: only at im_size 1024)."""
        return self.im_size == 1024

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> "FastGANConfig":
        data = json.loads(text) if isinstance(text, str) else dict(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"FastGANConfig JSON has unknown fields {unknown}; known: {sorted(names)}")
        return cls(**data)



expected_shapes = param_shapes  # the name jaxlatent.io looks for when it checks a converted directory


def random_params(config: FastGANConfig, key) -> dict:
    """Random params in the official initialisation's spirit, spectral norm already applied.

    Convolutions N(0, 0.02) divided by their largest singular value (computed exactly, as a
    converged power iteration would give), batch norm weight N(1, 0.02), bias 0, running
    statistics (0, 1), noise strengths 0.1 (the official code starts at 0; non-zero so noise acts).
    ``key`` (a ``jax.random`` key) seeds a numpy generator: host-side drawing keeps this cheap.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    flat = {}
    for name, shape in param_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("running_mean", "bias"):
            value = np.zeros(shape)
        elif leaf == "running_var":
            value = np.ones(shape)
        elif len(shape) == 4:
            w = rng.standard_normal(shape) * 0.02
            mat = np.moveaxis(w, 1, 0) if name == "init.init.0.weight" else w
            value = w / np.linalg.norm(mat.reshape(mat.shape[0], -1), 2)
        elif shape == (1,):
            value = np.full(shape, 0.1)
        else:
            value = 1.0 + 0.02 * rng.standard_normal(shape)
        flat[name] = np.asarray(value, np.float32)
    return nest(flat)


_forward_jit = jax.jit(forward, static_argnums=(0,), static_argnames=("batchnorm", "taps"))


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
      source_info: what the converter read (file, layout, which weights), or ``None``.
      batchnorm_default: ``"running"``.
    """

    family = "fastgan"
    batchnorm_default = DEFAULT_BATCHNORM

    def __init__(self, config: FastGANConfig, params: dict, source_info: dict | None = None):
        check_params(config, params)
        self.config = config
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
        self.source_info = source_info

    # ``jaxlatent.io`` records provenance as ``model.source``
    source = property(lambda self: self.source_info,
                      lambda self, value: setattr(self, "source_info", value))
    z_dim = property(lambda self: self.config.nz)

    @classmethod
    def init(cls, config: FastGANConfig, key) -> "FastGAN":
        """Model with random parameters (for tests and benchmarks; see :func:`random_params`)."""
        return cls(config, random_params(config, key), source_info={"format": "random"})

    def __repr__(self):
        c = self.config
        return (f"FastGAN(im_size={c.im_size}, nz={c.nz}, ngf={c.ngf}, nc={c.nc}, "
                f"batchnorm default={self.batchnorm_default!r}, source={self.source_info})")

    # ------------------------------------------------------------------ noise
    def noise_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """``(batch, 1, H, W)`` of each noise input, in the official draw order."""
        return [(batch, 1) + hw for hw in self.config.noise_shapes]

    def _noises(self, batch, dtype, noise, noise_mode, key, where):
        shapes = self.config.noise_shapes
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
            return draw_noise(self.config, key, batch, dtype)
        raise ValueError(f"{where}: noise_mode must be one of {NOISE_MODES} (or pass noise=[...]); "
                         f"got {noise_mode!r}")

    def _check(self, z, batchnorm, where):
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"{where}: batchnorm must be one of {BATCHNORM_MODES}; got {batchnorm!r}")
        if z.ndim != 2 or z.shape[1] != self.config.nz:
            raise ValueError(f"{where}: z must have shape (N, {self.config.nz}); found {tuple(z.shape)}")

    # ------------------------------------------------------------------ evaluation
    def taps(self) -> list[str]:
        """Tap names in forward order: ``init``, ``feat_8`` .. ``feat_<im_size>``, ``image128``, ``image``."""
        return list(tap_shapes(self.config))

    def tap_shape(self, tap: str) -> tuple[int, ...]:
        """Shape of one sample of ``tap`` (without the batch axis); :class:`UnknownTapError` if absent."""
        shapes = tap_shapes(self.config)
        if tap not in shapes:
            raise UnknownTapError(f"unknown FastGAN tap {tap!r}; known taps: {list(shapes)}")
        return shapes[tap]

    def features(self, z, taps: Sequence[str] = ("image", "image128"), noise=None, noise_mode="random",
                 key=None, batchnorm: str = DEFAULT_BATCHNORM) -> dict:
        """Several taps from one jitted forward pass: ``{tap: (N, *tap_shape)}``.

        ``z: (N, nz)``; noise and batch-norm options as in :meth:`generate`.
        """
        z = jnp.asarray(z)
        z = z if jnp.issubdtype(z.dtype, jnp.floating) else z.astype(jnp.float32)
        self._check(z, batchnorm, "FastGAN.features")
        for t in taps:
            self.tap_shape(t)
        if noise is None and noise_mode == "random" and key is None:
            # a fixed default keeps generate() usable from generic callers; pass key to vary it
            key = jax.random.key(0)
        noises = self._noises(z.shape[0], z.dtype, noise, noise_mode, key, "FastGAN.features")
        return _forward_jit(self.config, self.params, z, noises, batchnorm=batchnorm, taps=tuple(taps))

    def generate(self, z, noise=None, noise_mode: str = "random", key=None,
                 batchnorm: str = DEFAULT_BATCHNORM):
        """Images ``(N, nc, im_size, im_size)`` in [-1, 1] (not clipped) from ``z: (N, nz)``.

        Args:
          z: (N, nz) latents.
          noise: optional list of ``(N or 1, 1, H, W)`` arrays, one per injection point in the
            official draw order (:meth:`noise_shapes`); overrides ``noise_mode``.
          noise_mode: ``"random"`` (standard normal from ``key``; ``key=None`` means
            ``jax.random.key(0)``) or ``"none"`` (no noise).
          key: ``jax.random`` key for ``noise_mode="random"``.
          batchnorm: ``"running"`` (evaluation mode, default) or ``"batch"`` (official ``eval.py``).
        """
        return self.features(z, ("image",), noise, noise_mode, key, batchnorm)["image"]

    def fn(self, tap: str = "image", noise=None, noise_mode: str = "none", key=None,
           batchnorm: str = DEFAULT_BATCHNORM, *, wrt: str = "z") -> Callable:
        """A pure batched function ``f(z: (N, nz)) -> (N, *tap_shape)`` for analyses.

        Only the blocks the tap needs are evaluated. ``jit``/``vmap``/``jacfwd``-able. For
        Jacobians use ``noise_mode="none"`` (the default here) or explicit ``noise`` with batch 1
        (shared by every sample); ``noise_mode="random"`` needs an explicit ``key`` and draws the
        same noise at every call with the same batch size. ``batchnorm="batch"`` makes samples
        depend on each other, which breaks the per-sample convention of ``docs/architecture.md``.
        """
        self.tap_shape(tap)
        if wrt != "z":
            raise ValueError(f"FastGAN.fn: wrt={wrt!r}: FastGAN has no mapping network, so its only "
                             "latent space is z; use wrt='z'")
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"FastGAN.fn: batchnorm must be one of {BATCHNORM_MODES}; got {batchnorm!r}")
        if noise is None and noise_mode == "random" and key is None:
            raise ValueError("FastGAN.fn: noise_mode='random' needs an explicit key=jax.random.key(...)")
        config, params = self.config, self.params

        def f(z):
            self._check(z, batchnorm, f"FastGAN.fn({tap!r})")
            noises = self._noises(z.shape[0], z.dtype, noise, noise_mode, key, f"FastGAN.fn({tap!r})")
            # jitted inside: cheap eager calls, and still composable with jit/vmap/jacfwd/grad
            return _forward_jit(config, params, z, noises, batchnorm=batchnorm, taps=(tap,))[tap]

        return f
