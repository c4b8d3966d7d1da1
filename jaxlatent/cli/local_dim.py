"""``jaxlatent local-dim``: Local Dimension Estimation (Choi et al., Local Dimension Estimation of
GANs, 2022) on each named tap over latents from seeds; writes ``results.json`` (numbers),
``results.npz`` (arrays) and plots into ``--out``.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from jaxlatent.cli import _common
from jaxlatent.localdim.dimension import local_dimension, summarize_dimensions
from jaxlatent.report import plots

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local-dim", help="local dimension of each tap over a population of latents "
                          "(Choi et al. 2022, Local Dimension Estimation)",
        description="Estimate the local dimension (rank of the tap Jacobian: the Gavish-Donoho "
                    "optimal hard threshold where the spectrum shows a noise bulk, the numerical rank "
                    "elsewhere) at each latent, and summarise it per tap "
                    "(Choi et al. 2022, Local Dimension Estimation).")
    _common.add_model_args(p, prng=False)
    _common.add_taps_arg(p)
    p.set_defaults(func=run_local_dim)


def run_local_dim(args) -> int:
    fns, seeds, z = _common.load_taps(args)
    table, arrays, spectra = {}, {}, {}
    for name, fn in tqdm(fns.items(), desc="local-dim", unit="tap"):
        est = local_dimension(fn, z, chunk_size=args.chunk_size)
        summary = summarize_dimensions(est.dimension)
        table[name] = {k: v for k, v in summary._asdict().items() if k != "dimension"}
        arrays[f"{name}/dimension"] = np.asarray(est.dimension)
        arrays[f"{name}/threshold"] = np.asarray(est.threshold)
        arrays[f"{name}/singular_values"] = np.asarray(est.singular_values)
        spectra[name] = np.asarray(est.singular_values)
    np.savez_compressed(os.path.join(args.out, "results.npz"), seeds=np.asarray(seeds), **arrays)
    _common.write_json(os.path.join(args.out, "results.json"), {
        "analysis": "local_dimension", "checkpoint": args.checkpoint, "seeds": seeds,
        "truncation_psi": args.truncation_psi,
        "threshold": "Gavish-Donoho optimal hard threshold on a noise bulk, numerical rank elsewhere",
        "taps": table})
    names = list(table)
    means = np.array([table[n]["mean"] for n in names])
    stds = np.array([table[n]["std"] for n in names])
    plots.plot_lines(range(len(names)), {"mean": means, "median": [table[n]["median"] for n in names]},
                   os.path.join(args.out, "local_dimension.png"), title="local dimension per tap",
                   ylabel="estimated local dimension", bands={"mean": (means - stds, means + stds)},
                   xticklabels=names)
    plots.plot_spectra(spectra, os.path.join(args.out, "spectra.png"), title="tap Jacobian singular values")
    for n in names:
        t = table[n]
        print(f"{n:>16s}  mean {t['mean']:7.2f}  std {t['std']:6.2f}  median {t['median']:6.1f}  "
              f"range [{t['min']}, {t['max']}]")
    print(f"wrote {args.out}/results.json, results.npz, local_dimension.png, spectra.png")
    return 0
