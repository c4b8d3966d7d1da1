"""Make tests/golden/featurenets/*.npz: LPIPS (lpips 0.1.4) and FID Inception (pytorch-fid 0.3.0)
outputs on seeded random weights (tests/seeded_weights.py), for the parity tests of
jaxlatent.models.features.lpips and jaxlatent.models.features.inception.

Usage: python tests/golden/tools/make_featurenet_golden.py --ref DIR
DIR holds the unpacked wheels lpips==0.1.4, pytorch-fid==0.3.0 and torchvision==0.28.0 (pip
download --no-deps, then unzip). torchvision's package __init__ needs its compiled ops, which a
CPU torch lacks; only its pure-Python ``torchvision.models`` modules are used, through a bare
package object.
"""

from __future__ import annotations

import argparse
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from seeded_weights import seeded_state_dict  # noqa: E402

OUT = os.path.join(HERE, "..", "featurenets")
SEED = 0


def _torchvision_models(ref):
    sys.path.insert(0, ref)
    tv = types.ModuleType("torchvision")
    tv.__path__ = [os.path.join(ref, "torchvision")]
    tv.__version__ = "0.28.0"
    sys.modules["torchvision"] = tv


def _seed_module(module):
    import torch
    # lpips registers each lin layer twice (lin<k> and lins.<k>, one shared tensor): seed lin<k>
    skip = ("scaling_layer.", "lins.")
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()
              if not k.endswith("num_batches_tracked") and not k.startswith(skip)}
    state = {k: torch.from_numpy(v) for k, v in seeded_state_dict(shapes, SEED).items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") or k.startswith(skip) for k in missing), missing


def lpips_golden():
    import lpips
    import torch
    rng = np.random.RandomState(1)
    x = rng.uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
    for net in ("alex", "vgg", "squeeze"):
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
        _seed_module(model)
        with torch.no_grad():
            d, layers = model(torch.from_numpy(x), torch.from_numpy(y), retPerLayer=True)
            spatial = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, spatial=True, verbose=False).eval()
            spatial.load_state_dict(model.state_dict())
            dmap = spatial(torch.from_numpy(x), torch.from_numpy(y))
        np.savez_compressed(os.path.join(OUT, f"lpips_{net}.npz"), x=x, y=y, seed=SEED,
                            distance=d.numpy().reshape(-1), spatial=dmap.numpy(),
                            layers=np.stack([t.numpy().reshape(-1) for t in layers]))
        print(net, d.numpy().reshape(-1))


def inception_golden():
    import torch
    import torchvision.models as tvm
    from pytorch_fid import inception as fid

    def build():
        net = tvm.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
        for name, block in [("Mixed_5b", fid.FIDInceptionA(192, 32)), ("Mixed_5c", fid.FIDInceptionA(256, 64)),
                            ("Mixed_5d", fid.FIDInceptionA(288, 64)), ("Mixed_6b", fid.FIDInceptionC(768, 128)),
                            ("Mixed_6c", fid.FIDInceptionC(768, 160)), ("Mixed_6d", fid.FIDInceptionC(768, 160)),
                            ("Mixed_6e", fid.FIDInceptionC(768, 192)), ("Mixed_7b", fid.FIDInceptionE_1(1280)),
                            ("Mixed_7c", fid.FIDInceptionE_2(2048))]:
            setattr(net, name, block)
        return net

    shapes = {k: tuple(v.shape) for k, v in build().state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k: torch.from_numpy(v) for k, v in seeded_state_dict(shapes, SEED).items()}
    fid.load_state_dict_from_url = lambda *a, **k: state  # the weights file is the user's to bring
    model = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    rng = np.random.RandomState(2)
    x01 = rng.uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        feats = model(torch.from_numpy(x01))[0].reshape(2, -1).numpy()
    np.savez_compressed(os.path.join(OUT, "inception.npz"), x=2 * x01 - 1, seed=SEED, features=feats)
    print("inception", feats.shape, float(np.abs(feats).mean()))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="folder with the unpacked lpips, pytorch_fid and torchvision wheels")
    args = p.parse_args()
    _torchvision_models(args.ref)
    os.makedirs(OUT, exist_ok=True)
    lpips_golden()
    inception_golden()
