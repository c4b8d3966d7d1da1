"""StyleGAN2 training as pure jitted steps (Karras et al., CVPR 2020; NVlabs ``loss.py``).

* Losses: non-saturating logistic, ``L_G = E softplus(-D(G(z)))``,
  ``L_D = E softplus(D(G(z))) + E softplus(-D(x))`` (Goodfellow et al. 2014).
* R1 regularisation ``(gamma / 2) E ||grad_x D(x)||^2`` on real images (Mescheder et al.
  2018, eq. 9), lazily: every ``r1_interval`` steps, weighted by the interval (Karras et al.
  2020, section 3.1).
* Style mixing (Karras et al. 2019, section 3.1) and random noise inputs while training; the
  mapping network's running mean ``w_avg`` (used by the truncation trick) tracked as NVlabs
  does.
* EMA generator ``G_ema <- p + beta (G_ema - p)``, ``beta = 0.5 ** (batch / ema_nimg)`` with a
  half-life of ``ema_kimg`` thousand images, ramped up over the first images (NVlabs
  ``training_loop.py``).
* optax Adam, ``betas = (0, 0.99)``. Everything is a function of the state and of the
  ``jax.random`` key inside it: the same seed gives the same weights, and a run resumed from a
  snapshot continues exactly as the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlatent.models.stylegan2 import layers as L
from jaxlatent.models.stylegan2.config import StyleGAN2Config, random_params
from jaxlatent.train import discriminator as D


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyper-parameters (images per step = ``batch``)."""

    seed: int = 0
    steps: int = 4000
    batch: int = 32
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 0.05
    r1_interval: int = 16
    ema_kimg: float = 2.0
    ema_rampup: float | None = 0.05
    style_mixing_prob: float = 0.9


class TrainState(NamedTuple):
    """Everything a step reads and writes; a pytree (snapshots are its leaves)."""

    g_params: dict
    d_params: dict
    g_ema: dict
    g_opt: optax.OptState
    d_opt: optax.OptState
    step: jax.Array
    key: jax.Array


# Buffers of the generator: not trained by gradients (NVlabs registers them as buffers).
_BUFFERS = ("w_avg", "noise_const")


def _is_buffer(path) -> bool:
    return getattr(path[-1], "key", None) in _BUFFERS


def zero_buffer_grads(grads):
    """Gradients with the generator's buffers (``w_avg``, ``noise_const``) set to zero."""
    return jax.tree_util.tree_map_with_path(
        lambda p, g: jnp.zeros_like(g) if _is_buffer(p) else g, grads)


def optimizer(lr: float, tc: TrainConfig) -> optax.GradientTransformation:
    return optax.adam(lr, b1=tc.beta1, b2=tc.beta2, eps=1e-8)


def init_state(g_config: StyleGAN2Config, d_config: D.DiscriminatorConfig,
               tc: TrainConfig) -> TrainState:
    """Fresh state from ``tc.seed``: NVlabs-style initial weights, Adam states, step 0."""
    key = jax.random.key(tc.seed)
    key, kg, kd = jax.random.split(key, 3)
    g = random_params(g_config, kg)
    d = D.init_params(d_config, kd)
    return TrainState(g, d, g, optimizer(tc.g_lr, tc).init(g), optimizer(tc.d_lr, tc).init(d),
                      jnp.zeros((), jnp.int32), key)


# ----- losses -------------------------------------------------------------------------------
def mixed_ws(g_config: StyleGAN2Config, g_params, z1, z2, mix_key, prob: float):
    """W+ codes with style mixing: rows from ``cutoff`` on come from z2 with probability prob.

    z1, z2: (N, z_dim). Returns ``(ws: (N, num_ws, w_dim), w1: (N, w_dim))``.
    """
    n_ws = g_config.num_ws
    w1 = L.mapping_layers(g_config, g_params, z1)
    ws = jnp.broadcast_to(w1[:, None], (w1.shape[0], n_ws, w1.shape[1]))
    if prob <= 0:
        return ws, w1
    w2 = L.mapping_layers(g_config, g_params, z2)
    k1, k2 = jax.random.split(mix_key)
    cutoff = jax.random.randint(k1, (), 1, n_ws)
    cutoff = jnp.where(jax.random.uniform(k2) < prob, cutoff, n_ws)
    rows = jnp.arange(n_ws)[None, :, None]
    return jnp.where(rows < cutoff, ws, w2[:, None]), w1


def generate_train(g_config, g_params, key, n: int, mixing_prob: float):
    """Training-time samples: fresh z, style mixing, random noise. Returns (images, w1)."""
    kz1, kz2, kmix, knoise = jax.random.split(key, 4)
    z1 = jax.random.normal(kz1, (n, g_config.z_dim))
    z2 = jax.random.normal(kz2, (n, g_config.z_dim))
    ws, w1 = mixed_ws(g_config, g_params, z1, z2, kmix, mixing_prob)
    return L.synthesis(g_config, g_params, ws, "random", knoise), w1


def g_loss(g_params, d_params, key, *, g_config, d_config, batch, mixing_prob):
    """Non-saturating generator loss ``E softplus(-D(G(z)))``; aux: the batch's w."""
    img, w = generate_train(g_config, g_params, key, batch, mixing_prob)
    return jnp.mean(jax.nn.softplus(-D.discriminate(d_config, d_params, img))), w


def d_loss(d_params, real, fake, *, d_config):
    """Logistic discriminator loss ``E softplus(D(fake)) + E softplus(-D(real))``.

    Returns (loss, (mean D(real), mean D(fake))).
    """
    lr = D.discriminate(d_config, d_params, real)
    lf = D.discriminate(d_config, d_params, fake)
    loss = jnp.mean(jax.nn.softplus(lf)) + jnp.mean(jax.nn.softplus(-lr))
    return loss, (jnp.mean(lr), jnp.mean(lf))


def r1_penalty(d_fn: Callable, d_params, real):
    """R1: ``E_x ||grad_x D(x)||^2`` over the batch (Mescheder et al. 2018, eq. 9).

    ``d_fn(d_params, x: (N, ...)) -> (N,)``; samples are independent, so the gradient of the
    sum gives every sample's own input gradient.
    """
    grad = jax.grad(lambda x: jnp.sum(d_fn(d_params, x)))(real)
    return jnp.mean(jnp.sum(jnp.square(grad.reshape(grad.shape[0], -1)), axis=1))


def ema_beta(tc: TrainConfig, images_seen) -> jax.Array:
    """EMA decay per step: ``0.5 ** (batch / ema_nimg)``, ``ema_nimg`` ramped up (NVlabs)."""
    ema_nimg = jnp.asarray(tc.ema_kimg * 1000.0, jnp.float32)
    if tc.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, images_seen * tc.ema_rampup)
    return 0.5 ** (tc.batch / jnp.maximum(ema_nimg, 1e-8))


def ema_update(ema, params, beta):
    """``p + beta (ema - p)`` for trained leaves; buffers are copied from ``params``."""
    return jax.tree_util.tree_map_with_path(
        lambda path, e, p: p if _is_buffer(path) else p + beta * (e - p), ema, params)


# ----- the step -----------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("g_config", "d_config", "tc", "with_r1"))
def train_step(state: TrainState, train_images, *, g_config, d_config, tc: TrainConfig,
               with_r1: bool):
    """One generator and one discriminator update (plus R1 when ``with_r1``).

    train_images: (M, C, R, R), the whole training set; the batch is drawn from the state's
    key. Returns ``(new_state, metrics)``.
    """
    key, kg, kf, kreal = jax.random.split(state.key, 4)
    gopt, dopt = optimizer(tc.g_lr, tc), optimizer(tc.d_lr, tc)

    # generator: non-saturating loss through a frozen D
    (lg, w), gg = jax.value_and_grad(g_loss, has_aux=True)(
        state.g_params, state.d_params, kg, g_config=g_config, d_config=d_config,
        batch=tc.batch, mixing_prob=tc.style_mixing_prob)
    gg = zero_buffer_grads(gg)
    upd, g_opt = gopt.update(gg, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, upd)
    if g_config.w_avg_beta is not None:
        m = g_params["mapping"]
        w_avg = jnp.mean(w, axis=0) + g_config.w_avg_beta * (m["w_avg"] - jnp.mean(w, axis=0))
        g_params = {**g_params, "mapping": {**m, "w_avg": jax.lax.stop_gradient(w_avg)}}

    # discriminator: logistic loss on fresh fakes and a real batch (+ lazy R1)
    fake, _ = generate_train(g_config, g_params, kf, tc.batch, tc.style_mixing_prob)
    fake = jax.lax.stop_gradient(fake)
    idx = jax.random.randint(kreal, (tc.batch,), 0, train_images.shape[0])
    real = train_images[idx]

    def total_d(dp):
        loss, (dr, df) = d_loss(dp, real, fake, d_config=d_config)
        r1 = jnp.zeros(())
        if with_r1:
            r1 = r1_penalty(functools.partial(D.discriminate, d_config), dp, real)
            loss = loss + r1 * (tc.r1_gamma / 2) * tc.r1_interval
        return loss, (loss, dr, df, r1)

    (_, (ld, dr, df, r1)), dg = jax.value_and_grad(total_d, has_aux=True)(state.d_params)
    upd, d_opt = dopt.update(dg, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, upd)

    step = state.step + 1
    beta = ema_beta(tc, step.astype(jnp.float32) * tc.batch)
    g_ema = ema_update(state.g_ema, g_params, beta)
    new = TrainState(g_params, d_params, g_ema, g_opt, d_opt, step, key)
    return new, {"g_loss": lg, "d_loss": ld, "d_real": dr, "d_fake": df, "r1": r1}


# ----- loop and snapshots -------------------------------------------------------------------
def save_snapshot(path: str, state: TrainState) -> str:
    """Write the state's leaves (numpy ``.npz``, no pickles); restore with :func:`load_snapshot`."""
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {f"leaf{i:04d}": np.asarray(jax.random.key_data(x) if _is_key(x) else x)
              for i, x in enumerate(leaves)}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def load_snapshot(path: str, like: TrainState) -> TrainState:
    """Restore a snapshot into the structure of ``like`` (a state from :func:`init_state`)."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    with np.load(path) as f:
        if len(f.files) != len(leaves):
            raise ValueError(f"{path}: snapshot has {len(f.files)} arrays, this training setup "
                             f"expects {len(leaves)} (different configs?)")
        out = []
        for i, ref in enumerate(leaves):
            a = f[f"leaf{i:04d}"]
            if _is_key(ref):
                out.append(jax.random.wrap_key_data(jnp.asarray(a)))
                continue
            if a.shape != ref.shape:
                raise ValueError(f"{path}: leaf {i} has shape {a.shape}, expected {ref.shape}")
            out.append(jnp.asarray(a, ref.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def train(g_config: StyleGAN2Config, d_config: D.DiscriminatorConfig, tc: TrainConfig,
          train_images, *, state: TrainState | None = None, snapshot: str | None = None,
          snapshot_every: int = 500, progress: bool = True, log: Callable | None = None,
          stop_at: int | None = None):
    """Run up to step ``tc.steps`` (from ``state`` or a fresh one); returns the final state.

    ``stop_at`` ends the run early at that step (to look at samples); calling again with the
    returned state continues the same run.

    ``snapshot``: a ``.npz`` path rewritten every ``snapshot_every`` steps and at the end;
    when it exists at the start, training resumes from it. ``log(step, metrics)`` is called
    with host floats every 100 steps.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    if state is None:
        state = init_state(g_config, d_config, tc)
        if snapshot and os.path.exists(snapshot):
            state = load_snapshot(snapshot, state)
    data = jnp.asarray(train_images, jnp.float32)
    start = int(state.step)
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    bar = tqdm(range(start, end), initial=start, total=tc.steps, disable=not progress,
               desc="GAN", unit="step")
    for i in bar:
        with_r1 = tc.r1_gamma > 0 and i % tc.r1_interval == 0
        state, metrics = train_step(state, data, g_config=g_config, d_config=d_config, tc=tc,
                                    with_r1=with_r1)
        if (i + 1) % 100 == 0 or i + 1 == end:
            host = {k: float(v) for k, v in metrics.items()}
            bar.set_postfix(g=f"{host['g_loss']:.3f}", d=f"{host['d_loss']:.3f}")
            if log is not None:
                log(i + 1, host)
        if snapshot and ((i + 1) % snapshot_every == 0 or i + 1 == end):
            save_snapshot(snapshot, state)
    return state
