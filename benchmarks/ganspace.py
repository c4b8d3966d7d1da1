"""GANSpace decompositions: our PCA and FastICA against scikit-learn's on the same data, one process.

    python benchmarks/ganspace.py [--tall 100000x512] [--wide 10000x4096] [--k 20] [--k-wide 50]
                                  [--repeats 3] [--dtype float32|float64] [--smoke]

Data: ``n x d`` samples of a GAN-tap-like population, ``k`` Laplace sources and ``d - k``
Gaussian ones, unequal scales, through a random orthogonal mixing (numpy ``RandomState(0)``).
Rows per shape (same array, same ``w_init``, interleaved rounds, best kept):

  sklearn PCA      ``sklearn.decomposition.PCA(k)`` (its "auto" solver: covariance eigh for
                   n >= 10 d and d <= 1000, else randomized or full; BLAS threads: --sklearn-threads)
  ours pca         ``jaxlatent.ganspace.pca.pca(x, k)`` (Gram matrix + eigh, jitted)
  sklearn FastICA  ``FastICA(k, w_init=w)``, defaults otherwise (Palaev et al. 2023's setting)
  ... eigh         the same with ``whiten_solver="eigh"`` (the whitening ours does)
  ours fast_ica    ``fast_ica(x, k, w_init=w)`` (one jitted program)

"equal result" (column "difference", each row's sign matched, relative to the largest entry):
PCA rows against exact float64 principal axes (numpy eigh), FastICA ours against sklearn's
components; and the iteration counts. Our compile time is
reported apart (a first call per shape), the timed calls reuse the compiled program.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see benchmarks/local_basis.py

import argparse
import sys
import time
import warnings

import jax
import numpy as np
from sklearn.decomposition import PCA as SKPCA
from sklearn.decomposition import FastICA
from threadpoolctl import threadpool_limits

from jaxlatent.ganspace.ica import fast_ica
from jaxlatent.ganspace.pca import pca

SMOKE = dict(tall=(5000, 64), wide=(500, 1024), k=8, k_wide=8, repeats=1)
MID = dict(tall=(20000, 512), wide=(2000, 2048), k=20, k_wide=20, repeats=2)
FULL = dict(tall=(100000, 512), wide=(10000, 4096), k=20, k_wide=50, repeats=3)


def population(n, d, k, dtype, seed=0):
    rs = np.random.RandomState(seed)
    x = np.concatenate([rs.laplace(size=(n, k)) * np.linspace(3, 1, k),
                        rs.randn(n, d - k) * np.linspace(0.8, 0.1, d - k)], axis=1).astype(dtype)
    # a random orthogonal mixing without a d x d matrix: twice, permute the columns and rotate
    # each block of 1024 of them
    for _ in range(2):
        x = x[:, rs.permutation(d)]
        for i in range(0, d, 1024):
            b = x[:, i:i + 1024]
            x[:, i:i + 1024] = b @ np.linalg.qr(rs.randn(b.shape[1], b.shape[1]))[0].astype(dtype)
    return x + np.asarray(1.0, x.dtype)


def _block(x):
    return jax.block_until_ready(x)


def exact_components(x, k):
    """Top-k principal axes in float64 numpy (eigh of the smaller Gram matrix), sklearn's signs."""
    xc = x.astype(np.float64)
    xc -= xc.mean(axis=0)
    if xc.shape[0] >= xc.shape[1]:
        comps = np.linalg.eigh(xc.T @ xc)[1][:, ::-1][:, :k].T
    else:
        v = np.linalg.eigh(xc @ xc.T)[1][:, ::-1][:, :k]
        comps = (xc.T @ v).T
        comps /= np.linalg.norm(comps, axis=1, keepdims=True)
    return comps


def _difference(ours, ref):
    c = np.asarray(ours, np.float64)
    sign = np.sign(np.sum(c * ref, axis=1))[:, None]
    return float(np.abs(c * sign - ref).max() / np.abs(ref).max())


def bench_shape(x, k, repeats, w_init, sklearn_threads=None):
    """Rows for one data shape: dicts with row, seconds, ratio (sklearn / ours), difference, note.

    sklearn's BLAS runs ``sklearn_threads`` threads (default: OPENBLAS_NUM_THREADS, 1 as set
    above and by the ``jaxlatent`` command; on a loaded 2-core machine two spinning OpenBLAS
    threads made sklearn 3-14x slower, so more is not a fairer default).
    """
    threads = sklearn_threads or int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    timings = {name: [] for name in ("sklearn PCA", "ours pca", "sklearn FastICA", "sklearn FastICA eigh",
                                     "ours fast_ica")}
    t = time.perf_counter()
    _block(pca(x, k=k).components)
    compile_pca = time.perf_counter() - t
    t = time.perf_counter()
    _block(fast_ica(x, k=k, w_init=w_init).components)
    compile_ica = time.perf_counter() - t
    for _ in range(repeats):
        t = time.perf_counter()
        with threadpool_limits(threads, user_api="blas"):
            sk_pca = SKPCA(k).fit(x)
        timings["sklearn PCA"].append(time.perf_counter() - t)
        t = time.perf_counter()
        our_pca = pca(x, k=k)
        _block(our_pca.components)
        timings["ours pca"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with warnings.catch_warnings(), threadpool_limits(threads, user_api="blas"):
            warnings.simplefilter("ignore")
            sk_ica = FastICA(k, w_init=w_init).fit(x)
        timings["sklearn FastICA"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with warnings.catch_warnings(), threadpool_limits(threads, user_api="blas"):
            warnings.simplefilter("ignore")
            sk_eigh = FastICA(k, w_init=w_init, whiten_solver="eigh").fit(x)
        timings["sklearn FastICA eigh"].append(time.perf_counter() - t)
        t = time.perf_counter()
        our_ica = fast_ica(x, k=k, w_init=w_init)
        _block(our_ica.components)
        timings["ours fast_ica"].append(time.perf_counter() - t)
    best = {name: min(v) for name, v in timings.items()}
    exact = exact_components(x, k)
    shape = f"{x.shape[0]}x{x.shape[1]} k={k} {x.dtype}"
    return [
        dict(shape=shape, row="sklearn PCA", seconds=best["sklearn PCA"], ratio=1.0,
             difference=_difference(sk_pca.components_, exact),
             note=f"solver {sk_pca._fit_svd_solver}, {threads} BLAS threads"),
        dict(shape=shape, row="ours pca", seconds=best["ours pca"], ratio=best["sklearn PCA"] / best["ours pca"],
             difference=_difference(our_pca.components, exact), note=f"compile {compile_pca:.1f} s"),
        dict(shape=shape, row="sklearn FastICA", seconds=best["sklearn FastICA"], ratio=1.0, difference=0.0,
             note=f"{sk_ica.n_iter_} iterations, {threads} BLAS threads"),
        dict(shape=shape, row="sklearn FastICA eigh", seconds=best["sklearn FastICA eigh"],
             ratio=best["sklearn FastICA"] / best["sklearn FastICA eigh"],
             difference=_difference(sk_eigh.components_, sk_ica.components_),
             note=f"whiten_solver='eigh' (our whitening), {sk_eigh.n_iter_} iterations"),
        dict(shape=shape, row="ours fast_ica", seconds=best["ours fast_ica"],
             ratio=best["sklearn FastICA"] / best["ours fast_ica"],
             difference=_difference(our_ica.components, sk_ica.components_),
             note=f"{int(our_ica.iterations)} iterations, compile {compile_ica:.1f} s, "
                  f"{best['sklearn FastICA eigh'] / best['ours fast_ica']:.2f}x sklearn eigh"),
    ]


def run(budget_s: float = 600.0, smoke: bool = False, report=None, **overrides) -> list[dict]:
    """Benchmark rows (entry point of benchmarks/device.py): the tall shape, then the wide one if
    the budget allows (estimated from the tall shape's time per matrix entry). Budgets under
    300 s use a tenth of the full sizes. ``report``: called with each shape's rows as they come."""
    base = SMOKE if smoke else (FULL if budget_s >= 300 else MID)
    cfg = dict(base, **overrides)
    dtype = cfg.get("dtype", "float32")
    start = time.perf_counter()
    rows = []
    for name, kk in (("tall", "k"), ("wide", "k_wide")):
        n, d = cfg[name]
        if rows:
            spent = time.perf_counter() - start
            per_entry = spent / np.prod(cfg["tall"])
            if spent + 3 * per_entry * n * d * max(1, d / cfg["tall"][1]) > budget_s:
                rows.append(dict(shape=f"{n}x{d}", row="skipped", seconds=float("nan"), ratio=float("nan"),
                                 difference=float("nan"), note=f"over the {budget_s:.0f} s budget"))
                continue
        x = population(n, d, cfg[kk], dtype)
        w_init = np.random.RandomState(1).randn(cfg[kk], cfg[kk]).astype(dtype)
        rows += bench_shape(x, cfg[kk], cfg["repeats"], w_init, cfg.get("sklearn_threads"))
        if report is not None:
            report(rows[-5:])
    return rows


HEADER = f"{'data':<28} {'row':<20} {'seconds':>9} {'vs sklearn':>10} {'difference':>11}  note"


def print_table(rows):
    for r in rows:
        print(f"{r['shape']:<28} {r['row']:<20} {r['seconds']:9.3f} {r['ratio']:10.2f} "
              f"{r['difference']:11.2e}  {r['note']}")


def _shape(text):
    n, d = text.lower().split("x")
    return int(n), int(d)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tall", type=_shape, default=None, help="n x d of the tall data (default 100000x512)")
    parser.add_argument("--wide", type=_shape, default=None, help="n x d of the wide data (default 10000x4096; "
                        "the issue's 10000x16384 needs sklearn to SVD a 16384 x 10000 matrix: an hour "
                        "on 2 shared cores)")
    parser.add_argument("--k", type=int, default=None, help="components on the tall data (default 20)")
    parser.add_argument("--k-wide", type=int, default=None, help="components on the wide data (default 50)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds before the wide shape is skipped")
    parser.add_argument("--sklearn-threads", type=int, default=None,
                        help="BLAS threads of sklearn's calls (default: OPENBLAS_NUM_THREADS, 1)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (< 60 s)")
    args = parser.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    overrides = {k: v for k, v in dict(tall=args.tall, wide=args.wide, k=args.k, k_wide=args.k_wide,
                                         repeats=args.repeats, sklearn_threads=args.sklearn_threads).items()
                 if v is not None}
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    print(HEADER, flush=True)
    run(args.budget, args.smoke, report=lambda rows: (print_table(rows), sys.stdout.flush()), dtype=args.dtype,
        **overrides)


if __name__ == "__main__":
    main()
