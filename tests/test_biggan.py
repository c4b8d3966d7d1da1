"""BigGAN-deep: parity with pytorch-pretrained-biggan 0.1.1 (golden data), converter, taps, inputs."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from jaxlatent.converters import CheckpointError
from jaxlatent.converters.biggan import params_from_state_dict, read_biggan
from jaxlatent.models.biggan import (BigGAN, BigGANConfig, statistic_weights, tap_shapes,
                                     truncated_noise_sample)
from jaxlatent.models.biggan.layers import BigGANBatchNorm

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "biggan", "deep32.npz")


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


def _state(g):
    return {k[3:]: g[k].astype(np.float32) if g[k].dtype == np.float16 else g[k]
            for k in g.files if k.startswith("sd:")}


@pytest.fixture(scope="module")
def model(golden):
    config = BigGANConfig.from_package(json.loads(str(golden["config_json"])))
    params, ignored = params_from_state_dict(_state(golden), config, "golden")
    assert ignored == []
    return BigGAN(config, params)


def _write_folder(golden, folder, state=None, config=None):
    torch = pytest.importorskip("torch")
    os.makedirs(folder, exist_ok=True)
    state = _state(golden) if state is None else state
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()},
               os.path.join(folder, "pytorch_model.bin"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(str(golden["config_json"]) if config is None else json.dumps(config))
    return folder


# ----------------------------------------------------------------------------- parity

@pytest.mark.parametrize("t", [0.4, 0.737, 1.0])
def test_images_match_the_package(golden, model, t):
    z = golden[f"z@{t}"]
    labels = golden["labels"]
    assert model.resolution == 32 and model.taps()[-1] == "image"
    out = model.generate(z, labels, truncation=t)  # indices == the package's one-hot rows
    assert out.shape == (4, 3, 32, 32)
    assert _rel(out, golden[f"image_onehot@{t}"]) < 1e-4
    assert _rel(model.generate(z, golden["dense"], truncation=t), golden[f"image_dense@{t}"]) < 1e-4


def test_every_block_output_matches(golden, model):
    t = float(golden["jac_truncation"])
    z = golden[f"z@{t}"][:2]
    taps = model.taps()
    assert taps == ["gen_z"] + [f"layers.{j}" for j in range(8)] + ["image"]
    out = model.features(z, golden["dense"][:2], taps, truncation=t)
    for tap in taps:
        assert out[tap].shape == (2,) + model.tap_shape(tap), tap
        assert _rel(out[tap], golden[f"feat:{tap}"]) < 1e-4, tap
    # the package's module path is accepted too; the attention layer is layers.4
    f = model.fn("generator.layers.4", c=golden["dense"][:2], truncation=t)
    assert _rel(f(z), golden["feat:layers.4"]) < 1e-4


def test_jacobians_match_float64_golden(golden, model):
    t, cls = float(golden["jac_truncation"]), int(golden["jac_class"])
    z = golden["jac_z"]
    f = model.fn("image", c=cls, truncation=t)
    per_sample = lambda z1: f(z1[None])[0].reshape(-1)  # noqa: E731
    jac = jax.jit(jax.vmap(jax.jacfwd(per_sample)))(jnp.asarray(z))
    assert jac.shape == golden["jac_image_z"].shape
    for i in range(len(z)):
        assert _rel(jac[i], golden["jac_image_z"][i]) < 1e-4
    # the condition vector [z, embedding]: its Jacobian holds d/dz and d/d(class embedding), the
    # class space of GAN-Geometry (Wang & Ponce 2021)
    e0 = model.embed(cls)
    h = model.fn("image", truncation=t, wrt="cond")
    cond = jnp.concatenate([jnp.asarray(z[:1]), e0], axis=1)
    jac_c = jax.jacfwd(lambda x: h(x[None])[0].reshape(-1))(cond[0])
    assert _rel(jac_c[:, :16], golden["jac_image_z"][0]) < 1e-4
    assert _rel(jac_c[:, 16:], golden["jac_image_embedding"][0]) < 1e-4
    g = model.fn("image", truncation=t, wrt="class", z=z[0])
    np.testing.assert_allclose(g(e0), f(z[:1]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(h(cond), f(z[:1]), rtol=0, atol=1e-6)


def test_sampler_reproduces_the_package(golden):
    args = json.loads(str(golden["sample_args"]))
    np.testing.assert_array_equal(truncated_noise_sample(**args), golden["sample"])
    for t in (0.4, 0.737, 1.0):
        np.testing.assert_array_equal(truncated_noise_sample(4, 16, t, seed=int(t * 1000)), golden[f"z@{t}"])
    m = BigGAN.init(BigGANConfig(z_dim=16, channel_width=8, num_classes=3,
                                 layers=((False, 16, 8), (True, 8, 4), (True, 4, 2), (True, 2, 1)),
                                 attention_layer_position=9, n_stats=5), jax.random.key(0))
    z = m.sample_latents([7, 8], truncation=0.5)
    np.testing.assert_array_equal(z, np.concatenate([truncated_noise_sample(1, 16, 0.5, s) for s in (7, 8)]))
    assert np.abs(z).max() <= 1.0 and z.dtype == np.float32
    # the standard unit of interventions on z: the draws' standard deviation
    draws = truncated_noise_sample(2000, 16, 0.5, seed=3)
    assert abs(m.latent_std(0.5) - 0.5 * 0.8796) < 1e-4 and abs(draws.std() - m.latent_std(0.5)) < 0.005


# ----------------------------------------------------------------------------- inputs

def test_class_forms_agree(golden, model):
    z = golden["z@0.4"]  # the batch size of the parity tests: their compiled program
    by_index = model.generate(z, np.array([2, 2, 2, 2]), truncation=0.4)
    for c in (2, np.eye(10, dtype=np.float32)[2], np.eye(10, dtype=np.float32)[[2, 2, 2, 2]], [2, 2, 2, 2]):
        np.testing.assert_allclose(model.generate(z, c, truncation=0.4), by_index, rtol=0, atol=1e-6)
    dense = golden["dense"]
    mixed = model.generate(z, dense, truncation=0.4)
    manual = jax.jit(model.module.apply, static_argnums=3)(model.variables, jnp.asarray(z), jnp.asarray(dense), 0.4)
    np.testing.assert_allclose(mixed, manual, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="class-conditional"):
        model.generate(z, None)
    with pytest.raises(ValueError, match="out of range"):
        model.generate(z, 10)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        model.generate(z, np.ones((3, 7), np.float32))
    with pytest.raises(ValueError, match="batch of 4"):
        model.generate(z, [1, 2])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        model.generate(z, 1, truncation=0.0)


def test_truncation_mixes_statistic_rows_in_the_package_order():
    # the package: coef, start = modf(t / (1 / (n - 1))); row[start] * coef + row[start + 1] * (1 - coef)
    assert statistic_weights(1.0, 51) == (50, None)
    assert statistic_weights(0.4, 51) == (20, None)
    start, coef = statistic_weights(0.737, 51)
    assert start == 36 and math.isclose(coef, 0.85, abs_tol=1e-9)
    n, c = 5, 3
    means = np.arange(n * c, dtype=np.float32).reshape(n, c)
    variances = np.ones((n, c), np.float32)
    bn = BigGANBatchNorm(c, None, n, 0.0)
    params = {"params": {"running_means": means, "running_vars": variances,
                         "weight": np.ones(c, np.float32), "bias": np.zeros(c, np.float32)}}
    x = np.zeros((1, c, 1, 1), np.float32)
    t = 0.3  # t * 4 = 1.2: rows 1 and 2 with weights 0.2 (sic) and 0.8
    out = np.asarray(bn.apply(params, x, t))[0, :, 0, 0]
    coef = math.modf(t / (1.0 / (n - 1)))[0]
    want = means[1] * np.float32(coef) + means[2] * np.float32(1 - coef)
    np.testing.assert_allclose(-out, want, rtol=1e-6)
    assert not np.allclose(-out, means[1] * 0.8 + means[2] * 0.2)  # not the textbook interpolation


# ----------------------------------------------------------------------------- taps and purity

def test_fn_is_pure_and_composes(golden, model):
    z = jnp.asarray(golden["z@1.0"])
    f = model.fn("layers.4", c=3, truncation=1.0)
    assert isinstance(f, jax.tree_util.Partial)
    leaves = jax.tree_util.tree_leaves(f)
    assert any(leaf is model.params["embeddings"]["weight"] for leaf in leaves)
    y = jax.jit(lambda fn, x: fn(x))(f, z)
    np.testing.assert_allclose(y, f(z), rtol=0, atol=1e-5)
    yv = jax.vmap(lambda z1: f(z1[None])[0])(z)
    np.testing.assert_allclose(yv, y, rtol=0, atol=1e-5)
    assert model.fn("gen_z", c=3)(z).shape == (4,) + tap_shapes(model.config)["gen_z"]
    with pytest.raises(jaxlatent.UnknownTapError, match="known taps"):
        model.fn("layers.99", c=1)
    with pytest.raises(ValueError, match="wrt"):
        model.fn("image", c=1, wrt="w")
    with pytest.raises(ValueError, match="fixed latent"):
        model.fn("image", wrt="class")
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        f(jnp.zeros((2, 15)))


# ----------------------------------------------------------------------------- files

def test_folder_loads_and_round_trips(golden, model, tmp_path):
    folder = _write_folder(golden, str(tmp_path / "biggan-deep-32"))
    loaded = jaxlatent.load(folder)
    assert loaded.config == model.config and loaded.config.family == "biggan"
    assert loaded.source["format"] == "pytorch-pretrained-biggan"
    z = golden["z@0.737"]
    assert _rel(loaded.generate(z, golden["dense"], 0.737), golden["image_dense@0.737"]) < 1e-4
    # the two files given directly (a hashed cache name, no extension) and a .bin with config=
    direct = read_biggan(os.path.join(folder, "pytorch_model.bin"))
    assert direct.source["config_file"] == os.path.join(folder, "config.json")
    out = jaxlatent.save(loaded, tmp_path / "converted")
    again = jaxlatent.load(out)
    assert again.config == loaded.config and again.config.layers == model.config.layers
    np.testing.assert_array_equal(again.generate(z, 1, 0.4), loaded.generate(z, 1, 0.4))
    assert json.loads(open(os.path.join(out, "config.json")).read())["family"] == "biggan"


def test_package_cache_is_found_by_model_name(golden, tmp_path):
    folder = _write_folder(golden, str(tmp_path / "src"))
    cache = tmp_path / "cache"
    cache.mkdir()
    base = "https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-32"
    for name, url_tail, hashed in (("pytorch_model.bin", "-pytorch_model.bin", "a1b2"),
                                   ("config.json", "-config.json", "c3d4")):
        os.link(os.path.join(folder, name), cache / hashed)
        (cache / f"{hashed}.json").write_text(json.dumps({"url": base + url_tail, "etag": None}))
    model = jaxlatent.load(cache)  # one model in the cache: no name needed
    assert model.config.channel_width == 8
    assert jaxlatent.load(cache, which="biggan-deep-32").source["file"] == str(cache / "a1b2")
    with pytest.raises(CheckpointError, match="biggan-deep-32"):
        jaxlatent.load(cache, which="biggan-deep-256")
    hashed = jaxlatent.load(cache / "a1b2", config=cache / "c3d4")
    assert hashed.config == model.config


def test_converter_errors_name_file_and_key(golden, tmp_path):
    state = _state(golden)
    config = json.loads(str(golden["config_json"]))
    missing = dict(state)
    del missing["generator.layers.4.gamma"]
    folder = _write_folder(golden, str(tmp_path / "missing"), state=missing)
    with pytest.raises(CheckpointError, match=r"missing.*pytorch_model\.bin.*|generator\.layers\.4\.gamma"):
        jaxlatent.load(folder)
    try:
        jaxlatent.load(folder)
    except CheckpointError as err:
        assert "pytorch_model.bin" in str(err) and "'generator.layers.4.gamma'" in str(err)
    no_v = {k: v for k, v in state.items() if k != "generator.gen_z.weight_v"}
    folder = _write_folder(golden, str(tmp_path / "no_v"), state=no_v)
    with pytest.raises(CheckpointError, match="generator.gen_z.weight_v"):
        jaxlatent.load(folder)
    wrong = dict(state)
    wrong["embeddings.weight"] = np.zeros((16, 11), np.float32)
    folder = _write_folder(golden, str(tmp_path / "wrong"), state=wrong)
    with pytest.raises(CheckpointError, match=r"'embeddings.weight' has shape \(16, 11\), expected \(16, 10\)"):
        jaxlatent.load(folder)
    bad_config = dict(config, channel_width=16)  # weights made for width 8
    folder = _write_folder(golden, str(tmp_path / "badcfg"), config=bad_config)
    with pytest.raises(CheckpointError, match="expected"):
        jaxlatent.load(folder)
    folder = _write_folder(golden, str(tmp_path / "trunc"))
    weights = os.path.join(folder, "pytorch_model.bin")
    data = open(weights, "rb").read()
    with open(weights, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        jaxlatent.load(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write('{"z_dim": 16}')
    with pytest.raises(CheckpointError, match="config.json"):
        read_biggan(folder)
