"""jaxlatent.load / jaxlatent.save: format sniffing, orbax + JSON round trip, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax.traverse_util import unflatten_dict

import jaxlatent
from jaxlatent import io
from jaxlatent.converters import CheckpointError
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from helpers import random_stylegan2

CONFIG = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=2, channel_base=64,
                         channel_max=8, c_dim=2)




@pytest.fixture(scope="module")
def model():
    return random_stylegan2(CONFIG, 0)


@pytest.fixture()
def saved(model, tmp_path):
    return io.save(model, tmp_path / "conv", source={"format": "test", "file": "none"})


def test_round_trip_is_bitwise(model, saved):
    # no file of the checkpoint names the machine path it was written to (orbax's commit marker)
    for root, _, files in os.walk(saved):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                assert str(saved).encode() not in fh.read(), name
    loaded = jaxlatent.load(saved)
    assert loaded.config == model.config
    assert loaded.source == {"format": "test", "file": "none"}
    z = np.random.RandomState(1).randn(3, 8).astype(np.float32)
    c = np.eye(2, dtype=np.float32)[[0, 1, 1]]
    np.testing.assert_array_equal(loaded.mapping(z, c, truncation_psi=0.7), model.mapping(z, c, truncation_psi=0.7))
    np.testing.assert_array_equal(loaded.generate(z, c), model.generate(z, c))
    leaves = jax.tree_util.tree_leaves_with_path(loaded.params)
    ref = dict(jax.tree_util.tree_leaves_with_path(model.params))
    for path, leaf in leaves:
        assert np.asarray(leaf).dtype == np.float32 and np.shape(leaf) == np.shape(ref[path])
    record = json.loads((saved / "config.json").read_text() if hasattr(saved, "read_text")
                        else open(os.path.join(saved, "config.json")).read())
    assert record["format_version"] == io.FORMAT_VERSION and record["family"] == "stylegan2"


def test_save_refuses_non_empty_dir(model, saved):
    with pytest.raises(FileExistsError):
        io.save(model, saved)
    io.save(model, saved, overwrite=True)
    assert jaxlatent.load(saved).config == model.config


def test_partial_or_corrupt_directories(saved, tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        jaxlatent.load(tmp_path)  # a directory, but not a converted model
    config_path = os.path.join(saved, "config.json")
    record = json.load(open(config_path))

    def write(rec):
        with open(config_path, "w") as f:
            json.dump(rec, f)

    write(dict(record, format_version=99))
    with pytest.raises(CheckpointError, match="format version 99"):
        jaxlatent.load(saved)
    write(dict(record, config=dict(record["config"], w_dim=16)))
    with pytest.raises(CheckpointError, match=r"params do not match.*mapping\.fc0\.weight: \(8, 16\) \(expected \(16, 24\)\)"):
        jaxlatent.load(saved)
    write(dict(record, family="stylegan3"))
    with pytest.raises(CheckpointError, match="unknown model family 'stylegan3'"):
        jaxlatent.load(saved)
    with open(config_path, "w") as f:
        f.write("{not json")
    with pytest.raises(CheckpointError, match="unreadable JSON"):
        jaxlatent.load(saved)
    write(record)
    for name in os.listdir(os.path.join(saved, "params")):
        if name.startswith("manifest") or name == "_METADATA":
            os.remove(os.path.join(saved, "params", name))
    with pytest.raises(CheckpointError, match="orbax checkpoint unreadable or incomplete"):
        jaxlatent.load(saved)
    import shutil

    shutil.rmtree(os.path.join(saved, "params"))
    with pytest.raises(CheckpointError, match="missing params/"):
        jaxlatent.load(saved)


def test_unsupported_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        jaxlatent.load(tmp_path / "nope.pkl")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"\x89HDF")
    with pytest.raises(CheckpointError, match=r"weights\.h5.*unsupported checkpoint type '\.h5'.*NVlabs"):
        jaxlatent.load(other)


def test_torch_files_that_are_not_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.RandomState(0).bytes(1000))
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        jaxlatent.load(junk)
    other = tmp_path / "resnet.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointError, match=r"resnet\.pth.*neither rosinality.*nor FastGAN.*'model'"):
        jaxlatent.load(other)
    data = other.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt.*truncated"):
        jaxlatent.load(cut)
    code = tmp_path / "code.pt"
    torch.save({"g_ema": {"x": torch.zeros(1)}, "hook": os.getcwd}, code, _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointError, match=r"code\.pt.*not a readable PyTorch checkpoint"):
        jaxlatent.load(code)


def test_sniffing():
    fastgan = {"g": {"module.init.init.0.weight_orig": 0}, "d": {}}
    assert io.sniff_torch_object(fastgan) == "fastgan"
    assert io.sniff_torch_object({"init.init.0.weight_orig": 0}) == "fastgan"
    ros = {"style.1.weight": 0, "input.input": 0, "conv1.conv.weight": 0}
    assert io.sniff_torch_object({"g_ema": ros, "latent_avg": 0}) == "rosinality"
    assert io.sniff_torch_object(ros) == "rosinality"
    assert io.sniff_torch_object({"state_dict": {}}) is None


def test_import_and_converted_load_without_torch(saved, tmp_path):
    pt = tmp_path / "x.pt"
    pt.write_bytes(b"PK")
    pkl = tmp_path / "x.pkl"
    pkl.write_bytes(b"\x80\x04.")
    script = (
        # torch is not installed: every import of it fails (sys.modules stays without it, as
        # scipy.stats, which jaxlatent imports, expects of a module that is absent)
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import jaxlatent, jaxlatent.converters.nvlabs, jaxlatent.converters.rosinality\n"
        f"m = jaxlatent.load({str(saved)!r}); print(m.config.img_resolution)\n"
        "from jaxlatent.converters import CheckpointError\n"
        f"for p in ({str(pt)!r}, {str(pkl)!r}):\n"
        "    try:\n        jaxlatent.load(p)\n    except CheckpointError as e:\n        print(e)\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "8"
    assert lines[1].startswith(str(pt)) and "needs PyTorch" in lines[1]
    assert lines[2].startswith(str(pkl)) and "needs PyTorch" in lines[2]


def test_fastgan_files_go_to_the_fastgan_reader(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    calls = []

    def convert(obj, path, **options):
        calls.append((sorted(obj), path, options))
        raise CheckpointError("stop here")

    monkeypatch.setattr(io, "_CONVERT", dict(io._CONVERT, fastgan=convert))
    path = tmp_path / "all_1000.pth"
    torch.save({"g": {"init.init.0.weight_orig": torch.zeros(1)}, "g_ema": [torch.zeros(1)]}, path)
    with pytest.raises(CheckpointError, match="stop here"):
        jaxlatent.load(path, which="raw", im_size=256)
    assert calls == [(["g", "g_ema"], str(path), {"which": "raw", "im_size": 256})]


def test_fastgan_round_trip(tmp_path):
    from jaxlatent.models.fastgan import model as fastgan

    config = fastgan.FastGANConfig(im_size=256, nz=8, ngf=2)
    rng = np.random.RandomState(0)
    params = unflatten_dict({k: np.asarray(rng.randn(*s), np.float32)
                            for k, s in fastgan.expected_shapes(config).items()}, sep=".")
    model = fastgan.FastGAN(config, params, source={"format": "test"})
    loaded = jaxlatent.load(io.save(model, tmp_path / "fg"))
    assert loaded.config == model.config and loaded.source == {"format": "test"}
    flat = dict(jax.tree_util.tree_leaves_with_path(loaded.params))
    for key, leaf in jax.tree_util.tree_leaves_with_path(model.params):
        np.testing.assert_array_equal(np.asarray(flat[key]), np.asarray(leaf))
