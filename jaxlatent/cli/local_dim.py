"""``jaxlatent local-dim``: Local Dimension Estimation (Choi et al., Local Dimension Estimation of
GANs, 2022) on each named tap over latents from seeds; writes ``results.json`` (numbers),
``results.npz`` (arrays) and plots into ``--out``.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from jaxlatent.cli import _common
from jaxlatent.localdim.dimension import local_dimension, numerical_rank, summarize_dimensions
from jaxlatent.report import plots

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "local-dim", help="local dimension of each tap over a population of latents "
                          "(Choi et al. 2022, Local Dimension Estimation)",
        description="Estimate the local dimension (singular values of the tap Jacobian above the "
                    "Gavish-Donoho optimal hard threshold, omega(beta) times the median singular value, "
                    "never below the numerical-rank tolerance; --rule for the others) at each latent, "
                    "and summarise it per tap (Choi et al. 2022, Local Dimension Estimation).")
    _common.add_model_args(p, prng=False)
    _common.add_taps_arg(p)
    _common.add_rule_arg(p)
    p.set_defaults(func=run_local_dim)


def run_local_dim(args) -> int:
    fns, seeds, z = _common.load_taps(args)
    table, arrays, spectra = {}, {}, {}
    for name, fn in tqdm(fns.items(), desc="local-dim", unit="tap"):
        est = local_dimension(fn, z, rule=args.rule, chunk_size=args.chunk_size)
        summary = summarize_dimensions(est.dimension)
        table[name] = {k: v for k, v in summary._asdict().items() if k != "dimension"}
        table[name]["numerical_rank_mean"] = float(np.mean(numerical_rank(est)))
        table[name]["noise_bulk_share"] = float(np.mean(np.asarray(est.noise_bulk)))
        for field, value in est.arrays().items():
            arrays[f"{name}/{field}"] = np.asarray(value)
        spectra[name] = np.asarray(est.singular_values)
    np.savez_compressed(os.path.join(args.out, "results.npz"), seeds=np.asarray(seeds), **arrays)
    _common.write_json(os.path.join(args.out, "results.json"), {
        "analysis": "local_dimension", "checkpoint": args.checkpoint, "seeds": seeds,
        "truncation_psi": args.truncation_psi, "rule": args.rule, "taps": table})
    names = list(table)
    means = np.array([table[n]["mean"] for n in names])
    stds = np.array([table[n]["std"] for n in names])
    plots.plot_lines(range(len(names)), {"mean": means, "median": [table[n]["median"] for n in names]},
                   os.path.join(args.out, "local_dimension.png"), title=f"local dimension per tap (rule {args.rule})",
                   ylabel="estimated local dimension", bands={"mean": (means - stds, means + stds)},
                   xticklabels=names)
    plots.plot_spectra(spectra, os.path.join(args.out, "spectra.png"), title="tap Jacobian singular values")
    print(f"local dimension, rule {args.rule}; numerical rank and noise-bulk share beside it")
    for n in names:
        t = table[n]
        print(f"{n:>16s}  mean {t['mean']:7.2f}  std {t['std']:6.2f}  median {t['median']:6.1f}  "
              f"range [{t['min']}, {t['max']}]  numerical rank {t['numerical_rank_mean']:6.2f}  "
              f"bulk share {t['noise_bulk_share']:.2f}")
    print(f"wrote {args.out}/results.json, results.npz, local_dimension.png, spectra.png")
    return 0
