"""A self-check of the installed JAX: versions, devices, and batched Jacobians that must be right.

Every analysis rests on Jacobians of a batch of latents. jaxlib 0.10.2 miscompiles, on CPU,
``jit(vmap(jacfwd(g)))`` of per-sample maps that square a value before a reduction
(``jnp.square`` or ``x ** 2`` and then ``sum``/``mean``): the first latent of the batch comes
out right, the others 5-13 % wrong, with no error (docs/known-issues.md). The models of this
package are written so that they do not contain the pattern; a function a user writes may.

:func:`doctor` runs, on the default backend, in a few seconds:

* the models' check: a StyleGAN2 with the 8 x 512 mapping network of the FFHQ models, taps
  ``mapping.fc0``, ``w`` and ``image``, the Jacobians of 16 latents by ``jit(vmap(jacfwd))``
  (every tap), ``jit(vmap(jacrev))`` (mapping taps) and the batched ``jacfwd`` (``mapping.fc0``),
  each equal per latent to the same latent's Jacobian computed alone;
* the backend's check: the smallest known trigger (``z * sum(square(z))`` on 64-wide latents
  taken as a batch of one), which says whether user code written that way is safe here.

:data:`FAULTY_JAXLIB` lists the releases known to have the fault; ``import jaxlatent`` warns
(one line, nothing computed) when one of them is installed.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.models.stylegan2.model import StyleGAN2, expected_shapes
from jaxlatent.models.stylegan2.config import StyleGAN2Config

# jaxlib releases whose CPU backend computes jit(vmap(jacfwd)) of the pattern above wrongly.
# Measured: 0.5.3, 0.7.2, 0.9.2, 0.10.0, 0.10.1 right; 0.10.2 wrong; 0.12.0.1 (Python 3.12) right.
FAULTY_JAXLIB = {"0.10.2": "CPU: jit(vmap(jacfwd)) of a square before a reduction is miscompiled"}

TOLERANCE = 1e-4  # relative Frobenius error per latent; the fault gives 5e-2 and more


class FaultyJaxlibWarning(UserWarning):
    """The installed jaxlib is a release with a known miscompilation (see :data:`FAULTY_JAXLIB`)."""


class Check(NamedTuple):
    name: str     # what was computed, e.g. "image: jit(vmap(jacfwd))"
    error: float  # largest relative Frobenius error over the batch against one latent at a time
    ok: bool      # error <= TOLERANCE


class DoctorReport(NamedTuple):
    """What :func:`doctor` found. ``ok`` is the verdict: models and backend both right."""
    jax_version: str
    jaxlib_version: str
    backend: str
    devices: list        # str(device) for each device
    checks: list         # Check for each model transform
    backend_check: Check  # the minimal trigger written as a user might
    known_fault: str | None  # FAULTY_JAXLIB's entry for this jaxlib, or None
    models_ok: bool
    ok: bool
    seconds: float
    lines: list          # the printable report, verdict last


def jaxlib_version() -> str:
    """The installed jaxlib's version (package metadata; no backend is started)."""
    try:
        return importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - jaxlib always ships with jax
        return "unknown"


def warn_if_faulty() -> None:
    """Warn once, at import, when the installed jaxlib is in :data:`FAULTY_JAXLIB`."""
    version = jaxlib_version()
    if version in FAULTY_JAXLIB:
        warnings.warn(f"jaxlib {version} has a known fault ({FAULTY_JAXLIB[version]}); jaxlatent's models "
                      f"avoid it, your own functions may not: install another jaxlib "
                      f"(pip install 'jaxlib!={version}') and run `jaxlatent doctor`",
                      FaultyJaxlibWarning, stacklevel=3)


def _model() -> StyleGAN2:
    """The FFHQ-sized mapping (8 x 512) with a small 8x8 synthesis; seeded normal weights."""
    config = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=8, img_channels=3, mapping_layers=8,
                             channel_base=64, channel_max=8)
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal(s, dtype=np.float32) for k, s in expected_shapes(config).items()}
    return StyleGAN2.from_state_dict(config, state, source="jaxlatent.doctor")


def _per_sample(f):
    return lambda z1: jnp.reshape(f(z1[None])[0], (-1,))


def _worst(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return max(float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30)) for g, w in zip(got, want))


def _kink_free(g, z, n):
    """Latents whose one-at-a-time forward and reverse Jacobians agree, and their Jacobians.

    At a latent within float32 rounding of a leaky-ReLU kink, two correct programs may disagree
    by percents; such latents say nothing about the compiler and are skipped.
    """
    fwd, rev = jax.jit(jax.jacfwd(g)), jax.jit(jax.jacrev(g))
    keep, refs = [], []
    for zi in z:
        jf = np.asarray(fwd(zi))
        if _worst(jf[None], np.asarray(rev(zi))[None]) < 1e-5:
            keep.append(zi)
            refs.append(jf)
        if len(keep) == n:
            break
    return jnp.asarray(np.stack(keep)), np.stack(refs)


def _model_checks(batch: int) -> list:
    model = _model()
    z = np.random.default_rng(1).standard_normal((batch + 8, model.z_dim), dtype=np.float32)
    checks = []
    for tap in ("mapping.fc0", "w", "image"):
        f = model.fn(tap)
        g = _per_sample(f)
        zs, want = _kink_free(g, z, batch)
        n = len(zs)
        block = lambda x: jax.jacfwd(lambda y: jnp.reshape(f(y), (n, -1)))(x)[jnp.arange(n), :, jnp.arange(n)]
        transforms = [("jit(vmap(jacfwd))", jax.vmap(jax.jacfwd(g)))]
        # the others cost more (batch^2 tangent pushes for the block form): checked where cheap
        if tap != "image":
            transforms.append(("jit(vmap(jacrev))", jax.vmap(jax.jacrev(g))))
        if tap == "mapping.fc0":
            transforms.append(("jit(jacfwd(batched f))", block))
        for name, fn in transforms:
            error = _worst(jax.jit(fn)(zs), want)
            checks.append(Check(f"{tap}: {name}", error, error <= TOLERANCE))
    return checks


def _backend_check(batch: int) -> Check:
    z = jnp.asarray(np.random.default_rng(2).standard_normal((batch, 64), dtype=np.float32))
    g = lambda z1: (z1[None] * jnp.sum(jnp.square(z1[None]), axis=1, keepdims=True))[0]
    got = jax.jit(jax.vmap(jax.jacfwd(g)))(z)
    want = np.stack([np.asarray(jax.jit(jax.jacfwd(g))(zi)) for zi in z])
    error = _worst(got, want)
    return Check("user code z * sum(square(z)): jit(vmap(jacfwd))", error, error <= TOLERANCE)


def doctor(*, batch: int = 16, verbose: bool = True) -> DoctorReport:
    """Check that batched Jacobians are right on this installation's default backend.

    Args:
      batch: latents per batched transform (the fault shows from the second latent on).
      verbose: print the report as it is made.

    Returns:
      :class:`DoctorReport`; ``report.ok`` is the verdict, ``report.lines`` the printed text.
    """
    start = time.perf_counter()
    lines = []

    def say(text):
        lines.append(text)
        if verbose:
            print(text, flush=True)

    jl = jaxlib_version()
    fault = FAULTY_JAXLIB.get(jl)
    devices = [str(d) for d in jax.devices()]
    say(f"python {platform.python_version()} ({sys.platform}), jax {jax.__version__}, jaxlib {jl}, "
        f"numpy {np.__version__}")
    say(f"backend {jax.default_backend()}: {len(devices)} device(s): {', '.join(devices)}")
    if fault:
        say(f"known fault in jaxlib {jl}: {fault}")
    checks = _model_checks(batch)
    for c in checks:
        say(f"  {'ok  ' if c.ok else 'FAIL'} {c.name:40s} max relative error {c.error:.1e}")
    user = _backend_check(batch)
    say(f"  {'ok  ' if user.ok else 'FAIL'} {user.name:40s} max relative error {user.error:.1e}")
    models_ok = all(c.ok for c in checks)
    ok = models_ok and user.ok
    if ok:
        verdict = "verdict: OK: batched forward- and reverse-mode Jacobians are right on this backend"
    elif models_ok:
        verdict = (f"verdict: BACKEND FAULT: jaxlatent's models are right, but this jaxlib ({jl}) miscompiles "
                   f"batched forward-mode Jacobians of user code that squares before a reduction; install "
                   f"another jaxlib (pip install 'jaxlib!={jl}' 'jax!={jl}'), see docs/known-issues.md")
    else:
        verdict = ("verdict: FAIL: jaxlatent's model Jacobians differ between batched and one-at-a-time "
                   "computation on this backend; do not trust batched results; see docs/known-issues.md")
    seconds = time.perf_counter() - start
    say(f"{verdict} ({seconds:.1f} s)")
    return DoctorReport(jax.__version__, jl, jax.default_backend(), devices, checks, user, fault, models_ok,
                        ok, seconds, lines)
