"""Make golden data for the rosinality converter by running rosinality's own code on CPU.

Usage:
  python tests/golden/tools/make_rosinality_golden.py /path/to/rosinality/stylegan2-pytorch \
      tests/golden/rosinality/small32.npz

The checkout is imported from the path given (nothing of it is vendored here).
Its ``op`` package builds CUDA extensions when imported; we replace
``torch.utils.cpp_extension.load`` by a no-op first, so its own CPU paths
(``upfirdn2d_native``, the CPU branch of ``fused_leaky_relu``) run.

The generator is rosinality's ``Generator`` with its per-resolution channel
table narrowed (an override of the ``channels`` attribute at construction) so
the committed arrays stay small; everything else is its code unchanged.
"""

import argparse
import sys

import numpy as np
import torch
import torch.utils.cpp_extension

SIZE, STYLE_DIM, N_MLP = 32, 32, 4
CHANNELS = {4: 32, 8: 32, 16: 24, 32: 16}
BATCH, SEED = 4, 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout")
    parser.add_argument("out")
    args = parser.parse_args()
    torch.utils.cpp_extension.load = lambda *a, **k: None
    sys.path.insert(0, args.checkout)
    import model as rosinality  # noqa: PLC0415

    class NarrowGenerator(rosinality.Generator):
        def __setattr__(self, name, value):
            if name == "channels":
                value = dict(CHANNELS)
            super().__setattr__(name, value)

    torch.manual_seed(SEED)
    g = NarrowGenerator(SIZE, STYLE_DIM, N_MLP, channel_multiplier=1).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.startswith("style.") and name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 10.0)  # lr_mul 0.01: effective 0.1 * N(0,1)
            elif name.endswith("modulation.bias"):
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("noise.weight") or name.endswith("activate.bias") or (
                name.startswith("to_rgb") and name.endswith(".bias")
            ):
                p.copy_(0.2 * torch.randn_like(p))
        z = torch.randn(BATCH, STYLE_DIM)
        latent_avg = g.style(torch.randn(1000, STYLE_DIM)).mean(0)
        out = {"z": z, "latent_avg": latent_avg}
        h = z
        for i, layer in enumerate(g.style):
            h = layer(h)
            if i > 0:
                out[f"mapping_fc{i - 1}"] = h
        out["w"] = g.style(z)
        fixed = dict(randomize_noise=False)
        out["img_psi1"], _ = g([z], truncation=1, **fixed)
        out["img_psi07"], _ = g([z], truncation=0.7, truncation_latent=latent_avg[None], **fixed)
        zeros = [torch.zeros_like(getattr(g.noises, f"noise_{i}")) for i in range(g.num_layers)]
        out["img_psi1_nonoise"], _ = g([z], truncation=1, noise=zeros)
        out["img_psi07_nonoise"], _ = g(
            [z], truncation=0.7, truncation_latent=latent_avg[None], noise=zeros
        )
        arrays = {k: v.numpy().astype(np.float32) for k, v in out.items()}
        arrays.update({f"g_ema/{k}": v.numpy() for k, v in g.state_dict().items()})
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
