"""Jacobians the way users write them, on every family and kind of tap.

The card promises that ``jax.jacfwd``/``jvp``/``jacrev`` with ``vmap`` work on our models'
tap functions. jaxlib 0.10.2 miscompiles ``jit(vmap(jacfwd))`` of some programs on CPU
(docs/known-issues.md): rows after the first came out 5-13 % wrong. Our models are written
so that they do not trigger it; these tests compare each user-level transform, per latent,
with the same Jacobian computed one latent at a time, at batch sizes 1, 5 and 16, for the
512-wide mapping network, a conditional StyleGAN2, a rosinality StyleGAN2 and FastGAN. They
fail on jaxlib 0.10.2 with the model written with ``jnp.square`` (checked by hand; the
closing test below keeps the faulty formulation as a canary of the backend).

Tolerance: the references and the batched transforms are different compiled programs, so they
agree to float32 rounding (relative Frobenius error 1e-4 here; the fault is 5e-2 and more).
A latent whose pre-activation lies within float32 rounding of a leaky-ReLU kink has an
ill-defined float32 derivative (two correct programs can disagree by percents there); such
latents are left out by drawing candidates and keeping those whose one-at-a-time forward-
and reverse-mode Jacobians agree.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlatent
from jaxlatent.models.fastgan.model import FastGAN
from jaxlatent.models.fastgan.config import FastGANConfig
from jaxlatent.models.stylegan2.model import StyleGAN2
from helpers import golden_stylegan2

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
TOL = 1e-4
BATCHES = (1, 5, 16)


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def nvlabs_golden(name):
    return golden_stylegan2(name)


@functools.lru_cache(maxsize=None)
def model_of(family):
    if family == "stylegan2-512":
        return nvlabs_golden("map512")
    if family == "stylegan2-cond":
        return nvlabs_golden("cond16")
    if family == "rosinality":
        torch = pytest.importorskip("torch")
        from jaxlatent.converters.rosinality import convert_rosinality
        g = np.load(os.path.join(GOLDEN, "rosinality", "small32.npz"))
        obj = {"g_ema": {k[len("g_ema/"):]: torch.from_numpy(g[k].copy())
                         for k in g.files if k.startswith("g_ema/")},
               "latent_avg": torch.from_numpy(g["latent_avg"].copy())}
        return StyleGAN2(*convert_rosinality(obj, "small32.pt")[:2])
    if family == "fastgan":
        return FastGAN.init(FastGANConfig(im_size=256, nz=8, ngf=2), jax.random.key(3))
    raise KeyError(family)


def tap_fn(family, tap):
    model = model_of(family)
    if family == "stylegan2-cond":  # one class for every latent, as a 1-D one-hot
        c = jnp.zeros(model.config.c_dim, jnp.float32).at[2].set(1.0)
        return model.fn(tap, c=c)
    return model.fn(tap)

CASES = [
    ("stylegan2-512", "mapping.fc0"), ("stylegan2-512", "w"), ("stylegan2-512", "ws"),
    ("stylegan2-512", "style.b8.conv0"), ("stylegan2-512", "synthesis.b8"),
    ("stylegan2-512", "image"),
    ("stylegan2-cond", "mapping.embed"), ("stylegan2-cond", "mapping.fc0"), ("stylegan2-cond", "w"), ("stylegan2-cond", "image"),
    ("rosinality", "w"), ("rosinality", "synthesis.b16"),
    ("fastgan", "init"), ("fastgan", "feat_8"),
]


def per_sample(f):
    return lambda z1: jnp.reshape(f(z1[None])[0], (-1,))


@functools.lru_cache(maxsize=None)
def reference(family, tap):
    """Kink-free latents (24 drawn, 16 kept) and their one-at-a-time Jacobians (N, out, in)."""
    f = tap_fn(family, tap)
    g = per_sample(f)
    z_dim = model_of(family).z_dim
    z = np.random.RandomState(zlib_seed(family, tap)).randn(24, z_dim).astype(np.float32)
    fwd, rev = jax.jit(jax.jacfwd(g)), jax.jit(jax.jacrev(g))
    small = small_output(f, z_dim)
    keep, refs = [], []
    for zi in z:
        jf = np.asarray(fwd(zi))
        if not small or rel(jf, np.asarray(rev(zi))) < 1e-5:
            keep.append(zi)
            refs.append(jf)
    assert len(keep) >= 16, f"{family} {tap}: only {len(keep)} of 24 latents are kink-free"
    return np.stack(keep[:16]), np.stack(refs[:16])


def small_output(f, z_dim) -> bool:
    """Whether reverse mode is affordable: at most 4096 output values per latent."""
    out = jax.eval_shape(f, jax.ShapeDtypeStruct((1, z_dim), jnp.float32))
    return int(np.prod(out.shape[1:])) <= 4096


def convolutional(f, z_dim) -> bool:
    """Whether the tap runs a convolution: its batched ``jacfwd`` (N^2 tangent pushes) is then
    checked at batch sizes 1 and 5 only, to keep the suite's time."""
    return "conv_general_dilated" in str(jax.make_jaxpr(f)(jax.ShapeDtypeStruct((1, z_dim), jnp.float32)))


def zlib_seed(*names) -> int:
    return sum(ord(ch) * (i + 1) for i, ch in enumerate("/".join(names))) % (2 ** 31)


def transforms(f, reverse: bool = True):
    """The user-level transforms: name -> jitted z (N, in) -> per-latent Jacobians (N, out, in).

    ``reverse=False`` leaves out ``jit(vmap(jacrev))`` (taps with large outputs)."""
    g = per_sample(f)

    def vmap_jvp(z):
        eye = jnp.eye(z.shape[1], dtype=z.dtype)
        one = lambda z1: jax.vmap(lambda t: jax.jvp(g, (z1,), (t,))[1], out_axes=1)(eye)
        return jax.vmap(one)(z)

    def block_diagonal(z):
        n = z.shape[0]
        full = jax.jacfwd(lambda x: jnp.reshape(f(x), (n, -1)))(z)  # (N, out, N, in)
        return full[jnp.arange(n), :, jnp.arange(n)]

    out = {
        "jit(vmap(jacfwd))": jax.jit(jax.vmap(jax.jacfwd(g))),
        "jit(vmap(jvp))": jax.jit(vmap_jvp),
        "jacfwd(batched f)": jax.jit(block_diagonal),
    }
    if reverse:
        out["jit(vmap(jacrev))"] = jax.jit(jax.vmap(jax.jacrev(g)))
    return out


@pytest.mark.parametrize("family,tap", CASES, ids=[f"{f}:{t}" for f, t in CASES])
def test_user_transforms_equal_one_at_a_time(family, tap):
    z, want = reference(family, tap)
    failures = []
    f = tap_fn(family, tap)
    conv = convolutional(f, z.shape[1])
    for name, fn in transforms(f, small_output(f, z.shape[1])).items():
        for n in BATCHES:
            if conv and name == "jacfwd(batched f)" and n > 5:
                continue
            got = np.asarray(fn(jnp.asarray(z[:n])))
            errs = [rel(got[i], want[i]) for i in range(n)]
            if max(errs) > TOL:
                failures.append(f"{name} batch {n}: per-latent errors {np.round(errs, 4).tolist()}")
    assert not failures, f"{family} {tap}:\n" + "\n".join(failures)


def test_w_space_style_tap():
    """A tap taken with respect to w (the W-space analyses of the papers), batch 16."""
    model = model_of("stylegan2-512")
    f = model.fn("style.b8.conv0", wrt="w")
    g = per_sample(f)
    w = np.asarray(model.fn("w")(jnp.asarray(np.random.RandomState(5).randn(16, 512), jnp.float32)))
    want = np.stack([np.asarray(jax.jit(jax.jacrev(g))(wi)) for wi in w])
    for name, fn in transforms(f).items():
        got = np.asarray(fn(jnp.asarray(w)))
        assert max(rel(got[i], want[i]) for i in range(16)) < TOL, name


def test_float64_jacobians_of_the_512_mapping(x64):
    """Batched float32 forward mode against a float64 Jacobian of the same weights."""
    model = model_of("stylegan2-512")
    z, _ = reference("stylegan2-512", "w")
    got = np.asarray(jax.jit(jax.vmap(jax.jacfwd(per_sample(model.fn("w")))))(jnp.asarray(z, jnp.float32)))
    assert got.dtype == np.float32
    params64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), model.params)
    m64 = StyleGAN2(model.config, params64)
    want = np.asarray(jax.vmap(jax.jacrev(per_sample(m64.fn("w"))))(jnp.asarray(z, jnp.float64)))
    assert want.dtype == np.float64
    assert max(rel(got[i], want[i]) for i in range(len(z))) < 1e-5


DEVICES_SCRIPT = r"""
import os, sys, json
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
sys.path.insert(0, sys.argv[1])
import test_user_transforms as t
assert jax.device_count() == 2, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("batch",))
worst = {}
for family, tap in [("stylegan2-512", "mapping.fc0"), ("stylegan2-512", "ws"), ("fastgan", "init")]:
    z, want = t.reference(family, tap)
    zs = jax.device_put(jnp.asarray(z), NamedSharding(mesh, P("batch")))
    f = t.tap_fn(family, tap)
    for name, fn in t.transforms(f, t.small_output(f, z.shape[1])).items():
        got = np.asarray(fn(zs))
        worst[f"{family}:{tap}:{name}"] = max(t.rel(got[i], want[i]) for i in range(len(z)))
print(json.dumps(worst))
"""


def test_user_transforms_over_two_host_devices():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT, os.path.dirname(__file__)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    worst = json.loads(out.stdout.strip().splitlines()[-1])
    bad = {k: v for k, v in worst.items() if v > TOL}
    assert len(worst) == 12 and not bad, bad


def test_doctor_passes_on_this_backend():
    report = jaxlatent.doctor(verbose=False)
    assert report.models_ok, report.lines
    assert report.jax_version == jax.__version__ and report.backend == jax.default_backend()
    assert len(report.checks) == 6 and all(c.error < TOL for c in report.checks), report.lines
    # the backend's own check says whether the installed jaxlib has the fault
    assert report.backend_check.ok == (report.known_fault is None), report.lines
    assert report.ok == report.backend_check.ok and report.lines[-1].startswith("verdict: ")
