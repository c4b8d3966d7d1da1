"""The shipped digits models: the digit classifier and where the assets lie.

``jaxlatent/assets/digits`` holds a converted 16x16 StyleGAN2 trained on scikit-learn's
handwritten digits (``jaxlatent.load(assets_dir())``), ``classifier/`` (a :class:`Classifier`)
and ``quality.json``. This module is what the demo and the report need at run time; the
training code that made these files is :mod:`jaxlatent.train`.

The classifier is a small Flax CNN on NCHW images in [-1, 1] like the generator's: two 3x3
convolutions (32 and 64 channels, ReLU, 2x2 average pooling), a dense feature layer
(``features`` units, ReLU) and a dense 10-way output. The feature layer is the embedding of the
digit Fréchet distance, as Inception's pool features are for FID (Heusel et al., NeurIPS 2017).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

NUM_CLASSES = 10
FORMAT_NAME = "jaxlatent.digit_classifier"


def assets_dir() -> str:
    """Directory of the shipped digit models (``jaxlatent/assets/digits``).

    It is a converted generator directory (``jaxlatent.load(assets_dir())``) that also holds
    ``classifier/`` and ``quality.json``.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))      # jaxlatent/
    return os.path.join(package, "assets", "digits")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    resolution: int = 16
    features: int = 64
    seed: int = 0
    epochs: int = 40
    batch: int = 64
    lr: float = 1e-3
    max_shift: int = 1
    outlier_weight: float = 0.5

    def to_dict(self):
        return dataclasses.asdict(self)


class DigitCNN(nn.Module):
    """Digit classifier; ``__call__(x: (N, 1, R, R)) -> (logits (N, 10), features (N, F))``."""

    features: int = 64

    @nn.compact
    def __call__(self, x):
        x = jnp.transpose(x, (0, 2, 3, 1))  # Flax convolutions are NHWC
        x = nn.avg_pool(nn.relu(nn.Conv(32, (3, 3))(x)), (2, 2), (2, 2))
        x = nn.avg_pool(nn.relu(nn.Conv(64, (3, 3))(x)), (2, 2), (2, 2))
        feats = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
        return nn.Dense(NUM_CLASSES)(feats), feats


class Classifier:
    """A trained :class:`DigitCNN`: ``config`` and ``params``, with jitted batched calls."""

    def __init__(self, config: ClassifierConfig, params):
        self.config = config
        self.params = params

    def logits(self, x):
        """Class logits (N, 10) for images x: (N, 1, R, R) in [-1, 1]."""
        return _apply(self.config.features, self.params, jnp.asarray(x, jnp.float32))[0]

    def probs(self, x):
        """Class probabilities (N, 10) (softmax of :meth:`logits`)."""
        return jax.nn.softmax(self.logits(x), axis=-1)

    def features(self, x):
        """Feature-layer activations (N, features): the embedding of the Fréchet distance."""
        return _apply(self.config.features, self.params, jnp.asarray(x, jnp.float32))[1]

    def predict(self, x, batch: int = 500) -> np.ndarray:
        """Predicted labels (N,) as numpy, computed in chunks of ``batch``."""
        x = np.asarray(x, np.float32)
        return np.concatenate([np.asarray(jnp.argmax(self.logits(x[i:i + batch]), axis=-1))
                               for i in range(0, len(x), batch)])


@functools.partial(jax.jit, static_argnames=("features",))
def _apply(features, params, x):
    return DigitCNN(features).apply({"params": params}, x)


def load_classifier(path: str | None = None) -> Classifier:
    """Load a classifier written by :func:`jaxlatent.train.classifier.save_classifier` (default: the shipped one)."""
    if path is None:
        path = os.path.join(assets_dir(), "classifier")
    path = os.path.abspath(path)
    cfg_path = os.path.join(path, "config.json")
    try:
        with open(cfg_path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{cfg_path}: cannot read the classifier config ({err})") from None
    if record.get("format") != FORMAT_NAME:
        raise ValueError(f"{cfg_path}: format {record.get('format')!r}, expected {FORMAT_NAME!r}")
    config = ClassifierConfig(**record["config"])
    params = ocp.PyTreeCheckpointer().restore(os.path.join(path, "params"))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    return Classifier(config, params)
