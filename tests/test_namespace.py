"""The flat public namespace: explicit imports, every advertised name resolves, no PyTorch."""

import importlib
import subprocess
import sys

import jaxlatent


def test_every_export_resolves_to_its_defining_module():
    assert len(set(jaxlatent.__all__)) == len(jaxlatent.__all__)
    for name in jaxlatent.__all__:
        value = getattr(jaxlatent, name)  # AttributeError names a stale export
        if name == "__version__":
            assert isinstance(value, str)
            continue
        module = getattr(value, "__module__", None)
        assert module and module.startswith("jaxlatent"), (name, module)
        # the object the defining module holds, not a copy or a stale alias
        assert getattr(importlib.import_module(module), name) is value, name


def test_result_types_are_exported():
    for name in ("LocalBasis", "LocalBasisTopK", "TopSingular", "Traversal", "LocalDimension",
                 "LayerDimensions", "Distortion", "Warpage"):
        assert isinstance(getattr(jaxlatent, name), type) and name in jaxlatent.__all__, name
    assert callable(jaxlatent.layer_distortions)


def test_app_and_infrastructure_names_live_in_their_modules():
    # the report, CLI helpers and device meshes are reached through their modules
    for name in ("build_report", "ReportOptions", "parse_seeds", "shard_batch", "batch_mesh"):
        assert name not in jaxlatent.__all__ and not hasattr(jaxlatent, name), name


def test_import_does_not_import_torch():
    code = ("import sys; import jaxlatent; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
