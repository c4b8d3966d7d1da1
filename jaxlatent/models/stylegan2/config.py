"""StyleGAN2 generator configuration and parameter layout.

:class:`StyleGAN2Config` holds every hyper-parameter of the NVlabs StyleGAN2 generator
(stylegan2-ada-pytorch ``training/networks.py``, stylegan3 ``training/networks_stylegan2.py``)
with the stylegan2-ada-pytorch defaults. Parameters are the NVlabs state dict nested at the
dots, PyTorch layouts (``docs/architecture.md``); :func:`expected_shapes` lists them,
:func:`params_from_state_dict` builds them from a flat state dict with checks, and
:func:`random_params` draws them as the NVlabs constructors do.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import unflatten_dict

from jaxlatent.models import ops

ARCHITECTURES = ("orig", "skip", "resnet")


@dataclasses.dataclass(frozen=True)
class StyleGAN2Config:
    """Hyper-parameters of a StyleGAN2 generator (NVlabs ``Generator`` init kwargs, flattened).

    Mapping options carry the ``mapping_`` prefix (``num_layers`` -> ``mapping_layers``);
    ``channels``, when given, lists the synthesis channels per resolution 4, 8, ...,
    ``img_resolution`` and replaces ``min(channel_base // res, channel_max)``.
    fp16 options of the reference are ignored: everything runs in float32.
    """

    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_embed_features: int | None = None
    mapping_layer_features: int | None = None
    mapping_activation: str = "lrelu"
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None
    architecture: str = "skip"
    resample_filter: tuple = (1, 3, 3, 1)
    use_noise: bool = True
    synthesis_activation: str = "lrelu"
    channels: tuple[int, ...] | None = None
    family: str = "stylegan2"

    def __post_init__(self):
        # Normalise JSON lists to tuples so that configs hash (they are static jit arguments).
        rf = self.resample_filter
        rf = tuple(tuple(r) for r in rf) if rf and isinstance(rf[0], (list, tuple)) else tuple(rf)
        object.__setattr__(self, "resample_filter", rf)
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending option when the config is unusable."""
        def bad(msg):
            raise ValueError(f"StyleGAN2Config: {msg}")

        if self.family != "stylegan2":
            bad(f"family must be 'stylegan2', got {self.family!r}")
        r = self.img_resolution
        if not isinstance(r, int) or r < 4 or r > 1024 or r & (r - 1):
            bad(f"img_resolution must be a power of 2 in 4..1024, got {r!r}")
        if self.architecture not in ARCHITECTURES:
            bad(f"unsupported architecture {self.architecture!r}; expected one of {ARCHITECTURES}")
        for name in ("z_dim", "w_dim", "img_channels", "mapping_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.c_dim, int) or self.c_dim < 0:
            bad(f"c_dim must be a non-negative integer, got {self.c_dim!r}")
        for name in ("mapping_activation", "synthesis_activation"):
            if getattr(self, name) not in ops.ACTIVATIONS:
                bad(f"unknown {name} {getattr(self, name)!r}; "
                    f"expected one of {sorted(ops.ACTIVATIONS)}")
        if self.conv_clamp is not None and self.conv_clamp < 0:
            bad(f"conv_clamp must be None or >= 0, got {self.conv_clamp!r}")
        if self.channels is not None and len(self.channels) != len(self.block_resolutions):
            bad(f"channels must give one count per resolution {self.block_resolutions}, "
                f"got {len(self.channels)} values")
        try:
            ops.setup_filter(self.resample_filter)
        except ValueError as err:
            bad(f"resample_filter {self.resample_filter!r}: {err}")

    # ----- derived quantities -------------------------------------------------------------
    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """Resolutions of the synthesis blocks: 4, 8, ..., img_resolution."""
        return tuple(2 ** i for i in range(2, int(np.log2(self.img_resolution)) + 1))

    def block_channels(self, res: int) -> int:
        """Feature channels of the block at resolution ``res``."""
        if self.channels is not None:
            return self.channels[self.block_resolutions.index(res)]
        return min(self.channel_base // res, self.channel_max)

    @property
    def embed_features(self) -> int:
        if self.c_dim == 0:
            return 0
        return self.w_dim if self.mapping_embed_features is None else self.mapping_embed_features

    @property
    def mapping_features(self) -> list[int]:
        """Widths ``[in, fc0 out, fc1 out, ..., w_dim]`` of the mapping layers."""
        hidden = self.w_dim if self.mapping_layer_features is None else self.mapping_layer_features
        first = self.z_dim + self.embed_features
        return [first] + [hidden] * (self.mapping_layers - 1) + [self.w_dim]

    @property
    def synthesis_layers(self) -> list["SynthesisLayerSpec"]:
        """Every modulated layer in execution order, with the index of the w it reads."""
        layers, w_idx = [], 0
        for res in self.block_resolutions:
            out = self.block_channels(res)
            if res == 4:
                layers.append(SynthesisLayerSpec(res, "conv1", w_idx, out, out))
                w_idx += 1
            else:
                inp = self.block_channels(res // 2)
                layers.append(SynthesisLayerSpec(res, "conv0", w_idx, inp, out))
                layers.append(SynthesisLayerSpec(res, "conv1", w_idx + 1, out, out))
                w_idx += 2
            if res == self.img_resolution or self.architecture == "skip":
                layers.append(SynthesisLayerSpec(res, "torgb", w_idx, out, self.img_channels))
        return layers

    @property
    def num_ws(self) -> int:
        """Number of per-layer w vectors (W+ rows): one per conv plus the last ToRGB."""
        return 2 * len(self.block_resolutions)

    # ----- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        rf = d["resample_filter"]
        nested = rf and isinstance(rf[0], tuple)
        d["resample_filter"] = [list(r) for r in rf] if nested else list(rf)
        if d["channels"] is not None:
            d["channels"] = list(d["channels"])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StyleGAN2Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"StyleGAN2Config: unknown option(s) {unknown}; "
                             f"known: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "StyleGAN2Config":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_nvlabs_kwargs(cls, init_kwargs: Mapping[str, Any],
                           flavor: str = "ada") -> "StyleGAN2Config":
        """Config from the NVlabs ``Generator`` constructor arguments (a pickle's ``init_kwargs``).

        Accepts both layouts: stylegan2-ada-pytorch (``synthesis_kwargs={...}``) and stylegan3's
        StyleGAN2 (synthesis options at the top level). ``flavor`` picks the defaults for
        options the kwargs omit: ``'ada'`` (conv_clamp None) or ``'stylegan3'`` (conv_clamp 256,
        w_avg_beta 0.998).
        """
        if flavor not in ("ada", "stylegan3"):
            raise ValueError(f"flavor must be 'ada' or 'stylegan3', got {flavor!r}")
        kw = dict(init_kwargs)
        mapping = dict(kw.pop("mapping_kwargs", {}) or {})
        synthesis = dict(kw.pop("synthesis_kwargs", {}) or {})
        top = {k: kw.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
               if k in kw}
        synthesis.update(kw)  # stylegan3 passes synthesis options at the top level
        ignored = {"num_fp16_res", "fp16_channels_last", "fused_modconv_default", "channels_last",
                   "freeze_layers", "freeze_embed"}
        out = dict(top)
        if flavor == "stylegan3":
            out.update(conv_clamp=256, w_avg_beta=0.998)
        mapping_names = {"num_layers": "mapping_layers", "embed_features": "mapping_embed_features",
                         "layer_features": "mapping_layer_features",
                         "activation": "mapping_activation",
                         "lr_multiplier": "mapping_lr_multiplier", "w_avg_beta": "w_avg_beta"}
        synthesis_names = {"channel_base": "channel_base", "channel_max": "channel_max",
                           "conv_clamp": "conv_clamp", "architecture": "architecture",
                           "resample_filter": "resample_filter", "use_noise": "use_noise",
                           "activation": "synthesis_activation"}
        for src, names, where in ((mapping, mapping_names, "mapping_kwargs"),
                                  (synthesis, synthesis_names, "synthesis_kwargs")):
            for k, v in src.items():
                if k in names:
                    out[names[k]] = v
                elif k not in ignored:
                    raise ValueError(f"StyleGAN2 init_kwargs: unsupported {where} "
                                     f"option {k!r}={v!r}")
        if isinstance(out.get("resample_filter"), list):
            out["resample_filter"] = tuple(out["resample_filter"])
        return cls(**out)


class SynthesisLayerSpec(NamedTuple):
    """One modulated layer: block resolution, name in the block, index into ws, in/out channels."""
    res: int
    name: str
    w_index: int
    in_channels: int
    out_channels: int


def expected_shapes(config: StyleGAN2Config) -> dict[str, tuple[int, ...]]:
    """The parameter layout: every parameter's flat NVlabs state-dict key and shape.

    Args:
      config: the generator's hyper-parameters.

    Returns:
      ``{'mapping.fc0.weight': (out, in), ...}`` (constant FIR filters excluded); the keys,
      split at the dots, are the nesting of ``params`` and of the Flax module's variables.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    feats = config.mapping_features
    if config.c_dim > 0:
        shapes["mapping.embed.weight"] = (config.embed_features, config.c_dim)
        shapes["mapping.embed.bias"] = (config.embed_features,)
    for i in range(config.mapping_layers):
        shapes[f"mapping.fc{i}.weight"] = (feats[i + 1], feats[i])
        shapes[f"mapping.fc{i}.bias"] = (feats[i + 1],)
    if config.w_avg_beta is not None:
        shapes["mapping.w_avg"] = (config.w_dim,)
    c4 = config.block_channels(4)
    shapes["synthesis.b4.const"] = (c4, 4, 4)
    for layer in config.synthesis_layers:
        p = f"synthesis.b{layer.res}.{layer.name}"
        k = 1 if layer.name == "torgb" else 3
        shapes[f"{p}.weight"] = (layer.out_channels, layer.in_channels, k, k)
        shapes[f"{p}.bias"] = (layer.out_channels,)
        shapes[f"{p}.affine.weight"] = (layer.in_channels, config.w_dim)
        shapes[f"{p}.affine.bias"] = (layer.in_channels,)
        if layer.name != "torgb" and config.use_noise:
            shapes[f"{p}.noise_const"] = (layer.res, layer.res)
            shapes[f"{p}.noise_strength"] = ()
    if config.architecture == "resnet":
        for res in config.block_resolutions[1:]:
            shapes[f"synthesis.b{res}.skip.weight"] = (config.block_channels(res),
                                                       config.block_channels(res // 2), 1, 1)
    return shapes


def params_from_state_dict(config: StyleGAN2Config, state_dict: Mapping[str, Any],
                           source: str = "<state dict>") -> dict:
    """Nested float32 params from a flat NVlabs generator state dict.

    ``state_dict`` maps keys such as ``'mapping.fc0.weight'`` to arrays (numpy, torch tensors
    converted by the caller, or anything ``np.asarray`` takes). ``resample_filter`` buffers are
    checked against ``config.resample_filter`` and dropped. Raises ``ValueError`` naming
    ``source``, the key, the expected and the found shape on any missing, unexpected or
    misshapen entry.

    Args:
      config: the generator's hyper-parameters.
      state_dict: flat state dict.
      source: names the dict in error messages.

    Returns:
      params nested at the dots, float32 jax arrays.
    """
    want = expected_shapes(config)
    filt = ops.setup_filter(config.resample_filter)
    flat, problems = {}, []
    for key, value in state_dict.items():
        arr = np.asarray(value)
        if key.endswith("resample_filter"):
            # conv1 layers never resample: NVlabs gives them the default filter, unused.
            if key.endswith(".conv1.resample_filter"):
                continue
            if arr.shape != filt.shape or not np.allclose(arr, filt, rtol=1e-6, atol=1e-7):
                problems.append(f"{key}: buffer {arr.tolist()} differs from the config's "
                                f"resample_filter {list(config.resample_filter)} "
                                f"-> {filt.tolist()}")
            continue
        if key not in want:
            problems.append(f"{key}: unexpected key (shape {tuple(arr.shape)}) for this config")
            continue
        if tuple(arr.shape) != want[key]:
            problems.append(f"{key}: expected shape {want[key]}, found {tuple(arr.shape)}")
            continue
        flat[key] = np.asarray(arr, dtype=np.float32)
    missing = [k for k in want if k not in state_dict]
    problems += [f"{k}: missing (expected shape {want[k]})" for k in missing]
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(f"{source}: state dict does not match the StyleGAN2 config:"
                         f"\n  {shown}{more}")
    return jax.tree_util.tree_map(jnp.asarray, unflatten_dict(flat, sep="."))


def random_params(config: StyleGAN2Config, key: jax.Array) -> dict:
    """Parameters drawn as the NVlabs constructors draw them.

    Dense weights ``N(0, 1) / lr_multiplier``, biases at their init (0; 1 for style affines),
    convolution weights, ``const`` and ``noise_const`` ``N(0, 1)``, ``noise_strength`` and
    ``w_avg`` zero. All weights come from one draw (one compiled kernel, not one per shape).

    Args:
      config: the generator's hyper-parameters.
      key: ``jax.random`` key.

    Returns:
      params nested as :func:`expected_shapes` lists them.
    """
    shapes = expected_shapes(config)
    drawn = {k: s for k, s in shapes.items()
             if k.rsplit(".", 1)[-1] not in ("bias", "noise_strength", "w_avg")}
    # One draw for all weights: a separate jax.random.normal per shape compiles per shape.
    sizes = [int(np.prod(s)) for s in drawn.values()]
    values = np.asarray(jax.random.normal(key, (sum(sizes),), jnp.float32))
    flat, start = {}, 0
    for (name, shape), size in zip(drawn.items(), sizes):
        value = values[start:start + size].reshape(shape)
        start += size
        if name.startswith("mapping.fc"):
            value = value / np.float32(config.mapping_lr_multiplier)
        flat[name] = value
    for name, shape in shapes.items():
        if name not in drawn:
            flat[name] = np.full(shape, 1.0 if name.endswith("affine.bias") else 0.0, np.float32)
    return unflatten_dict({k: jnp.asarray(flat[k]) for k in shapes}, sep=".")
