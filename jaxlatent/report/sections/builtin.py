"""The report's built-in sections, and the model access they share.

Each ``*_section`` function writes one part of a :class:`jaxlatent.report.page.ReportPage`
(figures, tables, ``page.results``) from numbers computed by :func:`jaxlatent.report.build.build_report`;
``options`` is its :class:`jaxlatent.report.build.ReportOptions`. Taps and images are deterministic
(StyleGAN2 constant noise, FastGAN no noise), so every number can be recomputed.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.report import plots as viz
from jaxlatent.localbasis.grassmann import pairwise_grassmann
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localdim.dimension import numerical_rank, summarize_dimensions
from jaxlatent.localbasis.traversal import iterative_traversal
from jaxlatent.localbasis.warpage import warpage
from jaxlatent.engine.latents import class_labels, latents_from_seeds

latents = latents_from_seeds


def _tag(tap: str) -> str:
    return tap.replace(".", "_")


# ---------------------------------------------------------------------------------- model access
def is_stylegan2(model) -> bool:
    """StyleGAN2 (mapping network, W, labels, truncation) rather than FastGAN (z straight in)."""
    return model.config.family == "stylegan2"


def label_batch(model, options, n: int):
    """One-hot labels (n, c_dim) of a conditional StyleGAN2, else None."""
    c_dim = model.config.c_dim if is_stylegan2(model) else 0
    labels = class_labels(c_dim, options.class_idx, n, where="report")
    return None if labels is None else jnp.asarray(labels)


def tap_fn(model, tap: str, options) -> Callable:
    """The batched callable the analyses take for ``tap`` (deterministic: no random noise)."""
    if is_stylegan2(model):
        c = label_batch(model, options, 1)
        return model.fn(tap, c=None if c is None else c[0], truncation_psi=options.truncation_psi,
                        noise_mode="const")
    return model.fn(tap, noise_mode="none")


def render(model, z, options, batch: int = 256) -> np.ndarray:
    """Images (N, C, H, W) for latents z: (N, z_dim), in batches."""
    z = jnp.asarray(z, jnp.float32)
    out = []
    for i in range(0, z.shape[0], batch):
        zb = z[i:i + batch]
        if is_stylegan2(model):
            out.append(model.generate(zb, c=label_batch(model, options, zb.shape[0]),
                                      truncation_psi=options.truncation_psi, noise_mode="const"))
        else:
            out.append(model.generate(zb, noise_mode="none"))
    return np.concatenate([np.asarray(o) for o in out])


def default_taps(model, max_tap_size: int = 8192) -> list[str]:
    """Taps analysed by default, in computation order.

    StyleGAN2: every mapping layer but the last (which equals ``w`` without truncation), ``w``,
    the block outputs ``synthesis.b<res>`` and ``image`` holding at most ``max_tap_size``
    numbers per sample. FastGAN: its taps under the same size bound (always at least one).
    """
    size = lambda t: int(np.prod(model.tap_shape(t)))  # noqa: E731
    taps = model.taps()
    if is_stylegan2(model):
        n_map = model.config.mapping_layers
        chosen = [f"mapping.fc{i}" for i in range(n_map - 1)] + ["w"]
        chosen += [t for t in taps if (t.startswith("synthesis.b") and t.count(".") == 1) or t == "image"]
    else:
        chosen = list(taps)
    small = [t for t in chosen if t.startswith("mapping.") or t == "w" or size(t) <= max_tap_size]
    return small or [min(taps, key=size)]


def default_traversal_taps(model, taps: list[str]) -> list[str]:
    """Taps traversed by default: a middle mapping layer, ``w`` and a middle feature map."""
    mapping = [t for t in taps if t.startswith("mapping.")]
    maps = [t for t in taps if len(model.tap_shape(t)) == 3 and t != "image"]
    chosen = []
    if mapping:
        chosen.append(mapping[len(mapping) // 2])
    if "w" in taps:
        chosen.append("w")
    if maps:
        chosen.append(maps[(len(maps) - 1) // 2])   # a middle one, the smaller if two
    return chosen or taps[:1]


# ---------------------------------------------------------------------------------- sections
def samples_section(page, imgs, options):
    """The sample grid of seeds 0..N-1: imgs (N, C, H, W)."""
    seeds = list(range(len(imgs)))
    nrow = int(math.ceil(math.sqrt(len(seeds))))
    viz.save_image_grid(imgs, page.path("samples.png"), nrow=nrow)
    page.section("Samples", f"Seeds 0-{len(seeds) - 1}, truncation psi {options.truncation_psi}.")
    page.figure("samples.png", f"{len(seeds)} samples (seeds 0-{len(seeds) - 1})")
    page.results["samples"] = {"seeds": seeds, "image_shape": list(imgs.shape[1:]),
                               "pixel_mean": float(imgs.mean()), "pixel_std": float(imgs.std())}


def quality_section(page, quality: dict):
    """The model's own measurements (the shipped model's ``quality.json``) as a table."""
    page.section("Model quality", "Measured when the model was trained (quality.json beside it).")
    rows = [[k, v] for k, v in quality.items() if isinstance(v, (int, float))]
    gen = quality.get("generated", {})
    rows += [[f"generated.{k}", v] for k, v in gen.items() if isinstance(v, (int, float))]
    if "class_histogram" in gen:
        rows.append(["generated class histogram (0-9)", " ".join(str(int(c)) for c in gen["class_histogram"])])
    page.table(["measure", "value"], rows)
    page.results["quality"] = quality


_RULE_TEXT = {
    "paper": "the Gavish-Donoho optimal hard threshold omega(beta) x the median of all singular values "
             "(the paper's count), never below the numerical-rank tolerance",
    "bulk": "the Gavish-Donoho threshold where the spectrum shows a Marchenko-Pastur noise bulk, the "
            "numerical-rank tolerance elsewhere",
    "numerical": "the numerical-rank tolerance s_1 x max(out, in) x eps (the numerical rank)",
}


def dimension_section(page, model, taps, dims, arrays, options):
    """Spectra and local dimensions: dims maps tap -> :class:`LocalDimension` over the population."""
    rule = next(iter(dims.values())).rule if dims else options.rule
    rtol = rule.removeprefix("rtol=")
    text = _RULE_TEXT.get(rule) or (f"{rtol} times the largest (--rule {rtol})" if rule.startswith("rtol=")
                                    else f"the threshold function {rule}")
    page.section("Jacobian spectra and local dimensions (Choi et al. 2022, Local Dimension Estimation)",
                 "Singular values of each tap's Jacobian with respect to z, over the population "
                 f"(mean and 5-95% band), normalised by the largest; the local dimension counts "
                 f"the values above {text} (docs/methods-local-dimension.md).")
    spectra = {}
    res = {}
    for t in taps:
        s = np.asarray(dims[t].singular_values, np.float64)
        spectra[t] = s / s[:, :1]
        summary = summarize_dimensions(dims[t].dimension)
        res[t] = {"shape": [int(np.prod(model.tap_shape(t))), int(model.z_dim)],   # Jacobian out x in
                  "mean_dimension": summary.mean, "std_dimension": summary.std,
                  "median_dimension": summary.median, "min_dimension": summary.min,
                  "max_dimension": summary.max,
                  "mean_singular_values": s.mean(axis=0).tolist(),
                  "mean_threshold": float(np.mean(np.asarray(dims[t].threshold))),
                  # beside the count: every value above rounding, and where a noise bulk shows
                  "numerical_rank_mean": float(np.mean(numerical_rank(dims[t]))),
                  "noise_bulk_share": float(np.mean(np.asarray(dims[t].noise_bulk)))}
        arrays[f"singular_values/{t}"] = s.astype(np.float32)
        arrays[f"dimension/{t}"] = np.asarray(dims[t].dimension)
    viz.plot_spectra(spectra, page.path("spectra.png"), title="Jacobian spectra per tap (s / s_1)",
                     ylabel="s_i / s_1")
    names = list(taps)
    viz.plot_bars(names, [res[t]["mean_dimension"] for t in names], page.path("local_dimensions.png"),
                  title="local dimension per tap (mean, std over latents)", ylabel="dimension",
                  errors=[res[t]["std_dimension"] for t in names])
    page.figure("spectra.png", "Jacobian singular values per tap, normalised by the largest")
    page.figure("local_dimensions.png", "Estimated local dimension per tap")
    flat = [t for t in names if res[t]["mean_dimension"] < 1]
    if flat and rule in ("paper", "bulk"):
        page.text(f"Note: {', '.join(flat)} estimated below 1: their spectrum is flat or one Marchenko-Pastur "
                  "noise bulk (e.g. random weights), which the Gavish-Donoho rule reads as all noise. Rerun "
                  "with --rule numerical, or --rule 0.01 to count singular values above 1% of the largest.")
        page.results["warnings"] = page.results.get("warnings", []) + [
            f"local dimension < 1 at {flat}: the spectrum is flat or one noise bulk; try --rule numerical or 0.01"]
    page.text(f"Reading: 'dim' is the local dimension by the {rule} rule; 'numerical rank' counts every "
              "value above float rounding (the exact rank of a noiseless tap, near full on a trained "
              "network); 'bulk share' is the fraction of latents whose spectrum shows a Marchenko-Pastur "
              "noise bulk, where the Gavish-Donoho noise estimate rests on its own model.")
    page.table(["tap", "out x in", "dim (mean)", "std", "median", "min", "max", "numerical rank",
                "bulk share", "s_1 (mean)"],
               [[t, "x".join(map(str, res[t]["shape"])), res[t]["mean_dimension"], res[t]["std_dimension"],
                 res[t]["median_dimension"], res[t]["min_dimension"], res[t]["max_dimension"],
                 res[t]["numerical_rank_mean"], res[t]["noise_bulk_share"],
                 res[t]["mean_singular_values"][0]] for t in names])
    page.results["local_dimension"] = res
    page.results["local_dimension_rule"] = rule


def distortion_section(page, taps, dist, arrays):
    """Distortion per tap: dist maps tap -> :class:`Distortion` over the population."""
    page.section("Distortion (Choi et al. 2022, Local Dimension Estimation)",
                 "Mean geodesic distance between the estimated tangent spaces at distinct latents "
                 "over the mean distance to a neighbour 0.1 away (docs/methods-local-dimension.md); "
                 "1 means tangent spaces vary no more across the space than next door. Each tangent "
                 "space spans the top k Local Basis directions, k the median local dimension of the tap "
                 "(the table above).")
    res = {}
    for t in taps:
        d = dist[t]
        res[t] = {"distortion": float(d.distortion), "far": float(d.far), "near": float(d.near),
                  "haar_baseline": float(d.baseline), "k": int(d.k)}
        arrays[f"distortion_far/{t}"] = np.asarray(d.far_distances, np.float32)
    viz.plot_bars(list(taps), [res[t]["distortion"] for t in taps], page.path("distortion.png"),
                  title="Distortion per tap (far / near)", ylabel="distortion")
    page.figure("distortion.png", "Distortion per tap")
    page.table(["tap", "k", "distortion", "far", "near", "Haar baseline"],
               [[t, res[t]["k"], res[t]["distortion"], res[t]["far"], res[t]["near"], res[t]["haar_baseline"]]
                for t in taps])
    page.results["distortion"] = res


def grassmann_distances(fns, taps, z_pop, options, key):
    """tap -> (pairwise distances (n_grassmann, n_grassmann) of k-dim Local Bases, Warpage)."""
    out = {}
    z = z_pop[:options.n_grassmann]
    for i, t in enumerate(taps):
        k = min(options.k, z.shape[1])
        bases = local_basis(fns[t], z, k=k, chunk_size=options.chunk_size).basis
        k = min(k, bases.shape[1])
        dist = np.asarray(pairwise_grassmann(bases[..., :k]))
        warp = warpage(fns[t], z_pop, jax.random.fold_in(key, 10 + i), dims=range(1, k + 1),
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
        tag = _tag(t)
        off = dist[~np.eye(len(dist), dtype=bool)]
        curves = {name: np.asarray(getattr(warp, name)) for name in ("random_pairs", "neighbours",
                                                                     "to_global", "haar")}
        res[t] = {"pairwise_mean": float(off.mean()), "pairwise_std": float(off.std()),
                  "warpage_dims": np.asarray(warp.dims).tolist(),
                  "warpage_mean": {k: v.mean(axis=0).tolist() for k, v in curves.items()}}
        arrays[f"grassmann/{t}"] = dist.astype(np.float32)
        viz.plot_heatmap(dist, page.path(f"grassmann_{tag}.png"), colorbar_label="geodesic",
                         title=f"distance between Local Bases at {t}")
        dims = np.asarray(warp.dims)
        viz.plot_lines(dims, {k: v.mean(axis=0) for k, v in curves.items()}, page.path(f"warpage_{tag}.png"),
                       title=f"warpage at {t}", xlabel="subspace dimension", ylabel="geodesic distance",
                       bands={k: (v.mean(0) - v.std(0), v.mean(0) + v.std(0)) for k, v in curves.items()})
        page.figure(f"grassmann_{tag}.png", f"Pairwise Grassmannian distances at {t} "
                                           f"({len(dist)} latents; mean {off.mean():.3f})")
        page.figure(f"warpage_{tag}.png", f"Warpage curves at {t}")
    page.results["grassmann"] = res


def traversal_section(page, model, f, tap, options, z_dim, classifier):
    """Iterative and linear Local Basis traversals of ``tap`` (f its callable) as image grids;
    with a classifier, the digit of every frame.

    Returns the frames for the explorer (:mod:`jaxlatent.report.explorer`): ``latents_z`` (L, z_dim),
    ``sigma``, ``steps``, ``singular_values`` (L, D), and ``iterative`` / ``linear`` dicts of
    ``latents`` (L, D, S, in), ``images`` (L * D * S, C, H, W), ``space`` and ``what``.
    """
    seeds = list(options.traversal_seeds)
    z = jnp.asarray(latents(seeds, z_dim))
    n_dir = min(options.traversal_directions, z_dim, int(np.prod(model.tap_shape(tap))))
    frames = options.frames
    tag = _tag(tap)
    # iterative curve traversal: every (latent, direction) pair in one compiled batch
    tr = iterative_traversal(f, jnp.repeat(z, n_dir, axis=0), np.tile(np.arange(n_dir), len(seeds)),
                             sigma=options.sigma, num_steps=options.steps, num_frames=frames,
                             chunk_size=options.chunk_size)
    iter_z = np.asarray(tr.latents).reshape(len(seeds), n_dir, frames, z_dim)
    # linear traversal: in W along the Local Basis (scaled by s_i), else in z along v_i
    lb = local_basis(f, z, k=n_dir)
    t = np.linspace(-options.sigma, options.sigma, frames, dtype=np.float32)
    if tap == "w" and is_stylegan2(model):
        w0 = np.asarray(f(z))                                # (L, w_dim)
        step = np.asarray(lb.basis) * np.asarray(lb.singular_values)[:, None, :]   # (L, w_dim, dirs)
        w = w0[:, None, None, :] + t[None, None, :, None] * np.moveaxis(step, -1, 1)[:, :, None, :]
        image_of_w = model.fn("image", wrt="w", noise_mode="const")       # one w for every layer
        lin = np.asarray(image_of_w(jnp.asarray(w.reshape(-1, w.shape[-1]))))
        lin_lat, lin_space = w, "w"
        lin_what = "in W: w + t s_i u_i (u_i the Local Basis, s_i its singular value)"
    else:
        v = np.moveaxis(np.asarray(lb.directions), -1, 1)    # (L, dirs, z_dim)
        lin_z = z[:, None, None, :] + t[None, None, :, None] * v[:, :, None, :]
        lin = render(model, np.asarray(lin_z).reshape(-1, z_dim), options)
        lin_lat, lin_space = np.asarray(lin_z), "z"
        lin_what = "in z: z + t v_i (v_i the latent direction of the i-th singular value)"
    it = render(model, iter_z.reshape(-1, z_dim), options)
    viz.save_image_grid(it, page.path(f"traversal_{tag}_iterative.png"), nrow=frames)
    viz.save_image_grid(lin, page.path(f"traversal_{tag}_linear.png"), nrow=frames)
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
            "linear": {"latents": lin_lat, "images": lin, "space": lin_space, "what": lin_what}}


def _pixel_change(imgs, n_lat, n_dir, frames):
    """Mean absolute pixel change between the end frames, per direction: how much each edits."""
    x = np.asarray(imgs).reshape(n_lat, n_dir, frames, -1)
    return np.abs(x[:, :, -1] - x[:, :, 0]).mean(axis=(0, 2)).tolist()
