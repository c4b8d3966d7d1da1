"""FID feature throughput: jaxlatent's Flax Inception against pytorch-fid's, same weights, one run.

Both networks get the same seeded random weights (``tests/seeded_weights.py``; the real weights
file cannot be downloaded here, and the speed does not depend on the values) and the same
images, on the same device, in one process; the reference is pytorch-fid 0.3.0's
``InceptionV3`` imported from a folder given on the command line (never vendored), holding the
unpacked ``pytorch-fid`` and ``torchvision`` wheels (torchvision's package ``__init__`` needs
compiled ops a CPU torch lacks; only ``torchvision.models`` is used):

    pip download --no-deps -d wheels pytorch-fid==0.3.0 torchvision==0.28.0   # then unzip both into REF
    .venv/bin/python benchmarks/fid_features.py --ref REF --batch-sizes 8 32

Each batch size is warmed up (compilation reported apart), then timed over ``--repeats`` calls;
the table gives images/s for both and the ratio ours / reference (above 1: we are faster), and
the largest relative difference of the features. Without ``--ref`` only our side is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from seeded_weights import seeded_state_dict  # noqa: E402
from timing import median_time  # noqa: E402

from jaxlatent.converters.inception import expected_variables  # noqa: E402
from jaxlatent.io import load_inception  # noqa: E402


def _reference(ref: str, state: dict):
    """pytorch-fid's FID InceptionV3 with ``state`` instead of the downloaded weights."""
    import torch
    if ref not in sys.path:
        sys.path.insert(0, ref)
    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        tv.__path__ = [os.path.join(ref, "torchvision")]
        tv.__version__ = "0.28.0"
        sys.modules["torchvision"] = tv
    from pytorch_fid import inception as fid

    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    tensors |= {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}  # unused by the features
    fid.load_state_dict_from_url = lambda *a, **k: tensors
    return fid.InceptionV3([3]).eval()


def run(budget_s: float = 120.0, smoke: bool = False, ref: str | None = None,
        batch_sizes=(8, 32), size: int = 64, repeats: int = 3) -> list[dict]:
    """Rows ``{"row", "ours_s", "ref_s", "ratio", ...}`` per batch size (``benchmarks/device.py``'s
    convention). The reference folder is ``ref`` or the ``JAXLATENT_FID_REF`` environment variable."""
    start = time.perf_counter()
    ref = ref or os.environ.get("JAXLATENT_FID_REF")
    if smoke:
        batch_sizes, size, repeats = (2,), 32, 1
    shapes = {".".join(p[1:]): leaf.shape for p, leaf in flatten_dict(expected_variables()).items()}
    state = seeded_state_dict(shapes, 0)
    features = jax.jit(load_inception(state))
    reference = None
    if ref:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        reference = _reference(ref, state)
    rows = []
    for batch in batch_sizes:
        if time.perf_counter() - start > budget_s:
            rows.append({"row": f"fid_features batch {batch}", "case": f"batch {batch}", "note": "budget spent"})
            break
        x = np.random.RandomState(batch).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
        xj = jnp.asarray(x)
        t0 = time.perf_counter()
        ours = np.asarray(features(xj))
        compile_s = time.perf_counter() - t0
        ours_s = median_time(lambda: features(xj).block_until_ready(), repeats)
        row = {"row": f"fid_features batch {batch}", "case": f"batch {batch}, {size}px -> 299px",
               "ours_s": ours_s, "ours_images_per_s": batch / ours_s, "compile_s": compile_s}
        if reference is not None:
            import torch
            xt = torch.from_numpy((x + 1) / 2)
            with torch.no_grad():
                theirs = reference(xt)[0].reshape(batch, -1).numpy()
                ref_s = median_time(lambda: reference(xt), repeats)
            row |= {"ref_s": ref_s, "ref_images_per_s": batch / ref_s, "ratio": ref_s / ours_s,
                    "max_rel_diff": float(np.abs(ours - theirs).max() / np.abs(theirs).max())}
        else:
            row["note"] = "reference not timed (no --ref / JAXLATENT_FID_REF)"
        rows.append(row)
    return rows


def _table(rows) -> str:
    lines = ["| case | ours img/s | pytorch-fid img/s | ratio | compile s | max rel diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "ours_s" not in r:
            lines.append(f"| {r['case']} | {r.get('note', '')} | | | | |")
            continue
        ref = f"{r['ref_images_per_s']:.1f}" if "ref_s" in r else "-"
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        diff = f"{r['max_rel_diff']:.1e}" if "max_rel_diff" in r else "-"
        lines.append(f"| {r['case']} | {r['ours_images_per_s']:.1f} | {ref} | {ratio} | {r['compile_s']:.1f} | {diff} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", help="folder with the unpacked pytorch-fid and torchvision wheels")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    p.add_argument("--size", type=int, default=64, help="input image side (resized to 299)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    rows = run(args.budget_s, args.smoke, args.ref, tuple(args.batch_sizes), args.size, args.repeats)
    print(f"FID Inception features, {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
