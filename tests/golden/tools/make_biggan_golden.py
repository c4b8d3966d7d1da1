"""Make golden data for the BigGAN-deep model by running huggingface's ``pytorch-pretrained-biggan``.

Usage (in an environment with torch and pytorch-pretrained-biggan==0.1.1; nothing of the package
is vendored here):
  python tests/golden/tools/make_biggan_golden.py tests/golden/biggan

A small BigGAN-deep (``CONFIG``: 32x32, channel width 8, 10 classes, seven deep blocks with
channel dropping with and without up-sampling, self-attention before block 4, the package's 51
statistic rows) is built with the package's constructors and random weights: default
initialisation, then random class embedding, biases, batch-norm gains, attention gain and
statistic tables whose rows all differ. Three forward passes in training mode move the
spectral-norm vectors ``u, v`` part of the way towards convergence (so that folding with the
stored vectors is tested, not with converged ones); every float tensor is then rounded to a
float16-representable value (stored as float16, exactly) and the network is evaluated in
evaluation mode. The test suite writes the state dict back as ``pytorch_model.bin`` beside the
package's ``config.json`` and loads that folder.
"""

import argparse
import json
import os

import numpy as np
import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig, truncated_noise_sample

CONFIG = dict(output_dim=32, z_dim=16, class_embed_dim=16, channel_width=8, num_classes=10,
              layers=[[False, 16, 16], [True, 16, 8], [False, 8, 8], [True, 8, 4], [False, 4, 4],
                      [True, 4, 2], [False, 2, 1]],
              attention_layer_position=4, eps=1e-4, n_stats=51)
TRUNCATIONS = (0.4, 0.737, 1.0)   # 0.737 mixes rows 36 and 37 with weights 0.85 and 0.15
FEATURE_TRUNCATION = 0.737
FEATURE_ROWS = 2  # block outputs are stored for the first two latents of that batch
BATCH = 4
LABELS = [0, 3, 7, 9]
JAC_CLASS, JAC_SEEDS = 3, (11, 12)
SAMPLE = dict(batch_size=3, dim_z=16, truncation=0.5, seed=7)


def randomize(model):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            t = tensor.data
            if name.endswith("running_means"):
                t.copy_(0.2 * torch.randn(t.shape, generator=gen))
            elif name.endswith("running_vars"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("gamma"):
                t.fill_(0.7)
            elif name.endswith("bias"):
                t.copy_(0.05 * torch.randn(t.shape, generator=gen))
            elif name == "generator.bn.weight":
                t.copy_(1.0 + 0.1 * torch.randn(t.shape, generator=gen))
            elif name == "embeddings.weight":
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
    model.train()
    with torch.no_grad():  # one power iteration per spectral-norm layer per call
        for _ in range(3):
            z = torch.from_numpy(truncated_noise_sample(2, CONFIG["z_dim"], 1.0, seed=99))
            model(z, torch.eye(CONFIG["num_classes"])[:2], 1.0)
    model.eval()
    with torch.no_grad():  # float16-representable values: stored losslessly as float16
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


def features(model, z, classes, truncation):
    out = {}
    gen = model.generator

    def keep(name, reshape=False):
        def hook(_module, _inputs, output):
            if reshape:  # as the package's forward does right after gen_z
                output = output.view(-1, 4, 4, 16 * CONFIG["channel_width"]).permute(0, 3, 1, 2)
            out[name] = output.detach().numpy().copy()
        return hook

    handles = [gen.gen_z.register_forward_hook(keep("gen_z", True))]
    handles += [layer.register_forward_hook(keep(f"layers.{j}")) for j, layer in enumerate(gen.layers)]
    with torch.no_grad():
        out["image"] = model(torch.from_numpy(z), torch.from_numpy(classes), truncation).numpy()
    for h in handles:
        h.remove()
    return out


def _jacobian(f, x):
    """Columns of d f / d x (x: (1, d)) by one forward-mode product per input direction."""
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    return torch.stack([torch.func.jvp(f, (x,), (eye[i:i + 1],))[1] for i in range(x.shape[1])], dim=1).detach()


def jacobians(model, z, class_vector, truncation):
    """float64 d image / d z (every latent) and d image / d embedding (the first latent)."""
    m = model.double()
    c = torch.from_numpy(class_vector).double()[None]
    jz, je = [], []
    with torch.no_grad():
        emb = m.embeddings(c)
    for row in z:
        zz = torch.from_numpy(row.astype(np.float64))[None]
        jz.append(_jacobian(lambda x: m(x, c, truncation).reshape(-1), zz).numpy())
        if not je:  # the first latent only: the same code path as z, half the file size
            je.append(_jacobian(lambda e: m.generator(torch.cat([zz, e], 1), truncation).reshape(-1), emb).numpy())
    model.float()
    # computed in float64, stored rounded to float32 (a relative change of 6e-8)
    return np.stack(jz).astype(np.float32), np.stack(je).astype(np.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = BigGAN(BigGANConfig.from_dict(CONFIG))
    randomize(model)
    k = CONFIG["num_classes"]
    onehot = np.eye(k, dtype=np.float32)[LABELS]
    dense = np.random.default_rng(1).dirichlet(np.ones(k), BATCH).astype(np.float32)
    data = {"config_json": json.dumps(CONFIG), "labels": np.asarray(LABELS), "dense": dense,
            "truncations": np.asarray(TRUNCATIONS)}
    for name, tensor in model.state_dict().items():
        v = tensor.numpy()
        data[f"sd:{name}"] = v.astype(np.float16) if v.dtype == np.float32 else v
    for t in TRUNCATIONS:
        z = truncated_noise_sample(BATCH, CONFIG["z_dim"], t, seed=int(t * 1000))
        data[f"z@{t}"] = z
        data[f"image_onehot@{t}"] = features(model, z, onehot, t)["image"]
        data[f"image_dense@{t}"] = features(model, z, dense, t)["image"]
    feats = features(model, data[f"z@{FEATURE_TRUNCATION}"][:FEATURE_ROWS], dense[:FEATURE_ROWS], FEATURE_TRUNCATION)
    data.update({f"feat:{name}": v for name, v in feats.items()})
    zj = np.concatenate([truncated_noise_sample(1, CONFIG["z_dim"], FEATURE_TRUNCATION, seed=s) for s in JAC_SEEDS])
    data["jac_z"] = zj
    data["jac_image_z"], data["jac_image_embedding"] = jacobians(model, zj, np.eye(k)[JAC_CLASS], FEATURE_TRUNCATION)
    data["jac_class"] = np.asarray(JAC_CLASS)
    data["jac_truncation"] = np.asarray(FEATURE_TRUNCATION)
    data["sample"] = truncated_noise_sample(**SAMPLE)
    data["sample_args"] = json.dumps(SAMPLE)
    # evaluation vs training mode (one more power iteration per call) on these weights
    z = data[f"z@{FEATURE_TRUNCATION}"]
    eval_image = data[f"image_dense@{FEATURE_TRUNCATION}"]
    model.train()
    with torch.no_grad():
        train_image = model(torch.from_numpy(z), torch.from_numpy(dense), FEATURE_TRUNCATION).numpy()
    data["train_vs_eval_rel"] = np.asarray(np.linalg.norm(train_image - eval_image) / np.linalg.norm(eval_image))
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "deep32.npz")
    np.savez_compressed(path, **data)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB); train vs eval image rel "
          f"{float(data['train_vs_eval_rel']):.3g}")


if __name__ == "__main__":
    main()
