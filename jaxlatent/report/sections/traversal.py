"""Report section: Local Basis traversals (Choi et al., ICLR 2022) of every traversed tap as image
grids, iterative (the paper's curve) beside linear; with a classifier, the digit of every frame.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localbasis.traversal import iterative_traversal, linear_traversal
from jaxlatent.report import plots
from jaxlatent.report.context import SectionContext
from jaxlatent.workflows.spaces import is_stylegan2, latent_space, render, seed_latents

__all__ = ["add_section"]


def add_section(page, model, ctx: SectionContext) -> None:
    """One pair of grids per tap of ``ctx.traversal_taps``."""
    page.section("Local Basis traversals (Choi et al. 2022)",
                 "Each grid shows, for a few latents, the images along the leading Local Basis "
                 "directions of one tap (rows: latent, direction; columns: from -sigma through "
                 "the latent itself, the middle column, to +sigma). Iterative: the paper's curve "
                 "traversal, which re-estimates the basis at every step. Linear: a straight line.")
    for t in ctx.traversal_taps:
        ctx.frames[t] = traversal_section(page, model, ctx.fns[t], t, ctx.options, int(model.z_dim),
                                          ctx.classifier)


def traversal_section(page, model, f, tap, options, z_dim, classifier):
    """Iterative and linear Local Basis traversals of ``tap`` (f its callable) as image grids;
    with a classifier, the digit of every frame.

    Returns the frames for the explorer (:mod:`jaxlatent.report.explorer`): ``latents_z`` (L, z_dim),
    ``sigma``, ``steps``, ``singular_values`` (L, D), and ``iterative`` / ``linear`` dicts of
    ``latents`` (L, D, S, in), ``images`` (L * D * S, C, H, W), ``space`` and ``what``.
    """
    seeds = list(options.traversal_seeds)
    z = jnp.asarray(seed_latents(model, seeds, truncation_psi=options.truncation_psi))
    n_dir = min(options.traversal_directions, z_dim, int(np.prod(model.tap_shape(tap))))
    frames = options.frames
    tag = tap.replace(".", "_")
    # iterative curve traversal: every (latent, direction) pair in one compiled batch
    tr = iterative_traversal(f, jnp.repeat(z, n_dir, axis=0), index=np.tile(np.arange(n_dir), len(seeds)),
                             sigma=options.sigma, steps=options.steps, frames=frames,
                             chunk_size=options.chunk_size)
    iter_z = np.asarray(tr.latents).reshape(len(seeds), n_dir, frames, z_dim)
    # linear traversal: in W along the Local Basis (scaled by s_i), else in z along v_i
    lb = local_basis(f, z, k=n_dir)
    strengths = np.linspace(-options.sigma, options.sigma, frames, dtype=np.float32)
    in_w = tap == "w" and is_stylegan2(model)
    space = latent_space(model, "w" if in_w else "z", truncation_psi=options.truncation_psi,
                         class_idx=options.class_idx, where="report")
    if in_w:
        step = lb.basis * lb.singular_values[:, None, :]          # (L, w_dim, dirs): s_i u_i
        lin_what = "in W: w + t s_i u_i (u_i the Local Basis, s_i its singular value)"
    else:
        step = lb.directions                                      # (L, z_dim, dirs): v_i
        lin_what = "in z: z + t v_i (v_i the latent direction of the i-th singular value)"
    x0 = jnp.repeat(space.points(z), n_dir, axis=0)              # (L * dirs, in)
    lines = linear_traversal(x0, jnp.reshape(jnp.moveaxis(step, -1, 1), (x0.shape[0], -1)), strengths=strengths)
    lin = np.asarray(space.image(jnp.reshape(lines, (-1, lines.shape[-1]))))
    opts = dict(truncation_psi=options.truncation_psi, class_idx=options.class_idx, where="report")
    it = render(model, iter_z.reshape(-1, z_dim), **opts)
    plots.save_image_grid(it, page.path(f"traversal_{tag}_iterative.png"), nrow=frames)
    plots.save_image_grid(lin, page.path(f"traversal_{tag}_linear.png"), nrow=frames)
    page.text(f"{tap}: seeds {seeds}, directions 1-{n_dir}, sigma {options.sigma}, "
              f"{options.steps} iterative steps.")
    page.figure(f"traversal_{tag}_iterative.png", f"{tap}: iterative curve traversal")
    page.figure(f"traversal_{tag}_linear.png", f"{tap}: linear traversal {lin_what}")
    entry: dict[str, Any] = {"seeds": seeds, "directions": n_dir, "frames": frames, "sigma": options.sigma,
                             "steps": options.steps,
                             "singular_values": np.asarray(lb.singular_values).tolist(),
                             "pixel_change_iterative": _pixel_change(it, len(seeds), n_dir, frames),
                             "pixel_change_linear": _pixel_change(lin, len(seeds), n_dir, frames)}
    if classifier is not None and it.shape[1] == 1:
        for kind, imgs in (("iterative", it), ("linear", lin)):
            pred = np.asarray(classifier.predict(imgs)).reshape(len(seeds), n_dir, frames)
            entry[f"classes_{kind}"] = pred.tolist()
        rows = []
        for a, s in enumerate(seeds):
            for d in range(n_dir):
                rows.append([s, d + 1, " ".join(map(str, entry["classes_iterative"][a][d])),
                             " ".join(map(str, entry["classes_linear"][a][d]))])
        page.table(["seed", "direction", "classes along iterative", "classes along linear"], rows)
    page.results.setdefault("traversal", {})[tap] = entry
    return {"latents_z": np.asarray(z), "sigma": options.sigma, "steps": options.steps,
            "singular_values": np.asarray(lb.singular_values),
            "iterative": {"latents": iter_z, "images": it, "space": "z", "what": "along the curve"},
            "linear": {"latents": np.asarray(lines).reshape(len(seeds), n_dir, frames, -1), "images": lin,
                       "space": "w" if in_w else "z", "what": lin_what}}


def _pixel_change(imgs, n_lat, n_dir, frames):
    """Mean absolute pixel change between the end frames, per direction: how much each edits."""
    x = np.asarray(imgs).reshape(n_lat, n_dir, frames, -1)
    return np.abs(x[:, :, -1] - x[:, :, 0]).mean(axis=(0, 2)).tolist()
