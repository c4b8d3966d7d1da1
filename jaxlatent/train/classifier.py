"""A small Flax CNN that classifies the 16x16 digits; the feature network for a digit FID.

Two 3x3 convolutions (32 and 64 channels, ReLU, 2x2 average pooling), a dense feature layer
(``features`` units, ReLU) and a dense 10-way output. The network, loading and saving
live in :mod:`jaxlatent.models.digits` (what the demo needs at run time); this module trains it.

Trained with Adam on the training split, with random shifts of up to ``max_shift`` pixels so
that it judges generated digits, which are not always centred, by their shape. Outlier
exposure (Hendrycks et al., ICLR 2019): each batch also holds smooth random fields (upsampled
Gaussian noise, what an untrained generator draws) whose target is the uniform distribution,
so that "confidence > 0.9" means "looks like a digit", not merely "is far from the others".
"""

from __future__ import annotations

import json
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from jaxlatent.io import drop_commit_marker
from jaxlatent.models.digits import FORMAT_NAME, NUM_CLASSES, Classifier, ClassifierConfig, DigitCNN


def random_shift(key, x, max_shift: int):
    """Shift each image (N, C, H, W) by integers in [-max_shift, max_shift], filling with -1."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    m = max_shift
    pad = jnp.pad(x, ((0, 0), (0, 0), (m, m), (m, m)), constant_values=-1.0)
    offs = jax.random.randint(key, (n, 2), 0, 2 * m + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (0, o[0], o[1]), (img.shape[0], h, w))
    return jax.vmap(crop)(pad, offs)


def smooth_noise(key, n: int, resolution: int):
    """Outlier images (n, 1, R, R): Gaussian noise on a 2x2..8x8 grid, upsampled, random scale/offset.

    The grid size, scale (0.5..3) and offset (-1..1) vary per image; values are not clipped,
    like an untrained generator's.
    """
    kg, ks, ko, kc = jax.random.split(key, 4)
    grids = [jax.image.resize(jax.random.normal(k, (n, 1, g, g)), (n, 1, resolution, resolution),
                              "linear") for k, g in zip(jax.random.split(kg, 3), (2, 4, 8))]
    choice = jax.random.randint(kc, (n,), 0, 3)
    x = jnp.choose(choice[:, None, None, None], grids, mode="clip")
    scale = jax.random.uniform(ks, (n, 1, 1, 1), minval=0.5, maxval=3.0)
    offset = jax.random.uniform(ko, (n, 1, 1, 1), minval=-1.0, maxval=1.0)
    return x * scale + offset


def train_classifier(config: ClassifierConfig, images, labels, progress: bool = True):
    """Train on images (N, 1, R, R) in [-1, 1] and labels (N,); returns a :class:`Classifier`.

    Deterministic from ``config.seed``: batch order and shifts come from ``jax.random``.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    model = DigitCNN(config.features)
    key = jax.random.key(config.seed)
    key, kinit = jax.random.split(key)
    x_all = jnp.asarray(images, jnp.float32)
    y_all = jnp.asarray(labels, jnp.int32)
    params = model.init(kinit, x_all[:1])["params"]
    opt = optax.adam(config.lr)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, key, idx):
        kshift, knoise = jax.random.split(key)
        x = random_shift(kshift, x_all[idx], config.max_shift)
        n_out = x.shape[0] // 2 if config.outlier_weight > 0 else 0
        x = jnp.concatenate([x, smooth_noise(knoise, n_out, x.shape[-1])])

        def loss_fn(p):
            logits, _ = model.apply({"params": p}, x)
            digits, outliers = logits[:idx.shape[0]], logits[idx.shape[0]:]
            loss = optax.softmax_cross_entropy_with_integer_labels(digits, y_all[idx]).mean()
            if n_out:
                # cross-entropy to the uniform distribution over the ten classes
                loss += config.outlier_weight * -jnp.mean(jax.nn.log_softmax(outliers))
            return loss

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    n = x_all.shape[0]
    per_epoch = n // config.batch
    bar = tqdm(range(config.epochs), desc="classifier", unit="epoch", disable=not progress)
    for _ in bar:
        key, kperm = jax.random.split(key)
        perm = jax.random.permutation(kperm, n)
        for b in range(per_epoch):
            key, kstep = jax.random.split(key)
            params, opt_state, loss = step(params, opt_state, kstep,
                                           perm[b * config.batch:(b + 1) * config.batch])
        bar.set_postfix(loss=f"{float(loss):.4f}")
    return Classifier(config, params)


def save_classifier(clf: Classifier, out_dir: str) -> str:
    """Write ``config.json`` + an orbax checkpoint of the params under ``params/``."""
    out_dir = os.path.abspath(out_dir)
    shutil.rmtree(os.path.join(out_dir, "params"), ignore_errors=True)
    os.makedirs(out_dir, exist_ok=True)
    ocp.PyTreeCheckpointer().save(os.path.join(out_dir, "params"),
                                  jax.tree_util.tree_map(np.asarray, clf.params))
    drop_commit_marker(os.path.join(out_dir, "params"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({"format": FORMAT_NAME, "config": clf.config.to_dict()}, f, indent=2,
                  sort_keys=True)
    return out_dir
