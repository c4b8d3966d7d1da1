"""NVlabs .pkl reader: structure, safety (no code from the file runs) and errors.

``write_nvlabs_pickle`` emits the same pickle structure NVlabs' training loop
writes (``pickle.dump`` of ``{'G', 'D', 'G_ema', ...}`` whose networks reduce to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``): the same
globals and opcodes, checked against a pickle made by the NVlabs code
(stylegan2-ada-pytorch d72cc7d) with ``pickletools``. Its ``module_src`` is
ours and, in the safety tests, a payload that would write a marker file.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the NVlabs reader decodes tensors with torch")

import jax  # noqa: E402

from jaxlatent.converters import CheckpointError  # noqa: E402
from jaxlatent.converters.nvlabs import read_nvlabs  # noqa: E402
from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config  # noqa: E402
from helpers import random_stylegan2

SMALL = dict(z_dim=8, w_dim=8, img_resolution=8, img_channels=3)
SMALL_KW = dict(SMALL, c_dim=0, mapping_kwargs={"num_layers": 2},
                synthesis_kwargs={"channel_base": 64, "channel_max": 8, "num_fp16_res": 0,
                                  "conv_clamp": None})
HARMLESS_SRC = "# module source stored by torch_utils.persistence (never run by jaxlatent)\n" * 8
BUFFERS = ("w_avg", "noise_const", "resample_filter")
CLASS_OF = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "conv0": "SynthesisLayer",
            "conv1": "SynthesisLayer", "torgb": "ToRGBLayer", "skip": "Conv2dLayer"}




# ----- a writer of NVlabs-structured pickles ----------------------------------------------
@contextlib.contextmanager
def _fake_nvlabs_modules():
    """Install importable ``torch_utils.persistence`` / ``dnnlib.util`` so pickle can name them."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only pickled by reference
        raise AssertionError("never called")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__ = util.__name__
    EasyDict.__qualname__ = "EasyDict"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    names = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
             "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update(names)
    try:
        yield _reconstruct_persistent_obj, EasyDict
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Persistent:
    def __init__(self, reconstruct, class_name, state, src):
        self.reduce = (reconstruct, (dict(type="class", version=6, module_src=src,
                                          class_name=class_name, state=state),))

    def __reduce__(self):
        return self.reduce


def _module_state(params, buffers, modules, extra, easydict):
    od = collections.OrderedDict
    state = {"training": False, "_parameters": params, "_buffers": buffers,
             "_non_persistent_buffers_set": set(), "_backward_pre_hooks": od(),
             "_backward_hooks": od(), "_is_full_backward_hook": None, "_forward_hooks": od(),
             "_forward_hooks_with_kwargs": od(), "_forward_hooks_always_called": od(),
             "_forward_pre_hooks": od(), "_forward_pre_hooks_with_kwargs": od(),
             "_state_dict_hooks": od(), "_state_dict_pre_hooks": od(),
             "_load_state_dict_pre_hooks": od(), "_load_state_dict_post_hooks": od(),
             "_modules": modules}
    state.update(extra)
    state["_init_args"] = ()
    state["_init_kwargs"] = easydict()
    return state


def _build_net(reconstruct, easydict, class_name, tree, src, attrs):
    params, buffers, modules = {}, {}, {}
    for name, value in tree.items():
        if isinstance(value, dict):
            child_class = CLASS_OF.get(name, "SynthesisBlock" if name[:1] == "b" else "FullyConnectedLayer")
            modules[name] = _build_net(reconstruct, easydict, child_class, value, src, attrs)
        elif name in BUFFERS:
            buffers[name] = torch.tensor(np.array(value))
        else:
            params[name] = torch.nn.Parameter(torch.tensor(np.array(value)), requires_grad=False)
    extra = dict(attrs.get(class_name, {}))
    extra.setdefault("weight_gain", np.float64(0.25))  # numpy scalars appear in real state
    return _Persistent(reconstruct, class_name, _module_state(params, buffers, modules, extra, easydict), src)


def nested(flat):
    tree = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def flat_state(model):
    out = {}

    def walk(t, prefix):
        for k, v in t.items():
            walk(v, f"{prefix}{k}.") if isinstance(v, dict) else out.__setitem__(prefix + k, np.asarray(v))
    walk(model.params, "")
    filt = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / 64
    for key in list(out):
        if key.endswith("conv0.weight") or key.endswith("conv1.weight"):
            out[key.rsplit(".", 1)[0] + ".resample_filter"] = filt
    for res in model.config.block_resolutions:
        out[f"synthesis.b{res}.resample_filter"] = filt
    return out


def write_nvlabs_pickle(path, nets, init_kwargs=None, src=HARMLESS_SRC, attrs=None, extra=None):
    """Write ``{'training_set_kwargs', name: network, ...}`` like NVlabs' training loop.

    ``nets`` maps names ('G', 'G_ema', 'D') to ``(class_name, flat state dict)``.
    """
    attrs = attrs or {"MappingNetwork": {"w_avg_beta": 0.995}, "SynthesisLayer": {"conv_clamp": None},
                      "SynthesisNetwork": {"block_resolutions": [4, 8], "channel_base": 32768}}
    with _fake_nvlabs_modules() as (reconstruct, easydict):
        data = {"training_set_kwargs": dict(easydict(path="data.zip", resolution=8))}
        for name, (class_name, flat) in nets.items():
            net = _build_net(reconstruct, easydict, class_name, nested(flat), src, attrs)
            net.reduce[1][0]["state"]["_init_kwargs"] = easydict(
                {k: easydict(v) if isinstance(v, dict) else v for k, v in (init_kwargs or {}).items()})
            data[name] = net
        data["augment_pipe"] = None
        data.update(extra or {})
        with open(path, "wb") as f:
            pickle.dump(data, f)
    return path


# ----- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_models():
    config = StyleGAN2Config.from_nvlabs_kwargs(SMALL_KW)
    g = random_stylegan2(config, 0)
    g_ema = random_stylegan2(config, 1)
    return config, g, g_ema


@pytest.fixture()
def small_pkl(tmp_path, small_models):
    _, g, g_ema = small_models
    nets = {"G": ("Generator", flat_state(g)), "G_ema": ("Generator", flat_state(g_ema)),
            "D": ("Discriminator", {"b8.conv0.weight": np.zeros((2, 2, 3, 3), np.float32)})}
    return write_nvlabs_pickle(tmp_path / "net.pkl", nets, SMALL_KW)


# ----- reading ----------------------------------------------------------------------------
def test_reads_g_ema_by_default_and_g_on_request(small_pkl, small_models):
    config, g, g_ema = small_models
    conv = read_nvlabs(small_pkl)
    assert conv.config == config and conv.source["network"] == "G_ema"
    z = np.random.RandomState(0).randn(2, 8).astype(np.float32)
    np.testing.assert_array_equal(StyleGAN2(conv.config, conv.params).generate(z), g_ema.generate(z))
    conv_g = read_nvlabs(small_pkl, which="G")
    np.testing.assert_array_equal(StyleGAN2(conv_g.config, conv_g.params).mapping(z), g.mapping(z))


def test_only_the_chosen_network_is_decoded(small_pkl, monkeypatch):
    from jaxlatent.converters import _safe_pickle

    decoded = []
    original = _safe_pickle.LazyStorage.get
    monkeypatch.setattr(_safe_pickle.LazyStorage, "get",
                        lambda self: decoded.append(1) or original(self))
    conv = read_nvlabs(small_pkl)
    n_tensors = sum(1 for _ in jax.tree_util.tree_leaves(conv.params))
    assert n_tensors <= len(decoded) < 2 * n_tensors  # G and D stay undecoded


def test_conditional_and_stylegan3_layout(tmp_path):
    kw = dict(SMALL, c_dim=3, mapping_kwargs={"num_layers": 1}, channel_base=64, channel_max=8)
    config = StyleGAN2Config.from_nvlabs_kwargs(kw, flavor="stylegan3")
    model = random_stylegan2(config, 2)
    path = write_nvlabs_pickle(
        tmp_path / "sg3.pkl", {"G_ema": ("Generator", flat_state(model))}, kw,
        src="def f(fused_modconv_default=True): pass\n",
        attrs={"SynthesisLayer": {"conv_clamp": 256}, "MappingNetwork": {"w_avg_beta": 0.998}})
    conv = read_nvlabs(path)
    assert conv.config.c_dim == 3 and conv.config.conv_clamp == 256
    assert conv.config.w_avg_beta == 0.998


# ----- safety -----------------------------------------------------------------------------
def test_embedded_source_never_runs(tmp_path, small_models):
    marker = tmp_path / "pwned.txt"
    payload = f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('payload ran')\n"
    with pytest.raises(SystemExit):  # the payload is live: running it writes the marker
        exec(compile(payload, "<payload>", "exec"), {})  # noqa: S102
    assert marker.exists()
    marker.unlink()
    path = write_nvlabs_pickle(tmp_path / "evil.pkl", {"G_ema": ("Generator", flat_state(small_models[2]))},
                               SMALL_KW, src=payload)
    conv = read_nvlabs(path)
    assert conv.config.img_resolution == 8
    assert not marker.exists()


class _Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func,name", [(os.system, f"{os.system.__module__}.system"),
                                       (eval, "builtins.eval")])
def test_disallowed_global_is_refused_and_not_run(tmp_path, small_models, func, name):
    marker = tmp_path / "pwned.txt"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    path = write_nvlabs_pickle(tmp_path / "evil.pkl", {"G_ema": ("Generator", flat_state(small_models[2]))},
                               SMALL_KW, extra={"augment_pipe": _Call(func, arg)})
    with pytest.raises(CheckpointError) as err:
        read_nvlabs(path)
    assert str(path) in str(err.value) and name in str(err.value)
    assert not marker.exists()


def test_tensorflow_pickle_gets_a_hint(tmp_path):
    path = tmp_path / "tf.pkl"
    path.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01.")
    with pytest.raises(CheckpointError, match="legacy.py"):
        read_nvlabs(path)


# ----- bad files --------------------------------------------------------------------------
def test_truncated_file(tmp_path, small_pkl):
    data = small_pkl.read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pkl.*(truncated|ends early)"):
        read_nvlabs(cut)


@pytest.mark.parametrize("content", [np.random.RandomState(0).bytes(4096), b"hello, world\n" * 20, b""])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.pkl"):
        read_nvlabs(path)


def test_missing_and_misshapen_keys(tmp_path, small_models):
    flat = flat_state(small_models[2])
    del flat["synthesis.b8.conv0.affine.weight"]
    flat["mapping.fc0.weight"] = np.zeros((8, 5), np.float32)
    path = write_nvlabs_pickle(tmp_path / "bad.pkl", {"G_ema": ("Generator", flat)}, SMALL_KW)
    with pytest.raises(CheckpointError) as err:
        read_nvlabs(path)
    msg = str(err.value)
    assert "bad.pkl" in msg and "synthesis.b8.conv0.affine.weight: missing" in msg
    assert "mapping.fc0.weight: expected shape (8, 8), found (8, 5)" in msg


def test_unsupported_architecture(tmp_path, small_models):
    flat = {"mapping.fc0.weight": np.zeros((8, 8), np.float32),
            "synthesis.input.weight": np.zeros((8, 2), np.float32),
            "synthesis.L0_36_512.weight": np.zeros((8, 8, 1, 1), np.float32)}
    path = write_nvlabs_pickle(tmp_path / "sg3.pkl", {"G_ema": ("Generator", flat)}, SMALL_KW)
    with pytest.raises(CheckpointError, match=r"sg3\.pkl.*L0_36_512.*StyleGAN3"):
        read_nvlabs(path)


def test_wrong_network_names(small_pkl):
    with pytest.raises(CheckpointError, match=r"net\.pkl.*'Discriminator'"):
        read_nvlabs(small_pkl, which="D")
    with pytest.raises(CheckpointError, match=r"no network 'G_avg'.*'G_ema'"):
        read_nvlabs(small_pkl, which="G_avg")


# recorded from a pickle written by stylegan2-ada-pytorch (d72cc7d) training-loop code on
# torch 2.13 / numpy 2.4: its globals and opcodes; our writer must produce the same
NVLABS_GLOBALS = ["collections.OrderedDict", "dnnlib.util.EasyDict", "numpy._core.multiarray.scalar",
                  "numpy.dtype", "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2",
                  "torch.storage._load_from_bytes",
                  "torch_utils.persistence._reconstruct_persistent_obj"]
NVLABS_OPCODES = ["APPENDS", "BINBYTES", "BINFLOAT", "BINGET", "BININT", "BININT1", "BININT2",
                  "BINUNICODE", "BUILD", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_SET", "EMPTY_TUPLE",
                  "FRAME", "LONG_BINGET", "MARK", "MEMOIZE", "NEWFALSE", "NEWOBJ", "NEWTRUE", "NONE",
                  "PROTO", "REDUCE", "SETITEM", "SETITEMS", "SHORT_BINBYTES", "SHORT_BINUNICODE",
                  "STACK_GLOBAL", "STOP", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"]


def test_writer_matches_nvlabs_pickle_structure(small_pkl):
    import pickletools

    from jaxlatent.converters import _safe_pickle

    seen = []

    class Recording(_safe_pickle.RestrictedUnpickler):
        def find_class(self, module, name):
            seen.append(f"{module}.{name}")
            return super().find_class(module, name)

    with open(small_pkl, "rb") as f:
        Recording(f).load()
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        seen = [s.replace("numpy.core.", "numpy._core.") for s in seen]
    assert sorted(set(seen)) == NVLABS_GLOBALS
    opcodes = {op.name for op, _, _ in pickletools.genops(small_pkl.read_bytes())}
    assert opcodes == set(NVLABS_OPCODES)
