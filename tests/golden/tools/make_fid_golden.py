"""Make golden Fréchet distances by running pytorch-fid's ``calculate_frechet_distance``.

Usage:
  pip download pytorch-fid==0.3.0 --no-deps && unzip pytorch_fid-0.3.0-py3-none-any.whl -d /tmp/pfid
  python tests/golden/tools/make_fid_golden.py /tmp/pfid tests/golden/ganspace/fid.npz

The pytorch-fid package is imported from the path given (nothing of it is vendored here). Its
``fid_score`` module imports torchvision and its Inception at the top; those two are replaced by
stubs, since only the distance of given statistics is run. Statistics are made here from numpy's
legacy ``RandomState`` streams: a well-conditioned pair, a pair of rank-deficient covariances
(fewer samples than features, as with a few hundred images of 2048-d Inception features), and a
pair with far apart means.
"""

import argparse
import sys
import types

import numpy as np


def statistics(seed: int, n: int, dim: int, shift: float = 0.0):
    """(mu (dim,), sigma (dim, dim)) of n samples of a random linear map of Laplace noise."""
    rs = np.random.RandomState(seed)
    x = rs.laplace(size=(n, dim)) @ rs.randn(dim, dim) / np.sqrt(dim) + shift
    return x.mean(axis=0), np.cov(x, rowvar=False)


CASES = {"full": (300, 16, 0.0), "rank_deficient": (10, 16, 0.0), "shifted": (200, 8, 3.0)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pytorch_fid_root", help="directory holding the pytorch_fid package")
    parser.add_argument("out", help="output .npz")
    args = parser.parse_args()
    sys.modules["torchvision"] = types.ModuleType("torchvision")
    sys.modules["torchvision.transforms"] = types.ModuleType("torchvision.transforms")
    stub = types.ModuleType("pytorch_fid.inception")
    stub.InceptionV3 = types.SimpleNamespace(BLOCK_INDEX_BY_DIM={2048: 3})
    sys.modules["pytorch_fid.inception"] = stub
    sys.path.insert(0, args.pytorch_fid_root)
    from pytorch_fid.fid_score import calculate_frechet_distance

    arrays = {}
    for i, (name, (n, dim, shift)) in enumerate(CASES.items()):
        mu1, s1 = statistics(2 * i, n, dim)
        mu2, s2 = statistics(2 * i + 1, n, dim, shift)
        arrays.update({f"{name}/mu1": mu1, f"{name}/sigma1": s1, f"{name}/mu2": mu2, f"{name}/sigma2": s2,
                       f"{name}/fid": np.float64(calculate_frechet_distance(mu1, s1, mu2, s2))})
        print(name, float(arrays[f"{name}/fid"]))
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
