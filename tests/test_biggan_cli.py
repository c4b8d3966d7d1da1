"""The command line on a pytorch-pretrained-biggan folder: the commands run with a class and a
truncation; flags that do not apply stop before any work with a message that says why (every
command on a BigGAN: tests/test_families.py)."""

import json
import os

import numpy as np
import pytest

import jaxlatent
import jaxlatent.cli

torch = pytest.importorskip("torch")

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "biggan", "deep32.npz")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    g = np.load(GOLDEN)
    path = tmp_path_factory.mktemp("biggan") / "biggan-deep-32"
    path.mkdir()
    state = {k[3:]: torch.from_numpy(g[k].astype(np.float32) if g[k].dtype == np.float16 else g[k])
             for k in g.files if k.startswith("sd:")}
    torch.save(state, path / "pytorch_model.bin")
    (path / "config.json").write_text(str(g["config_json"]))
    return str(path)


def _error(capsys):
    return capsys.readouterr().err


def test_convert_and_analyses_with_a_class(folder, tmp_path, capsys):
    main = jaxlatent.cli.main
    assert main(["convert", folder, str(tmp_path / "conv")]) == 0
    assert jaxlatent.load(tmp_path / "conv").config.family == "biggan"
    out = tmp_path / "lb"
    assert main(["local-basis", folder, "--seeds", "0-1", "--class", "3", "--trunc", "0.5",
                 "--tap", "gen_z", "--k", "4", "--out", str(out)]) == 0
    arrays = np.load(out / "local_basis.npz")
    model = jaxlatent.load(folder)
    # the latents are the package's truncated draws at --trunc
    np.testing.assert_array_equal(arrays["z"], model.sample_latents([0, 1], truncation=0.5))
    assert arrays["singular_values"].shape == (2, 4)
    out = tmp_path / "ld"
    assert main(["local-dim", folder, "--seeds", "0-1", "--class", "3", "--taps", "gen_z",
                 "--out", str(out)]) == 0
    assert "gen_z" in json.loads((out / "results.json").read_text())["taps"]


def test_commands_refuse_what_they_cannot_do(folder, tmp_path, capsys):
    main = jaxlatent.cli.main
    assert main(["local-dim", folder, "--seeds", "0", "--taps", "gen_z", "--out", str(tmp_path / "a")]) == 2
    assert "pass --class 0..9" in _error(capsys)
    # no mapping network: the default tap is the first one, gen_z
    assert main(["local-dim", folder, "--seeds", "0", "--class", "1", "--out", str(tmp_path / "a")]) == 0
    assert "gen_z" in capsys.readouterr().out
    # the metric is taken in z by default (BigGAN has no W); W is refused with what to pass
    assert main(["geometry", folder, "--seeds", "0", "--class", "1", "--space", "w",
                 "--out", str(tmp_path / "b")]) == 2
    assert "--space z" in _error(capsys)
    # the report needs the class too; the correlation analysis needs the user's classifier
    assert main(["report", folder, "--quick", "--out", str(tmp_path / "c")]) == 2
    assert "pass --class 0..9" in _error(capsys)
    assert main(["correlation", folder, "--class", "1", "--out", str(tmp_path / "c")]) == 2
    assert "--classifier DIR is needed" in _error(capsys)
    assert not (tmp_path / "c").exists()
    assert main(["generate", folder, "--seeds", "0", "--class", "1", "--noise-mode", "none",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "--noise-mode do not apply to BigGAN" in _error(capsys)
