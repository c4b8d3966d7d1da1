"""``jaxlatent run ANALYSIS CKPT --n N --out DIR``: a long, resumable run into a chunked store.

One sub-command per registered analysis (``jaxlatent.runs.registry``), each with the options of
the analysis's own command (``--tap``, ``--k``, ...). Killed at any moment, the same command
resumes at once (``--verify`` re-hashes what is committed first); on a finished run it does
nothing. ``jaxlatent run --status DIR`` says what a run has done and has left, and its
throughput. See ``docs/runs.md``.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxlatent.cli import _common
from jaxlatent.runs import registry
from jaxlatent.runs.runner import DEFAULT_CHUNK_SIZE, run
from jaxlatent.runs.status import format_status, run_status
from jaxlatent.workflows.features import is_shipped_digits

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="stream an analysis over N latents into a resumable chunked store (zarr v3)",
        description="Run an analysis over the latents of seeds F..F+N-1 (--first-seed F; NVlabs per-seed "
                    "convention), chunk by chunk, into a zarr v3 store with a manifest and per-chunk "
                    "checksums. Rerun the same command after a crash to resume.")
    p.add_argument("--status", metavar="DIR", default=None,
                   help="say what the run in DIR has done and has left, and its throughput (reads no array)")
    p.set_defaults(func=run_command, analysis=None)
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    for name in registry.names():
        analysis = registry.get(name)
        q = sub.add_parser(name, help=analysis.help, description=analysis.help)
        q.add_argument("checkpoint", metavar="CKPT", help="checkpoint file (.pkl, .pt, .pth) or converted directory")
        q.add_argument("--which", default=None, help="network inside a training file: NVlabs G_ema (default) "
                                                     "or G; rosinality g_ema (default) or g")
        q.add_argument("--n", type=int, required=True, help="number of latents N (>= 1)")
        q.add_argument("--out", required=True, help="run folder: new, empty, or holding this same run")
        q.add_argument("--first-seed", type=int, default=0,
                       help="latent i is RandomState(F + i).randn(z_dim) (BigGAN: the package's truncated "
                            "draw of seed F + i at --trunc); PRNG draws use fold_in(PRNGKey(F), i) (default 0)")
        q.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                       help=f"latents per chunk: store chunk and compiled batch (default {DEFAULT_CHUNK_SIZE})")
        q.add_argument("--repair", action="store_true",
                       help="rewrite a damaged manifest, re-hash every committed chunk and recompute "
                            "damaged ones instead of stopping")
        q.add_argument("--verify", action="store_true",
                       help="re-read and re-hash every committed chunk before resuming (a resumed run "
                            "otherwise trusts its commit records and starts at once)")
        q.add_argument("--quiet", action="store_true", help="no progress bar or messages")
        _distributed_args(q)
        for opt in analysis.options:
            kind = None if opt.type is str else opt.type
            q.add_argument(opt.flag, dest=f"opt_{opt.name}", type=kind, default=opt.default,
                           choices=None if opt.choices is None else [c for c in opt.choices if c is not None],
                           help=opt.help,
                           metavar=None if opt.choices else opt.flag.lstrip("-").upper())
        q.set_defaults(func=run_command)


def _distributed_args(q: argparse.ArgumentParser) -> None:
    g = q.add_argument_group("multi-host (jax.distributed)")
    g.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (every host runs the same command); "
                        "on TPU slices and SLURM/Open MPI clusters the rest is found in the environment")
    g.add_argument("--coordinator", default=None, help="coordinator address host:port (else from the environment)")
    g.add_argument("--num-processes", type=int, default=None, help="number of processes (else from the environment)")
    g.add_argument("--process-id", type=int, default=None, help="this process's index (else from the environment)")


def run_command(args) -> int:
    if args.analysis is None:
        if args.status is None:
            raise SystemExit("jaxlatent run: give an ANALYSIS (jaxlatent run --help lists them) or --status DIR")
        print(format_status(run_status(args.status)))
        return 0
    if args.distributed:
        # CPU hosts exchange the run's barriers through gloo; GPU and TPU use their own collectives
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    analysis = registry.get(args.analysis)
    options = {o.name: getattr(args, f"opt_{o.name}") for o in analysis.options}
    if options.get("classifier", "") is None and not is_shipped_digits(args.checkpoint):
        raise ValueError(f"{args.checkpoint}: --classifier DIR is needed: the shipped digit classifier reads only "
                         "the shipped digits model's images; pass a classifier directory trained on this model's "
                         "images (jaxlatent.train.classifier.save_classifier)")
    if options.get("features", "") is None and not is_shipped_digits(args.checkpoint):
        raise ValueError(f"{args.checkpoint}: --features is needed: the shipped digit classifier's features suit "
                         "only the shipped digits model; pass pytorch-fid's Inception weights file "
                         "(pt_inception-2015-12-05-6726825d.pth) or a classifier directory trained on this model's "
                         "images")
    model = _common.load_model(args)
    result = run(args.analysis, model, args.n, args.out, first_seed=args.first_seed, options=options,
                 chunk_size=args.chunk_size, repair=args.repair, verify=args.verify, progress=not args.quiet,
                 checkpoint=args.checkpoint)
    if jax.process_index() == 0 and not args.quiet:
        shapes = ", ".join(f"{name} {tuple(a.shape)}" for name, a in result.items())
        print(f"{result.path}: {args.analysis}, {args.n} latents: {shapes}")
        dims = result.summary.get("local_dimension")
        if dims:
            print(f"local dimension: mean {dims['mean']:.2f}, range [{dims['min']}, {dims['max']}]")
        spectrum = result.summary.get("spectrum")
        if spectrum:
            top = ", ".join(f"{x:.4g}" for x in spectrum["mean"][:5])
            print(f"mean leading singular values: {top}")
        if "result" in result.stages:
            for name, value in result.results().items():
                if np.ndim(value) == 0:
                    print(f"{name}: {float(value):.6g}")
    return 0
