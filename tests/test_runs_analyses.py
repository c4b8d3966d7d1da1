"""The multi-stage run analyses (distortion, grassmann, ganspace) and geometry under LPIPS: each equal
to the in-memory functions on the same latents and pairs; resume without re-reading; --status.

Comparisons with the in-memory calls allow float32 rounding where the batch shapes differ (the
run computes chunks of ``chunk_size`` rows, the in-memory call all rows at once).
"""

import argparse
import json
import os

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

import jaxlatent.models.digits
from jaxlatent.cli import report as report_cli
from jaxlatent.cli import run as run_cli
from jaxlatent.report.from_run import build_run_report, run_summaries
from jaxlatent.runs import registry as runs_registry
from jaxlatent.converters import lpips as lpips_conv
from jaxlatent.ganspace.ica import fast_ica
from jaxlatent.ganspace.pca import population_pca
from jaxlatent.ganspace.population import SeedLatents
from jaxlatent.geometry.metric import metric_tensor
from jaxlatent.io import load_lpips
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localbasis.grassmann import grassmann_distance
from jaxlatent.localbasis.warpage import pca_basis
from jaxlatent.localdim.distortion import distortion
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.runs import run, open_run
from jaxlatent.runs.population import ica_key
from jaxlatent.runs.stages import latents, row_keys
from jaxlatent.runs.status import run_status
from jaxlatent.runs.store import ChunkedStore, RunError
from jaxlatent.runs.streamed import _sample_pairs, unit_neighbours
from helpers import random_stylegan2
from seeded_weights import seeded_state_dict

CONFIG = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=4, mapping_layers=2, channel_base=32, channel_max=4)


@pytest.fixture(scope="module")
def model():
    return random_stylegan2(CONFIG, 0)


def test_distortion_run_equals_the_in_memory_distortion_on_all_pairs(model, tmp_path):
    res = run("distortion", model, 12, tmp_path / "r", chunk_size=4, options={"k": 3}, progress=False)
    assert res.stages == ["pairs", "result"] and res.complete
    z = latents(0, 0, 12, 8)
    want = distortion(model.fn("w"), z, key=jax.random.PRNGKey(0), k=3)
    pairs = res.stage("pairs")
    i, j, dist = (np.asarray(pairs[name]) for name in ("i", "j", "distance"))
    assert len(i) == 66 and (i < j).all()                  # every pair i < j, N = 12
    np.testing.assert_array_equal(np.asarray(res["dimension"]), np.asarray(want.dimension))
    # far: stable principal angles against distortion's cosine formula (~sqrt(eps) near 0)
    np.testing.assert_allclose(dist, np.asarray(want.far_distances)[i, j], atol=1e-4)
    out = res.results()
    np.testing.assert_allclose(out["far"], float(want.far), rtol=1e-5)
    # near: the neighbour of latent i is drawn from latent i's own key, so equal to the in-memory
    # functions given those neighbours
    nb = unit_neighbours(row_keys(0, 0, 12), z, eps=0.1)
    a = local_basis(model.fn("w"), z, k=3).basis
    b = local_basis(model.fn("w"), nb, k=3).basis
    near = np.asarray(grassmann_distance(a, b))
    np.testing.assert_allclose(np.asarray(res["near_distance"]), near, atol=1e-4)
    np.testing.assert_allclose(out["near"], near.astype(np.float64).mean(), rtol=1e-4)
    np.testing.assert_allclose(out["distortion"], out["far"] / out["near"], rtol=1e-12)
    assert int(out["k"]) == 3 and 0 < out["far"] < out["baseline"]


def test_sampled_pairs_are_uniform_over_ordered_pairs_of_distinct_latents():
    rng = np.random.default_rng(0)
    counts = np.zeros((7, 7))
    for _ in range(6000):                                    # chunks of 3 rows over N = 7 (last chunk: 1 row)
        i, j = _sample_pairs(rng, 7, 3, 1)
        counts[i[0], j[0]] += 1
    assert np.diag(counts).sum() == 0
    off = counts[~np.eye(7, dtype=bool)]
    expected = 6000 / 42
    assert abs(off.mean() - expected) < 1e-9 and np.abs(off - expected).max() < 5 * np.sqrt(expected)


def test_distortion_run_with_sampled_pairs_reads_two_chunks_per_block(model, tmp_path, monkeypatch):
    reads = []
    original = ChunkedStore.read_chunk

    def spy(self, name, index, record=None):
        if name == "basis":
            reads.append(index)
        return original(self, name, index, record)

    monkeypatch.setattr(ChunkedStore, "read_chunk", spy)
    res = run("distortion", model, 40, tmp_path / "r", chunk_size=8, options={"k": 2, "pairs": 30}, progress=False)
    pairs = res.stage("pairs")
    i, j, dist = (np.asarray(pairs[name]) for name in ("i", "j", "distance"))
    assert len(i) == 30 and (i != j).all() and len(reads) <= 2 * pairs.n_chunks
    for c in range(pairs.n_chunks):                         # each chunk of pairs: one block of two chunks
        assert len(set(i[8 * c:8 * c + 8] // 8)) == 1 and len(set(j[8 * c:8 * c + 8] // 8)) == 1
    basis = np.asarray(res["basis"])
    np.testing.assert_allclose(dist, np.asarray(grassmann_distance(basis[i], basis[j])), rtol=1e-6, atol=1e-7)
    with pytest.raises(RunError, match=r"--k must lie in \[1, 8\]"):
        run("distortion", model, 4, tmp_path / "x", options={"pairs": 3})


def test_grassmann_run_equals_the_in_memory_curves(model, tmp_path):
    res = run("grassmann", model, 20, tmp_path / "r", chunk_size=8, options={"k": 4, "pairs": 25}, progress=False)
    assert res.stages == ["moments", "global", "to_global", "pairs", "result"]
    z = latents(0, 0, 20, 8)
    f = model.fn("w")
    basis = np.asarray(local_basis(f, z, k=4).basis)
    np.testing.assert_allclose(np.asarray(res["basis"]), basis, atol=2e-5)
    stored = np.asarray(res["basis"])
    pairs = res.stage("pairs")
    i, j = np.asarray(pairs["i"]), np.asarray(pairs["j"])
    want = np.stack([np.asarray(grassmann_distance(stored[i, :, :d], stored[j, :, :d])) for d in range(1, 5)], -1)
    # the run takes chunks of 8 pairs, this call all 25 at once: float32 ulps
    np.testing.assert_allclose(np.asarray(pairs["distance"]), want, rtol=1e-6, atol=1e-7)
    # the global basis: the PCA of the tap over the run's latents (population_pca with the run's
    # chunks, the same bits) spans what warpage's pca_basis spans
    g = np.asarray(res.stage("global")["basis"])[0]
    pca = population_pca(f, SeedLatents(range(20), 8), k=4, chunk_size=8)
    np.testing.assert_array_equal(g, pca.components.T.astype(np.float32))
    svd = np.asarray(pca_basis(f(z), 4))
    assert np.abs(np.asarray(grassmann_distance(g, svd))) < 1e-3
    to_global = np.stack([np.asarray(grassmann_distance(stored[:, :, :d], g[None, :, :d])) for d in range(1, 5)], -1)
    np.testing.assert_allclose(np.asarray(res.stage("to_global")["distance"]), to_global, atol=1e-6)
    out = res.results()
    np.testing.assert_array_equal(out["dims"], [1, 2, 3, 4])
    np.testing.assert_allclose(out["random_pairs"], want.mean(0), rtol=1e-5)
    np.testing.assert_allclose(out["to_global"], to_global.mean(0), rtol=1e-5)
    assert (out["neighbours"] < out["random_pairs"]).all() and (out["random_pairs"] < out["haar"]).all()


def test_ganspace_run_equals_population_pca_and_fast_ica_on_the_subsample(model, tmp_path):
    res = run("ganspace", model, 50, tmp_path / "r", chunk_size=16, options={"k": 3, "ica_samples": 40},
              progress=False)
    out = res.results()
    want = population_pca(model.fn("w"), SeedLatents(range(50), 8), k=3, chunk_size=16)
    np.testing.assert_array_equal(out["pca_components"], want.components)      # the same moments, merged alike
    np.testing.assert_array_equal(out["pca_explained_variance_ratio"], want.explained_variance_ratio)
    ica = fast_ica(np.asarray(model.fn("w")(latents(0, 0, 40, 8))), k=3, key=ica_key(0))
    np.testing.assert_allclose(out["ica_components"], np.asarray(ica.components), rtol=1e-5, atol=1e-6)
    assert out["ica_converged"] and out["ica_directions"].shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(out["pca_directions"], axis=1), 1.0, rtol=1e-6)
    assert res.manifest["options"]["ica_samples"] == 40 and res.manifest["model_sha256"]


def test_geometry_run_under_lpips_equals_metric_tensor(tmp_path):
    shapes = {".".join(p[1:]): leaf.shape for p, leaf in flatten_dict(lpips_conv.expected_variables("squeeze")).items()}
    np.savez(tmp_path / "lpips.npz", **seeded_state_dict(shapes, 0))
    model = jaxlatent.load(jaxlatent.models.digits.assets_dir())
    opts = {"space": "w", "k": 3, "method": "full", "distance": "lpips", "lpips_weights": str(tmp_path / "lpips.npz"),
            "lpips_net": "squeeze"}
    res = run("geometry", model, 2, tmp_path / "r", chunk_size=2, options=opts, progress=False)
    lp = load_lpips(str(tmp_path / "lpips.npz"), net="squeeze")
    z = latents(0, 0, 2, 64)
    want = metric_tensor(model.fn("image", wrt="w"), model.fn("w")(z), distance=lp, k=3, method="full")
    np.testing.assert_allclose(np.asarray(res["eigenvalues"]), np.asarray(want.eigenvalues), rtol=1e-4)
    with pytest.raises(RunError, match="--lpips-weights"):
        run("geometry", model, 2, tmp_path / "x", options={"distance": "lpips"})


def test_status_of_a_stopped_and_a_finished_run(model, tmp_path, capsys):
    out = tmp_path / "r"
    run("distortion", model, 12, out, chunk_size=4, options={"k": 2, "pairs": 10}, progress=False)
    st = run_status(out)
    assert st["complete"] and [s["rows_done"] for s in st["stages"]] == [12, 10, 1]
    status = json.loads((out / "status.json").read_text())
    assert status["complete"] and "throughput" in status
    os.remove(out / "pairs" / "chunks" / "00000001.json")
    os.remove(out / "chunks" / "00000002.json")
    st = run_status(out)
    assert not st["complete"] and st["stage"] == "latents" and st["latents_left"] == 4
    assert [(s["rows_done"], s["rows_left"]) for s in st["stages"]] == [(8, 4), (6, 4), (1, 0)]
    parser = argparse.ArgumentParser(prog="jaxlatent")
    run_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "--status", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "latents    8/12 latents done, 4 left (2/3 chunks)" in text and "pairs      6/10 pairs done" in text
    # resuming computes the two missing chunks only
    res = run("distortion", model, 12, out, chunk_size=4, options={"k": 2, "pairs": 10}, progress=False)
    assert run_status(out)["complete"] and res.results()["k"] == 2


@pytest.mark.parametrize("analysis,options", [("distortion", {"k": 2, "pairs": 20}), ("grassmann", {"k": 3, "pairs": 20}),
                                              ("ganspace", {"k": 3, "ica_samples": 16}), ("local-dim", {})])
def test_report_from_a_run_reads_the_store_and_computes_nothing(model, tmp_path, monkeypatch, analysis, options):
    run(analysis, model, 16, tmp_path / "r", chunk_size=8, options=options, progress=False)
    # the report loads no model and runs no analysis
    monkeypatch.setattr(jaxlatent, "load", lambda *a, **k: pytest.fail("the run report loaded a model"))
    monkeypatch.setattr(runs_registry, "get", lambda *a, **k: pytest.fail("the run report ran an analysis"))
    parser = argparse.ArgumentParser(prog="jaxlatent")
    report_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--run", str(tmp_path / "r"), "--out", str(tmp_path / "rep")])
    assert args.func(args) == 0
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    summ = run_summaries(open_run(tmp_path / "r"))
    assert results["run"]["analysis"] == analysis and results["run"]["n"] == 16
    assert results["run"].get("result") == summ.get("result")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Run" in html and os.path.exists(tmp_path / "rep" / "arrays.npz")
    for img in [p for p in os.listdir(tmp_path / "rep") if p.endswith(".png")]:
        assert img in html
    if analysis == "grassmann":
        assert "warpage curves" in html
        np.testing.assert_array_equal(np.load(tmp_path / "rep" / "arrays.npz")["grassmann/random_pairs"],
                                      open_run(tmp_path / "r").results()["random_pairs"])
    if analysis == "distortion":
        assert f"{summ['result']['distortion']:.4g}" in html


def test_report_of_an_unfinished_run_names_what_is_missing(model, tmp_path):
    run("local-dim", model, 16, tmp_path / "r", chunk_size=8, progress=False)
    os.remove(tmp_path / "r" / "chunks" / "00000001.json")
    with pytest.raises(RunError, match=r"the run is not finished \(1/2 chunks of its latents done, missing \[1\]\)"):
        build_run_report(tmp_path / "r", tmp_path / "rep")
