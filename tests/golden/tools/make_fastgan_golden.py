"""Make golden data for the FastGAN model by running the author's ``models.py`` on CPU.

Usage:
  python tests/golden/tools/make_fastgan_golden.py /path/to/FastGAN-pytorch tests/golden/fastgan

The checkout is imported from the path given (nothing of it is vendored here). For each
configuration the official ``Generator`` is built with random weights (``weights_init``, then
random batch-norm biases and noise-injection strengths so that every path matters), run a few
times in training mode so that the batch-norm running statistics and the spectral-norm vectors
move away from their initial values, and then evaluated

* in evaluation mode (``.eval()``): running statistics, spectral norm from the stored ``u, v``;
* with batch norm in training mode only (batch statistics, spectral norm still from ``u, v``);
* fully in training mode, as the official ``eval.py`` runs it (batch statistics and one extra
  power iteration): only its distance from the previous output is recorded.

Noise is pre-drawn with numpy (``default_rng(NOISE_SEED + i)``) and fed in the official draw
order by replacing ``NoiseInjection.forward``; the test draws the same arrays and checks their
sums (``noise_sums``). Images are stored sub-sampled (every ``stride``-th pixel, every 2nd for
``image128``) plus a full-resolution corner crop, and every weight and buffer is rounded to
float16-representable values before the evaluation runs (stored as float16, exactly), so the
files stay small.
"""

import argparse
import os
import sys

import numpy as np
import torch

CONFIGS = {  # name: (im_size, nz, ngf, batch)
    "fg256": (256, 16, 8, 3),
    "fg1024": (1024, 16, 8, 2),
}
NOISE_SEED, WARMUP = 1000, 4
CROP = 32


def noise_arrays(im_size, batch):
    res = [r for r in (8, 32, 128, 512) if r <= im_size for _ in range(2)]
    return [np.random.default_rng(NOISE_SEED + i).standard_normal((batch, 1, r, r)).astype(np.float32)
            for i, r in enumerate(res)]


def make(models, name, im_size, nz, ngf, batch, out_dir):
    torch.manual_seed(0)
    g = models.Generator(ngf=ngf, nz=nz, nc=3, im_size=im_size)
    g.apply(models.weights_init)
    with torch.no_grad():
        for mod in g.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.bias.normal_(0.0, 0.1)
            if isinstance(mod, models.NoiseInjection):
                mod.weight.normal_(0.0, 0.3)
    g.train()
    with torch.no_grad():  # moves running stats and spectral-norm u, v like a few training steps
        for _ in range(WARMUP):
            g(torch.randn(4, nz))
        # float16-representable values are stored losslessly at half the size
        for value in g.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())

    state = {k: v.detach().numpy().copy() for k, v in g.state_dict().items()}
    state = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in state.items()}
    param_names = [k for k, _ in g.named_parameters()]
    z = torch.randn(batch, nz)
    noise = noise_arrays(im_size, batch)

    queue = []
    original = models.NoiseInjection.forward

    def fed(self, feat, noise=None):
        arr = queue.pop(0)
        assert tuple(arr.shape[2:]) == tuple(feat.shape[2:]), (arr.shape, feat.shape)
        return original(self, feat, torch.from_numpy(arr))

    models.NoiseInjection.forward = fed
    init_out = {}
    hook = g.init.register_forward_hook(lambda m, i, o: init_out.__setitem__("init", o.detach().numpy().copy()))

    def run():
        queue[:] = list(noise)
        with torch.no_grad():
            img, img128 = g(z)
        assert not queue
        return img.numpy().copy(), img128.numpy().copy(), init_out["init"]

    g.eval()
    img, img128, init = run()
    g.eval()
    for mod in g.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.train()
    bimg, bimg128, binit = run()
    g.train()  # as eval.py: batch statistics and a power iteration per call
    timg, _, _ = run()
    models.NoiseInjection.forward = original
    hook.remove()

    stride = im_size // 64
    out = {
        "im_size": np.int64(im_size), "nz": np.int64(nz), "ngf": np.int64(ngf), "stride": np.int64(stride),
        "crop": np.int64(CROP), "noise_seed": np.int64(NOISE_SEED),
        "z": z.numpy(),
        "noise_sums": np.array([n.astype(np.float64).sum() for n in noise]),
        "param_names": np.array(param_names),
        "init": init, "init_batch": binit,
        "image_sub": img[:, :, ::stride, ::stride], "image_crop": img[:, :, :CROP, :CROP],
        "image_norm": np.float64(np.linalg.norm(img.astype(np.float64))),
        "image128_sub": img128[:, :, ::2, ::2], "image128_crop": img128[:, :, :CROP, :CROP],
        "batch_image_sub": bimg[:, :, ::stride, ::stride], "batch_image128_sub": bimg128[:, :, ::2, ::2],
        "train_vs_batch_rel": np.float64(np.linalg.norm(timg - bimg) / np.linalg.norm(bimg)),
    }
    out.update({f"sd:{k}": v for k, v in state.items()})
    path = os.path.join(out_dir, f"{name}.npz")
    np.savez_compressed(path, **out)
    print(f"{path}: {os.path.getsize(path) / 1e3:.0f} kB; eval.py-style (train mode) vs batch-stat "
          f"output rel. diff {out['train_vs_batch_rel']:.2e}; eval vs batch-stat "
          f"{np.linalg.norm(img - bimg) / np.linalg.norm(img):.2e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    sys.path.insert(0, args.checkout)
    import models  # noqa: PLC0415  (the official FastGAN models.py)

    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, (im_size, nz, ngf, batch) in CONFIGS.items():
        make(models, name, im_size, nz, ngf, batch, args.out_dir)


if __name__ == "__main__":
    main()
