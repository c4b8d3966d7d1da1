"""Long runs: ``jaxlatent.runs.run`` against the in-memory call, and a projection to 10^6 latents.

    python benchmarks/runs.py [--n 1024] [--chunk 256] [--repeats 2] [--only NAME ...] [--smoke]

Rows (shipped 16x16 digits StyleGAN2, same latents, one process), one per run analysis:
  in-memory   the same work with the library's in-memory calls: latents from seeds (the
              run's generator, ``jaxlatent.runs.latents``), then the analysis on all of them
              with ``chunk_size``, results held as arrays. local-dim / local-basis / geometry /
              concept-effects: what their commands do; distortion / grassmann: Local Bases at
              the latents and their neighbours, then ``grassmann_distance`` (curves for
              d = 1..k for grassmann) over N uniformly drawn pairs (and, for grassmann,
              ``population_pca`` and the distances to it); ganspace: ``population_pca`` over
              the N latents and ``fast_ica`` on the first min(N, 4096); controlling-set:
              ``controlling_set`` for the pairs s -> s + 1 mod 10 (every latent is a sample of
              one source); edit-fid: ``feature_statistics`` of the unedited images and of the
              edits along directions 0, 1 at strengths -2, 2, and ``frechet_distance``
  run         ``jaxlatent.runs.run`` on the same latents: the same work chunk by chunk, each
              chunk written to the zarr v3 store, checksummed and committed
overhead = run / in-memory - 1 (the store's cost: writes, SHA-256s, commit records, fsyncs, and
the run's own way of doing the work where it differs, as for controlling-set).
Analyses that make many images per latent take fewer latents (N / ``SHARE``, in chunks of at
most N / (2 SHARE)). The projection
to 10^6 latents multiplies the measured run rate and store bytes per latent.
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
from jaxlatent.correlation.controlling import controlling_set
from jaxlatent.correlation.effects import concept_effects
from jaxlatent.ganspace.edits import edit
from jaxlatent.ganspace.fid import feature_statistics, frechet_distance
from jaxlatent.ganspace.ica import fast_ica
from jaxlatent.ganspace.pca import population_pca
from jaxlatent.ganspace.population import SeedLatents
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localbasis.grassmann import grassmann_distance
from jaxlatent.geometry.metric import metric_tensor
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.runs.results import open_run
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


def _grassmann(model, z, chunk, n, options):
    f = model.fn("w")
    per_pair = lambda x, y: curves(x, y, k=K, metric="geodesic")
    a, _, _ = out = _bases_and_pairs(f, z, chunk, n, K, per_pair)
    g = population_pca(f, SeedLatents(range(n), z.shape[1]), k=K, chunk_size=chunk).components.T.astype(np.float32)
    return out, curves(a, g[None], k=K, metric="geodesic")


def _ganspace(model, z, chunk, n, options):
    f = model.fn("w")
    pca = population_pca(f, SeedLatents(range(n), z.shape[1]), k=K, chunk_size=chunk)
    m = min(n, 4096)
    return pca, fast_ica(np.asarray(f(z[:m])), k=K, key=jax.random.PRNGKey(1))


def _controlling(model, z, chunk, n, options):
    clf, out = jaxlatent.models.digits.load_classifier(), []
    for s, t in (map(int, p.split(":")) for p in options["class_pairs"].split(",")):
        try:
            out.append(controlling_set(model.fn("image"), clf.logits, z, target=t, source=s, max_k=K,
                                       chunk_size=chunk))
        except ValueError:             # no sample of the source: the run writes an empty row
            pass
    return out


def _edit_fid(model, z, chunk, n, options):
    directions = open_run(options["directions"]).results()["pca_directions"]
    g, features = model.fn("image", wrt="w"), jaxlatent.models.digits.load_classifier().features
    x = model.fn("w")(z)
    orig = feature_statistics(features, x, render=g, chunk_size=chunk)
    fid = []
    for c in (0, 1):
        for s in (-2.0, 2.0):
            moved = feature_statistics(features, edit(x, directions[c], strength=s), render=g, chunk_size=chunk)
            fid.append(frechet_distance(orig.mean, orig.covariance, moved.mean, moved.covariance))
    return fid


RING = ",".join(f"{s}:{(s + 1) % 10}" for s in range(10))

# name: (options, in-memory call(model, z, chunk, n, options), SHARE: the row takes N / SHARE latents)
ANALYSES = {
    "local-dim": ({"tap": "w"}, lambda m, z, chunk, n, o: local_dimension(m.fn("w"), z, chunk_size=chunk)
                  .singular_values, 1),
    "local-basis": ({"tap": "w", "k": K}, lambda m, z, chunk, n, o: local_basis(m.fn("w"), z, k=K, chunk_size=chunk)
                    .basis, 1),
    "geometry": ({"space": "w", "k": K}, lambda m, z, chunk, n, o: metric_tensor(
        m.fn("image", wrt="w"), m.fn("w")(z), k=K, chunk_size=chunk).eigenvalues, 32),
    "concept-effects": ({}, lambda m, z, chunk, n, o: concept_effects(
        m.fn("image"), jaxlatent.models.digits.load_classifier().logits, z, chunk_size=chunk).sensitivity, 32),
    "distortion": ({"tap": "w", "k": K, "pairs": None}, lambda m, z, chunk, n, o: _bases_and_pairs(
        m.fn("w"), z, chunk, n, K, lambda x, y: grassmann_distance(x, y)), 1),
    "grassmann": ({"tap": "w", "k": K, "pairs": None}, _grassmann, 1),
    "ganspace": ({"tap": "w", "k": K, "ica_samples": 4096}, _ganspace, 1),
    "controlling-set": ({"class_pairs": RING, "max_k": K, "curve_samples": None}, _controlling, 32),
    "edit-fid": ({"method": "pca", "indices": "0,1", "strength_values": "-2,2", "directions": None}, _edit_fid, 2),
}


def _options(name, n, scratch):
    options = dict(ANALYSES[name][0])
    if "pairs" in options and options["pairs"] is None:
        options["pairs"] = n           # as many pairs as latents
    if "curve_samples" in options:
        options["curve_samples"] = n   # S(k) on every sample, as controlling_set does
    if "directions" in options:        # a ganspace run of the model's w (untimed), made once
        options["directions"] = os.path.join(scratch, "directions")
        if not os.path.exists(os.path.join(options["directions"], "manifest.json")):
            model = jaxlatent.load(jaxlatent.models.digits.assets_dir())
            run_store("ganspace", model, 1024, options["directions"], options={"k": 4, "method": "pca"},
                      progress=False)
    return options


def _in_memory(model, name, n, chunk, scratch):
    _, call, _ = ANALYSES[name]
    z = latents(0, 0, n, int(model.z_dim))
    jax.block_until_ready(call(model, z, chunk, n, _options(name, n, scratch)))


def _run(model, name, n, chunk, folder, scratch):
    run_store(name, model, n, folder, chunk_size=chunk, options=_options(name, n, scratch), progress=False)


def _bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def measure(name, n, chunk, repeats, model, scratch, deadline=np.inf):
    n = max(4, n // ANALYSES[name][2])
    chunk = min(chunk, n // 2)                     # at least two chunks
    folder = os.path.join(scratch, name)
    _in_memory(model, name, n, chunk, scratch)     # compile both paths (eager ops at size N too)
    _run(model, name, 2 * chunk, chunk, folder + "-warm", scratch)
    best = {"in-memory": np.inf, "run": np.inf}
    for round_ in range(repeats):                  # interleaved rounds: a slow spell hits both rows
        if round_ and time.monotonic() > deadline:
            break
        t = time.perf_counter()
        _in_memory(model, name, n, chunk, scratch)
        best["in-memory"] = min(best["in-memory"], time.perf_counter() - t)
        shutil.rmtree(folder, ignore_errors=True)  # a new run each round, not a rerun (untimed)
        t = time.perf_counter()
        _run(model, name, n, chunk, folder, scratch)
        best["run"] = min(best["run"], time.perf_counter() - t)
    per_latent = _bytes(folder) / n
    rate = n / best["run"]
    return {"row": f"{name} N={n} chunk={chunk}", "analysis": name, "n": n, "chunk": chunk, "in_memory_s": best["in-memory"], "run_s": best["run"],
            "overhead_pct": 100.0 * (best["run"] / best["in-memory"] - 1.0), "latents_per_s": rate,
            "hours_per_1e6": 1e6 / rate / 3600.0, "store_gb_per_1e6": per_latent * 1e6 / 1e9,
            "device": jax.devices()[0].platform}


def run(budget_s: float = 300.0, smoke: bool = False) -> list[dict]:
    """Rows for ``benchmarks/device.py``: one per analysis (see the module docstring).

    Sizes: N = 512 when ``smoke``; else 1024 latents in chunks of 256 on a CPU, 65536 in chunks
    of 4096 on an accelerator (N / SHARE for the analyses with many images per latent). Rounds
    stop when ``budget_s`` is spent (each row keeps one).
    """
    accelerator = jax.devices()[0].platform != "cpu"
    n, chunk, repeats = (512, DEFAULT_CHUNK_SIZE, 1) if smoke else \
        (65536, 4096, 3) if accelerator else (1024, DEFAULT_CHUNK_SIZE, 2)
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
    head = (f"{'analysis':<15} {'N':>6} {'chunk':>5} {'in-memory s':>11} {'run s':>8} {'overhead':>8} "
            f"{'latents/s':>10} {'10^6: hours':>11} {'10^6: GB':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['analysis']:<15} {r['n']:>6} {r['chunk']:>5} {r['in_memory_s']:>11.3f} "
                     f"{r['run_s']:>8.3f} {r['overhead_pct']:>7.1f}% {r['latents_per_s']:>10.0f} "
                     f"{r['hours_per_1e6']:>11.2f} {r['store_gb_per_1e6']:>8.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", default=list(ANALYSES), choices=list(ANALYSES))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round (< 60 s)")
    args = parser.parse_args()
    if args.smoke:
        rows = run(smoke=True)
    else:
        model = jaxlatent.load(jaxlatent.models.digits.assets_dir())
        scratch = tempfile.mkdtemp(prefix="jaxlatent-runs-bench-")
        try:
            rows = [measure(name, args.n, args.chunk, args.repeats, model, scratch) for name in args.only]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}")
    print(table(rows))


if __name__ == "__main__":
    main()
