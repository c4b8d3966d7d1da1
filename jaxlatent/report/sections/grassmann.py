"""Report section: Grassmannian distances between Local Bases and the warpage curves (Choi et al.,
ICLR 2022, Local Basis), for every traversed tap.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localbasis.grassmann import pairwise_grassmann
from jaxlatent.localbasis.warpage import warpage
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext

__all__ = ["add_section", "grassmann_distances"]


def add_section(page, model, ctx: SectionContext) -> None:
    """Pairwise distances of ``options.k``-dimensional Local Bases and warpage curves per traversal tap."""
    taps = list(ctx.traversal_taps)
    grassmann_section(page, taps, grassmann_distances(ctx.fns, taps, ctx.population, ctx.options, ctx.key),
                      ctx.options, ctx.arrays)


def grassmann_distances(fns, taps, z_pop, options, key):
    """tap -> (pairwise distances (n_grassmann, n_grassmann) of k-dim Local Bases, Warpage)."""
    out = {}
    z = z_pop[:options.n_grassmann]
    for i, t in enumerate(taps):
        k = min(options.k, z.shape[1])
        bases = local_basis(fns[t], z, k=k, chunk_size=options.chunk_size).basis
        k = min(k, bases.shape[1])
        dist = np.asarray(pairwise_grassmann(bases[..., :k]))
        warp = warpage(fns[t], z_pop, key=jax.random.fold_in(key, i), ks=range(1, k + 1),
                       chunk_size=options.chunk_size)
        out[t] = (dist, warp)
    return out


def grassmann_section(page, taps, grass, options, arrays):
    """Heatmaps and warpage curves from :func:`grassmann_distances`."""
    page.section("Grassmannian distances between Local Bases (Choi et al. 2022, Local Basis)",
                 f"Geodesic distance between the {options.k}-dimensional Local Bases at pairs of "
                 "latents, and the warpage curves: distance between the Local Bases of random pairs "
                 "of latents, of neighbours (0.1 apart), to the global PCA basis (GANSpace), and "
                 "between Haar-random subspaces, for subspace dimensions 1..k.")
    res = {}
    for t in taps:
        dist, warp = grass[t]
        tag = t.replace(".", "_")
        off = dist[~np.eye(len(dist), dtype=bool)]
        curves = {name: np.asarray(getattr(warp, name)) for name in ("random_pairs", "neighbours",
                                                                     "to_global", "haar")}
        res[t] = {"pairwise_mean": float(off.mean()), "pairwise_std": float(off.std()),
                  "warpage_ks": np.asarray(warp.ks).tolist(),
                  "warpage_mean": {k: v.mean(axis=0).tolist() for k, v in curves.items()}}
        arrays[f"grassmann/{t}"] = dist.astype(np.float32)
        plots.plot_heatmap(dist, page.path(f"grassmann_{tag}.png"), colorbar_label="geodesic",
                         title=f"distance between Local Bases at {t}")
        dims = np.asarray(warp.ks)
        plots.plot_lines(dims, {k: v.mean(axis=0) for k, v in curves.items()}, page.path(f"warpage_{tag}.png"),
                       title=f"warpage at {t}", xlabel="subspace dimension", ylabel="geodesic distance",
                       bands={k: (v.mean(0) - v.std(0), v.mean(0) + v.std(0)) for k, v in curves.items()})
        page.figure(f"grassmann_{tag}.png", f"Pairwise Grassmannian distances at {t} "
                                           f"({len(dist)} latents; mean {off.mean():.3f})")
        page.figure(f"warpage_{tag}.png", f"Warpage curves at {t}")
    page.results["grassmann"] = res


