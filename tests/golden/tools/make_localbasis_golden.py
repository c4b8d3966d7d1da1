"""Make golden data for the Local Basis and its Grassmannian metrics by running the reference code.

Usage:
  python tests/golden/tools/make_localbasis_golden.py /path/to/isno0907/localbasis \
      tests/golden/localbasis/map512.npz

The Local Basis checkout is imported from the path given (nothing of it is
vendored here): ``notebooks/localbasis_utils.py`` for ``get_random_local_basis``
and ``compute_grsm_metric``, and its bundled rosinality ``model.py`` for the
mapping network (``Generator.style``: PixelNorm, then 8 ``EqualLinear(512, 512,
lr_mul=0.01, activation='fused_lrelu')``). Its notebook-only imports (the model
zoo wrappers, strip helpers) are replaced by stubs, and ``Tensor.cuda`` by the
identity so that it runs on CPU.

Weights come from numpy's legacy ``RandomState(SEED)`` stream (frozen by numpy's
compatibility policy), in rosinality's parameterisation (weights N(0,1)/lr_mul,
biases N(0,1)*10 so that the effective bias is 0.1 N(0,1)); the test regenerates
them with :func:`mapping_weights` instead of storing 8 MB of random numbers.
"""

import argparse
import sys
import types

import numpy as np

SEED, N_MLP, DIM, LR_MUL = 0, 8, 512, 0.01
N_LATENTS, KEEP_UV, KEEP_JAC, SUBSPACE_DIMS = 4, 64, 2, (1, 2, 5, 10, 50)


def mapping_weights(seed=SEED, n_mlp=N_MLP, dim=DIM, lr_mul=LR_MUL):
    """[(weight (dim, dim), bias (dim,))] per layer, rosinality/NVlabs parameter layout (float32)."""
    rs = np.random.RandomState(seed)
    layers = []
    for _ in range(n_mlp):
        w = (rs.standard_normal((dim, dim)) / lr_mul).astype(np.float32)
        b = (rs.standard_normal(dim) / lr_mul * 0.1).astype(np.float32)
        layers.append((w, b))
    return layers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout")
    parser.add_argument("out")
    args = parser.parse_args()
    import torch  # noqa: PLC0415

    root = args.checkout.rstrip("/")
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, f"{root}/models/stylegan2/stylegan2-pytorch")
    import model as rosinality  # noqa: PLC0415

    class StyleGAN2:  # the zoo wrapper: get_random_local_basis reads model.model.style and model.device
        def __init__(self, g):
            self.model, self.device = g, "cpu"

    stub_models = types.ModuleType("models")
    stub_models.StyleGAN2 = StyleGAN2
    stub_models.StyleGAN = type("StyleGAN", (), {})
    stub_models.BigGAN = type("BigGAN", (), {})
    stub_nb = types.ModuleType("notebook_utils")
    stub_nb.create_strip = stub_nb.create_strip_centered = stub_nb.pad_frames = None
    sys.modules["models"], sys.modules["notebook_utils"] = stub_models, stub_nb
    sys.path.insert(0, f"{root}/notebooks")
    import localbasis_utils as lb  # noqa: PLC0415

    g = rosinality.Generator(8, DIM, N_MLP, lr_mlp=LR_MUL).eval()
    with torch.no_grad():
        for k, (w, b) in enumerate(mapping_weights()):
            g.style[k + 1].weight.copy_(torch.from_numpy(w))
            g.style[k + 1].bias.copy_(torch.from_numpy(b))
    model = StyleGAN2(g)

    rng = np.random.RandomState(1)
    out = {"z": [], "w": [], "singular_values": [], "U": [], "V": [], "jacobian": []}
    for i in range(N_LATENTS):
        noise, w, u, s, v = lb.get_random_local_basis(model, rng)
        if i < KEEP_JAC:  # the Jacobian the reference builds, rebuilt the same way for storage
            pad = noise.detach().repeat(DIM, 1).requires_grad_(True)
            jac = torch.autograd.grad(g.style(pad), pad, grad_outputs=torch.eye(DIM))[0]
            out["jacobian"].append(jac.numpy())
        out["z"].append(noise.detach().numpy()[0])
        out["w"].append(w.numpy()[0])
        out["singular_values"].append(s.numpy())
        out["U"].append(u.numpy()[:, :KEEP_UV])
        out["V"].append(v.numpy()[:, :KEEP_UV])
    arrays = {k: np.stack(v).astype(np.float32) for k, v in out.items()}

    # eps-neighbour of latent 0 as evaluate_basis_consistency_local draws it (eps 0.1, unit direction)
    perturb = torch.from_numpy(rng.standard_normal(DIM).reshape(1, DIM)).float()
    perturb = perturb / torch.norm(perturb)
    z_near = torch.from_numpy(arrays["z"][:1]) + 0.1 * perturb
    _, _, u_near, s_near, _ = lb.get_random_local_basis(model, rng, z_near)
    arrays["z_near"] = z_near.numpy().astype(np.float32)
    arrays["U_near"] = u_near.numpy()[None, :, :KEEP_UV].astype(np.float32)
    arrays["singular_values_near"] = s_near.numpy()[None].astype(np.float32)

    arrays["subspace_dims"] = np.asarray(SUBSPACE_DIMS, np.int32)
    pairs = [(0, 1), (2, 3)]
    for metric in ("geodesic", "proj"):
        dist = [[lb.compute_grsm_metric(out["U"][a], out["U"][b], d=d, metric_type=metric)
                 for d in SUBSPACE_DIMS] for a, b in pairs]
        arrays[f"dist_{metric}_pairs"] = np.asarray(dist, np.float64)
        near = [lb.compute_grsm_metric(out["U"][0], u_near.numpy(), d=d, metric_type=metric)
                for d in SUBSPACE_DIMS]
        arrays[f"dist_{metric}_near"] = np.asarray(near, np.float64)
    arrays["weight_checksum"] = np.asarray([w.astype(np.float64).sum() for w, _ in mapping_weights()])
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k}{v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
