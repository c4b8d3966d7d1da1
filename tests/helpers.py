"""Helpers shared by several test files (``from helpers import ...``; pytest puts tests/ on the path)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest


def random_stylegan2(config, seed: int = 0):
    """A StyleGAN2 with standard-normal weights from numpy draws.

    Cheaper than ``StyleGAN2.init`` (one jax.random draw per leaf compiles a kernel each) on a
    busy 2-core CPU; the weights are plain arrays, as a converted checkpoint would give.
    """
    from jaxlatent.models.stylegan2.model import StyleGAN2, expected_shapes

    rng = np.random.RandomState(seed)
    flat = {k: np.asarray(rng.randn(*s), np.float32) for k, s in expected_shapes(config).items()}
    return StyleGAN2.from_state_dict(config, flat)


def golden_stylegan2(name: str):
    """The StyleGAN2 of ``tests/golden/stylegan2/<name>.npz`` (official weights as plain arrays,
    ``param/...``, and the official constructor's keywords, ``init_kwargs``)."""
    from jaxlatent.models.stylegan2.model import StyleGAN2, StyleGAN2Config

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "stylegan2", f"{name}.npz")
    d = np.load(path)
    config = StyleGAN2Config.from_nvlabs_kwargs(json.loads(str(d["init_kwargs"])))
    state = {k[len("param/"):]: d[k] for k in d.files if k.startswith("param/")}
    return StyleGAN2.from_state_dict(config, state, source=path)


def run_jax_processes(script: str, args_of, env: dict, n: int = 2, timeout: float = 300.0) -> list:
    """Run ``python -c script <process index> <port> *args_of(i)`` for ``n`` processes at once.

    The processes meet at a free localhost port (``jax.distributed.initialize`` in the script).
    Fails the test when any of them runs past ``timeout``; otherwise returns one
    ``(returncode, stdout, stderr)`` per process.
    """
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i), port, *args_of(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"the {n} jax.distributed processes did not finish in {timeout:.0f} s")
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def low_rank_plus_noise(rng, out: int, inn: int, gains, noise: float) -> np.ndarray:
    """``U diag(gains) V^T + noise * G``: an (out, inn) matrix of rank ``len(gains)`` (random
    orthonormal U, V) plus iid Gaussian noise, the Gavish-Donoho model of a noisy low-rank matrix."""
    r = len(gains)
    u = np.linalg.qr(rng.normal(size=(out, r)))[0]
    v = np.linalg.qr(rng.normal(size=(inn, r)))[0]
    return u @ np.diag(gains) @ v.T + noise * rng.normal(size=(out, inn))
