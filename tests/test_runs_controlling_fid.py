"""The controlling-set and edit-fid runs on the shipped digits model: equal to the in-memory
functions on the same latents (Method A ranked per pair; FID of feature moments per edit), the
stated subsample of the success curve, the row of a pair without source samples, refusals.

Comparisons allow float32 rounding: the run computes chunks of ``chunk_size`` latents, the
in-memory calls other batch shapes.
"""

import argparse
import shutil

import numpy as np
import pytest

import jaxlatent.models.digits
from jaxlatent import io
from jaxlatent.cli import run as run_cli
from jaxlatent.correlation.controlling import controlling_set, success_curve
from jaxlatent.correlation.interventions import class_probs
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.ganspace.edits import edit
from jaxlatent.ganspace.fid import feature_statistics, frechet_distance
from jaxlatent.report.from_run import build_run_report
from jaxlatent.runs import run
from jaxlatent.runs.controlling import parse_pairs
from jaxlatent.runs.stages import latents
from jaxlatent.runs.store import RunError, RunMismatchError
from jaxlatent.workflows.spaces import latent_space
from helpers import random_stylegan2


@pytest.fixture(scope="module")
def model():
    return io.load(jaxlatent.models.digits.assets_dir())


@pytest.fixture(scope="module")
def clf():
    return jaxlatent.models.digits.load_classifier()


def test_controlling_set_run_equals_controlling_set_per_pair(model, clf, tmp_path):
    n, m = 40, 3
    g, z = model.fn("image"), latents(0, 0, n, 64)
    label = np.asarray(class_probs(g, clf.logits, z)).argmax(1)
    counts = np.bincount(label, minlength=10)
    # sources with more and with fewer samples than the curve's subsample M, and one with none
    many, few = int(np.argmax(counts)), int(np.flatnonzero((counts > 0) & (counts <= m))[0])
    empty = int(np.flatnonzero(counts == 0)[0])
    pairs = [(many, few), (few, many), (empty, many)]
    res = run("controlling-set", model, n, tmp_path / "r", chunk_size=16, progress=False,
              options={"class_pairs": ",".join(f"{s}:{t}" for s, t in pairs), "max_k": 5, "curve_samples": m})
    assert res.stages == ["sums", "pairs"]
    out = {name: np.asarray(a) for name, a in res.stage("pairs").items()}
    np.testing.assert_array_equal(np.asarray(res["base_probs"]).argmax(1), label)
    for row, (s, t) in enumerate(pairs[:2]):
        want = controlling_set(g, clf.logits, z, target=t, source=s, max_k=5)
        assert (out["source"][row], out["target"][row]) == (s, t)
        assert out["num_samples"][row] == counts[s] == int(want.num_samples)
        assert out["curve_samples"][row] == min(m, counts[s])
        np.testing.assert_allclose(out["scores"][row], np.asarray(want.scores), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out["weights"][row], np.asarray(want.weights), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(out["ranking"][row], np.asarray(want.ranking))
        np.testing.assert_array_equal(out["signs"][row], np.asarray(want.all_signs))
        first = z[np.flatnonzero(label == s)[:m]]      # the stated subsample: the first M in run order
        success, prob = success_curve(g, clf.logits, first, t, want.ranking, want.all_signs)
        np.testing.assert_allclose(out["success"][row], np.asarray(success), atol=1e-6)
        np.testing.assert_allclose(out["target_prob"][row], np.asarray(prob), atol=1e-5)
        if counts[s] <= m:                              # the subsample is every sample: the whole result
            np.testing.assert_allclose(out["success"][row], np.asarray(want.success), atol=1e-6)
            assert out["size"][row] == len(want.dims)
    # no sample of the source among the run's latents: a documented empty row (in memory: an error)
    assert out["num_samples"][2] == 0 and out["size"][2] == 0 and out["curve_samples"][2] == 0
    assert np.isnan(out["scores"][2]).all() and np.isnan(out["success"][2]).all()
    assert (out["ranking"][2] == -1).all() and (out["signs"][2] == 0).all()
    with pytest.raises(ValueError, match="none of the 40 samples"):
        controlling_set(g, clf.logits, z, target=many, source=empty)
    results = build_run_report(tmp_path / "r", tmp_path / "rep")      # from the store alone
    assert results["run"]["pairs"]["size"] == out["size"].tolist()
    assert "Controlling sets" in (tmp_path / "rep" / "report.html").read_text()


def test_controlling_set_pairs_option():
    assert len(parse_pairs("all", 10)) == 90 and parse_pairs("0:1, 3:5", 10) == [(0, 1), (3, 5)]
    for bad in ("0:0", "0:10", "1-2", "0:1,0:1", ""):
        with pytest.raises(RunError, match="--class-pairs"):
            parse_pairs(bad, 10)


def test_edit_fid_run_equals_the_fid_of_feature_moments(model, tmp_path):
    gs = run("ganspace", model, 48, tmp_path / "gs", chunk_size=24, options={"k": 3, "method": "pca"},
             progress=False)
    opts = {"directions": str(tmp_path / "gs"), "indices": "0,2", "strength_values": "-2,3", "layers": "0:3"}
    res = run("edit-fid", model, 40, tmp_path / "r", chunk_size=16, options=opts, progress=False)
    out = res.results()
    np.testing.assert_array_equal(out["index"], [0, 0, 2, 2])
    np.testing.assert_array_equal(out["strength"], [-2, 3, -2, 3])
    assert res.manifest["stages"][0]["inputs"]["directions_sha256"]
    directions = gs.results()["pca_directions"]
    space = latent_space(model, "w", layers=True)
    features = jaxlatent.models.digits.load_classifier().features
    x = space.points(latents(0, 0, 40, 64))
    orig = feature_statistics(features, x, render=space.image, chunk_size=16)
    for e, (c, s) in enumerate([(0, -2.0), (0, 3.0), (2, -2.0), (2, 3.0)]):
        moved = feature_statistics(features, edit(x, directions[c], strength=s, layers=(0, 3)), render=space.image,
                                   chunk_size=16)
        want = frechet_distance(orig.mean, orig.covariance, moved.mean, moved.covariance)
        np.testing.assert_allclose(out["fid"][e], want, rtol=1e-6)
    assert out["fid"][1] > out["fid"][0] > 0          # a stronger edit moves the features further
    results = build_run_report(tmp_path / "r", tmp_path / "rep")
    assert results["run"]["result"]["fid"] == out["fid"].tolist()
    assert "FID of edits" in (tmp_path / "rep" / "report.html").read_text()
    # other directions under the same folder: the resumed run refuses them (their SHA-256 is identity)
    shutil.rmtree(tmp_path / "gs")
    run("ganspace", model, 48, tmp_path / "gs", chunk_size=24, options={"k": 3, "method": "pca"}, first_seed=5,
        progress=False)
    with pytest.raises(RunMismatchError, match="stages"):
        run("edit-fid", model, 40, tmp_path / "r", chunk_size=16, options=opts, progress=False)
    with pytest.raises(RunError, match="--directions RUN_DIR is needed"):
        run("edit-fid", model, 8, tmp_path / "x", progress=False)
    with pytest.raises(RunError, match="expected a finished ganspace run, found edit-fid"):
        run("edit-fid", model, 8, tmp_path / "x", options={"directions": str(tmp_path / "r")}, progress=False)
    with pytest.raises(RunError, match=r"--indices must lie in \[0, 3\)"):
        run("edit-fid", model, 8, tmp_path / "x", options=dict(opts, indices="3"), progress=False)
    with pytest.raises(RunError, match="no ica directions"):
        run("edit-fid", model, 8, tmp_path / "x", options=dict(opts, method="ica"), progress=False)


def test_cli_asks_for_the_classifier_and_the_features_off_the_digits_model(tmp_path):
    ckpt = tmp_path / "model"
    io.save(random_stylegan2(StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=4, mapping_layers=2, channel_base=32,
                                             channel_max=4), 0), ckpt)
    parser = argparse.ArgumentParser(prog="jaxlatent")
    run_cli.register(parser.add_subparsers(dest="command"))
    for analysis, flag in (("controlling-set", "--classifier DIR"), ("edit-fid", "--features")):
        args = parser.parse_args(["run", analysis, str(ckpt), "--n", "4", "--out", str(tmp_path / "o")])
        with pytest.raises(ValueError, match=f"{flag} is needed"):
            args.func(args)
