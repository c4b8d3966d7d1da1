"""Long runs (jaxlatent.runs) in one process: equal to the in-memory analyses, resumable, refusing.

Stores are compared with ``np.array_equal``: every chunk is computed by the same compiled
program on the same inputs in the same process, so the floats are the same bits.
"""

import argparse
import errno
import json
import os

import jax
import numpy as np
import pytest
import tensorstore as ts

import jaxlatent.models.digits
from jaxlatent import io
from jaxlatent.correlation.effects import concept_effects, effects_from_probs
from jaxlatent.geometry.metric import metric_tensor
from jaxlatent.localbasis.basis import local_basis
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.cli import run as run_cli
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.runs import registry, runner
from jaxlatent.runs.manifest import model_digest, write_manifest
from jaxlatent.runs.results import open_run
from jaxlatent.runs.runner import latents, row_keys, run
from jaxlatent.runs.store import ChunkedStore, RunCorruptError, RunError, RunMismatchError, RunWriteError
from jaxlatent.runs.summaries import Summary
from jaxlatent.engine.latents import latents_from_seeds
from helpers import random_stylegan2

CONFIG = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=4, mapping_layers=2, channel_base=32, channel_max=4)


@pytest.fixture(scope="module")
def model():
    return random_stylegan2(CONFIG, 0)


def arrays(result):
    return {name: np.asarray(a) for name, a in result.items()}


def test_local_dim_run_equals_in_memory_call(model, tmp_path):
    res = run("local-dim", model, 45, tmp_path / "r", first_seed=3, chunk_size=16, progress=False)
    z = latents_from_seeds(range(3, 48), 8)          # latent i is seed 3 + i
    want = local_dimension(model.fn("w"), z)
    got = arrays(res)
    assert res.complete and res.chunks_done == [0, 1, 2]
    assert set(got) == {"dimension", "threshold", "singular_values", "tolerance", "noise_bulk"}
    np.testing.assert_array_equal(got["noise_bulk"], want.noise_bulk)
    assert got["noise_bulk"].dtype == bool
    # the in-memory call runs all 45 latents in one batch, the run 16 at a time: other batch
    # shapes, so a few float32 ulps (singular values ~1)
    np.testing.assert_allclose(got["singular_values"], want.singular_values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["dimension"], want.dimension)
    assert res.manifest["options"] == {"tap": "w", "rule": "paper", "truncation_psi": None, "class_idx": None}
    assert res.summary["complete"] and res.summary["latents"] == 45
    hist = res.summary["local_dimension"]["histogram"]
    assert sum(hist.values()) == 45
    assert {int(k): v for k, v in hist.items()} == dict(zip(*np.unique(got["dimension"], return_counts=True)))
    s = got["singular_values"].astype(np.float64)
    np.testing.assert_allclose(res.summary["spectrum"]["mean"], s.mean(0), rtol=1e-12)
    # percentiles from 0.01-decade log histograms: in the bin of the inverted-CDF percentile, so
    # within one bin width (2.3 %) of it; values under 1e-12 (the histogram's floor) excluded
    for q in (5, 95):
        want = np.percentile(s, q, axis=0, method="inverted_cdf")
        keep = want > 1e-11
        np.testing.assert_allclose(np.asarray(res.summary["spectrum"][f"p{q}"])[keep], want[keep], rtol=0.024)


def test_local_dim_run_takes_the_rule(model, tmp_path):
    res = run("local-dim", model, 6, tmp_path / "r", chunk_size=6, options={"rule": "0.01"}, progress=False)
    assert res.manifest["options"]["rule"] == "rtol=0.01"
    want = local_dimension(model.fn("w"), latents_from_seeds(range(6), 8), rule=0.01)
    np.testing.assert_array_equal(np.asarray(res["dimension"]), want.dimension)
    with pytest.raises(RunError, match="option rule"):
        run("local-dim", model, 6, tmp_path / "bad", options={"rule": "median"}, progress=False)


def test_local_basis_run_with_options_and_lazy_reads(model, tmp_path):
    res = run("local-basis", model, 10, tmp_path / "r", chunk_size=4, options={"k": 3, "tap": "w"},
              progress=False)
    want = local_basis(model.fn("w"), latents(0, 0, 10, 8), k=3, chunk_size=4)
    for name in ("singular_values", "basis", "directions"):
        np.testing.assert_array_equal(np.asarray(res[name]), np.asarray(getattr(want, name)))
    assert res["basis"].shape == (10, 8, 3) and res["basis"][5:7].shape == (2, 8, 3)
    np.testing.assert_array_equal(res["directions"][-1], np.asarray(want.directions)[-1])
    np.testing.assert_array_equal(res["singular_values"][3:9, 0], np.asarray(want.singular_values)[3:9, 0])
    # plain zarr v3: any zarr v3 reader opens the folder (here tensorstore, without jaxlatent)
    group = json.loads((tmp_path / "r" / "zarr.json").read_text())
    assert group["zarr_format"] == 3 and group["node_type"] == "group"
    plain = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "r" / "basis")}}).result()
    np.testing.assert_array_equal(plain.read().result(), np.asarray(want.basis))


def test_latents_are_nvlabs_seeds():
    np.testing.assert_array_equal(latents(5, 3, 9, 7), latents_from_seeds(range(8, 14), 7))


def test_row_keys_are_fold_in_per_latent():
    keys = np.asarray(row_keys(7, 5, 8))
    want = [np.asarray(jax.random.fold_in(jax.random.PRNGKey(7), i)) for i in (5, 6, 7)]
    np.testing.assert_array_equal(keys, np.stack(want))


def test_resume_after_partial_run_and_rerun_does_nothing(model, tmp_path, capsys):
    full = arrays(run("local-dim", model, 40, tmp_path / "a", chunk_size=8, progress=False))
    out = tmp_path / "b"
    run("local-dim", model, 40, out, chunk_size=8, progress=False)
    for i in (1, 3, 4):                      # as if killed before these chunks were committed
        os.remove(out / "chunks" / f"{i:08d}.json")
    res = run("local-dim", model, 40, out, chunk_size=8, progress=True)
    assert "resuming, 2/5 chunks done" in capsys.readouterr().err
    for name, x in arrays(res).items():
        np.testing.assert_array_equal(x, full[name])
    before = os.stat(out / "chunks" / "00000003.json").st_mtime_ns
    run("local-dim", model, 40, out, chunk_size=8, progress=True)
    assert "run already complete" in capsys.readouterr().err
    assert os.stat(out / "chunks" / "00000003.json").st_mtime_ns == before


def test_resume_with_other_options_model_or_version_refuses(model, tmp_path):
    out = tmp_path / "r"
    run("local-dim", model, 12, out, chunk_size=8, progress=False)
    with pytest.raises(RunMismatchError, match="option tap: stored \"w\", asked \"mapping.fc1\""):
        run("local-dim", model, 12, out, chunk_size=8, options={"tap": "mapping.fc1"}, progress=False)
    with pytest.raises(RunMismatchError, match="model_sha256"):
        run("local-dim", random_stylegan2(CONFIG, 1), 12, out, chunk_size=8, progress=False)
    with pytest.raises(RunMismatchError, match="analysis: stored \"local-dim\""):
        run("local-basis", model, 12, out, chunk_size=8, progress=False)
    with pytest.raises(RunMismatchError, match="n: stored 12, asked 13"):
        run("local-dim", model, 13, out, chunk_size=8, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["package_version"] = "0.0.1"
    write_manifest(str(out), manifest)
    with pytest.raises(RunMismatchError, match="package_version: stored \"0.0.1\""):
        run("local-dim", model, 12, out, chunk_size=8, progress=False)


def test_bad_input(model, tmp_path):
    with pytest.raises(RunError, match="unknown analysis .nope.; known: concept-effects, controlling-set, distortion, edit-fid, ganspace, geometry, grassmann, local-basis, local-dim"):
        run("nope", model, 4, tmp_path / "x")
    for n in (0, -3, 2.5):
        with pytest.raises(RunError, match="N must be an integer >= 1"):
            run("local-dim", model, n, tmp_path / "x")
    with pytest.raises(RunError, match="unknown option"):
        run("local-dim", model, 4, tmp_path / "x", options={"k": 3})
    with pytest.raises(RunError, match=r"--k must lie in \[1, 8\]"):
        run("local-basis", model, 4, tmp_path / "x", options={"k": 9})
    with pytest.raises(RunError, match=r"first_seed\.\.first_seed\+N-1 must lie in \[0, 2\*\*32\)"):
        run("local-dim", model, 4, tmp_path / "x", first_seed=2**32 - 2)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match="exists and is not a folder"):
        run("local-dim", model, 4, tmp_path / "file")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="holds something else \\(notes.txt\\)"):
        run("local-dim", model, 4, other, progress=False)
    assert sorted(os.listdir(other)) == ["notes.txt"]


def test_corrupted_chunk_and_manifest_detected_named_and_repaired(model, tmp_path):
    out = tmp_path / "r"
    good = arrays(run("local-dim", model, 24, out, chunk_size=8, progress=False))
    store = ChunkedStore(out, [registry.Output("singular_values", (8,), "float32")], 24, 8)
    chunk = store.chunk_file("singular_values", 1)
    data = bytearray(open(chunk, "rb").read())
    data[5] ^= 0xFF
    open(chunk, "wb").write(bytes(data))
    with pytest.raises(RunCorruptError, match=r"singular_values/c/1/0: chunk 1 of output 'singular_values' "
                                              r"\(latents 8-15\) does not match its checksum"):
        np.asarray(open_run(out)["singular_values"])
    # a resumed run trusts its commit records: the damage shows where the chunk is read
    run("local-dim", model, 24, out, chunk_size=8, progress=False)
    with pytest.raises(RunCorruptError, match="chunk 1 of output 'singular_values'.*--repair"):
        run("local-dim", model, 24, out, chunk_size=8, verify=True, progress=False)
    res = run("local-dim", model, 24, out, chunk_size=8, repair=True, progress=False)
    for name, x in arrays(res).items():
        np.testing.assert_array_equal(x, good[name])

    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text.replace('"seed": 0', '"seed": 1'))
    with pytest.raises(RunCorruptError, match="manifest.json: run manifest checksum does not match"):
        run("local-dim", model, 24, out, chunk_size=8, progress=False)
    with pytest.raises(RunCorruptError, match="manifest.json"):
        open_run(out)
    (out / "chunks" / "00000002.json").write_text("{not json")
    res = run("local-dim", model, 24, out, chunk_size=8, repair=True, progress=False)
    assert res.manifest["seed"] == 0 and res.complete
    for name, x in arrays(res).items():
        np.testing.assert_array_equal(x, good[name])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_stops_cleanly_then_resumes(model, tmp_path, monkeypatch, code):
    out = tmp_path / "r"
    good = arrays(run("local-dim", model, 32, tmp_path / "good", chunk_size=8, progress=False))
    original = ChunkedStore._put

    def failing(self, name, start, stop, x):
        if start == 16 and name == "singular_values":   # mid-chunk: other outputs of chunk 2 written
            raise OSError(code, os.strerror(code))
        return original(self, name, start, stop, x)

    monkeypatch.setattr(ChunkedStore, "_put", failing)
    what = "the disk is full" if code == errno.ENOSPC else "the file system is read-only"
    with pytest.raises(RunWriteError, match=f"singular_values/c/2/0: cannot write \\({what}\\).*rerun"):
        run("local-dim", model, 32, out, chunk_size=8, progress=False)
    part = open_run(out, partial=True)
    assert part.chunks_done == [0, 1] and not part.complete
    assert np.isnan(np.asarray(part["singular_values"])[16:]).all()
    with pytest.raises(RunError, match="chunk 2 \\(latents 16-23\\) of output 'dimension' is not done"):
        np.asarray(open_run(out)["dimension"])
    monkeypatch.setattr(ChunkedStore, "_put", original)
    res = run("local-dim", model, 32, out, chunk_size=8, progress=False)
    for name, x in arrays(res).items():
        np.testing.assert_array_equal(x, good[name])


def test_read_only_folder_when_not_root(model, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    os.chmod(out, 0o555)
    try:
        if os.geteuid() == 0:   # root writes through chmod: the monkeypatched test above covers it
            return
        with pytest.raises(RunWriteError, match="cannot write"):
            run("local-dim", model, 8, out, chunk_size=8, progress=False)
    finally:
        os.chmod(out, 0o755)


def test_summary_percentiles_closed_form():
    s = Summary()
    x = np.logspace(-3, 1, 1001)                   # one index, log-uniform values
    for part in np.array_split(x, 7):
        s.add(spectrum=part[:, None], dimension=np.full(len(part), 2))
    out = s.to_json()
    for q in (5, 95):
        want = np.percentile(x, q, method="inverted_cdf")
        np.testing.assert_allclose(out["spectrum"][f"p{q}"], [want], rtol=0.024)
    np.testing.assert_allclose(out["spectrum"]["mean"], [x.mean()], rtol=1e-12)
    assert out["local_dimension"]["histogram"] == {"2": 1001}


def test_cli_run_and_its_help(model, tmp_path, capsys):

    ckpt = io.save(model, tmp_path / "model")
    parser = argparse.ArgumentParser(prog="jaxlatent")
    run_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "local-basis", ckpt, "--tap", "w", "--k", "2", "--n", "6",
                              "--out", str(tmp_path / "r"), "--first-seed", "5", "--chunk-size", "4"])
    assert args.func(args) == 0
    res = open_run(tmp_path / "r")
    assert res.manifest["options"]["k"] == 2 and res.manifest["seed"] == 5 and res.complete
    assert res.manifest["checkpoint"] == ckpt
    assert res.manifest["model_sha256"] == model_digest(model)     # the saved copy has the same digest
    want = local_basis(model.fn("w"), latents(5, 0, 6, 8), k=2, chunk_size=4)
    np.testing.assert_array_equal(np.asarray(res["basis"]), np.asarray(want.basis))
    assert "singular_values (6, 2)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "local-dim", ckpt, "--k", "3", "--n", "4", "--out", "x"])
    assert "unrecognized arguments: --k" in capsys.readouterr().err


def test_concept_effects_run_gives_the_probabilities_of_concept_effects(tmp_path):
    model = io.load(jaxlatent.models.digits.assets_dir())
    clf = jaxlatent.models.digits.load_classifier()
    res = run("concept-effects", model, 4, tmp_path / "r", chunk_size=4, progress=False,
              options={"dims": "0,5", "values": "-2,2"})
    assert res["probs"].shape == (4, 2, 2, 10) and res["base_probs"].shape == (4, 10)
    want = concept_effects(model.fn("image"), clf.logits, latents(0, 0, 4, 64), dims=[0, 5], values=(-2.0, 2.0))
    got = effects_from_probs(np.asarray(res["probs"]), np.asarray(res["base_probs"]), [-2.0, 2.0], [0, 5])
    # one chunk of 4 latents, as concept_effects' own call: the same images and probabilities up
    # to float32 rounding of the statistics computed from them (values in [0, 1])
    np.testing.assert_allclose(np.asarray(res["base_probs"]), np.asarray(want.base_probs), atol=1e-5)
    for name in ("sensitivity", "effect", "correlation", "flip_rate"):
        np.testing.assert_allclose(np.asarray(getattr(got, name)), np.asarray(getattr(want, name)), atol=1e-5)
    with pytest.raises(RunError, match=r"--dims must lie in \[0, 64\)"):
        run("concept-effects", model, 6, tmp_path / "x", options={"dims": "64"})


def test_resume_trusts_records_and_summaries_cover_session_then_every_chunk(model, tmp_path, monkeypatch):
    out = tmp_path / "r"
    run("local-dim", model, 24, out, chunk_size=8, progress=False)
    os.remove(out / "chunks" / "00000002.json")
    (out / "summary.json").unlink()
    seen, reads = [], []
    monkeypatch.setattr(runner, "SUMMARY_EVERY_S", -1.0)      # write after every chunk
    original, read = runner._write_summary, ChunkedStore.read_chunk

    def spy(path, summary, complete):
        seen.append((summary.count, complete))
        return original(path, summary, complete)

    def spy_read(self, name, index, record=None):
        reads.append((name, index))
        return read(self, name, index, record)

    monkeypatch.setattr(runner, "_write_summary", spy)
    monkeypatch.setattr(ChunkedStore, "read_chunk", spy_read)
    monkeypatch.setattr(ChunkedStore, "verify", lambda *a: pytest.fail("a trusted resume re-hashed a chunk"))
    run("local-dim", model, 24, out, chunk_size=8, progress=False)
    # while running: the chunk computed in this session; at the end: every chunk, in order
    assert seen == [(8, False), (24, True)]
    # nothing read before the work; the final summary reads the small outputs it needs
    assert reads == [(n, i) for i in range(3) for n in ("singular_values", "dimension")]


def test_repair_of_a_lost_manifest_with_other_options_starts_that_run_afresh(model, tmp_path):
    out = tmp_path / "r"
    run("local-basis", model, 8, out, chunk_size=4, options={"k": 2}, progress=False)
    os.remove(out / "manifest.json")
    with pytest.raises(RunError, match="manifest.json was deleted: rerun with --repair"):
        run("local-basis", model, 8, out, chunk_size=4, options={"k": 3}, progress=False)
    res = run("local-basis", model, 8, out, chunk_size=4, options={"k": 3}, repair=True, progress=False)
    want = local_basis(model.fn("w"), latents(0, 0, 8, 8), k=3, chunk_size=4)
    np.testing.assert_array_equal(np.asarray(res["basis"]), np.asarray(want.basis))


def test_geometry_run_equals_metric_tensor(model, tmp_path):
    res = run("geometry", model, 5, tmp_path / "r", chunk_size=4, options={"space": "w", "k": 3}, progress=False)
    z = latents(0, 0, 5, 8)
    want = metric_tensor(model.fn("image", wrt="w"), model.fn("w")(z), k=3, method="full")
    assert res["eigenvalues"].shape == (5, 3) and res["eigenvectors"].shape == (5, 8, 3)
    # chunks of 4 (the last padded) against one batch of 5: other batch shapes may round float32
    # differently by a few ulps; eigenvalues 0.4-5 here, well separated, eigenvectors unit columns
    np.testing.assert_allclose(np.asarray(res["eigenvalues"]), np.asarray(want.eigenvalues), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res["eigenvectors"]), np.asarray(want.eigenvectors), atol=1e-5)
    assert len(res.summary["spectrum"]["mean"]) == 3
