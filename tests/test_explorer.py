"""The explorer (explorer.html beside report.html): frames equal the library's outputs, the page
works in a real browser (headless Chromium) and stays within its size budget."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxlatent
from jaxlatent.correlation.controlling import set_masks
from jaxlatent.correlation.interventions import apply_intervention as intervene
from jaxlatent.models.digits import assets_dir, load_classifier
from jaxlatent.report.explorer import GANSPACE_STRENGTH, METRIC_STEP, iterative_strengths
from jaxlatent.report.build import QUICK
from jaxlatent.workflows.spaces import latent_space, render
from jaxlatent.report.plots import to_uint8

from report_fixtures import NO_CHROMIUM, chromium

SEEDS = list(QUICK.traversal_seeds)
S = QUICK.frames
D = QUICK.traversal_directions


def _page_data(demo_dir) -> dict:
    html = (demo_dir / "explorer.html").read_text()
    blob = re.search(r"<script id='explorer-data' type='application/json'>(.*?)</script>", html, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    return img[..., None] if img.ndim == 2 else img


def _frames(method: dict) -> np.ndarray:
    """(L, D, S, H, W, C) uint8 decoded from the page."""
    return np.stack([np.stack([np.stack([_decode(u) for u in strip]) for strip in lat]) for lat in method["frames"]])


def _library(images) -> np.ndarray:
    x = np.asarray(images)
    return to_uint8(x.reshape((-1,) + x.shape[-3:])).reshape(x.shape[:-3] + (x.shape[-2], x.shape[-1], x.shape[-3]))


def _assert_same_pixels(page: np.ndarray, lib: np.ndarray, what: str):
    """Same uint8 frames; one level of rounding allowed where two compiled programs differ in
    the last float bit (a value on a rounding boundary), on under 1% of the pixels."""
    assert page.shape == lib.shape, what
    diff = np.abs(page.astype(int) - lib.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, f"{what}: max diff {diff.max()}, {(diff > 0).mean():.3%}"


@pytest.fixture(scope="module")
def explorer(demo_dir):
    return _page_data(demo_dir), np.load(demo_dir / "explorer.npz"), json.loads((demo_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def model():
    return jaxlatent.load(assets_dir())


def _method(data, mid):
    return next(m for m in data["methods"] if m["id"] == mid)


def test_explorer_lists_every_method(explorer, demo_dir):
    data, npz, res = explorer
    ids = [m["id"] for m in data["methods"]]
    assert ids == (["lb_iterative_w", "lb_linear_w", "lb_iterative_synthesis_b4", "lb_linear_synthesis_b4",
                    "ganspace_pca", "ganspace_ica", "metric_z", "metric_w"] + [f"control_{t}" for t in range(10)])
    assert data["seeds"] == SEEDS and data["steps"] == S and data["classifier"] is True
    for m in data["methods"]:
        assert len(m["frames"]) == len(SEEDS) and all(len(strip) == S for lat in m["frames"] for strip in lat)
        assert npz[f"{m['id']}/latents"].shape[:3] == (len(SEEDS), len(m["frames"][0]), S)
        assert all(len(lat) == len(m["frames"][0]) for lat in m["names"])
        strengths = np.asarray(m["strengths"], np.float64)
        np.testing.assert_allclose(strengths[:, :, S // 2], 0, atol=1e-6)       # the latent itself
        assert (np.diff(strengths, axis=-1) > 0).all(), m["id"]
        assert m["labels"] is not None and m["numbers"]
    # the report links it, and the command printed its weight
    assert "href='explorer.html'" in (demo_dir / "report.html").read_text()
    out = (demo_dir / "stdout.txt").read_text()
    kb = re.search(r"explorer\.html: (\d+) KB", out)
    assert kb and abs(int(kb.group(1)) - (demo_dir / "explorer.html").stat().st_size / 1024) < 1
    assert res["explorer"]["bytes"] == (demo_dir / "explorer.html").stat().st_size


def test_explorer_within_its_size_budget(explorer, demo_dir):
    data, _, res = explorer
    b = res["explorer"]["budget"]
    size = (demo_dir / "explorer.html").stat().st_size
    assert res["explorer"]["within_budget"] and size <= b["page_budget"]
    strips = [sum(len(u) for u in strip) for m in data["methods"] for lat in m["frames"] for strip in lat]
    assert max(strips) == b["largest_strip"] <= b["strip_budget"] == S * (128 + 16 * 16 * 3 // 2)
    assert len(strips) == b["strips"] and sum(strips) == b["frame_bytes"]
    assert "http://" not in (demo_dir / "explorer.html").read_text().replace("http://www.w3.org", "")


def test_explorer_frames_equal_the_library(explorer, model, demo_dir):
    """Each method's frames are the library's images for the same latent and strength."""
    data, npz, res = explorer
    z = jnp.asarray(jaxlatent.latents_from_seeds(SEEDS, 64))
    frames = {m["id"]: _frames(m) for m in data["methods"]}
    # Local Basis iterative at w: iterative_traversal with the report's sigma, steps and frames
    f = model.fn("w", noise_mode="const")
    tr = jaxlatent.iterative_traversal(f, jnp.repeat(z, D, axis=0), index=np.tile(np.arange(D), len(SEEDS)),
                                       sigma=QUICK.sigma, steps=QUICK.steps, frames=S)
    lat = np.asarray(tr.latents).reshape(len(SEEDS), D, S, 64)
    np.testing.assert_allclose(npz["lb_iterative_w/latents"], lat, atol=1e-5)
    _assert_same_pixels(frames["lb_iterative_w"], _library(render(model, lat.reshape(-1, 64), truncation_psi=QUICK.truncation_psi)
                                                          .reshape(len(SEEDS), D, S, 1, 16, 16)), "iterative w")
    np.testing.assert_allclose(_method(data, "lb_iterative_w")["strengths"][0][0],
                               iterative_strengths(QUICK.sigma, QUICK.steps, S), atol=1e-3)
    # Local Basis linear at synthesis.b4: z + t v_i, v_i the Local Basis of the tap
    lb = jaxlatent.local_basis(model.fn("synthesis.b4", noise_mode="const"), z, k=D)
    t = np.linspace(-QUICK.sigma, QUICK.sigma, S, dtype=np.float32)
    lin = jaxlatent.linear_traversal(jnp.repeat(z, D, axis=0), np.moveaxis(np.asarray(lb.directions), -1, 1)
                                     .reshape(-1, 64), strengths=t).reshape(len(SEEDS), D, S, 64)
    _assert_same_pixels(frames["lb_linear_synthesis_b4"],
                        _library(render(model, lin.reshape(-1, 64), truncation_psi=QUICK.truncation_psi).reshape(len(SEEDS), D, S, 1, 16, 16)),
                        "linear synthesis.b4")
    np.testing.assert_allclose(_method(data, "lb_linear_synthesis_b4")["numbers"]["singular value"],
                               lb.singular_values, rtol=1e-3)
    # GANSpace PCA: edit_grid of the section's directions in W at alphas -6 .. 6
    d = np.load(demo_dir / "arrays.npz")["ganspace/pca_8_directions"][:D]
    sp = latent_space(model, "w", truncation_psi=1.0)
    x0, g = sp.points(jnp.asarray(z)), sp.image
    alphas = np.linspace(-GANSPACE_STRENGTH, GANSPACE_STRENGTH, S).astype(np.float32)
    edited = np.moveaxis(np.asarray(jaxlatent.edit_grid(x0, d, strengths=alphas)), 2, 0)          # (L, D, S, w_dim)
    _assert_same_pixels(frames["ganspace_pca"], _library(np.asarray(g(jnp.asarray(edited.reshape(-1, 64))))
                                                         .reshape(len(SEEDS), D, S, 1, 16, 16)), "GANSpace PCA")
    np.testing.assert_allclose(_method(data, "ganspace_pca")["numbers"]["explained variance"][0],
                               res["ganspace"]["pca_explained_variance_ratio"][:D], rtol=1e-3)
    # metric eigen-axes in W: eigen_axis_latents of the pixel-MSE metric, METRIC_STEP per step
    sp = latent_space(model, "w")
    g, x = sp.image, sp.points(jnp.asarray(z))
    m = jaxlatent.metric_tensor(g, x, k=D)
    for n in range(len(SEEDS)):
        mn = jaxlatent.Metric(m.eigenvalues[n:n + 1, :D], m.eigenvectors[n:n + 1, :, :D], None)
        ax = jaxlatent.eigen_axis_latents(x[n], mn, length=METRIC_STEP, n_side=S // 2,
                                          max_step=2 * float(jnp.linalg.norm(x[n])) + 1)[0]
        _assert_same_pixels(frames["metric_w"][n], _library(np.asarray(g(ax.reshape(-1, 64))).reshape(D, S, 1, 16, 16)),
                            f"metric w, latent {n}")
    np.testing.assert_allclose(_method(data, "metric_w")["numbers"]["eigenvalue"], m.eigenvalues[:, :D], rtol=1e-3)
    # every method shows the latent itself in the middle
    centre = frames["lb_iterative_w"][:, :1, S // 2]
    for mid, fr in frames.items():
        _assert_same_pixels(fr[:, :, S // 2], np.broadcast_to(centre, fr[:, :, S // 2].shape), f"{mid} centre")


def test_explorer_controlling_set_frames(explorer, model, demo_dir):
    """Controlling set -> class 3: the correlation section's set for the latent's class, lam * (set intervention)."""
    data, npz, res = explorer
    arrays = np.load(demo_dir / "arrays.npz")
    clf = load_classifier()
    z = jaxlatent.latents_from_seeds(SEEDS, 64)
    g = model.fn("image")
    source = np.asarray(jnp.argmax(clf.logits(g(jnp.asarray(z))), -1))
    rankings, size = arrays["correlation/rankings"], arrays["correlation/set_size"]
    signs = np.where(arrays["correlation/effect"] >= 0, 1.0, -1.0).T
    target = 3
    page = _frames(_method(data, f"control_{target}"))
    lam = np.linspace(-1, 1, S)
    for n, s in enumerate(source):
        k = size[s, target] if size[s, target] > 0 else int(np.median(size[:, target][size[:, target] > 0]))
        sets = np.zeros((1, 64), np.float32)
        sets[0, rankings[target, :k]] = 1
        mask, amount = set_masks(sets, signs[target], res["correlation"]["sizes"]["magnitude"], None, None, 64)
        lat = np.stack([np.asarray(intervene(jnp.asarray(z[n]), l * mask[0], amount[0], "set")) for l in lam])
        np.testing.assert_allclose(npz[f"control_{target}/latents"][n, 0], lat, atol=1e-5)
        _assert_same_pixels(page[n, 0], _library(np.asarray(g(jnp.asarray(lat)))), f"control latent {n}")
        assert _method(data, f"control_{target}")["names"][n][0] == f"set of {k} dims ({s} -> {target})"
    # labels: the classifier's class and confidence of each frame
    probs = np.asarray(clf.probs(g(jnp.asarray(npz[f"control_{target}/latents"][:, 0].reshape(-1, 64)))))
    labels = np.asarray(_method(data, f"control_{target}")["labels"])[:, 0].reshape(-1, 2)
    np.testing.assert_array_equal(labels[:, 0], probs.argmax(-1))
    np.testing.assert_allclose(labels[:, 1], probs.max(-1), atol=2e-3)


# ------------------------------------------------------------------------------- in the browser
_HOOKS = ("<script>window.__errors = []; addEventListener('error', e => __errors.push('error: ' + e.message));"
          "const __ce = console.error; console.error = (...a) => { __errors.push(a.join(' ')); __ce(...a); };"
          "</script>")
_SELFTEST = r"""<script>
addEventListener('load', async () => {
  const out = {};
  try {
    const X = window.explorer, data = X.data, S = data.steps, MID = (S - 1) / 2;
    const panels = () => Array.from(document.querySelectorAll('.panel'));
    const src = (i) => panels()[i].querySelector('img.frame').getAttribute('src');
    const expected = (i) => { const s = X.shown(i); const m = data.methods.find(x => x.id === s.method);
                              return m.frames[s.latent][s.direction][s.step]; };
    const consistent = () => panels().every((_, i) => src(i) === expected(i));
    const key = (k) => document.body.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
    out.panels = panels().length;
    out.methods = X.state.panels.map((_, i) => X.shown(i).method);
    out.initial = {step: X.state.step, consistent: consistent()};
    // a direction's slider: its panel shows that direction at the new step, the others the same step
    const before = src(0), beforeOther = src(1);
    const slider = panels()[0].querySelectorAll('.dirs input[type=range]')[1];
    slider.value = S - 1; slider.dispatchEvent(new Event('input', {bubbles: true}));
    out.slider = {step: X.state.step, direction: X.shown(0).direction, changed: src(0) !== before,
                  otherChanged: src(1) !== beforeOther, consistent: consistent()};
    key('ArrowLeft'); out.left = {step: X.state.step, consistent: consistent()};
    key('ArrowRight'); out.right = {step: X.state.step};
    key('3'); out.key3 = {directions: X.state.panels.map(p => p.direction), consistent: consistent()};
    key('0'); out.key0 = {step: X.state.step};
    key('ArrowRight');
    // switching the method of panel 0 changes what it shows
    const sel = panels()[0].querySelector('select.method'), was = src(0), about = panels()[0].querySelector('.about').textContent;
    const other = data.methods.findIndex(m => m.id === 'control_3');
    sel.value = String(other); sel.dispatchEvent(new Event('change', {bubbles: true}));
    out.method = {shown: X.shown(0).method, changed: src(0) !== was,
                  aboutChanged: panels()[0].querySelector('.about').textContent !== about,
                  label: panels()[0].querySelector('.readout').textContent, consistent: consistent()};
    key(']'); out.latent = {latent: X.state.latent, consistent: consistent()};
    document.getElementById('add-panel').click(); out.added = {panels: panels().length, consistent: consistent()};
    // every image decodes; the shown frame's pixels as the browser decodes them
    const imgs = Array.from(document.images);
    await Promise.all(imgs.map(i => i.decode().catch(() => null)));
    out.images = {total: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length};
    const img = panels()[0].querySelector('img.frame');
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    out.pixels = {shown: X.shown(0), width: c.width, values: Array.from(px.filter((_, j) => j % 4 === 0))};
  } catch (e) { out.exception = String(e) + ' ' + e.stack; }
  out.errors = window.__errors;
  const pre = document.createElement('pre'); pre.id = 'selftest'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_explorer_in_chromium(explorer, demo_dir, tmp_path):
    """The controls work in a real browser: sliders, keys, the method and latent pickers."""
    browser = chromium()
    if browser is None:
        pytest.skip(NO_CHROMIUM)
    data = explorer[0]
    html = (demo_dir / "explorer.html").read_text()
    check = tmp_path / "explorer_check.html"
    check.write_text(html.replace("<head>", "<head>" + _HOOKS, 1).replace("</body>", _SELFTEST + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1366,800", "--enable-logging=stderr",
           "--v=0", "--virtual-time-budget=20000", "--dump-dom", check.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    found = re.search(r"<pre id=\"selftest\">(.*?)</pre>", run.stdout, re.S)
    assert found, f"Chromium did not report (exit {run.returncode}): {run.stderr[-1500:]}"
    out = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                     .replace("&amp;", "&"))
    assert "exception" not in out, out.get("exception")
    assert out["errors"] == []
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]     # the page logs nothing
    assert console == []
    mid = S // 2
    assert out["panels"] >= 2 and len(set(out["methods"])) == out["panels"]
    assert out["initial"] == {"step": mid, "consistent": True}
    assert out["slider"] == {"step": S - 1, "direction": 1, "changed": True, "otherChanged": True, "consistent": True}
    assert out["left"] == {"step": S - 2, "consistent": True} and out["right"] == {"step": S - 1}
    assert out["key3"] == {"directions": [2] * out["panels"], "consistent": True} and out["key0"] == {"step": mid}
    assert out["method"]["shown"] == "control_3" and out["method"]["changed"] and out["method"]["aboutChanged"]
    assert out["method"]["consistent"] and re.search(r"class \d \d+%", out["method"]["label"])
    assert out["latent"] == {"latent": 1, "consistent": True}
    assert out["added"] == {"panels": out["panels"] + 1, "consistent": True}
    assert out["images"] == {"total": len(SEEDS) + out["added"]["panels"] * (1 + S + D), "broken": 0}
    # the browser decodes the shown frame to the page's own (the library's) pixels
    shown = out["pixels"]["shown"]
    m = _method(data, shown["method"])
    expected = _decode(m["frames"][shown["latent"]][shown["direction"]][shown["step"]])[..., 0]
    np.testing.assert_array_equal(np.asarray(out["pixels"]["values"]).reshape(expected.shape), expected)


def test_explorer_screenshot_is_laid_out(explorer, demo_dir, tmp_path):
    """A laptop-sized screenshot: the panels are drawn side by side (not one blank column)."""
    browser = chromium()
    if browser is None:
        pytest.skip(NO_CHROMIUM)
    shot = tmp_path / "explorer.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1366,768", f"--screenshot={shot}",
           "--virtual-time-budget=5000", (demo_dir / "explorer.html").as_uri()]
    subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    img = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert img.shape == (768, 1366)
    # three panels across: dark frames (the digits' black background) in each third of the width
    dark = (img[100:400] < 40).mean(axis=0)
    thirds = [dark[i * 455:(i + 1) * 455].max() for i in range(3)]
    assert min(thirds) > 0.3, thirds
