"""Local Basis at W of an 8-layer 512-wide StyleGAN2 mapping network, side by side with PyTorch.

    python benchmarks/local_basis.py [--n 64] [--n-ref 8] [--repeats 3] [--smoke] [--json PATH]

Every jaxlatent row is the library call with DEFAULT arguments (what a user gets):
  ref-loop (a)   the Local Basis reference's way (``get_random_local_basis``, re-created in
                 PyTorch): one latent at a time, repeated ``in`` times through the network,
                 one backward pass with identity output gradients, then ``torch.svd``
  torch.func (b) ``torch.func.vmap(torch.func.jacfwd(g))`` on chunks of 16, batched
                 ``torch.linalg.svd``
  local_basis            ``jaxlatent.local_basis(f, z)``: full Jacobian and dense SVD
  local_basis gram       ``local_basis(f, z, method="gram")`` (eigh of the Gram matrix)
  local_basis_topk k=20  ``local_basis_topk(f, z, 20, key)``: matrix-free, converged to 1e-4
  singular values only   ``local_dimension(f, z)``: the spectrum without vectors
Rows are timed in interleaved rounds (each row once per round, best round kept), so that slow
spells of a shared machine fall on every row alike; compile time (first call minus best) is
reported apart. Accuracy columns compare with the dense float32 SVD of the same Jacobians.

``run(budget_s, smoke)`` is the entry point of ``benchmarks/device.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.localbasis.grassmann import principal_angles
from jaxlatent.engine.jacobian import jacobian
from jaxlatent.localbasis.basis import gram_triplets, local_basis, local_basis_topk, svd_triplets
from jaxlatent.localdim.dimension import local_dimension
from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config

LR_MUL = 0.01
FULL = dict(dim=512, layers=8, n=64, n_ref=8, k=20, repeats=3)
SMOKE = dict(dim=64, layers=2, n=8, n_ref=2, k=4, repeats=1)
ACCELERATOR = dict(dim=512, layers=8, n=2048, n_ref=8, k=20, repeats=3)
TORCH_CHUNK = 16


def weights(dim=512, layers=8, seed=0):
    rs = np.random.RandomState(seed)
    return [((rs.standard_normal((dim, dim)) / LR_MUL).astype(np.float32),
             (rs.standard_normal(dim) / LR_MUL * 0.1).astype(np.float32)) for _ in range(layers)]


def jax_tap(layers):
    dim = layers[0][0].shape[0]
    config = StyleGAN2Config(z_dim=dim, w_dim=dim, mapping_layers=len(layers), mapping_lr_multiplier=LR_MUL,
                             img_resolution=4, channel_base=64, channel_max=8)
    model = StyleGAN2.init(config, jax.random.key(0))
    for k, (w, b) in enumerate(layers):
        model.params["mapping"][f"fc{k}"] = {"weight": jnp.asarray(w), "bias": jnp.asarray(b)}
    return model.fn("w")


def torch_mapping(layers, device="cpu"):
    import torch  # the reference side only

    dim = layers[0][0].shape[0]
    ws = [torch.from_numpy(w).to(device) * (LR_MUL / math.sqrt(dim)) for w, _ in layers]
    bs = [torch.from_numpy(b).to(device) * LR_MUL for _, b in layers]

    def g(z):  # (..., dim) -> (..., dim): pixel norm, then scaled linear + lrelu(0.2) * sqrt(2)
        h = z * torch.rsqrt(torch.mean(z * z, dim=-1, keepdim=True) + 1e-8)
        for w, b in zip(ws, bs):
            h = torch.nn.functional.leaky_relu(h @ w.T + b, 0.2) * math.sqrt(2)
        return h

    return g


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(dim, layers, n, n_ref, k, repeats, budget_s=math.inf):
    """Time every row on the same weights and latents; returns (rows, notes)."""
    import torch  # the reference side only

    device = "cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu"
    start = time.perf_counter()
    layers_np = weights(dim, layers)
    g = torch_mapping(layers_np, device)
    f = jax_tap(layers_np)
    z_np = np.random.RandomState(1).standard_normal((n, dim)).astype(np.float32)
    z = jnp.asarray(z_np)
    zt = torch.from_numpy(z_np).to(device)
    eye = torch.eye(dim, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def ref_loop():
        for i in range(n_ref):
            pad = zt[i:i + 1].repeat(dim, 1).requires_grad_(True)
            jac = torch.autograd.grad(g(pad), pad, grad_outputs=eye)[0]
            torch.svd(jac)
        sync()

    vjac = torch.func.vmap(torch.func.jacfwd(g))

    def torch_func():
        for s in range(0, n, TORCH_CHUNK):
            torch.linalg.svd(vjac(zt[s:s + TORCH_CHUNK]), full_matrices=False)
        sync()

    key = jax.random.key(2)
    timed = {  # name: (callable, latents it handles)
        "ref-loop (a)": (ref_loop, n_ref),
        "torch.func (b)": (torch_func, n),
        "local_basis": (lambda: local_basis(f, z), n),
        "local_basis gram": (lambda: local_basis(f, z, method="gram"), n),
        f"local_basis_topk k={k}": (lambda: local_basis_topk(f, z, k=k, key=key), n),
        "singular values only": (lambda: jax.block_until_ready(local_dimension(f, z)), n),
    }
    first = {name: _timed(fn) for name, (fn, _) in timed.items()}  # compiles and warms up
    best = {name: math.inf for name in timed}
    for _ in range(repeats):
        for name, (fn, _) in timed.items():
            best[name] = min(best[name], _timed(fn))
        if time.perf_counter() - start > budget_s:
            break

    full = local_basis(f, z)
    top = local_basis_topk(f, z, k=k, key=key)
    s_full = np.asarray(full.singular_values)
    top_err = float(np.max(np.abs(np.asarray(top.singular_values) - s_full[:, :k]) / s_full[:, :k]))
    top_angle = float(jnp.max(principal_angles(top.basis, full.basis[:, :, :k])))
    jac = jacobian(f, z[:min(n, 16)])
    a, b = jax.jit(svd_triplets)(jac), jax.jit(gram_triplets)(jac)
    sa, sb = np.asarray(a.singular_values), np.asarray(b.singular_values)
    gram_err = {lo: float(np.max((np.abs(sb - sa) / sa)[sa / sa[:, :1] >= lo])) for lo in (0.1, 0.01)}
    accuracy = {
        "local_basis gram": f"values s/s1>=0.1: {gram_err[0.1]:.1e}, >=0.01: {gram_err[0.01]:.1e} rel",
        f"local_basis_topk k={k}": f"values {top_err:.1e} rel, basis {top_angle:.1e} rad; "
                                   f"converged {int(np.sum(np.asarray(top.converged)))}/{n}",
    }
    per_latent = {name: best[name] / count for name, (_, count) in timed.items()}
    rows = []
    for name, (_, count) in timed.items():
        rows.append(dict(benchmark="local_basis", row=name, device=device if "(" in name else jax.default_backend(),
                         ms_per_latent=1e3 * per_latent[name],
                         vs_ref_loop=per_latent["ref-loop (a)"] / per_latent[name],
                         vs_torch_func=per_latent["torch.func (b)"] / per_latent[name],
                         compile_s=max(0.0, first[name] - best[name]), accuracy=accuracy.get(name, "")))
    notes = [f"{layers}x{dim} mapping network, batch {n} (reference loop {n_ref}), "
             f"{jax.devices()[0].device_kind}, jax {jax.__version__}, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), best of {repeats} interleaved rounds"]
    return rows, notes


def run(budget_s: float = 600.0, smoke: bool = False, **overrides) -> list[dict]:
    """Benchmark rows (entry point of benchmarks/device.py); accelerator sizes on a GPU/TPU."""
    sizes = SMOKE if smoke else (ACCELERATOR if jax.default_backend() != "cpu" else FULL)
    rows, _ = measure(**dict(sizes, **overrides), budget_s=budget_s)
    return rows


def format_table(rows, notes=()) -> str:
    lines = ["| method | ms/latent | vs (a) | vs (b) | compile s | accuracy against the dense SVD |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['ms_per_latent']:.2f} | {r['vs_ref_loop']:.2f} | "
                     f"{r['vs_torch_func']:.2f} | {r['compile_s']:.1f} | {r['accuracy']} |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=FULL["n"], help="latents for the batched rows")
    parser.add_argument("--n-ref", type=int, default=FULL["n_ref"], help="latents for the one-at-a-time row")
    parser.add_argument("--k", type=int, default=FULL["k"], help="triplets for local_basis_topk")
    parser.add_argument("--repeats", type=int, default=FULL["repeats"], help="interleaved rounds")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a 2x64 network, 8 latents), < 60 s")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    sizes = dict(SMOKE) if args.smoke else dict(FULL, n=args.n, n_ref=args.n_ref, k=args.k, repeats=args.repeats)
    rows, notes = measure(**sizes)
    print(format_table(rows, notes))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "notes": notes}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
