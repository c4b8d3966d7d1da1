"""Quality of the shipped digit generator, measured with the shipped classifier.

* classifier accuracy on the held-out real digits;
* on generated digits: the share classified with confidence (max softmax probability)
  above 0.9, and the histogram of predicted classes (a collapsed class shows as a near-empty
  bin);
* the Fréchet distance between Gaussians fitted to classifier features of generated and of
  real digits (the FID recipe of Heusel et al., NeurIPS 2017, with our classifier's feature
  layer in place of Inception's), for the trained and for an untrained generator, and between
  held-out and training real digits as the floor that sample noise alone gives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.ganspace.fid import frechet_distance
from jaxlatent.train.data import NUM_CLASSES


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64."""
    f = np.asarray(features, np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance_features(feats1, feats2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, F) and (N2, F)."""
    return frechet_distance(*feature_stats(feats1), *feature_stats(feats2))


def batched(fn, x, batch: int = 500) -> np.ndarray:
    """``fn`` over x in chunks of ``batch`` rows, concatenated as numpy."""
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def sample_images(model, n: int = 1000, seed: int = 0, batch: int = 500,
                  truncation_psi: float = 1.0) -> np.ndarray:
    """Images (n, C, R, R) from latents ``z ~ N(0, I)`` drawn from ``jax.random.key(seed)``.

    Constant noise inputs; no truncation unless asked.
    """
    z = jax.random.normal(jax.random.key(seed), (n, model.config.z_dim), jnp.float32)
    return batched(lambda zz: model.generate(zz, truncation_psi=truncation_psi), z, batch)


def accuracy(clf, images, labels) -> float:
    """Share of images (N, 1, R, R) whose predicted class equals labels (N,)."""
    return float(np.mean(clf.predict(images) == np.asarray(labels)))


def generated_digit_stats(clf, images, threshold: float = 0.9) -> dict:
    """Confident share and class histogram of generated images (N, 1, R, R).

    Returns ``{"confident_share", "class_histogram" (counts of predicted classes, length 10),
    "confident_class_histogram" (counts among the confident ones), "min_class_share"}``.
    """
    probs = batched(clf.probs, np.asarray(images, np.float32))
    pred = probs.argmax(axis=1)
    confident = probs.max(axis=1) > threshold
    hist = np.bincount(pred, minlength=NUM_CLASSES)
    return {
        "confident_share": float(confident.mean()),
        "class_histogram": hist.tolist(),
        "confident_class_histogram": np.bincount(pred[confident], minlength=NUM_CLASSES).tolist(),
        "min_class_share": float(hist.min() / len(pred)),
    }


def evaluate(model, untrained, clf, train, held_out, n: int = 1000, seed: int = 0) -> dict:
    """All quality figures of ``docs/training.md``; ``train``/``held_out`` are ``Digits``.

    Real reference features are those of the training split (what the GAN was fitted to);
    ``real_held_out`` gives the confident share and histogram of real held-out digits, the
    figures a perfect generator would reach.
    """
    real_feats = batched(clf.features, train.images)
    held_feats = batched(clf.features, held_out.images)
    gen = sample_images(model, n, seed)
    raw = sample_images(untrained, n, seed)
    out = {
        "classifier_accuracy_held_out": accuracy(clf, held_out.images, held_out.labels),
        "classifier_accuracy_train": accuracy(clf, train.images, train.labels),
        "num_generated": n,
        "sample_seed": seed,
        "confidence_threshold": 0.9,
        "real_held_out": generated_digit_stats(clf, held_out.images),
        "generated": generated_digit_stats(clf, gen),
        "untrained_generated": generated_digit_stats(clf, raw),
        "fd_generated_vs_train": frechet_distance_features(batched(clf.features, gen), real_feats),
        "fd_untrained_vs_train": frechet_distance_features(batched(clf.features, raw), real_feats),
        "fd_held_out_vs_train": frechet_distance_features(held_feats, real_feats),
    }
    return out
