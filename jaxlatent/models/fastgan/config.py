"""FastGAN generator configuration and parameter layout (Liu et al., ICLR 2021).

:class:`FastGANConfig` holds the hyper-parameters of the author's ``models.py`` ``Generator``
(``im_size``, ``nz``, ``ngf``, ``nc``). Parameters are the official state-dict keys nested at
the dots, PyTorch layouts, spectral norm folded into ``weight`` (``docs/fastgan.md``):
:func:`expected_shapes` lists them, :func:`check_params` checks a pytree against them and
:func:`random_params` draws a random generator.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
from flax.traverse_util import unflatten_dict

from jaxlatent.models.errors import shape_problems

NOISY = (8, 32, 128, 512)  # blocks with two convolutions and noise injection
SE_SOURCE = {64: 4, 128: 8, 256: 16, 512: 32}  # excited block -> resolution of its gate

# channel multipliers of ngf per resolution, as the official generator defines them
_NFC_MULTI = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
NOISE_MODES = ("random", "none")
BATCHNORM_MODES = ("running", "batch")
DEFAULT_BATCHNORM = "running"


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


def expected_shapes(config: FastGANConfig) -> dict[str, tuple[int, ...]]:
    """The parameter layout: flat ``{dotted key: shape}``, in official parameter order.

    Spectral-norm layers appear as their effective ``weight``; batch norms carry
    ``weight, bias, running_mean, running_var``; noise injections a ``weight`` of shape ``(1,)``.

    Args:
      config: the generator's hyper-parameters.

    Returns:
      ``{'init.init.0.weight': (nz, 32 ngf, 4, 4), ...}``; split at the dots, the nesting of
      ``params`` and of the Flax module's variables.
    """
    c, shapes = config, {}

    def bn(prefix, ch):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (ch,)

    c4 = c.nfc(4)
    shapes["init.init.0.weight"] = (c.nz, 2 * c4, 4, 4)
    bn("init.init.1", 2 * c4)
    blocks = {}
    for res in c.resolutions:
        cin, cout = c.nfc(res // 2), c.nfc(res)
        keys = {f"feat_{res}.1.weight": (2 * cout, cin, 3, 3)}
        if res in NOISY:
            keys[f"feat_{res}.2.weight"] = (1,)
            keys.update({f"feat_{res}.3.{n}": (2 * cout,) for n in ("weight", "bias", "running_mean", "running_var")})
            keys[f"feat_{res}.5.weight"] = (2 * cout, cout, 3, 3)
            keys[f"feat_{res}.6.weight"] = (1,)
            keys.update({f"feat_{res}.7.{n}": (2 * cout,) for n in ("weight", "bias", "running_mean", "running_var")})
        else:
            keys.update({f"feat_{res}.2.{n}": (2 * cout,) for n in ("weight", "bias", "running_mean", "running_var")})
        blocks[res] = keys

    def se(res):
        src, ch = c.nfc(SE_SOURCE[res]), c.nfc(res)
        return {f"se_{res}.main.1.weight": (ch, src, 4, 4), f"se_{res}.main.3.weight": (ch, ch, 1, 1)}

    # module registration order of the official __init__ (parameters() and g_ema follow it)
    for res in (8, 16, 32, 64, 128, 256):
        shapes.update(blocks[res])
    for res in (64, 128, 256):
        shapes.update(se(res))
    shapes["to_128.weight"] = (c.nc, c.nfc(128), 1, 1)
    shapes["to_big.weight"] = (c.nc, c.nfc(c.im_size), 3, 3)
    if c.im_size > 256:
        shapes.update(blocks[512])
        shapes.update(se(512))
    if c.im_size > 512:
        shapes.update(blocks[1024])
    return shapes


def check_params(config: FastGANConfig, params: dict, source: str = "params") -> None:
    """Check a params pytree against :func:`expected_shapes`.

    Args:
      config: the generator's hyper-parameters.
      params: nested params.
      source: names the params in the error message.

    Returns:
      None; raises ``ValueError`` naming every missing, unexpected or misshapen key.
    """
    problems = shape_problems(expected_shapes(config), params)
    if problems:
        raise ValueError(
            f"{source}: not a FastGAN generator for im_size={config.im_size}, nz={config.nz}, "
            f"ngf={config.ngf}, nc={config.nc}: " + "; ".join(problems)
        )


def random_params(config: FastGANConfig, key) -> dict:
    """Random params in the official initialisation's spirit, spectral norm already applied.

    Convolutions N(0, 0.02) divided by their largest singular value (computed exactly, as a
    converged power iteration would give), batch norm weight N(1, 0.02), bias 0, running
    statistics (0, 1), noise strengths 0.1 (the official code starts at 0; non-zero so noise acts).
    ``key`` (a ``jax.random`` key) seeds a numpy generator: host-side drawing keeps this cheap.

    Args:
      config: the generator's hyper-parameters.
      key: ``jax.random`` key.

    Returns:
      params nested as :func:`expected_shapes` lists them, float32 numpy arrays.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    flat = {}
    for name, shape in expected_shapes(config).items():
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
    return unflatten_dict(flat, sep=".")


def tap_shapes(config: FastGANConfig) -> dict[str, tuple[int, ...]]:
    """The taps of a generator.

    Args:
      config: the generator's hyper-parameters.

    Returns:
      ``{tap: per-sample shape}`` in forward order.
    """
    shapes = {"init": (config.nfc(4), 4, 4)}
    for res in config.resolutions:
        shapes[f"feat_{res}"] = (config.nfc(res), res, res)
    shapes["image128"] = (config.nc, 128, 128)
    shapes["image"] = (config.nc, config.im_size, config.im_size)
    return shapes
