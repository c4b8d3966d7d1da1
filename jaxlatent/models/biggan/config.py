"""BigGAN-deep configuration, parameter layout and the truncation's statistic weights.

:class:`BigGANConfig` holds the fields of the ``config.json`` that huggingface's
``pytorch-pretrained-biggan`` (0.1.1) writes beside its ``pytorch_model.bin``: ``z_dim``,
``channel_width``, ``num_classes``, ``layers`` (one ``(up_sample, in_mult, out_mult)`` per deep
block), ``attention_layer_position``, ``eps``, ``n_stats``, plus ``output_dim`` and
``class_embed_dim``, which that code records but never reads. Parameters are the package's state
dict keys nested at the dots, PyTorch layouts, spectral norm folded into ``weight``
(``docs/biggan.md``): :func:`expected_shapes` lists them, :func:`check_params` checks a pytree
against them, :func:`random_params` draws a random generator.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping

import jax
import numpy as np
from flax.traverse_util import unflatten_dict

from jaxlatent.models.errors import shape_problems

REDUCTION = 4  # a deep block's bottleneck: middle channels = in channels // 4

# the package's BigGANConfig defaults (the 128x128 model); a config.json overrides any of them
_PACKAGE_DEFAULT_LAYERS = ((False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8),
                           (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2),
                           (False, 2, 2), (True, 2, 1))
PACKAGE_KEYS = ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes", "layers",
                "attention_layer_position", "eps", "n_stats")


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
    """Hyper-parameters of a ``pytorch-pretrained-biggan`` BigGAN-deep generator.

    Attributes:
      z_dim: latent size; the class embedding has the same size and the condition vector
        ``[z, embedding]`` twice that.
      channel_width: ``ch``; block ``i`` maps ``ch * layers[i][1]`` to ``ch * layers[i][2]`` channels.
      num_classes: size of the class vector (``embeddings: (z_dim, num_classes)``).
      layers: ``(up_sample, in_mult, out_mult)`` per deep block.
      attention_layer_position: a self-attention layer runs before this block (none when it is
        ``>= len(layers)``).
      eps: batch-norm epsilon (and spectral norm's, used only when training).
      n_stats: rows of each batch norm's statistic tables (truncations 0, 1/(n_stats-1), ..., 1).
      output_dim, class_embed_dim: recorded from the package's config; the network does not read
        them (the resolution is ``4 * 2 ** (number of up-sampling blocks)``).
    """

    z_dim: int = 128
    channel_width: int = 128
    num_classes: int = 1000
    layers: tuple = _PACKAGE_DEFAULT_LAYERS
    attention_layer_position: int = 8
    eps: float = 1e-4
    n_stats: int = 51
    output_dim: int = 128
    class_embed_dim: int = 128
    family: str = "biggan"

    def __post_init__(self):
        if self.family != "biggan":
            raise ValueError(f"BigGANConfig.family must be 'biggan', got {self.family!r}")
        try:
            layers = tuple((bool(up), int(a), int(b)) for up, a, b in self.layers)
        except (TypeError, ValueError):
            raise ValueError(f"BigGAN layers must be [up_sample, in_mult, out_mult] triples; "
                             f"found {self.layers!r}") from None
        object.__setattr__(self, "layers", layers)
        for name in ("z_dim", "channel_width", "num_classes", "n_stats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"BigGAN {name} must be a positive integer, got {getattr(self, name)}")
        if self.n_stats < 2:
            raise ValueError(f"BigGAN n_stats must be at least 2, got {self.n_stats}")
        if not layers:
            raise ValueError("BigGAN layers is empty: the generator needs at least one block")
        if layers[0][1] != 16:
            raise ValueError(f"BigGAN layers[0] must take 16 * channel_width channels (gen_z's "
                             f"output); found in_mult {layers[0][1]}")
        for i, (_, a, b) in enumerate(layers):
            if b not in (a, a // 2) or b < 1:
                raise ValueError(f"BigGAN layers[{i}] = {layers[i]}: a deep block keeps its channels "
                                 f"or halves them (out_mult {a} or {a // 2})")
            if i + 1 < len(layers) and layers[i + 1][1] != b:
                raise ValueError(f"BigGAN layers[{i + 1}] takes in_mult {layers[i + 1][1]} but "
                                 f"layers[{i}] gives {b}")
            if (self.channel_width * a) // REDUCTION < 1:
                raise ValueError(f"BigGAN layers[{i}]: {self.channel_width * a} channels leave no "
                                 f"bottleneck channels (// {REDUCTION})")
        if layers[-1][2] != 1:
            raise ValueError(f"BigGAN's last block must give channel_width channels (out_mult 1); "
                             f"found {layers[-1][2]}")
        if self.channel_width < 3:
            raise ValueError(f"BigGAN channel_width {self.channel_width} < 3: conv_to_rgb keeps 3 channels")
        if self.has_attention:
            ch, res = self.attention_channels, self.block_input_resolution(self.attention_layer_position)
            if ch < 8 or res % 2:
                raise ValueError(f"BigGAN self-attention before block {self.attention_layer_position}: "
                                 f"needs at least 8 channels and an even resolution (2x2 pooling); "
                                 f"found {ch} channels at {res}x{res}")

    # ----- derived sizes ------------------------------------------------------------------
    @property
    def has_attention(self) -> bool:
        return 0 <= self.attention_layer_position < len(self.layers)

    @property
    def attention_channels(self) -> int:
        return self.channel_width * self.layers[self.attention_layer_position][1]

    @property
    def resolution(self) -> int:
        """Side of the generated image: 4 doubled by every up-sampling block."""
        return 4 * 2 ** sum(up for up, _, _ in self.layers)

    def block_input_resolution(self, block: int) -> int:
        return 4 * 2 ** sum(up for up, _, _ in self.layers[:block])

    @property
    def modules(self) -> tuple[tuple[str, int | None], ...]:
        """``generator.layers`` in order: ``("attention", None)`` or ``("block", block index)``."""
        out = []
        for i in range(len(self.layers)):
            if i == self.attention_layer_position:
                out.append(("attention", None))
            out.append(("block", i))
        return tuple(out)

    @property
    def cond_dim(self) -> int:
        return 2 * self.z_dim

    # ----- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = [list(layer) for layer in self.layers]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping) -> "BigGANConfig":
        data = json.loads(text) if isinstance(text, str) else dict(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"BigGANConfig JSON has unknown fields {unknown}; known: {sorted(names)}")
        return cls(**data)

    @classmethod
    def from_package(cls, data: Mapping) -> "BigGANConfig":
        """The package's ``config.json`` dict: its ``BigGANConfig.from_dict`` starts from the
        package defaults (equal to ours) and overrides the keys given; other keys are ignored."""
        return cls(**{k: data[k] for k in PACKAGE_KEYS if k in data})

    def to_package(self) -> dict[str, Any]:
        """The package's ``config.json`` dict for this generator."""
        d = self.to_dict()
        return {k: d[k] for k in PACKAGE_KEYS}


def statistic_weights(truncation: float, n_stats: int) -> tuple[int, float | None]:
    """Which rows of a batch norm's statistic tables a truncation selects, as the package does.

    The package takes ``coef, start = modf(truncation / (1 / (n_stats - 1)))`` in Python floats
    and, when ``coef != 0``, uses ``table[start] * coef + table[start + 1] * (1 - coef)``: the
    fractional part weighs the lower row (the reverse of linear interpolation).

    Args:
      truncation: in (0, 1].
      n_stats: rows of the tables.

    Returns:
      ``(start, coef)``; ``coef`` is None when row ``start`` is taken alone.
    """
    truncation = float(truncation)
    if not 0.0 < truncation <= 1.0:
        raise ValueError(f"BigGAN truncation must be in (0, 1]; got {truncation}")
    coef, start = math.modf(truncation / (1.0 / (n_stats - 1)))
    return int(start), (None if coef == 0.0 else coef)


def statistic_mix(truncation: float, n_stats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`statistic_weights` as arrays a compiled program takes at run time (one program for
    every truncation): ``(start int32, w_start float32, w_next float32)``; a row taken alone is
    ``table[start] * 1 + table[start + 1 (clamped)] * 0``, which equals ``table[start]`` exactly."""
    start, coef = statistic_weights(truncation, n_stats)
    low, high = (1.0, 0.0) if coef is None else (coef, 1 - coef)
    return np.int32(start), np.float32(low), np.float32(high)


# ----------------------------------------------------------------------------- layout

def _bn(shapes, prefix, ch, cond_dim, n_stats):
    shapes[f"{prefix}.running_means"] = (n_stats, ch)
    shapes[f"{prefix}.running_vars"] = (n_stats, ch)
    if cond_dim is None:
        shapes[f"{prefix}.weight"] = (ch,)
        shapes[f"{prefix}.bias"] = (ch,)
    else:
        shapes[f"{prefix}.scale.weight"] = (ch, cond_dim)
        shapes[f"{prefix}.offset.weight"] = (ch, cond_dim)


def expected_shapes(config: BigGANConfig) -> dict[str, tuple[int, ...]]:
    """The parameter layout: flat ``{dotted key: shape}`` in the package's state-dict order.

    Spectral-norm layers appear as their effective ``weight``; batch norms carry their statistic
    tables ``running_means``/``running_vars`` ``(n_stats, C)``.

    Args:
      config: the generator's hyper-parameters.

    Returns:
      ``{'embeddings.weight': (z_dim, num_classes), 'generator.gen_z.weight': ..., ...}``.
    """
    c, ch, cd = config, config.channel_width, config.cond_dim
    shapes = {"embeddings.weight": (c.z_dim, c.num_classes),
              "generator.gen_z.weight": (16 * 16 * ch, cd), "generator.gen_z.bias": (16 * 16 * ch,)}
    for j, (kind, i) in enumerate(c.modules):
        p = f"generator.layers.{j}"
        if kind == "attention":
            a = c.attention_channels
            shapes[f"{p}.gamma"] = (1,)
            for name, out, inp in (("theta", a // 8, a), ("phi", a // 8, a), ("g", a // 2, a),
                                   ("o_conv", a, a // 2)):
                shapes[f"{p}.snconv1x1_{name}.weight"] = (out, inp, 1, 1)
            continue
        _, a, b = c.layers[i]
        cin, cout = ch * a, ch * b
        mid = cin // REDUCTION
        for k, (cb, co, ci, ks) in enumerate(((cin, mid, cin, 1), (mid, mid, mid, 3),
                                              (mid, mid, mid, 3), (mid, cout, mid, 1))):
            _bn(shapes, f"{p}.bn_{k}", cb, cd, c.n_stats)
            shapes[f"{p}.conv_{k}.weight"] = (co, ci, ks, ks)
            shapes[f"{p}.conv_{k}.bias"] = (co,)
    _bn(shapes, "generator.bn", ch, None, c.n_stats)
    shapes["generator.conv_to_rgb.weight"] = (ch, ch, 3, 3)
    shapes["generator.conv_to_rgb.bias"] = (ch,)
    return shapes


def check_params(config: BigGANConfig, params: dict, source: str = "params") -> None:
    """Check a params pytree against :func:`expected_shapes`; ``ValueError`` names every
    missing, unexpected or misshapen key."""
    problems = shape_problems(expected_shapes(config), params)
    if problems:
        raise ValueError(f"{source}: not a BigGAN-deep generator for z_dim={config.z_dim}, "
                         f"channel_width={config.channel_width}, {len(config.layers)} blocks: "
                         + "; ".join(problems))


def random_params(config: BigGANConfig, key) -> dict:
    """Random params with spectral norm applied (each weight's largest singular value is 1),
    statistic tables with distinct rows, non-zero attention gain: every path of the network acts.

    Args:
      config: the generator's hyper-parameters.
      key: ``jax.random`` key (seeds a host-side numpy generator).

    Returns:
      params nested as :func:`expected_shapes` lists them, float32 numpy arrays.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    flat = {}
    for name, shape in expected_shapes(config).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_means":
            value = 0.1 * rng.standard_normal(shape)
        elif leaf == "running_vars":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "gamma":
            value = np.full(shape, 0.5)
        elif leaf == "bias":
            value = 0.05 * rng.standard_normal(shape)
        elif name == "generator.bn.weight":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name == "embeddings.weight":
            value = rng.standard_normal(shape) * 0.1
        else:
            w = rng.standard_normal(shape)
            value = w / np.linalg.norm(w.reshape(shape[0], -1), 2)
        flat[name] = np.asarray(value, np.float32)
    return unflatten_dict(flat, sep=".")


def tap_shapes(config: BigGANConfig) -> dict[str, tuple[int, ...]]:
    """``{tap: per-sample shape}`` in forward order: ``gen_z`` (after the reshape to NCHW),
    ``layers.<j>`` (every block and the attention layer, numbered as ``generator.layers``),
    ``image``."""
    ch = config.channel_width
    shapes = {"gen_z": (16 * ch, 4, 4)}
    res = 4
    for j, (kind, i) in enumerate(config.modules):
        if kind == "attention":
            shapes[f"layers.{j}"] = (config.attention_channels, res, res)
            continue
        up, _, b = config.layers[i]
        res *= 2 if up else 1
        shapes[f"layers.{j}"] = (ch * b, res, res)
    shapes["image"] = (3, res, res)
    return shapes
