"""The networks that read a generator's images: classifiers (correlation analysis, traversal labels)
and feature extractors (edit FID), chosen once for the command line, the report and runs.

The shipped digit classifier (:mod:`jaxlatent.models.digits`) knows 16x16 digits only, so it is a
default for the shipped digits model and nothing else. Any other model needs the user's own
network: a classifier directory in the digits format (``jaxlatent.train.classifier.save_classifier``)
or, for FID features, pytorch-fid's Inception weights file. Every choice is checked against the
model's images (shapes only, nothing runs) before any work, and an error names what to pass.
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax.errors import FlaxError

from jaxlatent.io import load_inception
from jaxlatent.models import digits

__all__ = ["is_shipped_digits", "classifier_for", "features_for", "check_reads_images"]


def is_shipped_digits(checkpoint: str | os.PathLike | None) -> bool:
    """Whether ``checkpoint`` is the shipped digits model (``jaxlatent/assets/digits``)."""
    if checkpoint is None or not os.path.isdir(checkpoint):
        return False
    return os.path.samefile(checkpoint, digits.assets_dir())


def image_shape(model) -> tuple[int, ...]:
    """``(C, H, W)`` of one generated image."""
    return tuple(int(s) for s in model.tap_shape("image"))


def check_reads_images(model, fn: Callable, *, flag: str, what: str) -> int:
    """The width of ``fn``'s output on the model's images ``(N, C, H, W)`` (traced, nothing runs);
    a ``ValueError`` naming ``flag`` when ``fn`` cannot read them."""
    shape = image_shape(model)
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((2,) + shape, np.float32))
    except (TypeError, ValueError, FlaxError) as err:   # a layer's weights of another shape: FlaxError
        raise ValueError(f"{flag}: the {what} cannot read this model's images of shape {shape} "
                         f"({str(err).splitlines()[0]}); pass a {what} made for {shape[1]}x{shape[2]} images "
                         f"with {shape[0]} channel(s)") from None
    return int(np.prod(out.shape[1:]))


def classifier_for(model, checkpoint: str | None, path: str | None, *, flag: str = "--classifier"):
    """The classifier of a command: ``path`` (a digits-format directory) when given, the shipped
    digit classifier for the shipped digits model, else a ``ValueError`` saying what to pass.

    Checked against the model's images before any work.
    """
    if path is not None:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{flag} {path}: no such directory (a classifier written by "
                                    "jaxlatent.train.classifier.save_classifier)")
        clf = digits.load_classifier(path)
    elif is_shipped_digits(checkpoint):
        clf = digits.load_classifier()
    else:
        raise ValueError(f"{checkpoint}: {flag} DIR is needed: the shipped digit classifier reads only the "
                         f"shipped digits model's 16x16 digits; pass a classifier directory "
                         f"({digits.FORMAT_NAME}, see jaxlatent.train.classifier.save_classifier) trained on "
                         f"this model's {image_shape(model)} images")
    check_reads_images(model, clf.logits, flag=flag, what="classifier")
    return clf


def _gray_to_rgb(features, images):
    return features(images if images.shape[1] == 3 else jnp.repeat(images, 3, axis=1))


def features_for(model, checkpoint: str | None, text: str | None, *, flag: str = "--features") -> Callable:
    """The FID feature network of a command: batched images ``(N, C, H, W) -> (N, F)``.

    Args:
      model: the generator whose images are read.
      checkpoint: its path (the shipped digits model gets the digit classifier by default).
      text: ``None`` (the default above), ``"classifier"`` (the shipped digit classifier, for the
        digits model), a classifier directory, or pytorch-fid's Inception weights file
        (``pt_inception-2015-12-05-6726825d.pth``; grey images are repeated to three channels).
      flag: what error messages name.

    Returns:
      The feature callable, checked against the model's images.
    """
    if text is None or text == "classifier":
        if not is_shipped_digits(checkpoint):
            raise ValueError(
                f"{checkpoint}: {flag} is needed: the shipped digit classifier's features suit only the "
                f"shipped digits model; pass pytorch-fid's Inception weights file "
                f"(pt_inception-2015-12-05-6726825d.pth; none can be downloaded here) or a classifier "
                f"directory trained on this model's {image_shape(model)} images")
        fn = digits.load_classifier().features
    elif text == "inception":
        raise ValueError(f"{flag} inception: give the path of pytorch-fid's weights file "
                         "(pt_inception-2015-12-05-6726825d.pth) instead; none can be downloaded here")
    elif os.path.isdir(text):
        if not os.path.exists(os.path.join(text, "config.json")):
            raise ValueError(f"{flag} {text}: a directory must be a classifier ({digits.FORMAT_NAME}) "
                             "with config.json")
        fn = digits.load_classifier(text).features
    elif not os.path.exists(text):
        raise FileNotFoundError(f"{flag} {text}: no such file or directory")
    else:
        fn = jax.tree_util.Partial(_gray_to_rgb, load_inception(text))
    check_reads_images(model, fn, flag=flag, what="feature network")
    return fn
