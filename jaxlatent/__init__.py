"""jaxlatent: functional analysis of pretrained GAN latent spaces in JAX.

The public face is this flat namespace. Names resolve lazily (PEP 562), so
``import jaxlatent`` stays cheap and never imports PyTorch; the first use of a
name imports the module that defines it.

Conventions shared by every analysis (see ``docs/methods.md``):

* an analysis takes a *batched* callable ``f(z: (N, in)) -> (N, ...)`` whose
  samples are independent (a model tap from ``model.fn(tap)``, or
  ``jax.vmap(g)`` for a single-sample ``g``);
* outputs with several axes are flattened in C order, so a Jacobian is
  ``(N, prod(out_shape), in)``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    # loading and models
    "load": "jaxlatent.io",
    "save": "jaxlatent.io",
    "StyleGAN2": "jaxlatent.models.stylegan2",
    "StyleGAN2Config": "jaxlatent.models.stylegan2",
    "FastGAN": "jaxlatent.models.fastgan",
    "FastGANConfig": "jaxlatent.models.fastgan",
    "UnknownTapError": "jaxlatent.models.errors",
    # Jacobian engine
    "jacobian": "jaxlatent.analysis.jacobian",
    "jvp_operator": "jaxlatent.analysis.jacobian",
    "vjp_operator": "jaxlatent.analysis.jacobian",
    "gram_operator": "jaxlatent.analysis.jacobian",
    "top_singular": "jaxlatent.analysis.spectral",
    # Local Basis (seed 003)
    "LocalBasis": "jaxlatent.analysis.local_basis",
    "local_basis": "jaxlatent.analysis.local_basis",
    "local_basis_topk": "jaxlatent.analysis.local_basis",
    "linear_traversal": "jaxlatent.analysis.traversal",
    "iterative_traversal": "jaxlatent.analysis.traversal",
    # Grassmannian metrics (seeds 003, 000)
    "principal_angles": "jaxlatent.analysis.grassmann",
    "grassmann_distance": "jaxlatent.analysis.grassmann",
    "pairwise_grassmann": "jaxlatent.analysis.grassmann",
    "random_orthonormal": "jaxlatent.analysis.sampling",
    "warpage": "jaxlatent.analysis.warpage",
    # local dimension and Distortion (seed 000)
    "local_dimension": "jaxlatent.analysis.local_dimension",
    "layer_dimensions": "jaxlatent.analysis.local_dimension",
    "distortion": "jaxlatent.analysis.distortion",
    # latents named by seeds (NVlabs convention)
    "parse_seeds": "jaxlatent.seeds",
    "latents_from_seeds": "jaxlatent.seeds",
    # the report (`jaxlatent demo`, `jaxlatent report`)
    "build_report": "jaxlatent.report",
    "ReportOptions": "jaxlatent.report",
    # spreading work
    "batch_mesh": "jaxlatent.parallel",
    "shard_batch": "jaxlatent.parallel",
    "map_batched": "jaxlatent.parallel",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jaxlatent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
