"""Training code of the shipped digit models (jaxlatent.train) and the shipped assets."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.models import digits as digits_mod
from jaxlatent.train import classifier as C
from jaxlatent.train import data, gan, quality
from jaxlatent.train import discriminator as D

# One tiny setup shared by every test, so that its jitted steps compile once.
G_TINY = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=2,
                         channel_base=64, channel_max=8, architecture="skip")
D_TINY = D.DiscriminatorConfig(img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
TC_TINY = gan.TrainConfig(seed=3, steps=2, batch=4, r1_interval=2, ema_kimg=0.01)


@pytest.fixture(scope="module")
def tiny_data():
    # the training split at 8x8: the shape digits.run trains on, so its steps compile once
    return jnp.asarray(data.load_split(8)[0].images)


# ----- data ---------------------------------------------------------------------------------
def test_data_shapes_range_and_split():
    full = data.load(16)
    assert full.images.shape == (1797, 1, 16, 16) and full.images.dtype == np.float32
    assert full.images.min() == -1.0 and full.images.max() == 1.0
    train, held = data.split_indices(full.labels)
    assert len(train) == 1497 and len(held) == 300 and not set(train) & set(held)
    assert np.all(np.bincount(full.labels[held]) == 30)
    again, _ = data.split_indices(full.labels)
    np.testing.assert_array_equal(train, again)
    assert data.load(32).images.shape == (1797, 1, 32, 32)


def test_upsample_preserves_constants_and_mean():
    x = np.random.default_rng(0).uniform(size=(3, 8, 8))
    np.testing.assert_allclose(data.upsample(np.ones((1, 8, 8)), 16), 1.0)
    # factor 1 is the identity; bilinear weights sum to one per output pixel
    np.testing.assert_allclose(data.upsample(x, 8), x)
    assert abs(data.upsample(x, 16).mean() - x.mean()) < 0.02


# ----- discriminator ------------------------------------------------------------------------
def test_minibatch_stddev_matches_numpy():
    x = np.random.default_rng(1).normal(size=(8, 4, 2, 2)).astype(np.float32)
    out = np.asarray(D.minibatch_stddev(jnp.asarray(x), group_size=4, num_channels=1))
    assert out.shape == (8, 5, 2, 2)
    np.testing.assert_array_equal(out[:, :4], x)
    for n in range(8):
        members = x[n % 2::2]  # sample n = g * (N / G) + m belongs to group m
        want = np.sqrt(members.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(out[n, 4], want, rtol=1e-5)


def test_discriminator_shapes_and_equalised_init():
    p = D.init_params(D_TINY, jax.random.key(0))
    flat = {".".join(str(k.key) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(p)}
    assert {k: v.shape for k, v in flat.items()} == D.expected_shapes(D_TINY)
    assert all(np.all(v == 0) for k, v in flat.items() if k.endswith("bias"))
    logits = jax.jit(D.discriminate, static_argnums=0)(D_TINY, p, jnp.zeros((4, 1, 8, 8)))
    assert logits.shape == (4,) and np.all(np.isfinite(logits))


# ----- losses and regularisers --------------------------------------------------------------
def test_r1_closed_form_linear_discriminator():
    a = jax.random.normal(jax.random.key(0), (1, 8, 8))
    lin = lambda params, x: jnp.sum(x * params, axis=(1, 2, 3)) + 3.0  # grad_x D = a
    x = jax.random.normal(jax.random.key(1), (5, 1, 8, 8))
    np.testing.assert_allclose(gan.r1_penalty(lin, a, x), jnp.sum(a ** 2), rtol=1e-5)


def test_r1_matches_finite_differences_on_discriminator(x64):
    p = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64),
                               D.init_params(D_TINY, jax.random.key(2)))
    x = jax.random.normal(jax.random.key(3), (4, 1, 8, 8), jnp.float64)
    d_fn = lambda params, img: D.discriminate(D_TINY, params, img)
    r1 = float(jax.jit(lambda p, x: gan.r1_penalty(d_fn, p, x))(p, x))
    # central differences of the summed output: minibatch-stddev couples the samples, and
    # R1 (as NVlabs computes it) differentiates the sum, which this reproduces exactly
    eps, flat = 1e-6, x.reshape(-1)  # small enough that no lrelu kink lies within eps
    e = jnp.eye(flat.size, dtype=jnp.float64) * eps
    f = jax.vmap(lambda v: jnp.sum(d_fn(p, v.reshape(x.shape))))
    both = jax.jit(f)(jnp.concatenate([flat + e, flat - e]))
    grad = (both[:flat.size] - both[flat.size:]) / (2 * eps)
    want = float(jnp.sum(grad ** 2) / x.shape[0])
    np.testing.assert_allclose(r1, want, rtol=1e-6)


def test_ema_update_formula_and_buffers():
    ema = {"mapping": {"fc0": {"weight": jnp.full((2,), 1.0)}, "w_avg": jnp.zeros(2)}}
    new = {"mapping": {"fc0": {"weight": jnp.full((2,), 3.0)}, "w_avg": jnp.ones(2)}}
    out = gan.ema_update(ema, new, 0.25)
    np.testing.assert_allclose(out["mapping"]["fc0"]["weight"], 3.0 + 0.25 * (1.0 - 3.0))
    np.testing.assert_array_equal(out["mapping"]["w_avg"], 1.0)  # buffers are copied
    tc = gan.TrainConfig(batch=32, ema_kimg=2.0, ema_rampup=0.05)
    np.testing.assert_allclose(gan.ema_beta(tc, 1e6), 0.5 ** (32 / 2000), rtol=1e-6)
    np.testing.assert_allclose(gan.ema_beta(tc, 3200.0), 0.5 ** (32 / 160), rtol=1e-6)


def test_each_loss_decreases_with_the_other_network_fixed(tiny_data):
    st = gan.init_state(G_TINY, D_TINY, TC_TINY)
    kw = dict(g_config=G_TINY, d_config=D_TINY, batch=8, mixing_prob=0.9)
    key = jax.random.key(7)
    g_vg = jax.jit(jax.value_and_grad(lambda gp, dp: gan.g_loss(gp, dp, key, **kw)[0]))
    fake = gan.generate_train(G_TINY, st.g_params, key, 8, 0.9)[0]
    d_vg = jax.jit(jax.value_and_grad(
        lambda dp: gan.d_loss(dp, tiny_data[:8], fake, d_config=D_TINY)[0]))
    for vg, params, other in ((lambda p: g_vg(p, st.d_params), st.g_params, None),
                              (d_vg, st.d_params, None)):
        opt = optax_adam()
        s = opt.init(params)
        losses = []
        for _ in range(4):
            loss, grad = vg(params)
            upd, s = opt.update(gan.zero_buffer_grads(grad), s, params)
            params = jax.tree_util.tree_map(jnp.add, params, upd)
            losses.append(float(loss))
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def optax_adam():
    return gan.optimizer(1e-2, TC_TINY)


def test_training_is_deterministic_and_resumes_exactly(tiny_data, tmp_path):
    a = gan.train(G_TINY, D_TINY, TC_TINY, tiny_data, progress=False)
    b = gan.train(G_TINY, D_TINY, TC_TINY, tiny_data, progress=False)
    snap = str(tmp_path / "snap.npz")
    gan.train(G_TINY, D_TINY, TC_TINY, tiny_data, progress=False, snapshot=snap, stop_at=1)
    c = gan.train(G_TINY, D_TINY, TC_TINY, tiny_data, progress=False, snapshot=snap)
    assert int(a.step) == int(c.step) == 2
    for x, y, z in zip(jax.tree_util.tree_leaves(a.g_ema), jax.tree_util.tree_leaves(b.g_ema),
                       jax.tree_util.tree_leaves(c.g_ema)):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert np.all(np.isfinite(jax.tree_util.tree_leaves(a.d_params)[0]))
    # w_avg moved towards the batch mean; noise_const never trains
    assert np.any(np.asarray(a.g_params["mapping"]["w_avg"]) != 0)
    init = gan.init_state(G_TINY, D_TINY, TC_TINY)
    np.testing.assert_array_equal(a.g_params["synthesis"]["b8"]["conv0"]["noise_const"],
                                  init.g_params["synthesis"]["b8"]["conv0"]["noise_const"])


# ----- quality measures ---------------------------------------------------------------------
def test_frechet_distance_closed_form_and_scipy():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    want = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(quality.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), want)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = x @ x.T, y @ y.T
    ref = np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    np.testing.assert_allclose(quality.frechet_distance(mu1[:0].tolist() + [0] * 6, c1,
                                                        [0] * 6, c2), ref, rtol=1e-8)
    f = rng.normal(size=(50, 4))
    assert abs(quality.frechet_distance_features(f, f)) < 1e-8


def test_random_shift_moves_content():
    x = -jnp.ones((2, 1, 5, 5)).at[:, :, 2, 2].set(1.0)
    out = np.asarray(jax.jit(C.random_shift, static_argnums=2)(jax.random.key(0), x, 1))
    assert out.shape == x.shape and np.all(out.sum(axis=(1, 2, 3)) == x[0].sum())
    np.testing.assert_array_equal(C.random_shift(jax.random.key(0), x, 0), x)


# ----- the shipped assets -------------------------------------------------------------------
ASSETS = digits_mod.assets_dir()
needs_assets = pytest.mark.skipif(not os.path.isfile(os.path.join(ASSETS, "quality.json")),
                                  reason=f"no shipped digit models at {ASSETS}")


@needs_assets
def test_shipped_models_make_recognisable_digits():
    import jaxlatent.io

    with open(os.path.join(ASSETS, "quality.json")) as f:
        recorded = json.load(f)
    model = jaxlatent.io.load(ASSETS)
    clf = digits_mod.load_classifier()
    train, held = data.load_split(model.config.img_resolution)
    acc = quality.accuracy(clf, held.images, held.labels)
    assert abs(acc - recorded["classifier_accuracy_held_out"]) < 0.01
    images = quality.sample_images(model, 200, seed=5)
    assert images.shape == (200, 1, 16, 16) and np.all(np.isfinite(images))
    stats = quality.generated_digit_stats(clf, images)
    assert abs(stats["confident_share"] - recorded["generated"]["confident_share"]) < 0.1
    # no collapsed class: every digit appears in a 200-sample draw
    assert min(stats["class_histogram"]) >= 2, stats["class_histogram"]
    assert recorded["fd_generated_vs_train"] < 0.1 * recorded["fd_untrained_vs_train"]


def test_digits_script_end_to_end_on_a_tiny_setup(tmp_path):
    from jaxlatent.train import digits
    import jaxlatent.io

    cc = dataclasses.replace(digits.CLASSIFIER, resolution=8, epochs=1, batch=256)
    record = digits.run(str(tmp_path), G_TINY, D_TINY, TC_TINY, cc, num_eval=20, progress=False)
    assert record["steps"] == 2 and sum(record["generated"]["class_histogram"]) == 20
    assert np.isfinite(record["fd_generated_vs_train"])
    model = jaxlatent.io.load(str(tmp_path))
    assert model.config == G_TINY and model.generate(jnp.zeros((1, 8))).shape == (1, 1, 8, 8)
    clf = digits_mod.load_classifier(str(tmp_path / "classifier"))
    assert clf.logits(jnp.zeros((2, 1, 8, 8))).shape == (2, 10)
    assert json.load(open(tmp_path / "quality.json"))["steps"] == 2
