"""Make golden data for the GAN-geometry metric and its statistics by running GAN-Geometry's code.

Usage:
  python tests/golden/tools/make_geometry_golden.py /path/to/Animadversio/GAN-Geometry \
      tests/golden/geometry/hessian.npz

The GAN-Geometry checkout is imported from the path given (nothing of it is vendored here):
``core/GAN_hessian_compute.py`` (``hessian_compute``: "BP", "BackwardIter", "ForwardIter") and
``core/hessian_analysis_tools.py`` (``compute_hess_corr``, ``compute_vector_hess_corr``,
``average_H``). Their CUDA calls run on the CPU (``Tensor.cuda`` is the identity and device
"cuda" means "cpu"); modules they import but these functions never call (hessian_eigenthings'
power iteration, IPython's ``clear_output``, easydict, torchvision's image-grid helpers) are stubs.

The generator and the LPIPS-style distance are small torch modules defined here, with weights
drawn from numpy's legacy ``RandomState`` and stored in the npz, so that the test replays the
same functions in JAX (:func:`generator` and :func:`lpips_like` document the layers). The
distance follows the ``lpips`` package's formula (scaling layer, backbone slices, unit-normalised
channels, squared difference, non-negative 1x1 "lin" weights, spatial mean, sum over layers) with
a two-slice random backbone in place of AlexNet/SqueezeNet.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import types

import numpy as np

SEED = 0
Z_DIM, HIDDEN, BASE, RES, CH = 16, 32, 8, 8, 3
N_LATENTS, N_STATS = 3, 6
SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])
FEAT = (8, 16)


def weights(seed=SEED):
    """The generator's and distance's weights as a dict of float64 arrays (numpy RandomState)."""
    rs = np.random.RandomState(seed)
    w = {
        "g.fc1.w": rs.randn(HIDDEN, Z_DIM) / np.sqrt(Z_DIM), "g.fc1.b": 0.1 * rs.randn(HIDDEN),
        "g.fc2.w": rs.randn(BASE * 4 * 4, HIDDEN) / np.sqrt(HIDDEN), "g.fc2.b": 0.1 * rs.randn(BASE * 16),
        "g.conv.w": rs.randn(CH, BASE, 3, 3) / np.sqrt(9 * BASE), "g.conv.b": 0.1 * rs.randn(CH),
        "d.conv1.w": rs.randn(FEAT[0], CH, 3, 3) / np.sqrt(9 * CH), "d.conv1.b": 0.2 + 0.1 * rs.rand(FEAT[0]),
        "d.conv2.w": rs.randn(FEAT[1], FEAT[0], 3, 3) / np.sqrt(9 * FEAT[0]),
        "d.conv2.b": 0.2 + 0.1 * rs.rand(FEAT[1]),
        "d.lin1.w": rs.rand(1, FEAT[0], 1, 1), "d.lin2.w": rs.rand(1, FEAT[1], 1, 1),
    }
    return {k: np.asarray(v, np.float64) for k, v in w.items()}


def torch_modules(w, dtype):
    """(generator wrapper with ``visualize``, LPIPS-style distance) as torch modules."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.tensor(v, dtype=dtype) for k, v in w.items()}

    class G:
        def visualize(self, z):
            h = torch.tanh(F.linear(z, t["g.fc1.w"], t["g.fc1.b"]))
            h = F.linear(h, t["g.fc2.w"], t["g.fc2.b"]).view(-1, BASE, 4, 4)
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            return torch.tanh(F.conv2d(h, t["g.conv.w"], t["g.conv.b"], padding=1))

    shift = torch.tensor(SHIFT, dtype=dtype).view(1, -1, 1, 1)
    scale = torch.tensor(SCALE, dtype=dtype).view(1, -1, 1, 1)

    def feats(x):
        x = (x - shift) / scale
        f1 = F.relu(F.conv2d(x, t["d.conv1.w"], t["d.conv1.b"], padding=1))
        f2 = F.relu(F.conv2d(f1, t["d.conv2.w"], t["d.conv2.b"], stride=2, padding=1))
        return f1, f2

    def unit(f):
        return f / (torch.sqrt(torch.sum(f ** 2, dim=1, keepdim=True)) + 1e-10)

    def lpips_like(x0, x1):
        total = 0
        for f0, f1, lin in zip(feats(x0), feats(x1), ("d.lin1.w", "d.lin2.w")):
            diff = (unit(f0) - unit(f1)) ** 2
            total = total + F.conv2d(diff, t[lin]).mean(dim=[2, 3], keepdim=True)
        return total

    def mse(x0, x1):
        return ((x0 - x1) ** 2).mean(dim=[1, 2, 3])

    return G(), {"mse": mse, "lpips": lpips_like}


def _stub_modules():
    power = types.ModuleType("hessian_eigenthings.power_iter")
    power.deflated_power_iteration = None
    pkg = types.ModuleType("hessian_eigenthings")
    pkg.power_iter = power
    ipy = types.ModuleType("IPython")
    disp = types.ModuleType("IPython.display")
    disp.clear_output = lambda wait=False: None
    ipy.display = disp
    ed = types.ModuleType("easydict")
    ed.EasyDict = dict
    tv, tv_utils, tv_transforms = (types.ModuleType(n) for n in
                                   ("torchvision", "torchvision.utils", "torchvision.transforms"))
    tv_utils.make_grid = tv_transforms.ToPILImage = None
    tv.utils, tv.transforms = tv_utils, tv_transforms
    sys.modules.update({"torchvision": tv, "torchvision.utils": tv_utils, "torchvision.transforms": tv_transforms,
                        "hessian_eigenthings": pkg, "hessian_eigenthings.power_iter": power,
                        "IPython": ipy, "IPython.display": disp, "easydict": ed})


def _cpu_for_cuda(torch):
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    to = torch.Tensor.to

    def to_cpu(self, *args, **kwargs):
        args = tuple("cpu" if a == "cuda" else a for a in args)
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return to(self, *args, **kwargs)

    torch.Tensor.to = to_cpu


@contextlib.contextmanager
def _float64(torch):
    """Their BP path in float64: ``.float()`` keeps float64 and new tensors default to float64."""
    old_float, old_default = torch.Tensor.float, torch.get_default_dtype()
    torch.Tensor.float = lambda self, *a, **k: self.double()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.Tensor.float = old_float
        torch.set_default_dtype(old_default)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout")
    parser.add_argument("out")
    args = parser.parse_args()
    import torch

    _stub_modules()
    _cpu_for_cuda(torch)
    sys.path.insert(0, args.checkout.rstrip("/"))
    from core.GAN_hessian_compute import hessian_compute
    from core.hessian_analysis_tools import average_H, compute_hess_corr, compute_vector_hess_corr

    w = weights()
    z = np.random.RandomState(SEED + 1).randn(max(N_LATENTS, N_STATS), Z_DIM)
    out = {k.replace(".", "_"): v for k, v in w.items()}
    out["z"] = z
    g32, d32 = torch_modules(w, torch.float32)
    g64, d64 = torch_modules(w, torch.float64)
    for name in ("mse", "lpips"):
        bp64, bp32, bi, fi = [], [], [], []
        for i in range(N_LATENTS):
            with _float64(torch):
                eva, evc, h = hessian_compute(g64, torch.tensor(z[i:i + 1]), d64[name], hessian_method="BP",
                                              device="cpu")
            bp64.append(h)
            eva, evc, h = hessian_compute(g32, torch.tensor(z[i:i + 1], dtype=torch.float32), d32[name],
                                          hessian_method="BP", device="cpu")
            bp32.append(h)
            torch.manual_seed(i)
            np.random.seed(i)
            eva, _, _ = hessian_compute(g32, torch.tensor(z[i:i + 1], dtype=torch.float32), d32[name],
                                        hessian_method="BackwardIter", device="cpu")
            bi.append(np.sort(eva)[::-1])
            eva, _, _ = hessian_compute(g32, torch.tensor(z[i:i + 1], dtype=torch.float32), d32[name],
                                        hessian_method="ForwardIter", device="cpu")
            fi.append(np.sort(eva)[::-1])
        out[f"{name}_bp64_H"] = np.stack(bp64).astype(np.float64)
        out[f"{name}_bp32_H"] = np.stack(bp32).astype(np.float32)
        out[f"{name}_backwarditer_eigvals"] = np.stack(bi)
        out[f"{name}_forwarditer_eigvals"] = np.stack(fi)

    # statistics on one set of eigenpairs: float64 BP metrics (MSE) at N_STATS latents; two of
    # them get a zero and a negative eigenvalue so that the log-scale masking is exercised
    vals, vecs = [], []
    for i in range(N_STATS):
        with _float64(torch):
            eva, evc, _ = hessian_compute(g64, torch.tensor(z[i:i + 1]), d64["mse"], hessian_method="BP",
                                          device="cpu")
        vals.append(eva)
        vecs.append(evc)
    vals, vecs = np.stack(vals), np.stack(vecs)
    vals[1, 0] = 0.0
    vals[4, 0] = -1e-3
    with tempfile.TemporaryDirectory() as tmp:
        corr_log, corr_lin = compute_hess_corr(vals, vecs, figdir=tmp)
        corr_vec = compute_vector_hess_corr(vals, vecs, figdir=tmp)
    h_avg, eva_avg, evc_avg = average_H(vals, list(vecs))
    out.update(stats_eigvals=vals, stats_eigvecs=vecs, stats_corr_log=corr_log, stats_corr_lin=corr_lin,
               stats_corr_vec=corr_vec, stats_H_avg=h_avg, stats_eva_avg=eva_avg)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
