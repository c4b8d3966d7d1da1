"""jaxlatent: functional analysis of pretrained GAN latent spaces in JAX.

The public face is this flat namespace, imported explicitly so that editors and type checkers
see every name. ``import jaxlatent`` never imports PyTorch: only reading a checkpoint file does.

Conventions shared by every analysis (see ``docs/methods.md``):

* an analysis takes a *batched* callable ``f(z: (N, in)) -> (N, ...)`` whose samples are
  independent (a model tap from ``model.fn(tap)``, or ``jax.vmap(g)`` for a single-sample ``g``);
* outputs with several axes are flattened in C order, so a Jacobian is ``(N, prod(out_shape), in)``;
* results are NamedTuples (pytrees) whose fields state their shapes;
* execution options are keyword-only and spelled the same everywhere: ``chunk_size``, ``mesh``,
  ``use_pmap``, ``progress``.

The application and infrastructure live in their modules: the report
(``jaxlatent.report.build_report``, ``ReportOptions``), device meshes
(``jaxlatent.parallel.batch_mesh``, ``shard_batch``), seed lists (``jaxlatent.seeds.parse_seeds``)
and the command line (``jaxlatent.cli``).
"""

from __future__ import annotations

# loading and models
from jaxlatent.io import load, save
from jaxlatent.models.errors import UnknownTapError
from jaxlatent.models.fastgan import FastGAN
from jaxlatent.models.fastgan_config import FastGANConfig
from jaxlatent.models.stylegan2 import StyleGAN2
from jaxlatent.models.stylegan2_config import StyleGAN2Config

# the Jacobian engine
from jaxlatent.analysis.jacobian import gram_operator, jacobian, jvp_operator, vjp_operator
from jaxlatent.analysis.spectral import TopSingular, top_singular

# Local Basis and its traversals (Choi et al., ICLR 2022)
from jaxlatent.analysis.local_basis import LocalBasis, LocalBasisTopK, local_basis, local_basis_topk
from jaxlatent.analysis.traversal import Traversal, iterative_traversal, linear_traversal

# Grassmannian metrics and the warpage experiment (Choi et al., ICLR 2022)
from jaxlatent.analysis.grassmann import grassmann_distance, pairwise_grassmann, principal_angles
from jaxlatent.analysis.sampling import random_orthonormal
from jaxlatent.analysis.warpage import Warpage, warpage

# local dimension and Distortion (Choi et al. 2022, Local Dimension Estimation)
from jaxlatent.analysis.distortion import Distortion, distortion, layer_distortions
from jaxlatent.analysis.local_dimension import LayerDimensions, LocalDimension, layer_dimensions, local_dimension

# latents named by seeds (NVlabs convention)
from jaxlatent.seeds import latents_from_seeds

# spreading work over chunks and devices
from jaxlatent.parallel import map_batched

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # loading and models
    "load", "save", "StyleGAN2", "StyleGAN2Config", "FastGAN", "FastGANConfig", "UnknownTapError",
    # the Jacobian engine
    "jacobian", "jvp_operator", "vjp_operator", "gram_operator", "TopSingular", "top_singular",
    # Local Basis and its traversals
    "LocalBasis", "LocalBasisTopK", "local_basis", "local_basis_topk", "Traversal", "linear_traversal",
    "iterative_traversal",
    # Grassmannian metrics and warpage
    "principal_angles", "grassmann_distance", "pairwise_grassmann", "random_orthonormal", "Warpage",
    "warpage",
    # local dimension and Distortion
    "LocalDimension", "LayerDimensions", "local_dimension", "layer_dimensions", "Distortion", "distortion",
    "layer_distortions",
    # latents named by seeds
    "latents_from_seeds",
    # spreading work
    "map_batched",
]
