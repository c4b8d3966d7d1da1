"""``jaxlatent convert`` / ``jaxlatent generate``: seed ranges, a full run, error exits."""

from __future__ import annotations

import os

import numpy as np
import pytest

import jaxlatent
import jaxlatent.cli
from jaxlatent.engine.latents import latents_from_seeds, parse_seeds
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from helpers import random_stylegan2

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "rosinality", "small32.npz")




@pytest.fixture()
def cli(monkeypatch):
    # only this command group: the others are tested in their own files
    monkeypatch.setattr(jaxlatent.cli, "_COMMAND_MODULES", ("jaxlatent.cli.convert", "jaxlatent.cli.generate"))
    return jaxlatent.cli.main


def test_parse_seeds():
    assert parse_seeds("0-3,7,10-12") == [0, 1, 2, 3, 7, 10, 11, 12]
    assert parse_seeds("5") == [5]
    assert parse_seeds(" 2 , 0-1") == [2, 0, 1]
    for bad in ("a-b", "3-1", "", "1,,2", "-1", "1-2-3"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_latents_follow_nvlabs_convention():
    z = latents_from_seeds([3, 0], 5)
    assert z.dtype == np.float32 and z.shape == (2, 5)
    np.testing.assert_array_equal(z[0], np.random.RandomState(3).randn(5).astype(np.float32))


@pytest.fixture(scope="module")
def rosinality_pt(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="writing a .pt checkpoint needs torch")
    g = np.load(GOLDEN)
    sd = {k[len("g_ema/"):]: torch.from_numpy(g[k]) for k in g.files if k.startswith("g_ema/")}
    path = tmp_path_factory.mktemp("cli") / "ros.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.from_numpy(g["latent_avg"])}, path)
    return path


def test_convert_then_generate(cli, rosinality_pt, tmp_path, capsys):
    from PIL import Image

    from jaxlatent.report import plots as viz

    out_dir = tmp_path / "converted"
    assert cli(["convert", str(rosinality_pt), str(out_dir)]) == 0
    assert (out_dir / "config.json").exists() and (out_dir / "params").is_dir()
    grid = tmp_path / "grid.png"
    assert cli(["generate", str(out_dir), "--seeds", "0-2,9,4", "--trunc", "0.7",
                "--out", str(grid), "--chunk-size", "2"]) == 0
    model = jaxlatent.load(out_dir)
    z = latents_from_seeds([0, 1, 2, 9, 4], 32)
    expected = viz.save_image_grid(np.asarray(model.generate(z, truncation_psi=0.7)), tmp_path / "ref.png")
    # the CLI ran batches of 2, the reference one batch of 5: two compiled programs whose float32
    # rounding differs (which kernels XLA picks depends on the batch and the CPU), so a pixel lying
    # on a rounding boundary of the 8-bit quantisation may move by one level; any larger change, or
    # more than 1 % of the pixels moving, would be a real difference
    got = np.asarray(Image.open(grid)).astype(np.int16)
    want = np.asarray(Image.open(expected)).astype(np.int16)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1)
    assert np.mean(got != want) < 0.01
    assert "wrote 5 images" in capsys.readouterr().out


def test_generate_conditional_needs_class(cli, tmp_path, capsys):
    config = StyleGAN2Config(z_dim=4, w_dim=4, c_dim=3, img_resolution=4, mapping_layers=1,
                             channel_base=32, channel_max=4)
    out_dir = jaxlatent.save(random_stylegan2(config, 0), tmp_path / "cond")
    grid = tmp_path / "grid.png"
    assert cli(["generate", out_dir, "--seeds", "0-1", "--out", str(grid)]) == 2
    assert "pass --class 0..2" in capsys.readouterr().err
    assert cli(["generate", out_dir, "--seeds", "0-1", "--class", "2", "--noise-mode", "none",
                "--out", str(grid)]) == 0
    assert grid.exists()


def test_bad_inputs_exit_2(cli, tmp_path, capsys):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"this is not a pickle\n")
    assert cli(["convert", str(junk), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "jaxlatent convert: error:" in err and "junk.pkl" in err
    assert cli(["generate", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "g.png")]) == 2
    assert "missing.pkl" in capsys.readouterr().err
    assert cli(["generate", str(junk), "--seeds", "x", "--out", str(tmp_path / "g.png")]) == 2


def test_convert_refuses_non_empty_output(cli, tmp_path, capsys):
    config = StyleGAN2Config(z_dim=4, w_dim=4, img_resolution=4, mapping_layers=1,
                             channel_base=32, channel_max=4)
    src = jaxlatent.save(random_stylegan2(config, 0), tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    assert cli(["convert", src, str(tmp_path / "b")]) == 2
    assert "not empty" in capsys.readouterr().err
