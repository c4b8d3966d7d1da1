"""jaxlatent: functional analysis of pretrained GAN latent spaces in JAX.

The public face is this flat namespace, imported explicitly so that editors and type checkers
see every name. ``import jaxlatent`` never imports PyTorch: only reading a checkpoint file does.

Conventions shared by every function here (the table in ``docs/api.md``; ``tests/test_api.py``
checks them):

* an analysis takes a *batched* callable ``f(z: (N, in)) -> (N, ...)`` whose samples are
  independent (a model tap from ``model.fn(tap)``, or ``jax.vmap(g)`` for a single-sample ``g``);
  the callables and data arrays are the positional arguments, everything else is keyword-only;
* randomness comes in as the keyword ``key`` (a typed ``jax.random.key`` or a legacy
  ``jax.random.PRNGKey``); the number of directions or components is ``k``;
* outputs with several axes are flattened in C order, so a Jacobian is ``(N, prod(out_shape), in)``;
* results are NamedTuples (pytrees) whose fields state their shapes;
* execution options are keyword-only and spelled the same everywhere: ``chunk_size``, ``mesh``,
  ``use_pmap``, ``progress`` (``True`` or a wrapper of an iterator such as ``tqdm.tqdm``).

The application and infrastructure live in their packages: the report
(``jaxlatent.report.build_report``, ``ReportOptions``), model glue shared by the command line,
the report and runs (``jaxlatent.workflows``), device meshes (``jaxlatent.engine.parallel.batch_mesh``,
``shard_batch``), seed lists (``jaxlatent.engine.latents.parse_seeds``) and the command line
(``jaxlatent.cli``).
"""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports: jaxlatent.runs records it in every manifest

# loading and models
from jaxlatent.models.biggan.config import BigGANConfig
from jaxlatent.models.biggan.model import BigGAN
from jaxlatent.io import load, load_inception, load_lpips, save
from jaxlatent.models.errors import UnknownTapError
from jaxlatent.models.fastgan.model import FastGAN
from jaxlatent.models.fastgan.config import FastGANConfig
from jaxlatent.models.stylegan2.model import StyleGAN2
from jaxlatent.models.stylegan2.config import StyleGAN2Config

# the Jacobian engine
from jaxlatent.engine.jacobian import gram_operator, jacobian, jvp_operator, vjp_operator
from jaxlatent.engine.spectral import TopSingular, top_singular

# Local Basis and its traversals (Choi et al., ICLR 2022)
from jaxlatent.localbasis.basis import LocalBasis, LocalBasisTopK, local_basis, local_basis_topk
from jaxlatent.localbasis.traversal import Traversal, iterative_traversal, linear_traversal

# Grassmannian metrics and the warpage experiment (Choi et al., ICLR 2022)
from jaxlatent.localbasis.grassmann import grassmann_distance, pairwise_grassmann, principal_angles
from jaxlatent.engine.sampling import random_orthonormal
from jaxlatent.localbasis.warpage import Warpage, warpage

# local dimension and Distortion (Choi et al. 2022, Local Dimension Estimation)
from jaxlatent.localdim.distortion import Distortion, distortion, layer_distortions
from jaxlatent.localdim.dimension import LayerDimensions, LocalDimension, layer_dimensions, local_dimension

# the Riemannian metric of the image manifold (Wang & Ponce, ICLR 2021)
from jaxlatent.geometry.metric import Metric, eigen_axis_latents, equal_distance_steps, metric_tensor, mse_distance
from jaxlatent.geometry.stats import (Anisotropy, HessianCorr, SpectrumSummary, anisotropy, average_metric,
                                               hessian_corr, offdiag_summary, spectrum_summary, vector_hessian_corr)
from jaxlatent.geometry.inversion import Inversion, invert

# GANSpace with PCA and ICA, edits and their FID (Härkönen et al. 2020; Palaev et al. 2023)
from jaxlatent.ganspace.edits import Lifted, edit, edit_grid, lift_activations, lift_directions
from jaxlatent.ganspace.fid import EditFID, EditFIDTable, edit_fid, edit_fid_table, feature_statistics, frechet_distance
from jaxlatent.ganspace.ica import ICA, fast_ica
from jaxlatent.ganspace.pca import PCA, pca, pca_from_moments, pca_randomized, population_pca
from jaxlatent.ganspace.population import Moments, moments

# correlation analysis (Li, Tao, Niu & Li, ICPR 2020)
from jaxlatent.correlation.controlling import ControllingSet, controlling_set
from jaxlatent.correlation.effects import ConceptEffects, EffectIntervals, concept_effects
from jaxlatent.correlation.interventions import intervene
from jaxlatent.correlation.translation import Translation, translate


# long runs over many latents: streamed, sharded, resumable
from jaxlatent.runs.results import RunResult, open_run
from jaxlatent.runs.runner import run

# latents named by seeds (NVlabs convention)
from jaxlatent.engine.latents import latents_from_seeds

# spreading work over chunks and devices
from jaxlatent.engine.parallel import map_batched

# checking the installation: versions, devices, batched Jacobians
from jaxlatent.health import doctor, warn_if_faulty

warn_if_faulty()  # one line when the installed jaxlib is a release with a known fault; computes nothing


__all__ = [
    "__version__",
    # loading and models
    "load", "save", "StyleGAN2", "StyleGAN2Config", "FastGAN", "FastGANConfig", "BigGAN", "BigGANConfig",
    "UnknownTapError",
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
    # the Riemannian metric (GAN geometry)
    "Metric", "metric_tensor", "mse_distance", "equal_distance_steps", "eigen_axis_latents", "SpectrumSummary",
    "spectrum_summary", "Anisotropy", "anisotropy", "HessianCorr", "hessian_corr", "vector_hessian_corr",
    "offdiag_summary", "average_metric", "Inversion", "invert",
    # GANSpace PCA/ICA, edits, FID
    "PCA", "pca", "pca_from_moments", "pca_randomized", "population_pca", "ICA", "fast_ica", "Moments", "moments",
    "Lifted", "edit", "edit_grid", "lift_activations", "lift_directions", "frechet_distance", "feature_statistics",
    "EditFID", "edit_fid", "EditFIDTable", "edit_fid_table",
    # correlation analysis
    "intervene", "ConceptEffects", "EffectIntervals", "concept_effects", "ControllingSet", "controlling_set",
    "Translation", "translate",
    # feature networks
    "load_lpips", "load_inception",
    # long runs
    "run", "open_run", "RunResult",
    # latents named by seeds
    "latents_from_seeds",
    # spreading work
    "map_batched",
    # checking the installation
    "doctor",
]
