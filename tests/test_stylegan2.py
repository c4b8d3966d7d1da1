"""StyleGAN2 generator: parity with the official NVlabs code (golden data), config, taps, errors.

Golden data: tests/golden/stylegan2/*.npz, made by tests/golden/tools/make_stylegan2_golden.py
from NVlabs stylegan2-ada-pytorch (see the README there).
"""

import dataclasses
import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from jaxlatent.models.stylegan2.model import (StyleGAN2, StyleGAN2Config, expected_shapes,
                                        params_from_state_dict, random_params, tap_value)

GOLDEN = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "golden", "stylegan2", "*.npz")))
TINY = StyleGAN2Config(z_dim=6, c_dim=3, w_dim=8, img_resolution=16, img_channels=3,
                       mapping_layers=2, channel_base=64, channel_max=8)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def load_golden(path):
    d = np.load(path)
    config = StyleGAN2Config.from_nvlabs_kwargs(json.loads(str(d["init_kwargs"])))
    state = {k[len("param/"):]: d[k] for k in d.files if k.startswith("param/")}
    return d, config, state


@pytest.fixture(scope="module")
def tiny():
    return StyleGAN2.init(TINY, jax.random.PRNGKey(0))


# ----- parity with the official code -------------------------------------------------------
@pytest.mark.parametrize("path", GOLDEN, ids=[os.path.basename(p)[:-4] for p in GOLDEN])
def test_golden_parity(path):
    d, config, state = load_golden(path)
    model = StyleGAN2.from_state_dict(config, state, source=path)
    z = d["z"]
    c = d["c"] if "c" in d.files else None
    out = {k[len("out/"):]: d[k] for k in d.files if k.startswith("out/")}
    taps = model.taps()

    # everything in one jitted program per config: one compilation, shared subexpressions
    requests = {}
    for key in out:
        if key.startswith("mapping."):
            requests[key] = (key, 1.0, None, "const")
        elif key.startswith("ws/"):
            psi = float(key.split("psi")[1].split("_")[0])
            requests[key] = ("ws", psi, 2 if "_cut" in key else None, "const")
        elif key.startswith("image/"):
            _, mode, psi = key.split("/")
            requests[key] = ("image", float(psi[3:]), None, mode)
        elif key.startswith("block/"):
            _, block, what = key.split("/")
            requests[key] = (f"synthesis.{block}" + (".img" if what == "img" else ""), 1.0, None,
                             "const")
        elif key.startswith("style/"):
            requests[key] = ("style." + key[len("style/"):], 1.0, None, "const")
    assert all(r[0] in taps for r in requests.values())

    @jax.jit
    def run(params, z, c):
        return {k: tap_value(config, params, tap, z, c, psi, cut, mode)
                for k, (tap, psi, cut, mode) in requests.items()}

    got = run(model.params, z, c)
    for key, want in out.items():
        tol = 1e-5 if key.startswith(("mapping.", "ws/", "style/")) else 1e-4
        assert got[key].shape == want.shape, key
        assert rel(got[key], want) < tol, (key, rel(got[key], want))
    # the model's own entry points agree with the taps
    np.testing.assert_allclose(model.mapping(z, c, 0.7), out["ws/psi0.7"], rtol=0, atol=1e-5 *
                               np.abs(out["ws/psi0.7"]).max())
    image = model.synthesis(out["ws/psi1.0"], noise_mode="none")
    assert rel(image, out["image/none/psi1.0"]) < 1e-4


def test_golden_covers_the_issue_configs():
    names = {os.path.basename(p)[:-4] for p in GOLDEN}
    archs, conditional, big_mapping = set(), False, False
    for path in GOLDEN:
        _, config, _ = load_golden(path)
        archs.add(config.architecture)
        conditional |= config.c_dim > 0
        big_mapping |= config.mapping_layers == 8 and config.w_dim == 512
    assert archs == {"orig", "skip", "resnet"} and conditional and big_mapping, names


# ----- config ------------------------------------------------------------------------------
def test_config_json_round_trip():
    for config in (StyleGAN2Config(), TINY,
                   dataclasses.replace(TINY, channels=(8, 7, 6), conv_clamp=256.0, w_avg_beta=None,
                                       resample_filter=(1, 2, 1), architecture="resnet")):
        text = config.to_json()
        back = StyleGAN2Config.from_json(text)
        assert back == config and hash(back) == hash(config)
        assert json.loads(text)["family"] == "stylegan2"


@pytest.mark.parametrize("change,match", [
    (dict(architecture="unet"), "unsupported architecture"),
    (dict(img_resolution=48), "power of 2"),
    (dict(img_resolution=2048), "power of 2"),
    (dict(img_resolution=2), "power of 2"),
    (dict(mapping_activation="gelu9"), "mapping_activation"),
    (dict(channels=(8, 8)), "one count per resolution"),
    (dict(z_dim=0), "z_dim"),
    (dict(c_dim=-1), "c_dim"),
    (dict(family="fastgan"), "family"),
])
def test_bad_config(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **change)


def test_config_from_nvlabs_kwargs():
    kw = dict(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3,
              mapping_kwargs=dict(num_layers=2), channel_base=64, num_fp16_res=4)
    sg3 = StyleGAN2Config.from_nvlabs_kwargs(kw, flavor="stylegan3")  # stylegan3 layout
    assert (sg3.conv_clamp, sg3.w_avg_beta, sg3.channel_base) == (256, 0.998, 64)
    assert StyleGAN2Config.from_nvlabs_kwargs(kw).conv_clamp is None
    with pytest.raises(ValueError, match="unsupported mapping_kwargs option 'foo'"):
        StyleGAN2Config.from_nvlabs_kwargs(dict(kw, mapping_kwargs=dict(foo=1)))
    with pytest.raises(ValueError, match="unknown option"):
        StyleGAN2Config.from_dict(dict(TINY.to_dict(), bogus=1))


# ----- parameters --------------------------------------------------------------------------
def test_random_params_follow_nvlabs_init(tiny):
    p = tiny.params
    assert set(expected_shapes(TINY)) == set(_flat_keys(p))
    assert np.all(np.asarray(p["synthesis"]["b8"]["conv0"]["affine"]["bias"]) == 1)
    assert np.all(np.asarray(p["synthesis"]["b8"]["conv0"]["noise_strength"]) == 0)
    assert np.all(np.asarray(p["mapping"]["w_avg"]) == 0)
    big_mapping = StyleGAN2Config(img_resolution=4, channel_max=8)
    fc = np.asarray(random_params(big_mapping, jax.random.PRNGKey(1))["mapping"]["fc0"]["weight"])
    assert abs(fc.std() * 0.01 - 1) < 0.01  # N(0, 1) / lr_multiplier


def _flat_keys(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_params_from_state_dict_errors():
    shapes = expected_shapes(TINY)
    state = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    state["synthesis.b8.resample_filter"] = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64
    params = params_from_state_dict(TINY, state, "ok.pkl")
    assert params["synthesis"]["b8"]["conv0"]["weight"].shape == (8, 8, 3, 3)
    assert "resample_filter" not in params["synthesis"]["b8"]

    missing = dict(state)
    del missing["mapping.fc1.bias"]
    msg = r"(?s)g\.pkl.*mapping\.fc1\.bias: missing \(expected shape \(8,\)\)"
    with pytest.raises(ValueError, match=msg):
        params_from_state_dict(TINY, missing, "g.pkl")
    wrong = dict(state, **{"synthesis.b4.const": np.zeros((8, 5, 5))})
    msg = r"synthesis\.b4\.const: expected shape \(8, 4, 4\), found \(8, 5, 5\)"
    with pytest.raises(ValueError, match=msg):
        params_from_state_dict(TINY, wrong, "g.pkl")
    extra = dict(state, **{"synthesis.b4.extra": np.zeros(3)})
    with pytest.raises(ValueError, match="synthesis.b4.extra: unexpected key"):
        params_from_state_dict(TINY, extra, "g.pkl")
    filt = dict(state, **{"synthesis.b8.conv0.resample_filter": np.ones((2, 2)) / 4})
    with pytest.raises(ValueError, match="differs from the config's resample_filter"):
        params_from_state_dict(TINY, filt, "g.pkl")


# ----- taps --------------------------------------------------------------------------------
def test_taps_and_shapes(tiny):
    taps = tiny.taps()
    assert taps[:4] == ["mapping.embed", "mapping.fc0", "mapping.fc1", "w"]
    for name in ("ws", "style.b4.conv1", "style.b8.conv0", "style.b16.torgb", "styles",
                 "synthesis.b4", "synthesis.b8.conv0", "synthesis.b16.img", "image"):
        assert name in taps
    assert tiny.tap_shape("ws") == (tiny.num_ws, 8) == (6, 8)
    assert tiny.tap_shape("image") == (3, 16, 16)
    z = jax.ShapeDtypeStruct((2, 6), jnp.float32)
    c = jnp.zeros((2, 3))
    for tap in taps:  # shapes by tracing only, no compilation
        out = jax.eval_shape(tiny.fn(tap, c=c, noise_mode="none"), z)
        assert out.shape == (2,) + tiny.tap_shape(tap), tap
        assert out.dtype == jnp.float32
    with pytest.raises(KeyError, match="unknown StyleGAN2 tap"):
        tiny.fn("synthesis.b32")
    with pytest.raises(jaxlatent.UnknownTapError) as err:  # also a ValueError, message unquoted
        tiny.tap_shape("synthesis.b32")
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith("unknown StyleGAN2 tap 'synthesis.b32'; known taps: ['mapping.embed', 'mapping.fc0'")
    resnet = StyleGAN2.init(dataclasses.replace(TINY, architecture="resnet"), jax.random.PRNGKey(0))
    assert "synthesis.b8.img" not in resnet.taps() and "style.b8.torgb" not in resnet.taps()


def test_mapping_taps_skip_synthesis(tiny):
    for tap in ("mapping.fc1", "w", "style.b16.conv0"):
        jaxpr = str(jax.make_jaxpr(tiny.fn(tap, c=jnp.zeros(3)))(jnp.zeros((2, 6))))
        assert "conv_general_dilated" not in jaxpr, tap


def test_tap_jit_vmap_jacfwd(tiny):
    z = jax.random.normal(jax.random.PRNGKey(1), (3, 6))
    f = tiny.fn("synthesis.b8", c=jnp.ones(3), truncation_psi=0.7)

    # f is a pytree: passed through jit, the weights stay inputs of the compiled program
    @jax.jit
    def run(f, z):
        single = lambda z1: f(z1[None])[0]  # noqa: E731
        return f(z), jax.vmap(single)(z), jax.vmap(jax.jacfwd(single))(z)

    y, y_single, jac = run(f, z)
    np.testing.assert_allclose(y_single, y, rtol=1e-5, atol=1e-6)
    assert jac.shape == (3,) + tiny.tap_shape("synthesis.b8") + (6,)
    # float64 evaluation: forward-mode Jacobian against central differences
    with jax.enable_x64(True):
        @jax.jit
        def run64(f, z1):
            g = lambda v: f(v[None])[0].reshape(-1)  # noqa: E731
            e, eps = jnp.eye(6, dtype=jnp.float64)[2], 1e-5
            return jax.jacfwd(g)(z1), (g(z1 + eps * e) - g(z1 - eps * e)) / (2 * eps)

        j64, fd = run64(f, jnp.asarray(np.asarray(z[0]), jnp.float64))
        assert j64.dtype == jnp.float64
        np.testing.assert_allclose(j64[:, 2], fd, rtol=1e-5, atol=1e-7)
    assert rel(jac[0], np.asarray(j64).reshape(jac[0].shape)) < 1e-4


def test_noise_modes(tiny):
    cfg = tiny.config
    params = jax.tree_util.tree_map(lambda x: x, tiny.params)
    for layer in ("conv0", "conv1"):
        params["synthesis"]["b16"][layer]["noise_strength"] = jnp.asarray(0.5)
    model = StyleGAN2(cfg, params)
    z = jax.random.normal(jax.random.PRNGKey(2), (2, 6))
    c = jnp.eye(3)[:2]
    with pytest.raises(ValueError, match="explicit jax.random key"):
        model.generate(z, c, noise_mode="random")
    with pytest.raises(ValueError, match="explicit jax.random key"):
        model.fn("image", noise_mode="random")
    with pytest.raises(ValueError, match="noise_mode"):
        model.generate(z, c, noise_mode="fixed")

    @jax.jit
    def images(params, k0, k1):  # one compilation for all modes
        def run(mode, key=None):
            return tap_value(cfg, params, "image", z, c, noise_mode=mode, key=key)
        return run("random", k0), run("random", k0), run("random", k1), run("const"), run("none")

    a, b, d, const, none = images(params, jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(a, b)
    assert rel(a, d) > 1e-3 and rel(const, none) > 1e-3 and rel(a, const) > 1e-3


def test_input_errors(tiny):
    with pytest.raises(ValueError, match="conditional"):
        tiny.mapping(jnp.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 6\)"):
        tiny.mapping(jnp.zeros((2, 5)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="ws must have shape"):
        tiny.synthesis(jnp.zeros((2, 5, 8)))
    no_avg = dataclasses.replace(TINY, w_avg_beta=None)
    model = StyleGAN2.init(no_avg, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="w_avg"):
        model.mapping(jnp.zeros((1, 6)), jnp.zeros((1, 3)), truncation_psi=0.5)


# ----- taps with respect to W and W+ -------------------------------------------------------
def test_fn_wrt_w_and_ws(tiny):
    z = jax.random.normal(jax.random.PRNGKey(3), (3, 6))
    c = jnp.eye(3)
    w = tiny.fn("w", c=c)(z)
    # wrt="w" of the w tap returns its input: the same array, no arithmetic on it
    np.testing.assert_array_equal(tiny.fn("w", wrt="w")(w), w)
    ws = tiny.fn("ws", wrt="w")(w)
    np.testing.assert_array_equal(ws, np.broadcast_to(np.asarray(w)[:, None], (3, 6, 8)))
    # the image from the mapped (truncated) ws equals generate(): the same synthesis arithmetic,
    # but compiled in another program (with the mapping network beside it), so XLA may fuse
    # and round differently; float32 rounding through 8 layers stays far below 1e-5 relative
    ws_trunc = tiny.mapping(z, c, truncation_psi=0.7)
    image = tiny.fn("image", wrt="ws")(ws_trunc)
    assert rel(image, tiny.generate(z, c, truncation_psi=0.7)) < 1e-5
    # truncation applies to z only: W and W+ inputs are used as given (psi is dropped, so this
    # is the very same compiled program: exact equality)
    np.testing.assert_array_equal(tiny.fn("image", wrt="ws", truncation_psi=0.5)(ws_trunc), image)
    assert tiny.fn("styles", wrt="w").func == tiny.fn("styles", wrt="w", truncation_psi=0.3).func
    for tap in ("ws", "styles", "synthesis.b8.conv0", "image"):
        shape = jax.eval_shape(tiny.fn(tap, wrt="ws"), jax.ShapeDtypeStruct((2, 6, 8), jnp.float32))
        assert shape.shape == (2,) + tiny.tap_shape(tap), tap
    # a style tap from w runs no convolution
    assert "conv_general_dilated" not in str(jax.make_jaxpr(tiny.fn("style.b16.conv0", wrt="w"))(w))


def test_fn_wrt_jacobians_follow_the_chain_rule(tiny, x64):
    # d image / d z = (d image / d w) (d w / d z) at w = w(z), in float64 so that the only
    # difference is rounding at 1e-16 relative through a dozen layers
    c = jnp.eye(3)[:1].astype(jnp.float64)
    z = jnp.asarray(np.random.default_rng(0).standard_normal((1, 6)))
    f_z, f_w, w_of_z = tiny.fn("synthesis.b8", c=c), tiny.fn("synthesis.b8", wrt="w"), tiny.fn("w", c=c)

    @jax.jit
    def jacobians(f_z, f_w, w_of_z, z):
        one = lambda f: (lambda v: f(v[None])[0].reshape(-1))  # noqa: E731
        w = w_of_z(z)
        return (jax.jacfwd(one(f_z))(z[0]), jax.jacrev(one(f_w))(w[0]),
                jax.jacfwd(one(w_of_z))(z[0]))

    j_z, j_w, dw_dz = jacobians(f_z, f_w, w_of_z, z)
    assert j_w.shape == (int(np.prod(tiny.tap_shape("synthesis.b8"))), 8)
    np.testing.assert_allclose(j_z, j_w @ dw_dz, rtol=1e-9, atol=1e-12 * float(jnp.abs(j_z).max()))
    # W+ Jacobian summed over the layers is the W Jacobian (one w broadcast to every row)
    f_ws = tiny.fn("synthesis.b8", wrt="ws")
    ws = jnp.broadcast_to(w_of_z(z)[:, None], (1, tiny.num_ws, 8))
    j_ws = jax.jacfwd(lambda v: f_ws(v[None])[0].reshape(-1))(ws[0])
    np.testing.assert_allclose(j_ws.sum(axis=1), j_w, rtol=1e-9, atol=1e-12 * float(jnp.abs(j_w).max()))


def test_fn_wrt_errors(tiny):
    with pytest.raises(ValueError, match=r"'mapping.fc1' lies upstream of w.*use wrt='z'"):
        tiny.fn("mapping.fc1", wrt="w")
    with pytest.raises(ValueError, match="wrt must be one of"):
        tiny.fn("image", wrt="s")
    with pytest.raises(ValueError, match=r"wrt='w': w must have shape \(N, 8\)"):
        tiny.fn("image", wrt="w")(jnp.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"wrt='ws': ws must have shape \(N, 6, 8\)"):
        tiny.fn("image", wrt="ws")(jnp.zeros((2, 8)))
    assert (tiny.z_dim, tiny.w_dim, tiny.num_ws) == (6, 8, 6)


# ----- the Flax modules --------------------------------------------------------------------
def test_module_variables_are_the_converter_params(tiny):
    from flax.traverse_util import flatten_dict

    module = tiny.module
    z, c = jnp.zeros((2, 6)), jnp.zeros((2, 3))
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), z, c)  # traced, nothing computed
    assert set(shapes) == {"params"}
    got = {k: v.shape for k, v in flatten_dict(shapes["params"], sep=".").items()}
    assert got == expected_shapes(TINY)
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(tiny.variables)
    # and the converter's output for golden NVlabs generators: skip (conditional), orig without
    # noise, resnet
    for path in [p for p in GOLDEN if os.path.basename(p) in ("cond16.npz", "orig8_nonoise.npz",
                                                              "resnet32.npz")]:
        _, config, state = load_golden(path)
        params = params_from_state_dict(config, state, path)
        zc = (jnp.zeros((1, config.z_dim)), jnp.zeros((1, config.c_dim)) if config.c_dim else None)
        init = jax.eval_shape(StyleGAN2(config, params).module.init, jax.random.PRNGKey(0), *zc)
        assert (jax.tree_util.tree_map(lambda a: a.shape, init["params"])
                == jax.tree_util.tree_map(jnp.shape, params)), path
    table = nn_tabulate(module, z, c)
    assert "MappingNetwork" in table and "SynthesisNetwork" in table
    assert f"{sum(int(np.prod(s)) for s in expected_shapes(TINY).values()):,}" in table


def nn_tabulate(module, *args):
    import flax.linen as nn

    return nn.tabulate(module, jax.random.PRNGKey(0), depth=1, console_kwargs={"width": 200})(*args)


def test_module_apply_is_generate(tiny):
    z = jax.random.normal(jax.random.PRNGKey(4), (3, 6))
    c = jnp.eye(3)
    apply = jax.jit(lambda v, z, c: tiny.module.apply(v, z, c, truncation_psi=0.7))
    # the same arithmetic as generate() in a separately compiled program: float32 rounding of
    # a different fusion stays below 1e-6 relative
    assert rel(apply(tiny.variables, z, c), tiny.generate(z, c, truncation_psi=0.7)) < 1e-6
    # sub-networks as methods and submodules
    from jaxlatent.models.stylegan2.model import Generator

    @jax.jit
    def parts(variables, z, c):
        ws = tiny.module.apply(variables, z, c, 0.7, method=lambda m, z, c, p: m.mapping(z, c, p))
        return ws, tiny.module.apply(variables, ws, method=lambda m, ws: m.synthesis.styles(ws))

    ws, style = parts(tiny.variables, z, c)
    np.testing.assert_allclose(ws, tiny.mapping(z, c, 0.7), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(style, tiny.fn("styles", wrt="ws")(ws), rtol=1e-6, atol=1e-6)
    assert isinstance(tiny.module, Generator)


def test_fine_tune_step_with_optax():
    import optax

    small = StyleGAN2.init(StyleGAN2Config(z_dim=4, c_dim=2, w_dim=4, img_resolution=8,
                                           mapping_layers=1, channel_base=16, channel_max=4),
                           jax.random.PRNGKey(0))
    z = jax.random.normal(jax.random.PRNGKey(5), (2, 4))
    c = jnp.eye(2)
    target = jnp.zeros((2, 3, 8, 8))
    module, opt = small.module, optax.adam(1e-2)

    def loss(variables):
        return jnp.mean((module.apply(variables, z, c) - target) ** 2)

    @jax.jit
    def step(variables, state):
        value, grads = jax.value_and_grad(loss)(variables)
        updates, state = opt.update(grads, state, variables)
        return optax.apply_updates(variables, updates), state, value

    variables, state = small.variables, opt.init(small.variables)
    values = []
    for _ in range(3):
        variables, state, value = step(variables, state)
        values.append(float(value))
    assert values[2] < values[0]
    moved = variables["params"]["synthesis"]["b8"]["torgb"]["bias"]
    assert not np.allclose(moved, small.params["synthesis"]["b8"]["torgb"]["bias"])
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(small.variables)


def test_orbax_round_trip_of_variables(tiny, tmp_path):
    import orbax.checkpoint as ocp

    path = tmp_path / "variables"
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(path, tiny.variables)
    ckpt.wait_until_finished()
    back = ckpt.restore(path, jax.tree_util.tree_map(np.asarray, tiny.variables))
    flat = dict(jax.tree_util.tree_leaves_with_path(back))
    for key, leaf in jax.tree_util.tree_leaves_with_path(tiny.variables):
        np.testing.assert_array_equal(np.asarray(flat[key]), np.asarray(leaf))
    z = jnp.ones((1, 6))
    np.testing.assert_array_equal(StyleGAN2(TINY, back["params"]).generate(z, jnp.eye(3)[:1]),
                                  tiny.generate(z, jnp.eye(3)[:1]))
