"""Local Basis throughput at W of an 8-layer 512-d StyleGAN2 mapping network, side by side.

    python benchmarks/local_basis.py [--n 64] [--chunk 32] [--repeats 3]

Rows (same weights, same latents, one process):
  ref-loop    the Local Basis reference's way (``get_random_local_basis``): one latent at
              a time, repeated 512 times through the network, one backward pass with
              identity output gradients, then ``torch.svd`` (PyTorch, our own re-creation)
  torch-vmap  ``torch.func.vmap(torch.func.jacfwd(g))`` on a batch, then batched
              ``torch.linalg.svd``
  ours        ``jaxlatent.local_basis`` (forward-mode Jacobian, chunked, jitted) with the dense
              SVD solver and with the Gram (eigh) solver
and, for ours, the Jacobian and spectrum phases timed apart, the achieved FLOP/s of the
Jacobian phase (8 layers x 2 x 512^3 FLOP per latent: the tangent matmuls) over the
measured fp32 matmul rate of this machine (JAX, 2048^2 matmul). Rows are timed in interleaved rounds (each row once per round) and the best
round of each is kept, so that slow spells of a shared machine fall on every row alike.
"""

from __future__ import annotations

import os

# jaxlib's CPU LAPACK calls (SVD, eigh) go through scipy's OpenBLAS, whose own worker threads
# fight XLA's thread pool: on a 2-core machine a 512x512 SVD took 4 s instead of 80 ms. One
# OpenBLAS thread per call is what XLA expects (it parallelises over the batch itself).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

DIM, LAYERS, LR_MUL = 512, 8, 0.01


def weights(seed=0):
    rs = np.random.RandomState(seed)
    return [((rs.standard_normal((DIM, DIM)) / LR_MUL).astype(np.float32),
             (rs.standard_normal(DIM) / LR_MUL * 0.1).astype(np.float32)) for _ in range(LAYERS)]


def jax_tap(layers):
    from jaxlatent.models.stylegan2 import StyleGAN2, StyleGAN2Config

    config = StyleGAN2Config(z_dim=DIM, w_dim=DIM, mapping_layers=LAYERS, mapping_lr_multiplier=LR_MUL,
                             img_resolution=4, channel_base=64, channel_max=8)
    model = StyleGAN2.init(config, jax.random.key(0))
    for k, (w, b) in enumerate(layers):
        model.params["mapping"][f"fc{k}"] = {"weight": jnp.asarray(w), "bias": jnp.asarray(b)}
    return model.fn("w")


def torch_mapping(layers):
    import torch

    ws = [torch.from_numpy(w) * (LR_MUL / math.sqrt(DIM)) for w, _ in layers]
    bs = [torch.from_numpy(b) * LR_MUL for _, b in layers]

    def g(z):  # (..., 512) -> (..., 512): pixel norm, then scaled linear + lrelu(0.2) * sqrt(2)
        h = z * torch.rsqrt(torch.mean(z * z, dim=-1, keepdim=True) + 1e-8)
        for w, b in zip(ws, bs):
            h = torch.nn.functional.leaky_relu(h @ w.T + b, 0.2) * math.sqrt(2)
        return h

    return g


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="latents for the batched rows (default 64)")
    parser.add_argument("--n-ref", type=int, default=8, help="latents for the one-at-a-time row (default 8)")
    parser.add_argument("--chunk", type=int, default=16, help="latents per compiled batch (default 16: best of 16/32/64 on 2 cores)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from jaxlatent.analysis.jacobian import jacobian
    from jaxlatent.analysis.local_basis import gram_triplets, local_basis, svd_triplets

    layers = weights()
    z_np = np.random.RandomState(1).standard_normal((args.n, DIM)).astype(np.float32)
    g = torch_mapping(layers)
    f = jax_tap(layers)
    z = jnp.asarray(z_np)

    def ref_loop():
        for i in range(args.n_ref):
            noise = torch.from_numpy(z_np[i:i + 1])
            pad = noise.repeat(DIM, 1).requires_grad_(True)
            jac = torch.autograd.grad(g(pad), pad, grad_outputs=torch.eye(DIM))[0]
            torch.svd(jac)

    zt = torch.from_numpy(z_np)
    vjac = torch.func.vmap(torch.func.jacfwd(g))

    def torch_vmap():
        for s in range(0, args.n, args.chunk):
            torch.linalg.svd(vjac(zt[s:s + args.chunk]), full_matrices=False)

    def ours(solver):
        return lambda: jax.block_until_ready(local_basis(f, z, chunk_size=args.chunk, solver=solver))

    jac = jacobian(f, z[:args.chunk], mode="fwd")
    spec_fns = {name: jax.jit(fn) for name, fn in (("svd", svd_triplets), ("gram", gram_triplets))}
    # (callable, latents it handles); every row is timed once per round, rounds interleaved, so
    # that a slow spell of this shared machine falls on all rows alike; best round per row
    timed = {
        "ref-loop (a)": (ref_loop, args.n_ref),
        "torch-vmap (b)": (torch_vmap, args.n),
        "ours (svd)": (ours("svd"), args.n),
        "ours (gram)": (ours("gram"), args.n),
        "jacobian": (lambda: jax.block_until_ready(jacobian(f, z, mode="fwd", chunk_size=args.chunk)), args.n),
        "spectrum svd": (lambda: jax.block_until_ready(spec_fns["svd"](jac)), args.chunk),
        "spectrum gram": (lambda: jax.block_until_ready(spec_fns["gram"](jac)), args.chunk),
    }
    for fn, _ in timed.values():  # compile and warm up
        fn()
    seconds = {name: math.inf for name in timed}
    for _ in range(args.repeats):
        for name, (fn, _) in timed.items():
            seconds[name] = min(seconds[name], best(fn, 1))
    per_latent = {name: seconds[name] / count for name, (_, count) in timed.items()}
    rows = {name: 1 / per_latent[name] for name in list(timed)[:4]}
    t_jac = seconds["jacobian"]
    spec = {"svd": per_latent["spectrum svd"], "gram": per_latent["spectrum gram"]}
    # accuracy of the Gram solver against the dense SVD on the same Jacobians
    a, b = svd_triplets(jac), gram_triplets(jac)
    ratio = np.asarray(a.singular_values / a.singular_values[:, :1])
    rel = np.abs(np.asarray(b.singular_values - a.singular_values)) / np.asarray(a.singular_values)

    x = jax.random.normal(jax.random.key(0), (2048, 2048))
    mm = jax.jit(lambda m: m @ m)
    jax.block_until_ready(mm(x))
    rate = 2 * 2048 ** 3 / best(lambda: jax.block_until_ready(mm(x)), args.repeats * 2)
    jac_flops = LAYERS * 2 * DIM ** 3 * args.n / t_jac

    print(f"\nOPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"Local Basis at W, 8x512 mapping network, {jax.devices()[0].device_kind}, "
          f"batch {args.n} (chunk {args.chunk}), best of {args.repeats} interleaved rounds")
    print(f"{'method':<18s} {'latents/s':>10s} {'ms/latent':>10s} {'vs (a)':>7s} {'vs (b)':>7s}")
    for name, rate_ in rows.items():
        print(f"{name:<18s} {rate_:10.2f} {1e3 / rate_:10.2f} {rate_ / rows['ref-loop (a)']:7.2f} "
              f"{rate_ / rows['torch-vmap (b)']:7.2f}")
    print(f"\nmatmul fp32 (JAX, 2048^2): {rate / 1e9:.1f} GFLOP/s")
    print(f"Jacobian phase: {1e3 * t_jac / args.n:.2f} ms/latent, {jac_flops / 1e9:.1f} GFLOP/s "
          f"= {100 * jac_flops / rate:.0f}% of matmul rate")
    print(f"spectrum phase: svd {1e3 * spec['svd']:.2f} ms/latent ({spec['svd'] * args.n / t_jac:.2f}x Jacobian), "
          f"gram {1e3 * spec['gram']:.2f} ms/latent ({spec['gram'] * args.n / t_jac:.2f}x Jacobian)")
    for lo in (0.1, 0.01, 0.001):
        sel = ratio >= lo
        print(f"gram vs svd: max rel error of singular values with s/s1 >= {lo:g}: {rel[sel].max():.1e}")


if __name__ == "__main__":
    main()
