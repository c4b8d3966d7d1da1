"""FastGAN model: parity with the author's code (golden data), modes, taps, purity, errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from jaxlatent.converters.fastgan import params_from_state_dict
from jaxlatent.models.fastgan.model import FastGAN, FastGANConfig, expected_shapes

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "fastgan")


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _golden(name):
    g = np.load(os.path.join(GOLDEN, f"{name}.npz"))
    state = {k[3:]: g[k] for k in g.files if k.startswith("sd:")}
    config, params = params_from_state_dict(state, name)
    model = FastGAN(config, params)
    batch = len(g["z"])
    noise = [np.random.default_rng(int(g["noise_seed"]) + i).standard_normal((batch, 1) + hw).astype(np.float32)
             for i, hw in enumerate(config.noise_shapes)]
    np.testing.assert_allclose([n.astype(np.float64).sum() for n in noise], g["noise_sums"], rtol=1e-10,
                               err_msg="numpy's normal stream changed: golden noise cannot be redrawn")
    return g, model, noise


@pytest.fixture(scope="module")
def tiny():
    return FastGAN.init(FastGANConfig(im_size=256, nz=8, ngf=4), jax.random.key(1))


@pytest.mark.parametrize("name,im_size", [("fg256", 256), ("fg1024", 1024)])
def test_golden_parity(name, im_size):
    g, model, noise = _golden(name)
    assert model.config.im_size == im_size and model.config.tanh == (im_size == 1024)
    s, c = int(g["stride"]), int(g["crop"])
    out = model.features(g["z"], ("init", "image", "image128"), noise=noise)
    assert _rel(out["init"], g["init"]) < 1e-5
    assert _rel(out["image"][:, :, ::s, ::s], g["image_sub"]) < 1e-4
    assert _rel(out["image"][:, :, :c, :c], g["image_crop"]) < 1e-4
    assert abs(float(np.linalg.norm(np.asarray(out["image"], np.float64))) / float(g["image_norm"]) - 1) < 1e-5
    assert _rel(out["image128"][:, :, ::2, ::2], g["image128_sub"]) < 1e-4
    assert _rel(out["image128"][:, :, :c, :c], g["image128_crop"]) < 1e-4
    if im_size != 256:
        return  # the batch-statistics path is the same code at every size; spare the compile
    # batch statistics: what the official eval.py computes (it never calls .eval())
    out = model.features(g["z"], ("init", "image", "image128"), noise=noise, batchnorm="batch")
    assert _rel(out["init"], g["init_batch"]) < 1e-5
    assert _rel(out["image"][:, :, ::s, ::s], g["batch_image_sub"]) < 1e-4
    assert _rel(out["image128"][:, :, ::2, ::2], g["batch_image128_sub"]) < 1e-4


def test_config_json_round_trip():
    config = FastGANConfig(im_size=512, nz=100, ngf=32, nc=1)
    back = FastGANConfig.from_json(config.to_json())
    assert back == config and back.family == "fastgan" and back.z_dim == 100
    assert config.noise_shapes == ((8, 8),) * 2 + ((32, 32),) * 2 + ((128, 128),) * 2 + ((512, 512),) * 2
    assert FastGANConfig(im_size=256).noise_shapes[-1] == (128, 128) and len(FastGANConfig(im_size=256).noise_shapes) == 6
    assert not config.tanh and FastGANConfig().tanh
    assert FastGANConfig().nfc(4) * 16 == 16384  # the init features at ngf 64
    with pytest.raises(ValueError, match="im_size"):
        FastGANConfig(im_size=128)
    with pytest.raises(ValueError, match="family"):
        FastGANConfig.from_json(config.to_json().replace('"fastgan"', '"stylegan2"'))
    with pytest.raises(ValueError, match="ngf"):
        FastGANConfig(im_size=1024, ngf=4)


def test_taps_shapes_and_consistency(tiny):
    z = jax.random.normal(jax.random.key(0), (3, 8))
    assert tiny.taps() == ["init", "feat_8", "feat_16", "feat_32", "feat_64", "feat_128", "feat_256",
                           "image128", "image"]
    assert tiny.tap_shape("init") == (64, 4, 4)
    everything = tiny.features(z, tiny.taps(), noise_mode="none")
    for tap in tiny.taps():
        assert everything[tap].shape == (3,) + tiny.tap_shape(tap)
    for tap in ("init", "feat_32", "image"):  # each tap compiles its own truncated network
        np.testing.assert_allclose(tiny.fn(tap)(z), everything[tap], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tiny.generate(z, noise_mode="none"), everything["image"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown FastGAN tap"):
        tiny.fn("conv1")
    with pytest.raises(KeyError) as err:  # the same UnknownTapError as StyleGAN2's
        tiny.tap_shape("conv1")
    assert isinstance(err.value, jaxlatent.UnknownTapError)
    assert str(err.value).startswith("unknown FastGAN tap 'conv1'; known taps: ['init'")


def test_running_stats_make_samples_independent(tiny):
    z = jax.random.normal(jax.random.key(2), (4, 8))
    f = tiny.fn("feat_32")
    np.testing.assert_allclose(f(z)[:1], f(z[:1]), rtol=1e-5, atol=1e-6)
    fb = tiny.fn("feat_32", batchnorm="batch")
    assert _rel(fb(z)[:2], fb(z[:2])) > 1e-3  # batch statistics couple the samples


def test_noise_modes(tiny):
    z = jax.random.normal(jax.random.key(3), (2, 8))
    a = tiny.generate(z, key=jax.random.key(5))
    np.testing.assert_array_equal(a, tiny.generate(z, key=jax.random.key(5)))
    assert _rel(tiny.generate(z, key=jax.random.key(6)), a) > 1e-4
    feat = lambda **kw: tiny.features(z, ("feat_32",), **kw)["feat_32"]  # noqa: E731  (cheaper than images)
    zeros = [np.zeros(s, np.float32) for s in tiny.noise_shapes(1)]
    # two compiled programs (with and without the noise input): adding zeros is exact, but XLA may
    # fuse the convolutions differently; float32 features of size ~1: a few ulp, never 1e-5
    np.testing.assert_allclose(feat(noise=zeros), feat(noise_mode="none"), rtol=1e-5, atol=1e-6)
    drawn = [jax.random.normal(jax.random.key(i), s) for i, s in enumerate(tiny.noise_shapes(2))]
    assert _rel(feat(noise=drawn), feat(noise_mode="none")) > 1e-4
    with pytest.raises(ValueError, match="6 arrays"):
        tiny.generate(z, noise=zeros[:5])
    with pytest.raises(ValueError, match=r"noise\[1\]"):
        tiny.generate(z, noise=[zeros[0], zeros[2]] + zeros[2:])
    with pytest.raises(ValueError, match="explicit key"):
        tiny.fn("image", noise_mode="random")
    with pytest.raises(ValueError, match="noise_mode"):
        tiny.generate(z, noise_mode="const")
    with pytest.raises(ValueError, match="batchnorm"):
        tiny.generate(z, batchnorm="eval")
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        tiny.generate(z[:, :4])
    # a fixed key inside fn: the same draw at every call of the same batch size
    f = tiny.fn("feat_32", noise_mode="random", key=jax.random.key(7))
    np.testing.assert_array_equal(f(z), f(z))


def test_fn_is_pure_and_differentiable(tiny, x64):
    f = tiny.fn("init")
    z = np.random.default_rng(0).standard_normal((2, 8))
    g = lambda z1: f(z1[None])[0].reshape(-1)  # noqa: E731
    jac = jax.vmap(jax.jacfwd(g))(jnp.asarray(z))
    assert jac.shape == (2, 1024, 8) and jac.dtype == jnp.float64
    eps = 1e-6
    for i in range(8):
        dz = np.zeros(8)
        dz[i] = eps
        fd = (np.asarray(g(jnp.asarray(z[0] + dz))) - np.asarray(g(jnp.asarray(z[0] - dz)))) / (2 * eps)
        np.testing.assert_allclose(jac[0, :, i], fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jax.jit(f)(z), f(z), rtol=1e-12)
    # reverse mode through noisy blocks with explicit, shared noise
    noise = [np.ones(s) * 0.5 for s in tiny.noise_shapes(1)]
    h = tiny.fn("feat_32", noise=noise)
    grad = jax.grad(lambda zz: jnp.sum(h(zz) ** 2))(jnp.asarray(z))
    assert grad.shape == (2, 8) and bool(jnp.all(jnp.isfinite(grad)))


def test_param_order_matches_official_parameters():
    for name in ("fg256", "fg1024"):
        g = np.load(os.path.join(GOLDEN, f"{name}.npz"))
        config = FastGANConfig(im_size=int(g["im_size"]), nz=int(g["nz"]), ngf=int(g["ngf"]))
        ours = [k for k in expected_shapes(config) if not k.endswith(("running_mean", "running_var"))]
        assert ours == [k.replace("weight_orig", "weight") for k in g["param_names"]]


def test_bad_params_are_named(tiny):
    params = jax.tree_util.tree_map(lambda a: a, tiny.params)
    params["feat_16"]["1"]["weight"] = params["feat_16"]["1"]["weight"][:, :1]
    del params["to_128"]
    with pytest.raises(ValueError, match=r"to_128\.weight.*feat_16\.1\.weight: expected"):
        FastGAN(tiny.config, params)


def test_fn_takes_only_z(tiny):
    assert tiny.z_dim == 8
    with pytest.raises(ValueError, match="no mapping network.*wrt='z'"):
        tiny.fn("image", wrt="w")


# ----- the Flax module and the model contract ----------------------------------------------
def test_module_variables_are_the_converter_params(tiny):
    from flax.traverse_util import flatten_dict

    z = jnp.zeros((2, 8))
    noises = [jnp.zeros((1, 1) + hw) for hw in tiny.config.noise_shapes]
    shapes = jax.eval_shape(lambda k, z, n: tiny.module.init(k, z, n, ("image", "image128")),
                            jax.random.key(0), z, noises)
    got = {k: v.shape for k, v in flatten_dict(shapes["params"], sep=".").items()}
    assert set(shapes) == {"params"} and got == expected_shapes(tiny.config)
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(tiny.variables)
    # and the converter's output for the golden official generators
    for name in ("fg256", "fg1024"):
        _, model, _ = _golden(name)
        init = jax.eval_shape(
            lambda k, z, n: model.module.init(k, z, n, ("image", "image128")), jax.random.key(0),
            jnp.zeros((1, model.config.nz)), [jnp.zeros((1, 1) + hw) for hw in model.config.noise_shapes])
        assert (jax.tree_util.tree_map(lambda a: a.shape, init["params"])
                == jax.tree_util.tree_map(jnp.shape, model.params)), name
    # module.apply is generate(): the same program compiled separately (float32 rounding only)
    zz = jax.random.normal(jax.random.key(2), (2, 8))
    apply = jax.jit(lambda v, z: tiny.module.apply(v, z, noises)["image"])
    want = tiny.generate(zz, noise_mode="none")
    np.testing.assert_allclose(apply(tiny.variables, zz), want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()))


def test_fn_is_a_partial_with_the_weights_as_leaves(tiny):
    f = tiny.fn("init")
    assert isinstance(f, jax.tree_util.Partial)
    leaves = jax.tree_util.tree_leaves(f)
    assert len(leaves) == len(jax.tree_util.tree_leaves(tiny.params))
    assert f.func == tiny.fn("init").func  # equal taps: one compiled program
    # passed through jit, the weights are inputs of the compiled program, not constants
    lowered = jax.jit(lambda f, z: f(z)).lower(f, jnp.zeros((2, 8)))
    assert len(jax.tree_util.tree_leaves(lowered.args_info)) == len(leaves) + 1
    # the outer jit compiles its own program around the inner one: float32 rounding only
    np.testing.assert_allclose(jax.jit(lambda f, z: f(z))(f, jnp.ones((2, 8))), f(jnp.ones((2, 8))),
                               rtol=1e-6, atol=1e-6)
