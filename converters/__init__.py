"""Checkpoint readers: turn a PyTorch-era file into ``(config, params)``.

Installed as ``jaxlatent.converters``. This is the only part of the library that
knows torch file formats; importing this package does not import torch (each
reader imports it when it runs).

* :mod:`jaxlatent.converters.nvlabs` reads NVlabs StyleGAN2(-ADA) ``.pkl``
  files through a restricted unpickler that never runs code from the file
  (``_safe_pickle``).
* :mod:`jaxlatent.converters.rosinality` reads rosinality ``stylegan2-pytorch``
  ``.pt`` checkpoints and renames their keys onto the NVlabs layout.
* :mod:`jaxlatent.converters.fastgan` reads FastGAN ``.pth`` files.
* :mod:`jaxlatent.converters.biggan` reads huggingface ``pytorch-pretrained-biggan`` weights
  (``pytorch_model.bin`` + the package's ``config.json``).
* :mod:`jaxlatent.converters.spectral_norm` folds spectral-norm triples as evaluation mode does.

Every reader is named ``read_<format>(path, ...)`` and returns a :class:`Converted`
record; ``convert_<format>(obj, path, ...)`` does the same for an object already
loaded with :func:`load_torch_file`. ``jaxlatent.load`` turns the record into a
model object. See ``docs/checkpoints.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import zipfile
from typing import Any, NamedTuple

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint could not be read; the message names the file and the problem."""


class Converted(NamedTuple):
    """What a reader found in a checkpoint file.

    Attributes:
      config: the model family's frozen config dataclass.
      params: nested dict of numpy arrays keyed like the reference state dict.
      source: JSON-able provenance (file name, format, which network, notes).
    """

    config: Any
    params: dict
    source: dict


def import_torch(path, purpose: str):
    """Import torch for a reader, or fail with a message naming the file."""
    try:
        import torch  # noqa: PLC0415  (lazy on purpose: torch is optional)
    except ImportError:  # includes sys.modules['torch'] = None
        raise CheckpointError(
            f"{path}: reading {purpose} needs PyTorch, which is not installed "
            "(pip install 'jaxlatent[torch]')"
        ) from None
    return torch


def load_torch_file(path):
    """Read a ``torch.save`` file with ``torch.load(weights_only=True)``.

    Memory-maps zip-format files; ``argparse.Namespace`` (the ``args`` entry of
    training checkpoints) is the one class allowed beyond torch's own safe set,
    and it only holds attributes. Errors name the file.
    """
    torch = import_torch(path, "a PyTorch checkpoint")
    mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint with plain tensors ({first})"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: could not read the PyTorch checkpoint; the file may be truncated "
            f"or not a checkpoint ({type(err).__name__}: {first})"
        ) from None


def tensor_to_numpy(tensor):
    """A float32 (or integer) numpy copy of a torch tensor."""
    array = tensor.detach().cpu()
    if array.is_floating_point():
        array = array.float()
    return np.array(array.numpy(), copy=True)


def file_sha256(path) -> str:
    """SHA-256 of a file, read in 4 MiB blocks (recorded in ``Converted.source``).

    Args:
      path: the file.

    Returns:
      the hex digest.
    """
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    return sha.hexdigest()


__all__ = ["CheckpointError", "Converted", "file_sha256", "import_torch", "load_torch_file",
           "tensor_to_numpy"]
