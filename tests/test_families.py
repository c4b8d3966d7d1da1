"""Every command on every model family: tiny checkpoints of each family x every CLI subcommand.

Families, each written as the file a user brings: an NVlabs StyleGAN2 ``.pkl`` (plain and
class-conditional, 3 classes), a rosinality ``.pt`` (the golden small32 weights), a FastGAN
``.pth`` (random weights in the official state-dict layout, spectral norm included) and a
pytorch-pretrained-biggan folder (the golden BigGAN-deep 32x32 weights, 10 classes; every command
with ``--class 1 --trunc 0.5``). Each command
runs in-process (``jaxlatent.cli.main``) at quick sizes and must either write results of the
documented shapes or refuse at argument checking with a message naming what to pass. The README
quickstart runs on each family too.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="writing .pkl/.pt/.pth checkpoints needs torch")

import jaxlatent  # noqa: E402
import jaxlatent.cli  # noqa: E402
from flax.traverse_util import flatten_dict  # noqa: E402
from jaxlatent.models.digits import Classifier, ClassifierConfig, DigitCNN  # noqa: E402
from jaxlatent.models.fastgan.model import FastGAN, FastGANConfig  # noqa: E402
from jaxlatent.models.stylegan2.model import StyleGAN2Config  # noqa: E402
from jaxlatent.train.classifier import save_classifier  # noqa: E402
from helpers import random_stylegan2  # noqa: E402
from test_converters_nvlabs import flat_state, write_nvlabs_pickle  # noqa: E402

GOLDEN_ROS = os.path.join(os.path.dirname(__file__), "golden", "rosinality", "small32.npz")
GOLDEN_BIGGAN = os.path.join(os.path.dirname(__file__), "golden", "biggan", "deep32.npz")
FAMILIES = ("stylegan2", "conditional", "rosinality", "fastgan", "biggan")
EXTRA = {"conditional": ["--class", "1"], "biggan": ["--class", "1", "--trunc", "0.5"]}
# the tap a single-tap command analyses by default, and the taps local-dim compares by default
TAP = {"fastgan": "init", "biggan": "layers.0"}
MAPPING_TAPS = {"fastgan": ["init", "feat_8"], "biggan": ["gen_z", "layers.0"]}
Z_ONLY = ("fastgan", "biggan")      # no mapping network: z is the only latent space
NV_KW = dict(z_dim=8, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs={"num_layers": 2},
             synthesis_kwargs={"channel_base": 64, "channel_max": 8, "num_fp16_res": 0, "conv_clamp": None})


def _nvlabs(path, c_dim, seed):
    kw = dict(NV_KW, c_dim=c_dim)
    model = random_stylegan2(StyleGAN2Config.from_nvlabs_kwargs(kw), seed)
    return write_nvlabs_pickle(path, {"G_ema": ("Generator", flat_state(model))}, kw)


def _rosinality(path):
    g = np.load(GOLDEN_ROS)
    sd = {k[len("g_ema/"):]: torch.from_numpy(np.array(g[k])) for k in g.files if k.startswith("g_ema/")}
    torch.save({"g_ema": sd, "latent_avg": torch.from_numpy(np.array(g["latent_avg"]))}, path)
    return path


def _fastgan(path):
    """Random FastGAN weights saved as the official trainer does: spectral-normed layers as
    ``weight_orig`` with power-iteration vectors giving sigma = 1 (the folded weight is the original)."""
    model = FastGAN.init(FastGANConfig(im_size=256, nz=8, ngf=2), jax.random.key(0))
    state = {}
    for key, value in flatten_dict(model.params, sep=".").items():
        value = np.array(value, np.float32)
        if key.endswith(".weight") and value.ndim == 4:
            transposed = key.startswith("init.init.0")          # ConvTranspose2d: torch normalises dim 1
            mat = (np.moveaxis(value, 1, 0) if transposed else value).reshape(value.shape[int(transposed)], -1)
            v = np.zeros(mat.shape[1], np.float32)
            v[0] = 1.0
            u = mat @ v / float((mat @ v) @ (mat @ v))
            base = key[:-len(".weight")]
            state.update({f"{base}.weight_orig": torch.from_numpy(value), f"{base}.weight_u": torch.from_numpy(u),
                          f"{base}.weight_v": torch.from_numpy(v)})
        else:
            state[key] = torch.from_numpy(value)
    torch.save({"g": state}, path)
    return path, model


def _biggan(path):
    """The golden BigGAN-deep weights as the package keeps them: pytorch_model.bin and config.json."""
    g = np.load(GOLDEN_BIGGAN)
    path.mkdir()
    state = {k[3:]: torch.from_numpy(g[k].astype(np.float32) if g[k].dtype == np.float16 else g[k])
             for k in g.files if k.startswith("sd:")}
    torch.save(state, path / "pytorch_model.bin")
    (path / "config.json").write_text(str(g["config_json"]))
    return path


def _classifier(directory, model):
    """A random classifier in the digits format that reads this model's images (for the commands
    whose concepts or features are a user's network)."""
    c, r, _ = model.tap_shape("image")
    params = DigitCNN(8).init(jax.random.key(1), np.zeros((1, c, r, r), np.float32))["params"]
    return save_classifier(Classifier(ClassifierConfig(resolution=r, features=8), params), directory)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    fg_path, fg_model = _fastgan(root / "fastgan.pth")
    paths = {"stylegan2": _nvlabs(root / "plain.pkl", 0, 0), "conditional": _nvlabs(root / "cond.pkl", 3, 1),
             "rosinality": _rosinality(root / "ros.pt"), "fastgan": fg_path, "biggan": _biggan(root / "biggan-deep-32")}
    out = {}
    for family, path in paths.items():
        model = jaxlatent.load(path)
        out[family] = dict(path=str(path), model=model, classifier=_classifier(root / f"clf_{family}", model),
                           extra=EXTRA.get(family, []))
    # the FastGAN file reads back as the model it was written from
    z = jaxlatent.latents_from_seeds([0], 8)
    np.testing.assert_allclose(np.asarray(out["fastgan"]["model"].fn("init")(z)), np.asarray(fg_model.fn("init")(z)),
                               rtol=1e-5, atol=1e-6)
    return out


def cli(argv, capsys):
    rc = jaxlatent.cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def _json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# ------------------------------------------------------------------------------- per command
@pytest.mark.parametrize("family", FAMILIES)
def test_local_dim_and_distortion(files, family, tmp_path, capsys):
    f = files[family]
    rc, text = cli(["local-dim", f["path"], "--seeds", "0-2", "--out", tmp_path / "ld", *f["extra"]], capsys)
    assert rc == 0, text
    taps = _json(tmp_path / "ld" / "results.json")["taps"]
    want = MAPPING_TAPS.get(family) or [t for t in f["model"].taps() if t.startswith("mapping.") or t == "w"]
    assert list(taps) == want and all(0 <= t["mean"] <= t["max"] for t in taps.values())
    with np.load(tmp_path / "ld" / "results.npz") as d:
        assert all(d[f"{t}/dimension"].shape == (3,) for t in taps)
    rc, text = cli(["distortion", f["path"], "--seeds", "0-2", "--taps", want[-1], "--out", tmp_path / "d",
                    *f["extra"]], capsys)
    assert rc == 0, text
    assert np.isfinite(_json(tmp_path / "d" / "results.json")["taps"][want[-1]]["far"])
    # a tap filter that selects nothing is an error, never an empty result
    rc, text = cli(["local-dim", f["path"], "--taps", ",", "--out", tmp_path / "none", *f["extra"]], capsys)
    assert rc == 2 and "no tap selected" in text


@pytest.mark.parametrize("family", FAMILIES)
def test_local_basis_and_grassmann(files, family, tmp_path, capsys):
    f = files[family]
    tap = TAP.get(family, "w")
    rc, text = cli(["local-basis", f["path"], "--seeds", "0-1", "--k", "3", "--out", tmp_path / "lb", *f["extra"]],
                   capsys)
    assert rc == 0, text
    assert _json(tmp_path / "lb" / "local_basis.json")["tap"] == tap
    with np.load(tmp_path / "lb" / "local_basis.npz") as d:
        n_out = int(np.prod(f["model"].tap_shape(tap)))
        assert d["singular_values"].shape == (2, 3) and d["basis"].shape == (2, n_out, 3)
    rc, text = cli(["grassmann", f["path"], "--seeds", "0-2", "--out", tmp_path / "g", *f["extra"]], capsys)
    assert rc == 0, text
    with np.load(tmp_path / "g" / "grassmann.npz") as d:
        assert d["distances"].shape == (3, 3) and np.all(np.isfinite(d["distances"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_geometry(files, family, tmp_path, capsys):
    f = files[family]
    rc, text = cli(["geometry", f["path"], "--seeds", "0-1", "--strips", "1", "--axes", "2", "--out", tmp_path,
                    *f["extra"]], capsys)
    assert rc == 0, text
    space = "z" if family in Z_ONLY else "w"
    dim = f["model"].z_dim if space == "z" else f["model"].config.w_dim
    assert _json(tmp_path / "results.json")["space"] == space
    with np.load(tmp_path / "metric.npz") as d:
        assert d["eigenvalues"].shape == (2, dim) and np.all(d["eigenvalues"][:, 0] > 0)
    if family in Z_ONLY:
        rc, text = cli(["geometry", f["path"], "--space", "w", "--out", tmp_path / "w", *f["extra"]], capsys)
        assert rc == 2 and "pass --space z" in text and not (tmp_path / "w").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_ganspace_then_edit_fid(files, family, tmp_path, capsys):
    f = files[family]
    rc, text = cli(["ganspace", f["path"], "--seeds", "0", "--n", "64", "--k", "3", "--method", "pca",
                    "--grid-directions", "2", "--strengths", "3", "--out", tmp_path / "gs", *f["extra"]], capsys)
    assert rc == 0, text
    with np.load(tmp_path / "gs" / "directions_pca.npz") as d:
        space = str(d["space"])
        assert space == ("z" if family in Z_ONLY else "w")
        assert d["directions"].shape == (3, f["model"].z_dim if space == "z" else f["model"].config.w_dim)
    assert (tmp_path / "gs" / "grid_seed0000.png").exists()
    # no feature network for a model other than the shipped digits one: a named error, before any work
    rc, text = cli(["edit-fid", f["path"], tmp_path / "gs", "--n", "8", "--out", tmp_path / "nofid", *f["extra"]],
                   capsys)
    assert rc == 2 and "--features is needed" in text and not (tmp_path / "nofid").exists()
    rc, text = cli(["edit-fid", f["path"], tmp_path / "gs", "--n", "8", "--features", f["classifier"],
                    "--out", tmp_path / "fid", *f["extra"]], capsys)
    assert rc == 0, text
    fid = np.asarray(_json(tmp_path / "fid" / "edit_fid.json")["fid"])
    assert fid.shape[1] == 1 and np.all(np.isfinite(fid))


@pytest.mark.parametrize("family", FAMILIES)
def test_correlation(files, family, tmp_path, capsys):
    f = files[family]
    # one chunk size for every intervention batch: one compiled program each (10x faster here)
    base = ["correlation", f["path"], "--n", "4", "--effects", "2", "--max-k", "1", "--bootstrap", "0",
            "--steps", "0", "--chunk-size", "4", *f["extra"]]
    rc, text = cli(base + ["--out", tmp_path / "none"], capsys)
    assert rc == 2 and "--classifier DIR is needed" in text and not (tmp_path / "none").exists()
    rc, text = cli(base + ["--classifier", f["classifier"], "--out", tmp_path / "c"], capsys)
    assert rc == 0, text
    size = np.asarray(_json(tmp_path / "c" / "results.json")["set_size"])
    assert size.shape == (10, 10)


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_convert_and_runs(files, family, tmp_path, capsys):
    f = files[family]
    rc, text = cli(["generate", f["path"], "--seeds", "0-1", "--out", tmp_path / "grid.png", *f["extra"]], capsys)
    assert rc == 0 and (tmp_path / "grid.png").exists(), text
    rc, text = cli(["convert", f["path"], tmp_path / "conv"], capsys)
    assert rc == 0, text
    back = jaxlatent.load(tmp_path / "conv")
    assert back.config == f["model"].config
    tap = TAP.get(family, "w")
    for analysis, field, shape in (("local-basis", "singular_values", None), ("local-dim", "dimension", ()),
                                   ("geometry", "eigenvalues", None)):
        out = tmp_path / f"run_{analysis}"
        rc, text = cli(["run", analysis, f["path"], "--n", "3", "--chunk-size", "2", "--out", out, "--quiet",
                        *f["extra"]], capsys)
        assert rc == 0, text
        res = jaxlatent.open_run(out)
        assert res[field].shape[0] == 3 and (shape is None or res[field].shape[1:] == shape)
        if analysis == "local-basis":
            n_out = int(np.prod(f["model"].tap_shape(tap)))
            assert res["basis"].shape[:2] == (3, n_out)
        if analysis == "local-basis" and family == "biggan":
            # a BigGAN run's latents are the package's truncated draws of seeds 0..N-1 at --trunc
            model = f["model"]
            want = jaxlatent.local_basis(model.fn(tap, c=1, truncation=0.5), model.sample_latents(range(3), 0.5))
            np.testing.assert_allclose(res["singular_values"][:], np.asarray(want.singular_values), rtol=1e-4)
    out = tmp_path / "run_effects"
    rc, text = cli(["run", "concept-effects", f["path"], "--n", "2", "--dims", "0,1", "--out", out, "--quiet",
                    *f["extra"]], capsys)
    assert rc == 2 and "--classifier DIR is needed" in text
    rc, text = cli(["run", "concept-effects", f["path"], "--n", "2", "--chunk-size", "2", "--dims", "0,1",
                    "--classifier", f["classifier"], "--out", out, "--quiet", *f["extra"]], capsys)
    assert rc == 0, text
    assert jaxlatent.open_run(out)["probs"].shape == (2, 2, 2, 10)


@pytest.mark.parametrize("family", ("conditional", "fastgan", "biggan"))
def test_staged_runs(files, family, tmp_path, capsys):
    """The run analyses that plan several stages: pairs of Local Bases, a population, class pairs
    and the FID of a ganspace run's edits, each at a quick size, on the families whose runs differ
    from a plain StyleGAN2's (tests/test_runs_analyses.py): a class, z only with feature taps,
    truncated latents."""
    f = files[family]
    quick = ["--n", "4", "--chunk-size", "2", "--quiet", *f["extra"]]
    k = 2
    for analysis, opts, stage, field, shape in (
            ("distortion", ["--k", str(k), "--pairs", "4", "--baseline-pairs", "4"], "result", "distortion", (1,)),
            ("grassmann", ["--k", str(k), "--pairs", "4"], "result", "dims", (1, k)),
            ("ganspace", ["--k", str(k), "--method", "pca", "--ica-samples", "4"], "result", "pca_directions", None),
            ("controlling-set", ["--class-pairs", "0:1,1:0", "--max-k", "2", "--curve-samples", "2",
                                 "--classifier", f["classifier"]], "pairs", "success", (2, 2))):
        out = tmp_path / analysis
        rc, text = cli(["run", analysis, f["path"], "--out", out, *opts, *quick], capsys)
        assert rc == 0, f"{analysis}: {text}"
        res = jaxlatent.open_run(out)
        assert res.complete and stage in res.stages, (analysis, res.stages)
        if field is not None:
            got = np.asarray(res.stage(stage)[field])
            assert got.size and (shape is None or got.shape == shape), (analysis, got.shape)
            if analysis != "controlling-set":      # a class pair with no source sample holds NaN
                assert np.isfinite(got).all(), analysis
    directions = np.asarray(jaxlatent.open_run(tmp_path / "ganspace").stage("result")["pca_directions"])
    space = f["model"].z_dim if family in Z_ONLY else f["model"].config.w_dim
    assert directions.shape == (1, k, int(space))
    out = tmp_path / "edit-fid"
    rc, text = cli(["run", "edit-fid", f["path"], "--out", out, "--directions", tmp_path / "ganspace",
                    "--indices", "0", "--strength-values=-1,1", "--features", f["classifier"], *quick], capsys)
    assert rc == 0, text
    fid = np.asarray(jaxlatent.open_run(out).stage("result")["fid"])
    assert fid.shape == (1, 2) and np.isfinite(fid).all() and (fid >= 0).all(), fid


# a plain StyleGAN2's report is the shipped demo's (tests/test_report.py, the demo_dir fixture)
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "stylegan2"])
def test_quick_report(files, family, tmp_path, capsys):
    f = files[family]
    # BigGAN: gen_z, linear in z, has the cheapest Jacobian programs to compile (layers.0 is
    # analysed by the per-command tests above)
    tap = "gen_z" if family == "biggan" else TAP.get(family, "w")
    rc, text = cli(["report", f["path"], "--quick", "--n", "4", "--taps", tap, "--traversal-taps", tap,
                    "--chunk-size", "4", "--no-progress", "--out", tmp_path, *f["extra"]], capsys)
    assert rc == 0, text
    res = _json(tmp_path / "results.json")
    assert list(res["local_dimension"]) == [tap] and res["local_dimension"][tap]["mean_dimension"] >= 0
    assert "geometry" in res and "ganspace" in res
    # the correlation section needs a classifier: skipped with the reason on the page
    assert "classifier" in res["skipped"]["correlation"]
    page = (tmp_path / "report.html").read_text()
    assert "Skipped: no classifier was given" in page
    if family in Z_ONLY:
        assert "has no W space" in page


def test_early_refusals(files, tmp_path, capsys):
    """Flags a model cannot take stop before any work, saying what to do instead."""
    cond, fg = files["conditional"], files["fastgan"]
    for command in (["local-dim"], ["geometry"], ["ganspace"], ["report", "--quick"]):
        rc, text = cli([command[0], cond["path"], *command[1:], "--out", tmp_path / command[0]], capsys)
        assert rc == 2 and "pass --class 0..2" in text, (command, text)
        assert not (tmp_path / command[0]).exists()
    rc, text = cli(["local-basis", fg["path"], "--trunc", "0.7", "--out", tmp_path / "t"], capsys)
    assert rc == 2 and "StyleGAN2 models only" in text
    rc, text = cli(["ganspace", fg["path"], "--layers", "0:2", "--out", tmp_path / "l"], capsys)
    assert rc == 2 and "leave --layers out" in text and not (tmp_path / "l").exists()
    rc, text = cli(["local-basis", files["stylegan2"]["path"], "--class", "1", "--out", tmp_path / "u"], capsys)
    assert rc == 2 and "unconditional" in text


def test_biggan_refusals(files, tmp_path, capsys):
    """A BigGAN needs its class (as a conditional StyleGAN2 does) and has z only: both stop before any work."""
    bg = files["biggan"]
    for command in (["report", "--quick"], ["correlation", "--classifier", bg["classifier"]],
                    ["edit-fid", str(tmp_path), "--features", bg["classifier"]]):
        rc, text = cli([command[0], bg["path"], *command[1:], "--out", tmp_path / command[0]], capsys)
        assert rc == 2 and "pass --class 0..9" in text, (command, text)
        assert not (tmp_path / command[0]).exists()
    rc, text = cli(["run", "local-basis", bg["path"], "--n", "2", "--out", tmp_path / "run", "--quiet"], capsys)
    assert rc == 2 and "pass --class 0..9" in text and not (tmp_path / "run").exists()
    rc, text = cli(["correlation", bg["path"], "--space", "w", "--classifier", bg["classifier"], "--out",
                    tmp_path / "w", *bg["extra"]], capsys)
    assert rc == 2 and "pass --space z" in text and not (tmp_path / "w").exists()


def test_report_per_class_side_by_side(files, tmp_path, capsys):
    f = files["conditional"]
    rc, text = cli(["report", f["path"], "--quick", "--n", "4", "--taps", "w", "--traversal-taps", "w",
                    "--class", "0,2", "--no-progress", "--out", tmp_path], capsys)
    assert rc == 0, text
    res = _json(tmp_path / "results.json")
    assert list(res["classes"]) == ["0", "2"]
    a, b = (res["classes"][c]["local_dimension"]["w"] for c in ("0", "2"))
    assert a["mean_dimension"] >= 0 and b["mean_dimension"] >= 0
    assert (tmp_path / "class_0" / "report.html").exists() and (tmp_path / "class_2" / "report.html").exists()
    assert res["classes"]["2"]["options"]["class_idx"] == 2


# ----------------------------------------------------------------------------- the quickstart
@pytest.mark.parametrize("family", FAMILIES)
def test_readme_quickstart(files, family):
    """The README's library quickstart, on each family (its first tap: w, or FastGAN's init)."""
    f = files[family]
    model = jaxlatent.load(f["path"])
    c = {"c": 1} if family == "conditional" else {}
    z = jax.random.normal(jax.random.key(0), (8, model.z_dim))
    if family == "biggan":      # docs/biggan.md: a class and a truncation in every call
        z = jnp.asarray(model.sample_latents(range(8), truncation=0.5))
        images = model.generate(z[:2], c=1, truncation=0.5)
        fn = model.fn("layers.0", c=1, truncation=0.5)
    elif family == "fastgan":
        images = model.generate(z[:2])
        fn = model.fn("init")
    else:
        images = model.generate(z[:2], truncation_psi=0.7, **c)
        fn = model.fn("w", **c)
    assert images.shape == (2,) + model.tap_shape("image")
    lb = jaxlatent.local_basis(fn, z, k=3)
    d = jaxlatent.grassmann_distance(lb.basis[:4], lb.basis[4:], metric="geodesic")
    dims = jaxlatent.local_dimension(fn, z).dimension
    assert lb.singular_values.shape == (8, 3) and d.shape == (4,) and dims.shape == (8,)
    assert np.all(np.isfinite(np.asarray(d)))
    if family == "conditional":     # one label per latent travels with z (README)
        labels = jax.nn.one_hot(jnp.arange(8) % 3, model.c_dim)
        per = jaxlatent.local_basis(model.fn("w", c=labels), z, k=3, chunk_size=3)
        one = jaxlatent.local_basis(model.fn("w", c=2), z[2:3], k=3)
        np.testing.assert_allclose(np.asarray(per.singular_values[2]), np.asarray(one.singular_values[0]), rtol=1e-4)
