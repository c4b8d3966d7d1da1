"""``jaxlatent geometry``: the Riemannian metric of the image manifold (Wang & Ponce, ICLR 2021).

Loads a checkpoint, computes the metric tensor (the Hessian of an image distance) at the latents
of ``--seeds`` in Z or W, and writes into ``--out``: ``metric.npz`` (eigenvalues, eigenvectors,
matrices, homogeneity matrices, the average metric), ``results.json`` (anisotropy and homogeneity
numbers), ``spectra.png``, ``homogeneity_log.png``, ``homogeneity_lin.png`` and
``axes_seed<S>.png`` (eigen-axis strips at the first latents).
"""

from __future__ import annotations

import os

import numpy as np

from jaxlatent.cli import _common
from jaxlatent.geometry.metric import Metric, metric_tensor, mse_distance
from jaxlatent.geometry.stats import average_metric, spectrum_summary
from jaxlatent.io import load_lpips
from jaxlatent.report import plots
from jaxlatent.workflows.geometry import strip_images, summarize
from jaxlatent.workflows.spaces import SPACES, check_space, latent_space

__all__ = ["register"]

DISTANCES = ("mse", "lpips")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "geometry", help="Riemannian metric of the image manifold: spectra, anisotropy, homogeneity "
                         "(Wang & Ponce 2021)",
        description="Metric tensor H(z) = Hessian of d(G(z0), G(z)) at each latent (Wang & Ponce, ICLR 2021), "
                    "its spectra, anisotropy (eigen-dimensions holding 99 %% / 99.9 %% of the trace), "
                    "homogeneity (correlation of v^T H_j v over latent i's eigenvectors with H_j's "
                    "eigenvalues) and eigen-axis image strips.")
    _common.add_model_args(p)
    p.add_argument("--space", default=None, choices=SPACES,
                   help="latent space: w (StyleGAN2's default, one w for every layer) or z (FastGAN's default "
                        "and only space; Wang & Ponce's analysis of class-conditional and non-style GANs)")
    p.add_argument("--distance", default="mse", choices=DISTANCES,
                   help="image distance: mean squared pixel difference (default) or LPIPS")
    p.add_argument("--lpips-weights", default=None,
                   help="LPIPS state dict (.pth/.npz of the whole lpips.LPIPS module) for --distance lpips")
    p.add_argument("--lpips-net", default="alex", choices=["alex", "vgg", "squeeze"],
                   help="LPIPS backbone (default alex; the paper uses squeeze)")
    p.add_argument("--k", type=int, default=None, help="eigenpairs kept (default all)")
    p.add_argument("--method", default="auto", choices=["auto", "full", "krylov", "lobpcg"],
                   help="full metric and eigh, or the top --k by block Krylov or LOBPCG (default auto)")
    p.add_argument("--strips", type=int, default=2, help="latents drawn as eigen-axis strips (default 2)")
    p.add_argument("--axes", type=int, default=8, help="eigen-axes per strip (default 8)")
    p.add_argument("--step", type=float, default=0.1,
                   help="metric length per strip step (sqrt of the distance's units; default 0.1)")
    p.set_defaults(func=run)


def _distance(args):
    if args.distance == "mse":
        return mse_distance
    if not args.lpips_weights:
        raise ValueError("--distance lpips needs --lpips-weights PATH (a state dict of the lpips.LPIPS module)")
    return load_lpips(args.lpips_weights, net=args.lpips_net)


def run(args) -> None:
    def check(model):
        args.space = check_space(model, args.space, where=args.checkpoint)

    model, seeds, z = _common.load_model_and_latents(args, check)
    space = latent_space(model, args.space, **_common.model_kwargs(args))
    g, x = space.image, space.points(z)
    distance = _distance(args)
    metric = metric_tensor(g, x, distance=distance, k=args.k, method=args.method, key=_common.prng_key(args),
                           chunk_size=args.chunk_size, progress=_common.progress("geometry"))
    summary, mats = summarize(metric)
    avg = average_metric(metric)
    spec = spectrum_summary(metric.eigenvalues)
    arrays = {"seeds": np.asarray(seeds), "latents": np.asarray(x), "eigenvalues": np.asarray(metric.eigenvalues),
              "eigenvectors": np.asarray(metric.eigenvectors), "average_eigenvalues": np.asarray(avg.eigenvalues[0]),
              "average_eigenvectors": np.asarray(avg.eigenvectors[0]), "average_matrix": np.asarray(avg.matrix[0]),
              **mats}
    if metric.matrix is not None:
        arrays["matrix"] = np.asarray(metric.matrix)
    np.savez_compressed(os.path.join(args.out, "metric.npz"), **arrays)
    label = f"{args.space}, {args.distance}"
    plots.plot_spectra({label: np.maximum(np.asarray(metric.eigenvalues), 1e-30)}, os.path.join(args.out, "spectra.png"),
                     title="metric eigenvalues (Wang & Ponce 2021)", ylabel="eigenvalue", xlabel="eigen-index")
    for name in ("log", "lin"):
        plots.plot_heatmap(mats[f"corr_{name}"], os.path.join(args.out, f"homogeneity_{name}.png"),
                         title=f"homogeneity ({label}, {name} scale)", colorbar_label="correlation")
    axes = min(args.axes, metric.eigenvalues.shape[1])
    for i in range(min(args.strips, len(seeds))):
        one = Metric(metric.eigenvalues[i:i + 1], metric.eigenvectors[i:i + 1], None)
        plots.save_image_grid(strip_images(g, x[i], one, axes, args.step, 3),
                              os.path.join(args.out, f"axes_seed{seeds[i]}.png"))
    _common.write_json(os.path.join(args.out, "results.json"), {
        "space": args.space, "distance": args.distance, "seeds": seeds, "class_idx": args.class_idx,
        "truncation_psi": args.truncation_psi, "summary": summary._asdict(),
        "mean_spectrum": spec.mean, "average_metric_eigenvalues": avg.eigenvalues[0]})
    print(f"geometry ({label}): {len(seeds)} latents, eigen-dims for 99 % of the trace {summary.dims_99:.1f}, "
          f"for 99.9 % {summary.dims_999:.1f}; homogeneity (log) {summary.corr_log[0]:.3f} -> {args.out}")
