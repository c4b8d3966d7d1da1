"""Spectral norm folded into plain weights, as PyTorch computes it in evaluation mode.

``torch.nn.utils.spectral_norm`` stores ``<m>.weight_orig`` and the power-iteration vectors
``<m>.weight_u``, ``<m>.weight_v``; in evaluation mode (no power iteration) the weight a layer uses
is ``weight_orig / sigma`` with ``sigma = u . (W v)`` and ``W`` the weight as a matrix, its
normalised axis first (axis 0, or axis 1 for transposed convolutions). Miyato et al., "Spectral
Normalization for Generative Adversarial Networks", ICLR 2018.
"""

from __future__ import annotations

from typing import Collection

import numpy as np

from jaxlatent.converters import CheckpointError

__all__ = ["fold_spectral_norm"]


def fold_spectral_norm(state: dict, source: str = "state dict", transposed: Collection[str] = ()) -> dict:
    """Replace every ``<m>.weight_orig, <m>.weight_u, <m>.weight_v`` by the effective ``<m>.weight``.

    Args:
      state: flat ``{key: numpy array}``.
      source: names the file in errors.
      transposed: modules whose spectral norm runs along axis 1 (``ConvTranspose2d``).

    Returns:
      a new flat dict: folded weights (computed in float64, returned float32) where the triples
      were, other entries unchanged. A ``weight_orig`` without its vectors, or vectors whose
      sizes do not fit, raise :class:`CheckpointError` naming the file and the key; vectors
      without their ``weight_orig`` are dropped (the caller reports the weight as missing).
    """
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_u") or key.endswith(".weight_v"):
            continue  # consumed with their weight_orig; alone, the weight is reported missing later
        if not key.endswith(".weight_orig"):
            out[key] = value
            continue
        module = key[: -len(".weight_orig")]
        try:
            u, v = state[module + ".weight_u"], state[module + ".weight_v"]
        except KeyError as err:
            raise CheckpointError(f"{source}: {key} has no spectral-norm vector {err.args[0]!r}") from None
        w = np.asarray(value, np.float64)
        dim = 1 if module in transposed else 0
        mat = np.moveaxis(w, dim, 0).reshape(w.shape[dim], -1)
        if np.shape(u) != (mat.shape[0],) or np.shape(v) != (mat.shape[1],):
            raise CheckpointError(
                f"{source}: spectral norm of {module}: weight_orig {w.shape} needs u ({mat.shape[0]},) "
                f"and v ({mat.shape[1]},); found u {np.shape(u)}, v {np.shape(v)}")
        sigma = np.dot(np.asarray(u, np.float64), mat @ np.asarray(v, np.float64))
        out[module + ".weight"] = (w / sigma).astype(np.float32)
    return out
