"""The metric tensor of Wang & Ponce (ICLR 2021), ours against GAN-Geometry's three ways in PyTorch.

    python benchmarks/geometry.py [--smoke] [--json PATH] [--z-dim 128 --ch 32 --res 16 --n 64 --n-ref 3]

One small convolutional generator (``z -> fc -> 4x4 -> (up, conv) x 2 -> tanh``, weights from
numpy, the same function in both frameworks) and the default distance (mean squared pixel
difference). Rows, per latent:

  BP (torch)            GAN-Geometry's ``hessian_compute(method="BP")`` re-created: one graph of
                        the gradient, then ``in`` second backward passes for the rows of H, then
                        ``numpy.linalg.eigh``; one latent at a time
  BackwardIter (torch)  Hessian-vector products by double backprop fed to ARPACK
                        (``scipy.sparse.linalg.eigsh``, float32, top ``in // 2 - 1``, ncv 2k,
                        maxiter 20, tol 1e-6), as their ``lanczos`` wrapper calls it
  ForwardIter (torch)   the same with central differences of gradients (EPS 1e-3 of |z|,
                        maxiter 200); it returns half the Hessian, doubled here for accuracy
  metric_tensor full    ``metric_tensor(g, z)``: batched J^T M J and ``eigh`` (all ``in`` pairs)
  metric_tensor top-k   ``metric_tensor(g, z, k=in // 5 - 1, method="krylov" | "lobpcg", key=...)``
                        (krylov: its rounds driven from the host on CPU, as ``loop="auto"`` picks
                        for a convolutional generator)

Accuracy: the largest relative error of the eigenvalues a row returns that lie above 1e-3 of
the largest, against float64 ``eigh`` of our metric in float64 (the goal is 1e-3). Speedup: BP's
time per latent over the row's. ``run(budget_s, smoke)`` is the entry point of
``benchmarks/device.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.geometry.metric import metric_tensor

FULL = dict(z_dim=128, ch=32, res=16, n=64, n_ref=3, repeats=2)
SMOKE = dict(z_dim=16, ch=8, res=8, n=8, n_ref=1, repeats=1)
ACCELERATOR = dict(z_dim=128, ch=32, res=16, n=1024, n_ref=3, repeats=2)


def weights(z_dim, ch, res, seed=0):
    rs = np.random.RandomState(seed)
    return {"fc.w": rs.randn(ch * 16, z_dim) / np.sqrt(z_dim), "fc.b": 0.1 * rs.randn(ch * 16),
            "c1.w": rs.randn(ch, ch, 3, 3) / np.sqrt(9 * ch), "c1.b": 0.1 * rs.randn(ch),
            "c2.w": rs.randn(3, ch, 3, 3) / np.sqrt(9 * ch), "c2.b": 0.1 * rs.randn(3)}


def jax_generator(w, ch, res, dtype=jnp.float32):
    p = {k: jnp.asarray(v, dtype) for k, v in w.items()}
    ups = int(np.log2(res // 4))

    def conv(x, k, b):
        return jax.lax.conv_general_dilated(x, k, (1, 1), [(1, 1)] * 2,
                                            dimension_numbers=("NCHW", "OIHW", "NCHW")) + b[None, :, None, None]

    def g(z):
        h = jnp.tanh(z @ p["fc.w"].T + p["fc.b"]).reshape(-1, ch, 4, 4)
        for i in range(ups):
            h = jnp.repeat(jnp.repeat(h, 2, axis=2), 2, axis=3)
            h = jax.nn.softplus(conv(h, p["c1.w"], p["c1.b"])) if i < ups - 1 else h
        return jnp.tanh(conv(h, p["c2.w"], p["c2.b"]))

    return g


def torch_generator(w, ch, res):
    import torch
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}
    ups = int(np.log2(res // 4))

    def g(z):
        h = torch.tanh(F.linear(z, t["fc.w"], t["fc.b"])).view(-1, ch, 4, 4)
        for i in range(ups):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.softplus(F.conv2d(h, t["c1.w"], t["c1.b"], padding=1)) if i < ups - 1 else h
        return torch.tanh(F.conv2d(h, t["c2.w"], t["c2.b"], padding=1))

    return g


def _torch_mse(a, b):
    return ((a - b) ** 2).mean()


def torch_bp(g, z1):
    """Their "BP": the gradient's graph once, then one second backward pass per row of H."""
    import torch

    ref = g(z1).detach()
    mov = z1.clone().requires_grad_(True)
    grad = torch.autograd.grad(_torch_mse(ref, g(mov)), mov, create_graph=True)[0].view(-1)
    rows = [torch.autograd.grad(grad[i], mov, retain_graph=True)[0].view(-1) for i in range(grad.numel())]
    h = torch.stack(rows).numpy()
    return np.linalg.eigh(h)[0][::-1]


def _arpack(apply, n, k, maxiter):
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((n, n), matvec=apply, dtype=np.float32)
    vals = eigsh(op, k=k, which="LM", maxiter=maxiter, tol=1e-6, ncv=min(2 * k, n - 1), return_eigenvectors=False)
    return np.sort(vals)[::-1]


def torch_backward_iter(g, z1, k):
    """Their "BackwardIter": double-backprop HVPs at z + 1e-4 N(0, I) through ARPACK."""
    import torch

    ref = g(z1).detach()
    pert = (1e-4 * torch.randn_like(z1)).requires_grad_(True)
    grad = torch.autograd.grad(_torch_mse(ref, g(z1 + pert)), pert, create_graph=True)[0].view(-1)

    def apply(v):
        v = torch.from_numpy(np.asarray(v, np.float32).ravel())
        return torch.autograd.grad(grad, pert, grad_outputs=v.view_as(grad), retain_graph=True)[0].view(-1).numpy()

    return _arpack(apply, z1.numel(), k, 20)


def torch_forward_iter(g, z1, k, eps=1e-3):
    """Their "ForwardIter": central differences of the gradient; twice their (halved) result."""
    import torch

    ref = g(z1).detach()

    def apply(v):
        v = torch.from_numpy(np.asarray(v, np.float32).ravel()).view_as(z1)
        step = float(z1.norm() * eps / v.norm())
        pair = (z1 + step * torch.tensor([1.0, -1.0]).view(-1, 1) * v).requires_grad_(True)
        d = ((g(pair) - ref) ** 2).mean(dim=[1, 2, 3])
        gr = torch.autograd.grad(d.mean(), pair)[0]
        return ((gr[0] - gr[1]) / (2 * step)).numpy()

    return 2 * _arpack(apply, z1.numel(), k, 200)


def _accuracy(vals, exact):
    exact = np.asarray(exact, np.float64)
    vals = np.asarray(vals, np.float64)
    m = min(vals.shape[-1], exact.shape[-1])
    keep = exact[..., :m] > 1e-3 * exact[..., :1]
    return float(np.max(np.where(keep, np.abs(vals[..., :m] / exact[..., :m] - 1), 0)))


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def run(budget_s: float = 600.0, smoke: bool = False, **sizes) -> list[dict]:
    """Rows of the table (see the module docstring), sized for the device when not ``smoke``.

    ``sizes`` override the configuration's entries (``z_dim``, ``ch``, ``res``, ``n``, ``n_ref``).
    """
    import torch

    t_start = time.perf_counter()
    cfg = dict(SMOKE if smoke else (ACCELERATOR if jax.default_backend() != "cpu" else FULL), **sizes)
    w = weights(cfg["z_dim"], cfg["ch"], cfg["res"])
    z = np.random.RandomState(1).randn(cfg["n"], cfg["z_dim"]).astype(np.float32)
    with jax.enable_x64(True):
        exact = np.asarray(metric_tensor(jax_generator(w, cfg["ch"], cfg["res"], jnp.float64),
                                         jnp.asarray(z, jnp.float64)).eigenvalues)
    g = jax_generator(w, cfg["ch"], cfg["res"])
    tg = torch_generator(w, cfg["ch"], cfg["res"])
    k_ref = cfg["z_dim"] // 2 - 1
    k_top = cfg["z_dim"] // 5 - 1
    rows = []
    torch.manual_seed(0)
    for name, fn in (("BP (torch)", lambda z1: torch_bp(tg, z1)),
                     ("BackwardIter (torch)", lambda z1: torch_backward_iter(tg, z1, k_ref)),
                     ("ForwardIter (torch)", lambda z1: torch_forward_iter(tg, z1, k_ref))):
        if time.perf_counter() - t_start > budget_s * 0.6:
            rows.append({"row": name, "note": "skipped: time budget"})
            continue
        fn(torch.tensor(z[-1:]))                       # warm-up (first-call costs of torch and scipy)
        vals, t0 = [], time.perf_counter()
        for i in range(cfg["n_ref"]):
            vals.append(fn(torch.tensor(z[i:i + 1])))
        per = (time.perf_counter() - t0) / cfg["n_ref"]
        rows.append({"row": name, "latents": cfg["n_ref"], "pairs": len(vals[0]), "ms_per_latent": 1e3 * per,
                     "max_rel_err": _accuracy(np.stack(vals), exact[:cfg["n_ref"]])})
    zj = jnp.asarray(z)
    for name, call in (("metric_tensor full", lambda: metric_tensor(g, zj)),
                       (f"metric_tensor top-{k_top} krylov",
                        lambda: metric_tensor(g, zj, k=k_top, method="krylov", key=jax.random.key(0))),
                       (f"metric_tensor top-{k_top} lobpcg",
                        lambda: metric_tensor(g, zj, k=k_top, method="lobpcg", key=jax.random.key(0)))):
        if time.perf_counter() - t_start > budget_s * 0.9:
            rows.append({"row": name, "note": "skipped: time budget"})
            continue
        t0 = time.perf_counter()
        jax.block_until_ready(call().eigenvalues)
        first = time.perf_counter() - t0
        best, m = _best(lambda: jax.block_until_ready(call()), cfg["repeats"])
        rows.append({"row": name, "latents": cfg["n"], "pairs": int(m.eigenvalues.shape[1]),
                     "ms_per_latent": 1e3 * best / cfg["n"], "compile_s": first - best,
                     "max_rel_err": _accuracy(m.eigenvalues, exact)})
    bp = next((r["ms_per_latent"] for r in rows if r["row"] == "BP (torch)" and "ms_per_latent" in r), None)
    for r in rows:
        if bp and "ms_per_latent" in r:
            r["speedup_vs_BP"] = bp / r["ms_per_latent"]
    head = f"z_dim {cfg['z_dim']}, image 3x{cfg['res']}x{cfg['res']}, {jax.default_backend()}"
    for r in rows:
        r["config"] = head
    return rows


def _table(rows):
    cols = ["row", "latents", "pairs", "ms_per_latent", "speedup_vs_BP", "max_rel_err", "compile_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, r.get("note", "") if c == "latents" else "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (< 60 s)")
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--json", default=None, help="write the rows here")
    for name in ("z_dim", "ch", "res", "n", "n_ref"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None, help=f"override {name}")
    args = parser.parse_args(argv)
    sizes = {k: getattr(args, k) for k in ("z_dim", "ch", "res", "n", "n_ref") if getattr(args, k) is not None}
    rows = run(args.budget_s, args.smoke, **sizes)
    print(rows[0]["config"])
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    sys.exit(main())
