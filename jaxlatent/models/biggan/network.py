"""The BigGAN-deep generator as Flax linen modules (the package's ``Generator`` and ``BigGAN``).

The module tree is the package's, so the converter's params are the variables:
``variables["params"]["generator"]["layers"]["3"]["bn_0"]["scale"]["weight"]`` is the state-dict
entry ``generator.layers.3.bn_0.scale.weight``. ``generator.layers`` holds the deep blocks with the
self-attention layer inserted before block ``attention_layer_position``, numbered together.

Forward pass (``docs/biggan.md``): ``embedding = embeddings(class_vector)``; ``cond = [z,
embedding]``; ``gen_z`` (linear) reshaped from TensorFlow's (4, 4, 16 ch) layout to NCHW; every
layer of ``generator.layers`` (blocks take ``cond`` and the truncation); plain batch norm, ReLU,
``conv_to_rgb``, its first three channels, tanh.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxlatent.models import torch_layers
from jaxlatent.models.biggan.config import BigGANConfig, tap_shapes
from jaxlatent.models.biggan.layers import BigGANBatchNorm, GenBlock, Linear, SelfAttention

__all__ = ["BigGANModule", "Generator", "LayerStack", "forward", "WRT"]

WRT = ("z", "class", "cond")


class LayerStack(nn.Module):
    """``generator.layers``: children ``"0"``, ``"1"``, ... run in order up to ``stop``."""

    config: BigGANConfig

    @nn.compact
    def __call__(self, x, cond, truncation, stop: int) -> list:
        c, ch = self.config, self.config.channel_width
        outs = []
        for j, (kind, i) in enumerate(c.modules[:stop]):
            if kind == "attention":
                x = SelfAttention(c.attention_channels, name=str(j))(x)
            else:
                up, a, b = c.layers[i]
                x = GenBlock(ch * a, ch * b, c.cond_dim, up, c.n_stats, c.eps, name=str(j))(x, cond, truncation)
            outs.append(x)
        return outs


class Generator(nn.Module):
    """The package's ``Generator``: children ``gen_z``, ``layers``, ``bn``, ``conv_to_rgb``.

    ``__call__(cond, truncation, taps)`` runs as far as the taps need and returns
    ``{tap: (N, *tap_shape)}``; ``truncation`` is a float in (0, 1] or its
    :func:`~jaxlatent.models.biggan.config.statistic_mix` triple.
    """

    config: BigGANConfig

    @nn.compact
    def __call__(self, cond, truncation, taps: Sequence[str] = ("image",)) -> dict:
        c, ch = self.config, self.config.channel_width
        order = list(tap_shapes(c))
        last = max(order.index(t) for t in taps)
        x = Linear(c.cond_dim, 16 * 16 * ch, name="gen_z")(cond)
        # the package's step to TensorFlow's weights: (N, 4, 4, 16 ch) -> NCHW
        x = x.reshape(x.shape[0], 4, 4, 16 * ch).transpose(0, 3, 1, 2)
        out = {"gen_z": x}
        stop = min(last, len(c.modules))  # taps "layers.j" are order index j + 1
        feats = LayerStack(c, name="layers")(x, cond, truncation, stop)
        out.update({f"layers.{j}": f for j, f in enumerate(feats)})
        if "image" in taps:
            x = BigGANBatchNorm(ch, None, c.n_stats, c.eps, name="bn")(feats[-1], truncation)
            x = torch_layers.Conv2d(ch, ch, 3, padding=1, name="conv_to_rgb")(jnp.maximum(x, 0))
            out["image"] = jnp.tanh(x[:, :3])
        return {t: out[t] for t in taps}


class BigGANModule(nn.Module):
    """The package's ``BigGAN``: children ``embeddings`` (bias-free linear, class vector ->
    embedding) and ``generator``.

    ``module.apply(variables, z, class_vector, truncation)`` is the image; ``taps=`` selects
    intermediate outputs. Methods ``embed`` and ``from_cond`` enter after the embedding.
    """

    config: BigGANConfig

    def setup(self):
        c = self.config
        self.embeddings = Linear(c.num_classes, c.z_dim, use_bias=False)
        self.generator = Generator(c)

    def embed(self, class_vector):
        """Class vectors ``(N, num_classes)`` -> embeddings ``(N, z_dim)``."""
        return self.embeddings(class_vector)

    def from_cond(self, cond, truncation=1.0, taps: Sequence[str] = ("image",)) -> dict:
        """Taps from condition vectors ``cond = [z, embedding]: (N, 2 z_dim)``."""
        return self.generator(cond, truncation, tuple(taps))

    def __call__(self, z, class_vector, truncation=1.0, taps: Sequence[str] | None = None):
        """Args:
          z: (N, z_dim) latents. class_vector: (N or 1, num_classes) (one-hot or dense).
          truncation: in (0, 1], selects the batch-norm statistics.
          taps: names from :func:`tap_shapes`; None: the image alone.

        Returns:
          the image (N, 3, R, R) when ``taps`` is None, else ``{tap: (N, *tap_shape)}``.
        """
        embedding = self.embed(class_vector)
        cond = jnp.concatenate([z, jnp.broadcast_to(embedding, (z.shape[0], embedding.shape[1]))], axis=1)
        out = self.from_cond(cond, truncation, ("image",) if taps is None else taps)
        return out["image"] if taps is None else out


def forward(config: BigGANConfig, params: dict, x, fixed, truncation, taps: Sequence[str],
            wrt: str = "z") -> dict:
    """:class:`BigGANModule` on a params pytree, entered in the space ``wrt``.

    Args:
      config: the generator's hyper-parameters.
      params: nested params (spectral norm folded), as the converter returns them.
      x: the input: ``wrt="z"``: z (N, z_dim); ``"class"``: class embeddings (N, z_dim);
        ``"cond"``: condition vectors ``[z, embedding]`` (N, 2 z_dim).
      fixed: ``"z"``: class vectors (N or 1, num_classes); ``"class"``: the latent z (N or 1,
        z_dim); ``"cond"``: unused.
      truncation: in (0, 1], or its :func:`~jaxlatent.models.biggan.config.statistic_mix` triple.
      taps: names from :func:`tap_shapes`.
      wrt: ``"z"``, ``"class"`` or ``"cond"``.

    Returns:
      ``{tap: (N, *tap_shape)}``.
    """
    module, variables = BigGANModule(config), {"params": params}
    n = x.shape[0]
    if wrt == "z":
        embedding = module.apply(variables, jnp.broadcast_to(fixed, (n, fixed.shape[1])).astype(x.dtype),
                                 method="embed")
        cond = jnp.concatenate([x, embedding], axis=1)
    elif wrt == "class":
        cond = jnp.concatenate([jnp.broadcast_to(fixed, (n, fixed.shape[1])).astype(x.dtype), x], axis=1)
    else:
        cond = x
    return module.apply(variables, cond, truncation, tuple(taps), method="from_cond")
