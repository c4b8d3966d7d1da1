"""The report (`jaxlatent demo`, `jaxlatent report`): files, numbers, and rendering in Chromium."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess

import jax
import numpy as np
import pytest

import jaxlatent
import jaxlatent.cli
import jaxlatent.report.build
from jaxlatent.cli import build_parser
from jaxlatent.cli.report import report_options
from jaxlatent.engine.latents import latents_from_seeds as latents
from jaxlatent.report.build import QUICK, ReportOptions, build_report
from jaxlatent.report.sections import dimensions, distortion, grassmann, samples, traversal
from jaxlatent.workflows.taps import default_taps
from jaxlatent.models.digits import assets_dir

from report_fixtures import FAKE_SECTION, NO_CHROMIUM, TAPS, TRAVERSE, calls_for as _calls_for, chromium

BUILT_IN = (samples, dimensions, distortion, grassmann, traversal)   # the sections with no classifier or reference


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_report_files_and_numbers(demo_dir):
    html = (demo_dir / "report.html").read_text()
    imgs = _images(html)
    # the built-in sections first: samples, spectra, dimensions, distortion, (heatmap + warpage)
    # and 2 grids per traversal tap; the further sections' figures follow
    tags = [t.replace(".", "_") for t in TRAVERSE.split(",")]
    assert imgs[:12] == (["samples.png", "spectra.png", "local_dimensions.png", "distortion.png"]
                         + [f"{kind}_{t}.png" for t in tags for kind in ("grassmann", "warpage")]
                         + [f"traversal_{t}_{kind}.png" for t in tags for kind in ("iterative", "linear")])
    for name in imgs:
        data = (demo_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    res = json.loads((demo_dir / "results.json").read_text())
    assert list(res["local_dimension"]) == TAPS.split(",")
    assert res["local_dimension"]["synthesis.b4"]["shape"] == [64 * 4 * 4, 64]      # Jacobian out x in
    for tap, d in res["local_dimension"].items():
        assert 1 <= d["min_dimension"] <= d["mean_dimension"] <= d["max_dimension"] <= 64
        s = d["mean_singular_values"]
        assert len(s) == 64 and all(a >= b for a, b in zip(s, s[1:]))
    for tap, d in res["distortion"].items():
        assert d["distortion"] == pytest.approx(d["far"] / d["near"], rel=1e-5)
        assert 0 < d["near"] < d["far"] <= d["haar_baseline"] * 1.5
    for tap in TRAVERSE.split(","):
        g = res["grassmann"][tap]
        curves = g["warpage_mean"]
        # neighbours 0.1 apart are closer than random pairs, which are closer than Haar-random subspaces
        assert curves["neighbours"][-1] < curves["random_pairs"][-1] < curves["haar"][-1]
        tr = res["traversal"][tap]
        assert np.array(tr["classes_iterative"]).shape == (len(QUICK.traversal_seeds),
                                                           QUICK.traversal_directions, QUICK.frames)
        assert all(c > 0 for c in tr["pixel_change_iterative"])
    quality = json.loads(open(os.path.join(assets_dir(), "quality.json")).read())
    assert res["quality"]["classifier_accuracy_held_out"] == quality["classifier_accuracy_held_out"]
    arrays = np.load(demo_dir / "arrays.npz")
    dist = arrays["grassmann/w"]
    assert dist.shape == (QUICK.n_grassmann,) * 2
    np.testing.assert_allclose(dist, dist.T, atol=1e-5)
    np.testing.assert_array_equal(np.diag(dist), 0)


def test_demo_runs_the_further_sections_quick(demo_dir):
    """Each module of report.SECTIONS gets add_section(page, model, ctx) in turn, ctx.key its own
    fold_in of the report's key; its numbers, arrays, heading and run time land in the report."""
    (call,) = _calls_for(demo_dir)
    assert call["quick"] is True and call["progress"] is False and call["truncation_psi"] == 1.0
    assert call["classifier"] is not None and call["model"].config.family == "stylegan2"
    index = len(jaxlatent.report.build.SECTIONS)          # the fake section came after the real ones
    np.testing.assert_array_equal(jax.random.key_data(call["key"]),
                                  jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(7), index)))
    res = json.loads((demo_dir / "results.json").read_text())
    for module in jaxlatent.report.build.SECTIONS:
        assert jaxlatent.report.build.section_name(module) in res["timings_s"]
    assert res["fake"] == {"answer": 42} and list(res["timings_s"])[-2:] == ["fake", "explorer"]
    np.testing.assert_array_equal(np.load(demo_dir / "arrays.npz")["fake/values"], np.arange(3))
    html = (demo_dir / "report.html").read_text()
    assert html.index("Local Basis traversals") < html.index("A further section (Author et al. 2024)")
    assert "seed 00" not in html.lower() and "seeds 00" not in html.lower()


def test_report_numbers_equal_the_library(demo_dir):
    """results.json is what the public functions give on the same seeds."""
    model = jaxlatent.load(assets_dir())
    res = json.loads((demo_dir / "results.json").read_text())
    z = latents(range(QUICK.population_seed, QUICK.population_seed + QUICK.n_latents), 64)
    est = jaxlatent.local_dimension(model.fn("w"), z)
    assert res["local_dimension"]["w"]["mean_dimension"] == pytest.approx(float(np.mean(est.dimension)))
    np.testing.assert_allclose(np.load(demo_dir / "arrays.npz")["singular_values/w"],
                               est.singular_values, rtol=1e-4, atol=1e-6)
    bases = jaxlatent.local_basis(model.fn("w"), z[:QUICK.n_grassmann], k=QUICK.k).basis
    np.testing.assert_allclose(np.load(demo_dir / "arrays.npz")["grassmann/w"],
                               jaxlatent.pairwise_grassmann(bases), atol=2e-4)


def test_report_renders_in_chromium(demo_dir, tmp_path):
    """Every image and plot of report.html loads in a real browser (headless Chromium)."""
    browser = chromium()
    if browser is None:
        pytest.skip(NO_CHROMIUM)
    html = (demo_dir / "report.html").read_text()
    n_img = len(_images(html))
    probe = ("<script>window.addEventListener('load', () => {"
             "const im = Array.from(document.images);"
             "const ok = im.filter(i => i.complete && i.naturalWidth > 0);"
             "const bad = im.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));"
             "document.title = 'LOADED ' + ok.length + '/' + im.length + ' BROKEN ' + bad.join(',');"
             "});</script>")
    check = demo_dir / "chromium_check.html"
    check.write_text(html.replace("</body>", probe + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
           "--virtual-time-budget=20000", "--dump-dom", check.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    check.unlink()
    match = re.search(r"<title>LOADED (\d+)/(\d+) BROKEN ([^<]*)</title>", out.stdout)
    assert match, f"Chromium did not report (exit {out.returncode}): {out.stderr[-1500:]}"
    ok, total, broken = int(match.group(1)), int(match.group(2)), match.group(3)
    assert total == n_img and ok == total, f"broken images: {broken}"


def test_default_taps_on_the_shipped_model():
    model = jaxlatent.load(assets_dir())
    taps = default_taps(model)
    assert taps[:4] == ["mapping.fc0", "mapping.fc1", "mapping.fc2", "w"]
    assert all(int(np.prod(model.tap_shape(t))) <= ReportOptions().max_tap_size for t in taps[4:])
    assert "image" in taps


def test_report_on_any_checkpoint(tmp_path, capsys, monkeypatch):
    """`jaxlatent report` on a converted random StyleGAN2: W-space traversal, no classifier."""
    from helpers import random_stylegan2

    from jaxlatent.models.stylegan2.model import StyleGAN2Config

    config = StyleGAN2Config(z_dim=8, w_dim=8, mapping_layers=2, img_resolution=8, img_channels=3,
                             channel_base=64, channel_max=8)
    ckpt = jaxlatent.save(random_stylegan2(config, 3), tmp_path / "ckpt")
    out = tmp_path / "report"
    # the built-in sections (samples .. traversal), then the fake in place of the further ones
    monkeypatch.setattr(jaxlatent.report.build, "SECTIONS", BUILT_IN + (FAKE_SECTION,))
    rc = jaxlatent.cli.main(["report", str(ckpt), "--out", str(out), "--no-progress", "--taps", "w",
                             "--traversal-taps", "w", "--n", "8", "--rtol", "0.01", "--trunc", "0.9",
                             "--chunk-size", "4", "--quick"])
    assert rc == 0
    (call,) = _calls_for(out)
    assert call["quick"] and call["classifier"] is None and call["truncation_psi"] == 0.9
    res = json.loads((out / "results.json").read_text())
    assert res["local_dimension_rule"] == "rtol=0.01"
    s = np.load(out / "arrays.npz")["singular_values/w"]
    np.testing.assert_array_equal(np.load(out / "arrays.npz")["dimension/w"], (s > 0.01 * s[:, :1]).sum(1))
    assert res["model"]["config"]["z_dim"] == 8 and res["options"]["n_latents"] == 8
    assert res["options"]["truncation_psi"] == 0.9 and res["options"]["chunk_size"] == 4
    assert res["fake"] == {"answer": 42} and "fake" in res["timings_s"]
    assert "classes_iterative" not in res["traversal"]["w"] and "quality" not in res
    out_text = capsys.readouterr().out
    assert "local dim" in out_text and "explorer.html: " in out_text
    # the explorer without a classifier: no labels, no controlling sets; w-space methods of a StyleGAN2
    ids = [m["id"] for m in res["explorer"]["methods"]]
    assert ids == ["lb_iterative_w", "lb_linear_w", "metric_z", "metric_w"] and res["explorer"]["within_budget"]
    for name in _images((out / "report.html").read_text()):
        assert (out / name).stat().st_size > 0


def test_report_options_from_flags():
    args = build_parser().parse_args(["demo", "--quick", "--no-explorer", "--n", "8"])
    opts = report_options(args)
    assert opts.explorer is False and opts.n_latents == 8 and opts.quick
    assert report_options(build_parser().parse_args(["demo"])).explorer is True


def test_report_errors_speak(tmp_path, capsys):
    rc = jaxlatent.cli.main(["demo", "--quick", "--no-progress", "--out", str(tmp_path), "--taps", "nope"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown tap(s) ['nope']" in err and "mapping.fc0" in err
    with pytest.raises(ValueError, match="frames must be odd"):
        build_report(jaxlatent.load(assets_dir()), tmp_path, ReportOptions(frames=4), progress=False)


def test_latents_follow_the_nvlabs_convention():
    z = latents([3, 7], 5)
    np.testing.assert_array_equal(z[1], np.random.RandomState(7).randn(5).astype(np.float32))
    assert z.dtype == np.float32 and jax.numpy.asarray(z).shape == (2, 5)


def test_report_on_a_fastgan(tmp_path, monkeypatch):
    """FastGAN: no mapping network, no w; the report falls back to its small feature taps and
    says when the Gavish-Donoho rule finds no noise bulk (16 inputs, a flat spectrum)."""
    from jaxlatent.converters.fastgan import params_from_state_dict
    from jaxlatent.models.fastgan.model import FastGAN

    g = np.load(os.path.join(os.path.dirname(__file__), "golden", "fastgan", "fg256.npz"))
    config, params = params_from_state_dict({k[3:]: g[k] for k in g.files if k.startswith("sd:")})
    model = FastGAN(config, params)
    assert default_taps(model) == ["init", "feat_8", "feat_16"]          # <= 8192 values each
    # the built-in sections only: each further section is tested on a FastGAN in its own file
    monkeypatch.setattr(jaxlatent.report.build, "SECTIONS", BUILT_IN)
    res = build_report(model, tmp_path, dataclasses.replace(QUICK, taps=("init",), n_latents=8),
                       progress=False)
    assert res["options"]["traversal_taps"] == ["init"]
    assert res["traversal"]["init"]["pixel_change_linear"][0] > 0
    # random golden weights: the whole spectrum is one noise bulk, read as all noise (0 at every latent)
    assert res["local_dimension"]["init"]["mean_dimension"] < 1
    assert res["local_dimension"]["init"]["noise_bulk_share"] == 1.0
    assert "one noise bulk" in res["warnings"][0]
    assert "--rule numerical" in (tmp_path / "report.html").read_text()
    # the explorer of a 256x256 colour FastGAN: z only, frames downscaled to 128 and stored as JPEG
    ex = res["explorer"]
    assert [m["id"] for m in ex["methods"]] == ["lb_iterative_init", "lb_linear_init", "metric_z"]
    assert ex["within_budget"] and "data:image/jpeg;base64," in (tmp_path / "explorer.html").read_text()

