"""Images per second of jaxlatent's jitted generators against the official PyTorch code.

Both run on the same random weights, on the same device, in one process; the reference is
imported from a local checkout given on the command line (never vendored). Each batch size
is warmed up (compilation excluded), then timed over ``--repeats`` calls; the table gives
the median time per call, images/s and the ratio ours / reference (above 1: we are faster).

    .venv/bin/python benchmarks/generate.py stylegan2 --nvlabs /path/to/stylegan2-ada-pytorch \
        --preset 256 --batch-sizes 1 4 16

    .venv/bin/python benchmarks/generate.py fastgan --fastgan /path/to/FastGAN-pytorch \
        --im-size 1024 --batch-sizes 1 4 16

``--smoke`` runs tiny sizes in well under a minute.

Another model family is added as a function ``bench_<family>(args) -> Result`` registered in
``FAMILIES`` with its own argument group.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.converters.fastgan import params_from_state_dict
from jaxlatent.models.fastgan.model import FastGAN
from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_time  # noqa: E402

# Generator kwargs (NVlabs ``Generator(**kwargs)``) for the StyleGAN2 presets.
STYLEGAN2_PRESETS = {
    # tiny: a smoke test
    "32": dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=32, img_channels=3,
               mapping_kwargs=dict(num_layers=2),
               synthesis_kwargs=dict(channel_base=2048, channel_max=64)),
    # the stylegan2-ada-pytorch 'paper256' configuration (channel_base 16384, 8-layer mapping)
    "256": dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                mapping_kwargs=dict(num_layers=8),
                synthesis_kwargs=dict(channel_base=16384, channel_max=512, conv_clamp=256)),
    # FFHQ-1024 'stylegan2' configuration
    "1024": dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                 mapping_kwargs=dict(num_layers=8),
                 synthesis_kwargs=dict(channel_base=32768, channel_max=512, conv_clamp=256)),
}


class Row(NamedTuple):
    batch: int
    ours_s: float
    ref_s: float


class Result(NamedTuple):
    title: str
    rows: list
    notes: list


def _import_nvlabs(path: str):
    if not os.path.isdir(os.path.join(path, "training")):
        sys.exit(f"--nvlabs {path}: not a stylegan2-ada-pytorch checkout (no training/ folder)")
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it, unused
    sys.path.insert(0, os.path.abspath(path))
    from training import networks  # noqa: PLC0415
    return networks


def bench_stylegan2(args) -> Result:
    """StyleGAN2: ``model.generate`` under jit against NVlabs ``Generator.forward``."""
    import torch  # noqa: PLC0415  (the reference side only)

    if not args.nvlabs:
        sys.exit("stylegan2 needs --nvlabs PATH (a local stylegan2-ada-pytorch checkout)")
    networks = _import_nvlabs(args.nvlabs)
    kwargs = STYLEGAN2_PRESETS[args.preset]
    torch.manual_seed(0)
    G = networks.Generator(**kwargs).eval().requires_grad_(False)
    with torch.no_grad():  # move noise strengths and biases off zero so every term counts
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    config = StyleGAN2Config.from_nvlabs_kwargs(kwargs)
    state = {k: v.numpy() for k, v in G.state_dict().items()}
    model = StyleGAN2.from_state_dict(config, state, source="benchmark generator")
    generate = model.fn("image", truncation_psi=args.psi, noise_mode="const")

    notes = [f"preset {args.preset}: {json.dumps(kwargs)}",
             f"jax {jax.__version__} on {jax.devices()[0].platform}, "
             f"torch {torch.__version__} with {torch.get_num_threads()} threads"]
    rows = []
    rng = np.random.default_rng(0)
    for n in args.batch_sizes:
        z = rng.standard_normal((n, config.z_dim)).astype(np.float32)
        zj, zt = jnp.asarray(z), torch.from_numpy(z)

        def ours():
            return jax.block_until_ready(generate(zj))

        def ref():
            with torch.no_grad():
                return G(zt, None, truncation_psi=args.psi, noise_mode="const")

        t0 = time.perf_counter()
        a = np.asarray(ours())
        compile_s = time.perf_counter() - t0
        b = ref().numpy()
        err = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        notes.append(f"batch {n}: first call (compile) {compile_s:.1f} s; relative error {err:.1e}")
        rows.append(Row(n, median_time(ours, args.repeats, args.warmup), median_time(ref, args.repeats, args.warmup)))
    return Result(f"StyleGAN2 generate, {config.img_resolution}x{config.img_resolution}", rows, notes)


def _import_fastgan(path: str):
    if not os.path.isfile(os.path.join(path, "models.py")):
        sys.exit(f"--fastgan {path}: not a FastGAN-pytorch checkout (no models.py)")
    sys.path.insert(0, os.path.abspath(path))
    import models  # noqa: PLC0415  (the author's FastGAN models.py)
    return models


def bench_fastgan(args) -> Result:
    """FastGAN: ``model.fn('image')`` under jit against the official ``Generator.forward``.

    Both in evaluation mode (running batch-norm statistics) and both drawing their own noise
    (``noise_mode='random'`` with a fixed key against ``torch.randn``); the relative error is
    measured separately with every noise input set to zero on both sides.
    """
    import torch  # noqa: PLC0415  (the reference side only)

    if not args.fastgan:
        sys.exit("fastgan needs --fastgan PATH (a local FastGAN-pytorch checkout)")
    models = _import_fastgan(args.fastgan)
    torch.manual_seed(0)
    G = models.Generator(ngf=args.ngf, nz=args.nz, nc=3, im_size=args.im_size)
    G.apply(models.weights_init)
    with torch.no_grad():
        for mod in G.modules():
            if isinstance(mod, models.NoiseInjection):
                mod.weight.fill_(0.1)
        G.train()
        G(torch.randn(2, args.nz))  # one power iteration and running statistics, as after training
    G.eval().requires_grad_(False)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    G.to(dev)
    config, params = params_from_state_dict({k: v.cpu().numpy() for k, v in G.state_dict().items()})
    model = FastGAN(config, params)
    # the Partial jits its forward pass inside, with the weights as inputs of the program
    generate = model.fn("image", noise_mode="random", key=jax.random.key(0))
    no_noise = model.fn("image", noise_mode="none")
    original = models.NoiseInjection.forward

    def zero_noise(self, feat, noise=None):
        return original(self, feat, torch.zeros_like(feat[:, :1]))

    notes = [f"im_size {args.im_size}, nz {args.nz}, ngf {args.ngf}; batch norm: running statistics",
             f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} on "
             f"{dev} with {torch.get_num_threads()} threads"]
    rows = []
    rng = np.random.default_rng(0)
    for n in args.batch_sizes:
        z = rng.standard_normal((n, config.nz)).astype(np.float32)
        zj, zt = jnp.asarray(z), torch.from_numpy(z).to(dev)

        def ours():
            return jax.block_until_ready(generate(zj))

        def ref():
            with torch.no_grad():
                out = G(zt)[0]
            if dev == "cuda":
                torch.cuda.synchronize()
            return out

        t0 = time.perf_counter()
        ours()
        compile_s = time.perf_counter() - t0
        models.NoiseInjection.forward = zero_noise
        b = ref().cpu().numpy()
        models.NoiseInjection.forward = original
        a = np.asarray(no_noise(zj))
        err = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        notes.append(f"batch {n}: first call (compile) {compile_s:.1f} s; relative error (no noise) {err:.1e}")
        rows.append(Row(n, median_time(ours, args.repeats, args.warmup), median_time(ref, args.repeats, args.warmup)))
    return Result(f"FastGAN generate, {args.im_size}x{args.im_size}", rows, notes)


FAMILIES = {"stylegan2": bench_stylegan2, "fastgan": bench_fastgan}


def format_table(result: Result) -> str:
    lines = [f"## {result.title}", "",
             "| batch | ours s/call | ours img/s | reference s/call | reference img/s | ratio |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result.rows:
        lines.append(f"| {r.batch} | {r.ours_s:.4f} | {r.batch / r.ours_s:.2f} | {r.ref_s:.4f} | "
                     f"{r.batch / r.ref_s:.2f} | {r.ref_s / r.ours_s:.2f}x |")
    lines += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=sorted(FAMILIES), help="model family to time")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    sg2 = parser.add_argument_group("stylegan2")
    sg2.add_argument("--nvlabs", help="path of a stylegan2-ada-pytorch checkout (required)")
    sg2.add_argument("--preset", choices=sorted(STYLEGAN2_PRESETS), default="256")
    sg2.add_argument("--psi", type=float, default=1.0, help="truncation psi")
    fg = parser.add_argument_group("fastgan")
    fg.add_argument("--fastgan", help="path of a FastGAN-pytorch checkout (required)")
    fg.add_argument("--im-size", type=int, choices=(256, 512, 1024), default=1024)
    fg.add_argument("--nz", type=int, default=256)
    fg.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one batch of 1, one timed call (a quick check, < 60 s)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch_sizes, args.repeats, args.warmup = [1], 1, 1
        args.preset, args.im_size, args.nz, args.ngf = "32", 256, 16, 8
    print(format_table(FAMILIES[args.family](args)))


if __name__ == "__main__":
    main()
