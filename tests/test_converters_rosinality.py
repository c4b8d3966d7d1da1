"""rosinality stylegan2-pytorch .pt -> StyleGAN2: parity with rosinality's own outputs.

Golden data: ``tests/golden/rosinality/small32.npz`` (see its README): state dict,
latents and outputs of rosinality's ``Generator`` run on CPU. The test saves the
state dict as a real ``.pt`` with ``torch.save`` and opens it through ``jaxlatent.load``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="writing a .pt checkpoint needs torch")

import jaxlatent  # noqa: E402
from jaxlatent.converters import CheckpointError  # noqa: E402
from jaxlatent.converters.rosinality import channel_options, infer_options  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "rosinality", "small32.npz")


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def golden():
    data = np.load(GOLDEN)
    return {k: data[k] for k in data.files}


def state_dict(golden):
    return {k[len("g_ema/"):]: torch.from_numpy(v.copy()) for k, v in golden.items() if k.startswith("g_ema/")}


@pytest.fixture(scope="module")
def checkpoint(golden, tmp_path_factory):
    path = tmp_path_factory.mktemp("ros") / "stylegan2.pt"
    torch.save({"g_ema": state_dict(golden), "latent_avg": torch.from_numpy(golden["latent_avg"])}, path)
    return path


@pytest.fixture(scope="module")
def model(checkpoint):
    return jaxlatent.load(checkpoint)


def test_config_inferred_from_shapes(model):
    c = model.config
    assert (c.img_resolution, c.z_dim, c.w_dim, c.mapping_layers) == (32, 32, 32, 4)
    assert c.channels == (32, 32, 24, 16) and c.architecture == "skip" and c.conv_clamp is None
    assert model.source["format"] == "rosinality-pt" and model.source["network"] == "g_ema"


def test_mapping_matches(model, golden):
    z = golden["z"]
    ws = np.asarray(model.mapping(z))
    assert ws.shape == (4, 8, 32)
    assert rel(ws[:, 0], golden["w"]) < 1e-5
    for i in range(4):
        assert rel(model.fn(f"mapping.fc{i}")(z), golden[f"mapping_fc{i}"]) < 1e-5


@pytest.mark.parametrize("psi,key", [(1.0, "img_psi1"), (0.7, "img_psi07")])
@pytest.mark.parametrize("noise_mode", ["const", "none"])
def test_images_match(model, golden, psi, key, noise_mode):
    if noise_mode == "none":
        key += "_nonoise"
    image = model.generate(golden["z"], truncation_psi=psi, noise_mode=noise_mode)
    assert rel(image, golden[key]) < 1e-4


def test_truncation_target_is_latent_avg(model, golden):
    np.testing.assert_array_equal(np.asarray(model.params["mapping"]["w_avg"]), golden["latent_avg"])


def test_bare_state_dict_and_g_entry(golden, tmp_path):
    bare = tmp_path / "bare.pt"
    torch.save({f"module.{k}": v for k, v in state_dict(golden).items()}, bare)
    m = jaxlatent.load(bare)
    assert rel(m.mapping(golden["z"])[:, 0], golden["w"]) < 1e-5
    assert not np.any(np.asarray(m.params["mapping"]["w_avg"]))
    assert "w_avg set to zeros" in m.source["notes"][0]
    both = tmp_path / "train.pt"
    sd = state_dict(golden)
    g = {k: v + 1 if k == "style.1.bias" else v for k, v in sd.items()}
    torch.save({"g": g, "g_ema": sd, "d": {}, "args": __import__("argparse").Namespace(size=32)}, both)
    m_g = jaxlatent.load(both, which="g")
    np.testing.assert_array_equal(np.asarray(m_g.params["mapping"]["fc0"]["bias"]), sd["style.1.bias"].numpy() + 1)


def test_standard_channel_table():
    assert channel_options({4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}) == dict(
        channel_base=32768, channel_max=512)
    assert channel_options({4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128}) == dict(
        channel_base=16384, channel_max=512)
    assert channel_options({4: 512, 8: 512}) == dict(channel_base=32768, channel_max=512)
    assert channel_options({4: 32, 8: 16}) == dict(channels=(32, 16))


def test_missing_and_misshapen_keys(golden, tmp_path):
    sd = state_dict(golden)
    sd["to_rgbs.1.conv.weight"] = torch.zeros(1, 3, 5, 1, 1)
    path = tmp_path / "broken.pt"
    torch.save({"g_ema": sd}, path)
    with pytest.raises(CheckpointError, match=r"broken\.pt.*'to_rgbs\.1\.conv\.weight' has shape \(1, 3, 5, 1, 1\), expected \(1, 3, 24, 1, 1\)"):
        jaxlatent.load(path)
    sd["to_rgbs.1.conv.weight"] = torch.zeros(1, 3, 24, 1, 1)
    del sd["convs.2.conv.modulation.bias"]
    torch.save({"g_ema": sd}, path)
    with pytest.raises(CheckpointError, match=r"broken\.pt.*missing key 'convs\.2\.conv\.modulation\.bias'"):
        jaxlatent.load(path)


def test_infer_options_on_shapes_only():
    shapes = {"style.1.weight": (16, 16), "style.2.weight": (16, 16), "input.input": (1, 8, 4, 4),
              "convs.0.conv.weight": (1, 4, 8, 3, 3), "to_rgbs.0.conv.weight": (1, 3, 4, 1, 1)}
    state = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    assert infer_options(state, "x.pt") == dict(size=8, style_dim=16, n_mlp=2, channels={4: 8, 8: 4})
