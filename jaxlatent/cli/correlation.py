"""``jaxlatent correlation``: concept effects, controlling sets and translation (Li et al., ICPR 2020).

Loads a generator and a classifier (``--classifier``; the shipped digit classifier for the shipped
digits model), draws latents from seeds 0..n-1 (BigGAN: truncated at ``--trunc``) and writes into
``--out``: ``report.html`` with the importance heatmap, the success curves of both methods,
the translation matrix and grids, ``results.json`` (controlling-set size and success of every
(source, target) pair, the worked pair, the translation sweep) and ``arrays.npz``.
"""

from __future__ import annotations

import os

import numpy as np

from jaxlatent.cli import _common
from jaxlatent.report.page import ReportPage
from jaxlatent.report.sections.correlation import write_figures
from jaxlatent.workflows.correlation import FULL, Sizes, analyse, population, raw_arrays, summarize
from jaxlatent.workflows.features import classifier_for
from jaxlatent.workflows.spaces import SPACES, check_space, model_options, seed_latents

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "correlation", help="concept effects of latent dims, controlling sets, class-to-class "
                            "translation (Li, Tao, Niu & Li, ICPR 2020)",
        description="Intervene on single latent dimensions, score the images with a classifier, "
                    "find each (source, target) pair's controlling set and translate with it.")
    _common.add_model_args(p, seeds=None)
    p.add_argument("--classifier", default=None,
                   help="classifier directory (jaxlatent.models.digits format) trained on the model's images; "
                        "required except for the shipped digits model, whose digit classifier is the default")
    p.add_argument("--space", default="z", choices=SPACES,
                   help="latent space intervened on: z, or w (StyleGAN2; standard units: the "
                        "population's mean and std per dimension); a BigGAN's z is measured in the std of "
                        "its truncated draws, --trunc x 0.88")
    p.add_argument("--n", type=int, default=1000, help="latents, seeds 0..n-1 (default 1000)")
    p.add_argument("--effects", type=int, default=200,
                   help="latents whose single-dimension effects rank the dimensions (default 200)")
    p.add_argument("--max-k", type=int, default=24, help="longest controlling set tried (default 24)")
    p.add_argument("--magnitude", type=float, default=FULL.magnitude,
                   help=f"intervention value a, in standard units (default {FULL.magnitude:g})")
    p.add_argument("--bootstrap", type=int, default=FULL.bootstrap,
                   help=f"bootstrap resamples of the intervals (default {FULL.bootstrap})")
    p.add_argument("--steps", type=int, default=100,
                   help="Method B optimisation steps for the worked pair (0: leave out; default 100)")
    p.add_argument("--pair", default=None, help="worked pair SOURCE,TARGET (default: the two most "
                                                "frequent classes)")
    p.set_defaults(func=run)


def _pair(text):
    if text is None:
        return None
    try:
        s, t = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--pair: expected SOURCE,TARGET class indices, found {text!r}") from None
    return s, t


def run(args) -> int:
    if args.n < 2:
        raise ValueError(f"--n: need at least 2 latents, found {args.n}")
    model = _common.load_model(args)
    # every flag checked against the model before any work
    model_options(model, **_common.model_kwargs(args))
    check_space(model, args.space, where=args.checkpoint)
    classifier = classifier_for(model, args.checkpoint, args.classifier)
    os.makedirs(args.out, exist_ok=True)
    z = seed_latents(model, range(args.n), truncation_psi=args.truncation_psi)
    space = population(model, z, args.space, truncation_psi=args.truncation_psi, class_idx=args.class_idx)
    sizes = Sizes(population=args.n, effects=min(args.effects, args.n), max_k=args.max_k,
                  bootstrap=args.bootstrap, steps=args.steps, magnitude=args.magnitude)
    res = analyse(space, classifier.logits, sizes, key=_common.prng_key(args), pair=_pair(args.pair),
                  chunk_size=args.chunk_size, progress=_common.progress("correlation"))
    label = "" if args.class_idx is None else f", class {args.class_idx}"
    page = ReportPage(args.out, "Correlation analysis (Li, Tao, Niu & Li, ICPR 2020)",
                      f"{args.checkpoint}, space {args.space}{label}, seeds 0-{args.n - 1}")
    page.section("Concept effects, controlling sets and translation")
    write_figures(page, space, res, sizes, prefix="correlation")
    summary = summarize(res)
    page.results.update(analysis="correlation", checkpoint=args.checkpoint, space=args.space,
                        class_idx=args.class_idx, truncation_psi=args.truncation_psi, n=args.n, sizes=sizes._asdict(), **summary)
    page.write()
    np.savez_compressed(os.path.join(args.out, "arrays.npz"), **raw_arrays(res))
    size = np.asarray(summary["set_size"])
    print(f"pairs: median controlling-set size {summary['median_set_size']:g} of {space.x.shape[1]}, "
          f"mean success {summary['mean_success']:.3f}, share reaching 0.9 "
          f"{summary['share_pairs_reaching_0.9']:.3f}")
    print("set size (rows: source, columns: target)")
    print(size)
    print(f"wrote {args.out}/report.html, results.json, arrays.npz")
    return 0
