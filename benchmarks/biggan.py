"""BigGAN-deep image Jacobians in z: jaxlatent against huggingface's pytorch-pretrained-biggan 0.1.1.

    .venv/bin/python benchmarks/biggan.py [--ref DIR] [--smoke] [--json PATH]
        [--ch 32 --z-dim 128 --n 4 --repeats 2]

One random BigGAN-deep (``BigGANConfig``: the 7-block, 32x32 layer list of the golden data with
self-attention, channel width ``--ch``, ``--z-dim``, 1000 classes; ``random_params``), the same
weights in both frameworks: the package's ``BigGAN`` gets them as its state dict, each
spectral-norm triple written so that evaluation mode divides by exactly 1. Class 207 for every
latent, truncation 0.4, latents the package's ``truncated_noise_sample`` of seeds 0..n-1. The
Jacobian ``d image / d z``, ``(3 R R) x z_dim`` per latent, as GAN-Geometry and Local Basis take
it on BigGAN. Rows, per latent:

  jacfwd loop (a)     the package's model, one latent at a time: ``torch.func.jacfwd``
                      (``z_dim`` tangents at once, forward mode), in ``torch.no_grad``
  vmap(jacfwd) (b)    ``torch.func.vmap(torch.func.jacfwd(g))`` over the batch
  jacobian            ``jaxlatent.jacobian(model.fn("image", c=207, truncation=0.4), z)`` with its
                      default arguments (forward mode, chunk size of the library's choosing)

Accuracy: the largest relative difference of our Jacobians from (b), ``max |J - J_ref| / max
|J_ref|``, and of the images. The reference is the package imported from ``--ref DIR`` (or the
``JAXLATENT_BIGGAN_REF`` environment variable), a folder where ``pytorch_pretrained_biggan`` and
its imports (``boto3``, ``requests``) are importable, installed outside the repository:

    pip install --target DIR --no-deps pytorch-pretrained-biggan==0.1.1 && pip install --target DIR boto3 requests

Without it only our row is timed. ``run(budget_s, smoke)`` is the entry point of
``benchmarks/device.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from timing import median_time  # noqa: E402

import jaxlatent  # noqa: E402
from jaxlatent.models.biggan import BigGAN, BigGANConfig, random_params, truncated_noise_sample  # noqa: E402

LAYERS = ((False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 1))
CLASS, TRUNCATION = 207, 0.4
FULL = dict(ch=32, z_dim=128, n=4, repeats=2)
SMOKE = dict(ch=8, z_dim=16, n=2, repeats=1)
ACCELERATOR = dict(ch=64, z_dim=128, n=64, repeats=3)
PLAIN = ("embeddings.weight", "generator.bn.weight")     # the package's weights without spectral norm


def make_model(ch: int, z_dim: int) -> BigGAN:
    config = BigGANConfig(z_dim=z_dim, channel_width=ch, num_classes=1000, layers=LAYERS,
                          attention_layer_position=4, output_dim=32, class_embed_dim=z_dim)
    return BigGAN(config, random_params(config, jax.random.key(0)))


def state_dict(model: BigGAN) -> dict:
    """The package's state dict of ``model``: each spectral-normed ``weight`` as ``weight_orig`` with
    ``v = e_1`` and ``u = W v / |W v|^2``, so that evaluation mode's ``u . (W v)`` is exactly 1."""
    import torch

    state = {}
    for key, value in flatten_dict(model.params, sep=".").items():
        value = np.array(value, np.float32)          # a writable copy for torch.from_numpy
        if key.endswith(".weight") and key not in PLAIN:
            mat = value.reshape(value.shape[0], -1).astype(np.float64)
            v = np.zeros(mat.shape[1])
            v[0] = 1.0
            u = mat @ v / float((mat @ v) @ (mat @ v))
            base = key[:-len(".weight")]
            state |= {f"{base}.weight_orig": torch.from_numpy(value),
                      f"{base}.weight_u": torch.from_numpy(u.astype(np.float32)),
                      f"{base}.weight_v": torch.from_numpy(v.astype(np.float32))}
        else:
            state[key] = torch.from_numpy(value)
    return state


def reference(ref: str, model: BigGAN):
    """The package's BigGAN (evaluation mode) with ``model``'s weights."""
    if ref not in sys.path:
        sys.path.insert(0, ref)
    from pytorch_pretrained_biggan import BigGAN as TorchBigGAN
    from pytorch_pretrained_biggan import BigGANConfig as TorchConfig

    net = TorchBigGAN(TorchConfig.from_dict(model.config.to_package()))
    missing, _ = net.load_state_dict(state_dict(model), strict=False)
    if missing:
        raise RuntimeError(f"pytorch-pretrained-biggan: state dict keys missing: {missing[:5]}")
    return net.eval()


def run(budget_s: float = 600.0, smoke: bool = False, ref: str | None = None, sizes: dict | None = None) -> list[dict]:
    """Rows ``{"row", "ms_per_latent", "speedup_vs_a", ...}`` (``benchmarks/device.py``'s convention)."""
    start = time.perf_counter()
    ref = ref or os.environ.get("JAXLATENT_BIGGAN_REF")
    accel = jax.default_backend() != "cpu"
    cfg = dict(SMOKE if smoke else ACCELERATOR if accel else FULL) | (sizes or {})
    ch, z_dim, n, repeats = cfg["ch"], cfg["z_dim"], cfg["n"], cfg["repeats"]
    model = make_model(ch, z_dim)
    z = np.stack([truncated_noise_sample(1, z_dim, TRUNCATION, seed)[0] for seed in range(n)])
    case = f"{model.resolution}px, ch {ch}, z {z_dim}, {n} latents"
    f = model.fn("image", c=CLASS, truncation=TRUNCATION)
    zj = jnp.asarray(z)
    t0 = time.perf_counter()
    ours = np.asarray(jaxlatent.jacobian(f, zj))
    compile_s = time.perf_counter() - t0
    ours_s = median_time(lambda: jaxlatent.jacobian(f, zj).block_until_ready(), repeats)
    rows = [dict(row="jacobian", case=case, ms_per_latent=1e3 * ours_s / n, compile_s=compile_s)]
    if not ref:
        rows[0]["note"] = "reference not timed (no --ref / JAXLATENT_BIGGAN_REF)"
        return rows
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    net = reference(ref, model)
    cls = torch.zeros(1, 1000)
    cls[0, CLASS] = 1.0
    zt = torch.from_numpy(z)

    def g(x):                                   # one latent (z_dim,) -> flattened image
        return net(x[None], cls, TRUNCATION).reshape(-1)

    def loop():
        with torch.no_grad():
            return torch.stack([torch.func.jacfwd(g)(zt[i]) for i in range(n)])

    def batched():
        with torch.no_grad():
            return torch.func.vmap(torch.func.jacfwd(g))(zt)

    with torch.no_grad():
        image_ref = net(zt, cls.expand(n, -1), TRUNCATION).numpy()
    image = np.asarray(model.generate(zj, c=CLASS, truncation=TRUNCATION))
    image_diff = float(np.abs(image - image_ref).max() / np.abs(image_ref).max())
    for name, call in (("jacfwd loop (a)", loop), ("vmap(jacfwd) (b)", batched)):
        if time.perf_counter() - start > budget_s:
            rows.append(dict(row=name, case=case, note="budget spent"))
            continue
        t0 = time.perf_counter()
        out = call().numpy()                    # the first call, untimed in the rows as ours is
        first = time.perf_counter() - t0
        secs = median_time(call, repeats)
        rows.append(dict(row=name, case=case, ms_per_latent=1e3 * secs / n, compile_s=max(0.0, first - secs)))
        if name.endswith("(b)"):
            rows[0]["max_rel_diff"] = float(np.abs(ours - out).max() / np.abs(out).max())
            rows[0]["image_max_rel_diff"] = image_diff
    timed = {r["row"]: r["ms_per_latent"] for r in rows if "ms_per_latent" in r}
    for r in rows:
        if "ms_per_latent" in r and "jacfwd loop (a)" in timed:
            r["speedup_vs_a"] = timed["jacfwd loop (a)"] / r["ms_per_latent"]
    return rows


def _table(rows) -> str:
    lines = ["| method | ms/latent | vs (a) | compile s | Jacobian max rel diff vs (b) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "ms_per_latent" not in r:
            lines.append(f"| {r['row']} | {r.get('note', '')} | | | |")
            continue
        vs = f"{r['speedup_vs_a']:.2f}" if "speedup_vs_a" in r else "-"
        diff = f"{r['max_rel_diff']:.1e}" if "max_rel_diff" in r else ""
        lines.append(f"| {r['row']} | {r['ms_per_latent']:.1f} | {vs} | {r['compile_s']:.1f} | {diff} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", help="folder where pytorch_pretrained_biggan 0.1.1 (and boto3, requests) import")
    for name, value in FULL.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"default {value}")
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    sizes = {k: getattr(args, k) for k in FULL if getattr(args, k) is not None}
    rows = run(args.budget_s, args.smoke, args.ref, sizes)
    print(f"BigGAN-deep d image / d z, class {CLASS}, truncation {TRUNCATION}, {jax.devices()[0].platform}, "
          f"{os.cpu_count()} CPUs; {rows[0]['case']}")
    print(_table(rows))
    if "image_max_rel_diff" in rows[0]:
        print(f"images: max rel diff {rows[0]['image_max_rel_diff']:.1e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
