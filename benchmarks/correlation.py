"""Interventions per second: jaxlatent's batched correlation analysis against a PyTorch loop.

The generator is NVlabs' StyleGAN2 (``training/networks.py`` of a local stylegan2-ada-pytorch
checkout, never vendored) at the shipped digits model's configuration (z 64, w 64, 16x16x1,
4 mapping layers), random weights, copied into our StyleGAN2; the classifier is the shipped
digit CNN, ported to PyTorch with its trained weights. One intervention = one edited latent
generated and classified.

* ours: :func:`jaxlatent.correlation.interventions.intervention_probs` over samples x dims x
  values (jitted, chunked; compilation excluded by a warm-up call).
* reference loop: what the follow-up's code does, one image per call, looping in Python
  over samples, dims and values (``torch.no_grad``).
* reference batched: the same loop with all dims x values of one sample in one batch.

    .venv/bin/python benchmarks/correlation.py --nvlabs /path/to/stylegan2-ada-pytorch [--smoke]

(or set ``JAXLATENT_NVLABS``). ``run(budget_s, smoke)`` is the entry of ``benchmarks/device.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models import digits
from jaxlatent.correlation.interventions import intervention_probs, single_dim_grid
from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config

DIGITS_KWARGS = dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=16, img_channels=1,
                     mapping_kwargs=dict(num_layers=4),
                     synthesis_kwargs=dict(channel_base=512, channel_max=64))
VALUES = (-3.0, 3.0)


def _networks(path: str):
    if not path or not os.path.isdir(os.path.join(path, "training")):
        raise FileNotFoundError(f"--nvlabs {path!r}: not a stylegan2-ada-pytorch checkout (no training/ folder)")
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it, unused
    sys.path.insert(0, os.path.abspath(path))
    from training import networks  # noqa: PLC0415  (the reference side only)
    return networks


def torch_classifier(clf: digits.Classifier):
    """The digit CNN in PyTorch with the trained weights (Flax: NHWC, SAME padding, HWIO kernels)."""
    import torch  # noqa: PLC0415  (the reference side only)

    p = jax.tree_util.tree_map(lambda a: torch.from_numpy(np.array(a, np.float32)), clf.params)
    conv = lambda x, q: torch.nn.functional.conv2d(x, q["kernel"].permute(3, 2, 0, 1), q["bias"], padding=1)
    pool = lambda x: torch.nn.functional.avg_pool2d(x, 2)

    def logits(x):
        x = pool(torch.relu(conv(x, p["Conv_0"])))
        x = pool(torch.relu(conv(x, p["Conv_1"])))
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)         # flatten in Flax's NHWC order
        x = torch.relu(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
        return x @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]

    return logits


def measure(nvlabs: str, samples: int, loop_samples: int, budget_s: float) -> list[dict]:
    import torch  # noqa: PLC0415  (the reference side only)

    deadline = time.perf_counter() + budget_s
    networks = _networks(nvlabs)
    torch.manual_seed(0)
    G = networks.Generator(**DIGITS_KWARGS).eval().requires_grad_(False)
    config = StyleGAN2Config.from_nvlabs_kwargs(DIGITS_KWARGS)
    model = StyleGAN2.from_state_dict(config, {k: v.numpy() for k, v in G.state_dict().items()},
                                      source="benchmark generator")
    clf = digits.load_classifier()
    t_clf = torch_classifier(clf)
    g = model.fn("image")
    d = config.z_dim
    z = np.random.default_rng(0).standard_normal((samples, d)).astype(np.float32)
    mask, amount = single_dim_grid(d, range(d), VALUES)
    per_sample = mask.shape[0]

    # parity on one sample: the same probabilities from both sides (float32 rounding)
    zt = torch.from_numpy(z[:1]).repeat(per_sample, 1)
    edited = zt + torch.from_numpy(np.array(mask)) * (torch.from_numpy(np.array(amount)) - zt)
    with torch.no_grad():
        want = torch.softmax(t_clf(G(edited, None, noise_mode="const")), dim=1).numpy()
    got = np.asarray(intervention_probs(g, clf.logits, z[:1], mask, amount))[0]
    parity = float(np.abs(got - want).max())

    jax.block_until_ready(intervention_probs(g, clf.logits, z, mask, amount))   # compile
    t0 = time.perf_counter()
    jax.block_until_ready(intervention_probs(g, clf.logits, z, mask, amount))
    ours = samples * per_sample / (time.perf_counter() - t0)

    def loop(batched: bool, n: int) -> float:
        count, t0 = 0, time.perf_counter()
        with torch.no_grad():
            for i in range(n):
                if batched:
                    x = torch.from_numpy(z[i:i + 1]).repeat(per_sample, 1)
                    x[torch.arange(per_sample), torch.arange(per_sample) // len(VALUES)] = torch.tensor(
                        VALUES * d)
                    torch.softmax(t_clf(G(x, None, noise_mode="const")), dim=1)
                    count += per_sample
                    continue
                for dim in range(d):
                    for v in VALUES:
                        x = torch.from_numpy(z[i:i + 1]).clone()
                        x[0, dim] = v
                        torch.softmax(t_clf(G(x, None, noise_mode="const")), dim=1)
                        count += 1
                        if time.perf_counter() > deadline:
                            return count / (time.perf_counter() - t0)
        return count / (time.perf_counter() - t0)

    ref_batched = loop(True, samples)
    ref_loop = loop(False, loop_samples)
    common = {"generator": "StyleGAN2 16x16x1 (digits config, random weights)",
              "device": f"jax {jax.devices()[0].platform} / torch {'cuda' if torch.cuda.is_available() else 'cpu'}",
              "interventions": samples * per_sample, "max_abs_prob_diff": parity}
    return [dict(row="ours (batched, jit)", per_s=ours, ratio=1.0, **common),
            dict(row="PyTorch loop, batch 1", per_s=ref_loop, ratio=ours / ref_loop, **common),
            dict(row="PyTorch, one batch per sample", per_s=ref_batched, ratio=ours / ref_batched, **common)]


def run(budget_s: float, smoke: bool) -> list[dict]:
    """Rows for ``benchmarks/device.py`` (ratio: ours / that row's interventions per second)."""
    nvlabs = os.environ.get("JAXLATENT_NVLABS", "")
    try:
        if smoke:
            return measure(nvlabs, samples=2, loop_samples=1, budget_s=min(budget_s, 50.0))
        gpu = jax.default_backend() != "cpu"
        return measure(nvlabs, samples=256 if gpu else 16, loop_samples=2, budget_s=budget_s)
    except FileNotFoundError as err:
        return [{"row": "correlation", "error": f"{err} (set JAXLATENT_NVLABS)"}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nvlabs", default=os.environ.get("JAXLATENT_NVLABS"),
                    help="stylegan2-ada-pytorch checkout (default: $JAXLATENT_NVLABS)")
    ap.add_argument("--samples", type=int, default=16, help="samples of the batched runs (default 16)")
    ap.add_argument("--loop-samples", type=int, default=2, help="samples of the batch-1 loop (default 2)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, well under a minute")
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.loop_samples = 2, 1
    try:
        rows = measure(args.nvlabs, args.samples, args.loop_samples, budget_s=50.0 if args.smoke else 600.0)
    except FileNotFoundError as err:
        sys.exit(str(err))
    print(f"{rows[0]['generator']}; {rows[0]['device']}; {rows[0]['interventions']} interventions "
          f"(samples x 64 dims x {len(VALUES)} values); max |p ours - p torch| {rows[0]['max_abs_prob_diff']:.1e}")
    print(f"{'':32s} {'interventions/s':>16s} {'ours / this':>12s}")
    for r in rows:
        print(f"{r['row']:32s} {r['per_s']:16.1f} {r['ratio']:12.2f}")


if __name__ == "__main__":
    main()
