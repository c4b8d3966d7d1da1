"""A pickle reader for NVlabs network pickles that never runs code from the file.

NVlabs pickles (``torch_utils/persistence.py``) store each network as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta``
carries the Python source of the defining module; the ordinary unpickler
executes that source. Here :class:`RestrictedUnpickler` resolves only a short
list of globals (the table in ``docs/checkpoints.md``, "Safety") and maps each
to a stand-in of ours that records its arguments:

* the persistence reconstructor -> :class:`PersistentObject` (keeps
  ``class_name``, ``state``; the source text is kept as a string and never run);
* ``dnnlib`` EasyDict -> a plain ``dict`` subclass;
* torch storage/tensor/parameter rebuilders -> lazy records; a tensor's bytes
  are decoded with ``torch.load(..., weights_only=True)`` only when a caller
  asks for that tensor, so networks nobody asked for (``D``, ``augment_pipe``)
  are never materialised;
* numpy scalar/dtype helpers and ``set``/``frozenset`` -> the real, data-only
  constructors.

Any other global ends the read with a :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np

try:  # numpy >= 2 renamed numpy.core to numpy._core
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover
    from numpy.core.multiarray import scalar as _np_scalar

from jaxlatent.converters import CheckpointError, import_torch


class PersistentObject:
    """Record of one ``torch_utils.persistence`` object (an ``nn.Module``).

    Attributes: ``class_name`` (str), ``state`` (the module's ``__dict__``:
    ``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...),
    ``module_src`` (text only; never executed), ``version``.
    """

    def __init__(self, meta):
        if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
            raise CheckpointError(
                "persistent object without a class name (not an NVlabs network pickle?)"
            )
        state = meta.get("state")
        if not isinstance(state, dict):
            raise CheckpointError(
                f"persistent object {meta['class_name']!r} has no state dict"
            )
        self.class_name = meta["class_name"]
        self.kind = meta.get("type")
        self.version = meta.get("version")
        self.module_src = meta.get("module_src")
        self.state = state

    def __setstate__(self, state):  # never let pickle BUILD overwrite the record
        raise CheckpointError(f"unexpected state update on {self.class_name!r}")

    def __repr__(self):
        return f"PersistentObject({self.class_name!r})"


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict."""

    def __setstate__(self, state):
        if state:
            raise CheckpointError("unexpected attribute state on an EasyDict")


class LazyStorage:
    """Serialized torch storage bytes, decoded on first use with weights_only."""

    def __init__(self, data):
        if not isinstance(data, (bytes, bytearray)):
            raise CheckpointError("tensor storage is not a bytes object")
        self._data = bytes(data)
        self._storage = None

    def get(self):
        if self._storage is None:
            torch = import_torch("<pickle>", "tensors in an NVlabs pickle")
            try:
                self._storage = torch.load(io.BytesIO(self._data), weights_only=True)
            except Exception as err:  # torch raises several types on bad bytes
                raise CheckpointError(f"a tensor's storage could not be read ({err})") from None
            self._data = b""
        return self._storage


class LazyTensor:
    """Arguments of ``torch._utils._rebuild_tensor_v2``; ``.numpy()`` builds it."""

    def __init__(self, storage, offset, size, stride, *unused):
        if not isinstance(storage, LazyStorage):
            raise CheckpointError("tensor without a serialized storage")
        self.storage, self.offset = storage, offset
        self.shape, self.stride = tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        import torch._utils  # noqa: PLC0415  (LazyStorage.get already imported torch)

        storage = self.storage.get()
        tensor = torch._utils._rebuild_tensor_v2(
            storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()
        ).detach()
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
        return tensor.numpy().copy()

    def __repr__(self):
        return f"LazyTensor(shape={self.shape})"


_TENSOR_TYPES = ("torch.Tensor", "torch.nn.parameter.Parameter")


class _TensorType:
    def __init__(self, name):
        self.name = name


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, LazyTensor):
        raise CheckpointError("parameter without tensor data")
    return data


def _rebuild_from_type(func, new_type, args, state):
    if func is not LazyTensor or not isinstance(new_type, _TensorType):
        raise CheckpointError("tensor subclass rebuild with an unexpected function or type")
    return func(*args)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise CheckpointError("numpy scalar of object dtype")
    return _np_scalar(dtype, data)


def _numpy_dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise CheckpointError("numpy object dtype")
    return dtype


ALLOWED_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("torch.storage", "_load_from_bytes"): LazyStorage,
    ("torch._utils", "_rebuild_tensor_v2"): LazyTensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): _TensorType("torch.Tensor"),
    ("torch.nn.parameter", "Parameter"): _TensorType("torch.nn.parameter.Parameter"),
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}

_HINTS = {
    ("dnnlib.tflib.network", "Network"): " (a TensorFlow-era StyleGAN pickle: convert it "
    "to the PyTorch format with NVlabs stylegan2-ada-pytorch legacy.py first)",
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` knows only ``ALLOWED_GLOBALS``."""

    def find_class(self, module, name):
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise CheckpointError(
                f"refused to load global '{module}.{name}': it is outside the set an "
                f"NVlabs network pickle needs, and loading it could run code"
                f"{_HINTS.get((module, name), '')}"
            )
        return target

    def persistent_load(self, pid):
        raise CheckpointError(
            "pickle uses persistent ids (a torch.save file, not an NVlabs pickle)"
        )


def read_pickle(path):
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; errors name the file."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except FileNotFoundError:
        raise
    except EOFError:
        raise CheckpointError(f"{path}: file ends early (truncated or empty pickle)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, UnicodeDecodeError, MemoryError, OverflowError) as err:
        raise CheckpointError(
            f"{path}: not a readable pickle ({type(err).__name__}: {err}); "
            "the file may be truncated or not a checkpoint"
        ) from None


def module_state_dict(obj: PersistentObject, prefix: str = "") -> dict:
    """Flat ``{dotted key: LazyTensor}`` of a module's parameters and persistent buffers.

    Walks ``_parameters``, ``_buffers`` and ``_modules`` like ``nn.Module.state_dict``.
    """
    state = obj.state
    out = {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, LazyTensor):
                raise CheckpointError(f"{prefix}{name} in {obj.class_name!r} is not a tensor")
            out[prefix + name] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(
                f"submodule {prefix}{name} of {obj.class_name!r} is not a persistent object"
            )
        out.update(module_state_dict(child, f"{prefix}{name}."))
    return out
