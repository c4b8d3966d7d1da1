"""FastGAN .pth reader: the three official layouts, EMA/raw choice, spectral norm, errors."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxlatent.converters import CheckpointError  # noqa: E402
from flax.traverse_util import flatten_dict  # noqa: E402

from jaxlatent.converters.fastgan import (  # noqa: E402
    fold_spectral_norm, params_from_state_dict, parameter_names, read_fastgan)
from jaxlatent.io import model_from_converted  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "fastgan")


@pytest.fixture(scope="module")
def golden():
    g = np.load(os.path.join(GOLDEN, "fg256.npz"))
    state = {k[3:]: g[k] for k in g.files if k.startswith("sd:")}
    return g, state


def _tensors(state, prefix=""):
    return {prefix + k: torch.from_numpy(np.asarray(v, np.float32 if v.dtype == np.float16 else v.dtype))
            for k, v in state.items()}


def _raw_variant(state):
    """Different 'raw' weights: batch-norm scales and noise strengths changed (spectral norm
    would cancel a plain rescaling of weight_orig)."""
    raw = dict(state)
    for k in parameter_names(state):
        if not k.endswith("weight_orig"):
            raw[k] = (state[k].astype(np.float32) * 1.5 + 0.01).astype(np.float32)
    return raw


def load_fastgan(path, **options):
    return model_from_converted(read_fastgan(path, **options))


def _same(params_a, params_b):
    a, b = flatten_dict(params_a, sep="."), flatten_dict(params_b, sep=".")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_per_iteration_file_with_module_prefix(golden, tmp_path):
    g, state = golden
    path = tmp_path / "50000.pth"
    torch.save({"g": _tensors(state, "module."), "d": {"module.x.weight": torch.zeros(2)}}, path)
    model = load_fastgan(path)
    assert model.source["layout"] == "per-iteration" and model.source["weights"] == "ema"
    config, params = params_from_state_dict(state)
    assert model.config == config
    _same(model.params, params)
    init = model.features(g["z"], ("init",))["init"]
    assert np.linalg.norm(np.asarray(init) - g["init"]) / np.linalg.norm(g["init"]) < 1e-5
    with pytest.raises(CheckpointError, match="only the EMA weights"):
        read_fastgan(path, weights="raw")
    assert load_fastgan(path, which="g").source["weights"] == "ema"


def test_all_file_ema_list_in_parameter_order(golden, tmp_path):
    _, state = golden
    raw = _raw_variant(state)
    names = list(golden[0]["param_names"])
    assert parameter_names(state) == names
    ema = [torch.from_numpy(state[n].astype(np.float32)) for n in names]
    path = tmp_path / "all_50000.pth"
    torch.save({"g": _tensors(raw, "module."), "d": {}, "g_ema": ema, "opt_g": {"state": {}},
                "opt_d": {"state": {}}}, path)
    _, ema_params = params_from_state_dict(state)
    _, raw_params = params_from_state_dict(raw)
    model = load_fastgan(path)
    assert model.source["weights"] == "ema" and model.source["layout"] == "all"
    _same(model.params, ema_params)
    for which in ({"weights": "raw"}, {"which": "g"}, {"which": "raw"}):
        model = load_fastgan(path, **which)
        assert model.source["weights"] == "raw"
        _same(model.params, raw_params)
    torch.save({"g": _tensors(raw), "g_ema": ema[:-1]}, path)
    with pytest.raises(CheckpointError, match="holds 43 tensors but the generator .g. has 44"):
        read_fastgan(path)
    torch.save({"g": _tensors(raw), "g_ema": ema[1:] + ema[:1]}, path)
    with pytest.raises(CheckpointError, match="'g_ema' entry for init.init.0.weight_orig has shape"):
        read_fastgan(path)


def test_bare_state_dict_and_config_checks(golden, tmp_path):
    _, state = golden
    path = tmp_path / "G.pth"
    torch.save(_tensors(state), path)
    converted = read_fastgan(path)
    assert converted.source["weights"] == "unknown" and converted.source["layout"] == "state_dict"
    assert (converted.config.im_size, converted.config.nz, converted.config.ngf) == (256, 16, 8)
    with pytest.raises(CheckpointError, match=r"im_size=1024 was requested .* im_size=256"):
        read_fastgan(path, im_size=1024)
    with pytest.raises(CheckpointError, match="nz=32"):
        read_fastgan(path, nz=32)

    broken = dict(state)
    del broken["feat_16.1.weight_orig"]
    broken["init.init.1.running_mean"] = np.zeros(3, np.float32)
    torch.save(_tensors(broken), path)
    with pytest.raises(CheckpointError, match=r"missing keys \['feat_16\.1\.weight'\].*init\.init\.1\.running_mean"):
        read_fastgan(path)

    torch.save({"generator": 1, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="not a FastGAN checkpoint"):
        read_fastgan(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="G.pth"):
        read_fastgan(path)


def test_spectral_norm_matches_torch_eval_mode():
    torch.manual_seed(0)
    convs = {
        "conv": torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 10, 3, bias=False)),
        "init.init.0": torch.nn.utils.spectral_norm(torch.nn.ConvTranspose2d(7, 12, 4, bias=False)),
    }
    for name, mod in convs.items():
        mod.train()
        x = torch.randn(2, mod.weight_orig.shape[1 if name == "conv" else 0], 5, 5)
        for _ in range(3):
            mod(x)  # power iterations move u, v off their initial draw
        mod.eval()
        with torch.no_grad():
            mod(x)  # the pre-hook sets mod.weight from the stored u, v
        state = {f"{name}.{k}": v.numpy() for k, v in mod.state_dict().items()}
        folded = fold_spectral_norm(state)
        assert list(folded) == [f"{name}.weight"]
        np.testing.assert_allclose(folded[f"{name}.weight"], mod.weight.detach().numpy(), rtol=2e-6, atol=1e-8)


def test_jaxlatent_load_and_save_round_trip(golden, tmp_path):
    io = pytest.importorskip("jaxlatent.io")
    _, state = golden
    path = tmp_path / "100.pth"
    torch.save({"g": _tensors(state, "module."), "d": {}}, path)
    model = io.load(str(path))
    assert type(model).__name__ == "FastGAN" and model.source["weights"] == "ema"
    out = io.save(model, tmp_path / "converted")
    back = io.load(out)
    assert back.config == model.config and back.config.family == "fastgan"
    _same(back.params, model.params)


def test_cli_convert_and_generate_fastgan(golden, tmp_path, monkeypatch, capsys):
    """`jaxlatent convert` / `generate` on a FastGAN .pth: the grid is the library's images."""
    import jaxlatent
    import jaxlatent.cli
    from jaxlatent.engine.latents import latents_from_seeds

    monkeypatch.setattr(jaxlatent.cli, "_COMMAND_MODULES", ("jaxlatent.cli.convert", "jaxlatent.cli.generate"))
    g, state = golden
    pth = tmp_path / "all_50000.pth"
    torch.save({"g": _tensors(state)}, pth)
    conv = tmp_path / "conv"
    assert jaxlatent.cli.main(["convert", str(pth), str(conv)]) == 0
    model = jaxlatent.load(conv)
    from PIL import Image

    from jaxlatent.report import plots as viz

    for bn in ("running", "batch"):
        out = tmp_path / f"grid_{bn}.png"
        argv = ["generate", str(conv), "--seeds", "0-1", "--noise-mode", "none", "--batchnorm", bn,
                "--out", str(out), "--nrow", "2", "--chunk-size", "2"]
        assert jaxlatent.cli.main(argv) == 0
        z = latents_from_seeds([0, 1], model.z_dim)
        want = viz.image_grid(np.asarray(model.generate(z, noise_mode="none", batchnorm=bn)), nrow=2)
        got = np.asarray(Image.open(out))
        assert np.abs(got.astype(int) - want.reshape(got.shape).astype(int)).max() <= 1
    assert jaxlatent.cli.main(["generate", str(conv), "--trunc", "0.7", "--out", str(tmp_path / "x.png")]) == 2
    assert "StyleGAN2 models only" in capsys.readouterr().err
