"""Make the StyleGAN2 golden data in tests/golden/stylegan2/ from the official NVlabs code.

Usage (CPU is enough; the NVlabs custom ops fall back to their reference paths there):

    .venv/bin/python tests/golden/tools/make_stylegan2_golden.py \
        --nvlabs /path/to/stylegan2-ada-pytorch --out tests/golden/stylegan2

The NVlabs checkout is imported from the given path and never copied. Each configuration gets
one ``<name>.npz`` holding

* ``param/<state-dict key>``: every tensor of ``G.state_dict()`` as float32 (random weights,
  with biases, noise strengths and ``w_avg`` drawn away from their zero initial values so that
  every term of the forward pass shows in the outputs),
* ``init_kwargs``: the Generator constructor arguments as a JSON string,
* ``z`` (and ``c``): the inputs,
* ``out/mapping.<layer>``: each mapping layer's output (forward hooks),
* ``out/ws/psi<psi>[_cut<k>]``: mapping outputs for several truncations,
* ``out/image/<noise_mode>/psi<psi>``: images of ``G(z, c, psi, noise_mode=...)``,
* ``out/block/b<res>/x``, ``out/block/b<res>/img`` and ``out/style/<layer>``: block outputs
  and affine (style) outputs for ``psi=1``, ``noise_mode='const'``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types

import numpy as np

CONFIGS = {
    # (a) small 32x32 skip generator with a short mapping network
    "skip32": dict(
        z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=512, channel_max=32, architecture="skip"),
    ),
    # (b) conditional mapping with separate embed / layer widths
    "cond16": dict(
        z_dim=24, c_dim=5, w_dim=32, img_resolution=16, img_channels=3,
        mapping_kwargs=dict(num_layers=3, embed_features=20, layer_features=40, lr_multiplier=0.05),
        synthesis_kwargs=dict(channel_base=256, channel_max=32, architecture="skip"),
    ),
    # (c) the full 8-layer 512-d mapping network with a tiny synthesis network
    "map512": dict(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=8, img_channels=3,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=64, channel_max=8, architecture="skip"),
    ),
    # (d) resnet architecture, a 3-tap resample filter and a conv clamp that bites
    "resnet32": dict(
        z_dim=16, c_dim=0, w_dim=24, img_resolution=32, img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=512, channel_max=24, architecture="resnet",
                              resample_filter=[1, 2, 1], conv_clamp=1.5),
    ),
    # (e) orig architecture, one output channel, relu mapping, a conv clamp
    "orig16": dict(
        z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=1,
        mapping_kwargs=dict(num_layers=4, activation="relu"),
        synthesis_kwargs=dict(channel_base=256, channel_max=16, architecture="orig", conv_clamp=2.0),
    ),
    # (f) orig architecture without noise inputs
    "orig8_nonoise": dict(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
        mapping_kwargs=dict(num_layers=1),
        synthesis_kwargs=dict(channel_base=64, channel_max=8, architecture="orig", use_noise=False),
    ),
}

BATCH = 3
PSIS = (1.0, 0.7)
CUTOFF = 2


def _import_nvlabs(path):
    # dnnlib imports `requests` for URL downloads that we never use.
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    sys.path.insert(0, os.path.abspath(path))
    from training import networks  # noqa: E402  (the checkout given on the command line)
    return networks


def _perturb(G, torch, gen):
    """Move zero-initialised biases, noise strengths and w_avg off zero."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(0.5 * torch.randn([], generator=gen))
            elif name.endswith("bias"):
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
        if hasattr(G.mapping, "w_avg"):
            G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=gen))


def make_one(networks, torch, name, kwargs, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    G = networks.Generator(**kwargs).eval()
    _perturb(G, torch, gen)
    out = {"init_kwargs": np.array(json.dumps(kwargs))}
    for key, value in G.state_dict().items():
        out[f"param/{key}"] = value.detach().numpy().astype(np.float32)

    z = torch.randn([BATCH, kwargs["z_dim"]], generator=gen)
    out["z"] = z.numpy()
    c = None
    if kwargs["c_dim"] > 0:
        c = torch.randn([BATCH, kwargs["c_dim"]], generator=gen)
        out["c"] = c.numpy()

    captured = {}

    def hook(key):
        def fn(_module, _inputs, output):
            captured[key] = output
        return fn

    handles = []
    for mname, module in G.mapping.named_children():
        handles.append(module.register_forward_hook(hook(f"mapping.{mname}")))
    with torch.no_grad():
        ws = G.mapping(z, c)
    for h in handles:
        h.remove()
    for key, value in captured.items():
        out[f"out/{key}"] = value.numpy()

    with torch.no_grad():
        for psi in PSIS:
            out[f"out/ws/psi{psi}"] = G.mapping(z, c, truncation_psi=psi).numpy()
        out[f"out/ws/psi0.7_cut{CUTOFF}"] = G.mapping(
            z, c, truncation_psi=0.7, truncation_cutoff=CUTOFF).numpy()
        for mode in ("const", "none"):
            for psi in PSIS:
                img = G(z, c, truncation_psi=psi, noise_mode=mode)
                out[f"out/image/{mode}/psi{psi}"] = img.numpy()

    # Block and style outputs for psi = 1, noise 'const'.
    captured.clear()
    handles = []
    for bname, block in G.synthesis.named_children():
        handles.append(block.register_forward_hook(hook(f"block/{bname}")))
        for lname, layer in block.named_children():
            if hasattr(layer, "affine"):
                handles.append(layer.affine.register_forward_hook(hook(f"style/{bname}.{lname}")))
    with torch.no_grad():
        G.synthesis(ws, noise_mode="const")
    for h in handles:
        h.remove()
    for key, value in captured.items():
        if key.startswith("block/"):
            x, img = value
            out[f"out/{key}/x"] = x.numpy()
            if img is not None:
                out[f"out/{key}/img"] = img.numpy()
        else:
            out[f"out/{key}"] = value.numpy()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvlabs", required=True, help="path of a stylegan2-ada-pytorch checkout")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--commit", help="commit of the checkout (default: asked of git)")
    parser.add_argument("--only", nargs="*", help="configuration names to make (default: all)")
    args = parser.parse_args(argv)

    import torch

    networks = _import_nvlabs(args.nvlabs)
    os.makedirs(args.out, exist_ok=True)
    commit = args.commit
    try:
        commit = commit or subprocess.run(["git", "-C", args.nvlabs, "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = commit or "unknown"
    for seed, (name, kwargs) in enumerate(CONFIGS.items()):
        if args.only and name not in args.only:
            continue
        data = make_one(networks, torch, name, kwargs, seed)
        data["meta"] = np.array(json.dumps({"nvlabs_commit": commit, "torch": torch.__version__}))
        path = os.path.join(args.out, f"{name}.npz")
        np.savez(path, **data)
        print(f"{path}: {os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
