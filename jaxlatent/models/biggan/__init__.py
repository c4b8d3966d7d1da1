"""BigGAN-deep (Brock, Donahue & Simonyan, ICLR 2019) as huggingface's ``pytorch-pretrained-biggan``
0.1.1 builds it: config and parameter layout (:mod:`.config`), Flax linen layers (:mod:`.layers`)
and network (:mod:`.network`), latents and class vectors as the package draws them
(:mod:`.sampling`), and the model object :class:`BigGAN` (:mod:`.model`). See ``docs/biggan.md``.
"""

from jaxlatent.models.biggan.config import (BigGANConfig, check_params, expected_shapes, random_params,
                                            statistic_weights, tap_shapes)
from jaxlatent.models.biggan.model import BigGAN
from jaxlatent.models.biggan.network import BigGANModule, Generator, forward
from jaxlatent.models.biggan.sampling import class_vectors, latent_std, latents_from_seeds, truncated_noise_sample

__all__ = ["BigGAN", "BigGANConfig", "BigGANModule", "Generator", "check_params", "class_vectors",
           "expected_shapes", "forward", "latent_std", "latents_from_seeds", "random_params", "statistic_weights",
           "tap_shapes", "truncated_noise_sample"]
