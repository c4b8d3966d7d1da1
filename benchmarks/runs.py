"""Long runs: ``jaxlatent.runs.run`` against the in-memory call, and a projection to 10^6 latents.

    python benchmarks/runs.py [--n 4096] [--chunk 256] [--repeats 3] [--smoke]

Rows (shipped 16x16 digits StyleGAN2, tap ``w``, same latents, one process):
  in-memory   the same work with the library's in-memory calls: latents from seeds (the
              run's generator, ``jaxlatent.runs.latents``), then the analysis on all N with
              ``chunk_size``, results held as arrays. local-dim / local-basis: what their
              commands do; distortion / grassmann: Local Bases at the latents and their
              neighbours, then ``grassmann_distance`` (curves for d = 1..k for grassmann) over
              N uniformly drawn pairs (and, for grassmann, ``population_pca`` and the distances
              to it); ganspace: ``population_pca`` over the N latents and ``fast_ica`` on the
              first min(N, 4096)
  run         ``jaxlatent.runs.run`` on the same N: the same latents and analysis chunk by
              chunk, each chunk written to the zarr v3 store, checksummed and committed
overhead = run / in-memory - 1 (the store's cost: writes, SHA-256s, commit records, fsyncs).
The projection to 10^6 latents multiplies the measured run rate and store bytes per latent.
Rows are timed in interleaved rounds and the best round of each is kept (noisy shared hosts).
No reference implementation streams its results, so there is no PyTorch row here.

``run(budget_s, smoke) -> rows`` is the entry point ``benchmarks/device.py`` calls.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the jaxlatent command does (cli/__init__.py)

import argparse
import shutil
import tempfile
import time

import jax
import numpy as np

import jaxlatent
import jaxlatent.models.digits
from jaxlatent.ganspace.ica import fast_ica
from jaxlatent.ganspace.pca import population_pca
from jaxlatent.ganspace.population import SeedLatents
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localbasis.grassmann import grassmann_distance
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.runs.runner import DEFAULT_CHUNK_SIZE, latents, row_keys, run as run_store
from jaxlatent.runs.streamed import curves, unit_neighbours

K = 8


def _bases_and_pairs(f, z, chunk, n, k, per_pair):
    keys = row_keys(0, 0, n)
    a = local_basis(f, z, k=k, chunk_size=chunk).basis
    near = local_basis(f, unit_neighbours(keys, z, eps=0.1), k=k, chunk_size=chunk).basis
    rng = np.random.default_rng(0)
    i = rng.integers(n, size=n)
    j = (i + 1 + rng.integers(n - 1, size=n)) % n
    return a, per_pair(a, near), [per_pair(a[i[s:s + chunk]], a[j[s:s + chunk]]) for s in range(0, n, chunk)]


def _grassmann(f, z, chunk, n):
    per_pair = lambda x, y: curves(x, y, k=K, metric="geodesic")
    a, _, _ = out = _bases_and_pairs(f, z, chunk, n, K, per_pair)
    g = population_pca(f, SeedLatents(range(n), z.shape[1]), k=K, chunk_size=chunk).components.T.astype(np.float32)
    return out, curves(a, g[None], k=K, metric="geodesic")


def _ganspace(f, z, chunk, n):
    pca = population_pca(f, SeedLatents(range(n), z.shape[1]), k=K, chunk_size=chunk)
    m = min(n, 4096)
    return pca, fast_ica(np.asarray(f(z[:m])), k=K, key=jax.random.PRNGKey(1))


ANALYSES = {
    "local-dim": ({"tap": "w"}, lambda f, z, chunk, n: local_dimension(f, z, chunk_size=chunk).singular_values),
    "local-basis": ({"tap": "w", "k": K}, lambda f, z, chunk, n: local_basis(f, z, k=K, chunk_size=chunk).basis),
    "distortion": ({"tap": "w", "k": K, "pairs": None},
                   lambda f, z, chunk, n: _bases_and_pairs(f, z, chunk, n, K, lambda x, y: grassmann_distance(x, y))),
    "grassmann": ({"tap": "w", "k": K, "pairs": None}, _grassmann),
    "ganspace": ({"tap": "w", "k": K, "ica_samples": 4096}, _ganspace),
}


def _options(name, n):
    options = dict(ANALYSES[name][0])
    if "pairs" in options:
        options["pairs"] = n           # as many pairs as latents
    return options


def _in_memory(model, name, n, chunk):
    options, call = ANALYSES[name]
    z = latents(0, 0, n, int(model.z_dim))
    jax.block_until_ready(call(model.fn(options["tap"]), z, chunk, n))


def _run(model, name, n, chunk, folder):
    run_store(name, model, n, folder, chunk_size=chunk, options=_options(name, n), progress=False)


def _bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def measure(name, n, chunk, repeats, model, scratch, deadline=np.inf):
    folder = os.path.join(scratch, name)
    _in_memory(model, name, n, chunk)              # compile both paths (eager ops at size N too)
    _run(model, name, 2 * chunk, chunk, folder + "-warm")
    best = {"in-memory": np.inf, "run": np.inf}
    for round_ in range(repeats):                  # interleaved rounds: a slow spell hits both rows
        if round_ and time.monotonic() > deadline:
            break
        t = time.perf_counter()
        _in_memory(model, name, n, chunk)
        best["in-memory"] = min(best["in-memory"], time.perf_counter() - t)
        shutil.rmtree(folder, ignore_errors=True)  # a new run each round, not a rerun (untimed)
        t = time.perf_counter()
        _run(model, name, n, chunk, folder)
        best["run"] = min(best["run"], time.perf_counter() - t)
    per_latent = _bytes(folder) / n
    rate = n / best["run"]
    return {"row": f"{name} N={n} chunk={chunk}", "analysis": name, "n": n, "chunk": chunk, "in_memory_s": best["in-memory"], "run_s": best["run"],
            "overhead_pct": 100.0 * (best["run"] / best["in-memory"] - 1.0), "latents_per_s": rate,
            "hours_per_1e6": 1e6 / rate / 3600.0, "store_gb_per_1e6": per_latent * 1e6 / 1e9,
            "device": jax.devices()[0].platform}


def run(budget_s: float = 300.0, smoke: bool = False) -> list[dict]:
    """Rows for ``benchmarks/device.py``: one per analysis (see the module docstring).

    Sizes: N = 512 when ``smoke``; else 4096 latents in chunks of 256 on a CPU, 65536 in chunks
    of 4096 on an accelerator. Rounds stop when ``budget_s`` is spent (each row keeps one).
    """
    accelerator = jax.devices()[0].platform != "cpu"
    n, chunk, repeats = (512, DEFAULT_CHUNK_SIZE, 1) if smoke else \
        (65536, 4096, 3) if accelerator else (4096, DEFAULT_CHUNK_SIZE, 3)
    model = jaxlatent.load(jaxlatent.models.digits.assets_dir())
    scratch = tempfile.mkdtemp(prefix="jaxlatent-runs-bench-")
    rows, start = [], time.monotonic()
    try:
        for i, name in enumerate(ANALYSES):
            if time.monotonic() - start > budget_s:
                break
            share = start + budget_s * (i + 1) / len(ANALYSES)     # this row's end of rounds
            rows.append(measure(name, n, chunk, repeats, model, scratch, deadline=share))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def table(rows) -> str:
    head = (f"{'analysis':<12} {'N':>6} {'chunk':>5} {'in-memory s':>11} {'run s':>8} {'overhead':>8} "
            f"{'latents/s':>10} {'10^6: hours':>11} {'10^6: GB':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['analysis']:<12} {r['n']:>6} {r['chunk']:>5} {r['in_memory_s']:>11.3f} "
                     f"{r['run_s']:>8.3f} {r['overhead_pct']:>7.1f}% {r['latents_per_s']:>10.0f} "
                     f"{r['hours_per_1e6']:>11.2f} {r['store_gb_per_1e6']:>8.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round (< 60 s)")
    args = parser.parse_args()
    if args.smoke:
        rows = run(smoke=True)
    else:
        model = jaxlatent.load(jaxlatent.models.digits.assets_dir())
        scratch = tempfile.mkdtemp(prefix="jaxlatent-runs-bench-")
        try:
            rows = [measure(name, args.n, args.chunk, args.repeats, model, scratch) for name in ANALYSES]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}")
    print(table(rows))


if __name__ == "__main__":
    main()
