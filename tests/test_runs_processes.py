"""Long runs across processes: SIGKILLed and resumed, spread over 1/2/4 devices, two hosts.

Each check runs ``jaxlatent run`` or :func:`jaxlatent.runs.run` in subprocesses (forced host
device counts and ``jax.distributed`` must be set before JAX starts) and compares the stores.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import jaxlatent.models.digits
from jaxlatent import io
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.runs.results import open_run
from jaxlatent.runs.runner import run
from helpers import random_stylegan2, run_jax_processes

TESTS = os.path.dirname(os.path.abspath(__file__))
# `jaxlatent run` with only this command registered (the same parser code the CLI uses)
CLI = ("import sys, argparse\nfrom jaxlatent.cli import run\np = argparse.ArgumentParser(prog='jaxlatent')\n"
       "run.register(p.add_subparsers(dest='command'))\na = p.parse_args()\nsys.exit(a.func(a))")
CONFIG = dict(z_dim=8, w_dim=8, img_resolution=4, mapping_layers=2, channel_base=32, channel_max=4)


def env(tmp_path, devices=1):
    # a persistent compilation cache makes every restart after the first skip compilation: the
    # cached executable is the same program, so results stay bit-identical
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", OPENBLAS_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))


def assert_same_store(a, b, rtol=0.0, atol=0.0):
    ra, rb = open_run(a), open_run(b)
    assert ra.complete and rb.complete and set(ra) == set(rb) and ra.stages == rb.stages
    for sa, sb in [(ra, rb)] + [(ra.stage(s), rb.stage(s)) for s in ra.stages]:
        assert sa.complete and sb.complete, sa.path
        for name in sa:
            x, y = np.asarray(sa[name]), np.asarray(sb[name])   # reading tests every chunk's checksum
            if rtol == atol == 0.0 or x.dtype.kind not in "fc":
                np.testing.assert_array_equal(x, y, err_msg=f"{sa.path} {name}")
            else:
                np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"{sa.path} {name}")


def records(out):
    """Commit records in the run folder and its stage folders."""
    total = 0
    for folder in [out] + [os.path.join(out, e) for e in (os.listdir(out) if os.path.isdir(out) else [])]:
        try:
            total += len(os.listdir(os.path.join(folder, "chunks")))
        except (FileNotFoundError, NotADirectoryError):
            pass
    return total


def sigkill_at(cmd, out, targets, rng, tmp_path, *, start_s=(0.5, 2.0), jitter_s=0.01):
    """Start ``cmd`` once per target and SIGKILL it: a target of 0 at a random moment of start-up
    (``start_s``), any other once the run folder ``out`` holds that many commit records (plus a
    random ``jitter_s``). Fails when a run ends before its kill."""
    log = tmp_path / "stderr.txt"
    for kill, target in enumerate(targets):
        # stderr to a file: a pipe nobody reads fills (XLA logs every executable it loads from the
        # compilation cache) and would stop the process before its kill
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd, env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=err)
        start = time.monotonic()
        if target == 0:
            time.sleep(rng.uniform(*start_s))
        else:
            while records(out) < target and proc.poll() is None and time.monotonic() - start < 120:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, jitter_s))
        if proc.poll() is not None:
            pytest.fail(f"the run ended before kill {kill + 1} (rc {proc.returncode}): {log.read_text()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sigkill_at_random_moments_then_resume_equals_unbroken_run(tmp_path):
    ckpt = jaxlatent.models.digits.assets_dir()
    n, chunk = 2048, 32
    ref = tmp_path / "unbroken"
    # Exact equality is legitimate: each chunk is computed by the same compiled program on the same
    # latents whether the run was interrupted or not (the last chunk is padded to full size).
    run("local-dim", jaxlatent.load(ckpt), n, ref, chunk_size=chunk, progress=False)
    out = str(tmp_path / "killed")
    cmd = [sys.executable, "-c", CLI, "run", "local-dim", ckpt, "--tap", "w", "--n", str(n), "--out", out,
           "--chunk-size", str(chunk)]
    rng = random.Random(15)
    # two kills at random moments of start-up (imports, loading the model), then three at random
    # moments inside random later chunks (computing, writing, committing): 5 kills in all; the
    # last target leaves 24 chunks (768 latents), so that no run ends before its kill
    targets = sorted(rng.sample(range(2, n // chunk - 24), 3))
    sigkill_at(cmd, out, [0, 0] + targets, rng, tmp_path, start_s=(0.2, 1.5), jitter_s=0.02)
    assert 0 < records(out) < n // chunk
    done = subprocess.run(cmd, env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_store(out, ref)


DEVICES = textwrap.dedent("""
    import sys
    import jax
    from helpers import random_stylegan2, run_jax_processes
    from jaxlatent.models.stylegan2.model import StyleGAN2Config
    from jaxlatent.engine.parallel import batch_mesh
    from jaxlatent.runs import run

    assert len(jax.devices()) == 4, jax.devices()
    model = random_stylegan2(StyleGAN2Config(**{config}), 0)
    for d in (1, 2, 4):
        run("local-basis", model, 20, sys.argv[1] + f"/d{{d}}", chunk_size=8, options={{"k": 4}},
            mesh=batch_mesh(jax.devices()[:d]), progress=False)
    print("DEVICES OK")
""")


def test_one_two_and_four_host_devices_give_equal_stores(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DEVICES.format(config=CONFIG), str(tmp_path)],
                          env=env(tmp_path, devices=4), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "DEVICES OK" in proc.stdout, proc.stderr[-3000:]
    # each device runs its share of a chunk (8, 4 or 2 rows): other batch shapes, other programs,
    # so float32 rounding may differ by a few ulps in the Jacobian and in its SVD (values ~1)
    assert_same_store(tmp_path / "d2", tmp_path / "d1", rtol=1e-5, atol=1e-6)
    assert_same_store(tmp_path / "d4", tmp_path / "d1", rtol=1e-5, atol=1e-6)
    one = tmp_path / "here"
    run("local-basis", random_stylegan2(StyleGAN2Config(**CONFIG), 0), 20, one, chunk_size=8, options={"k": 4},
        progress=False)
    assert_same_store(tmp_path / "d1", one, rtol=1e-5, atol=1e-6)


MULTIHOST = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address="localhost:" + sys.argv[2], num_processes=2,
                               process_id=int(sys.argv[1]))
    from helpers import random_stylegan2, run_jax_processes
    from jaxlatent.models.stylegan2.model import StyleGAN2Config
    from jaxlatent.runs import run

    assert jax.process_count() == 2
    model = random_stylegan2(StyleGAN2Config(**{config}), 0)
    res = run("local-basis", model, 21, sys.argv[3], chunk_size=4, options={{"k": 4}}, progress=False)
    assert res.complete
    print("MULTIHOST OK", jax.process_index(), flush=True)
""")


def test_two_processes_under_jax_distributed_give_the_store_of_one(tmp_path):
    out = str(tmp_path / "two")
    results = run_jax_processes(MULTIHOST.format(config=CONFIG), lambda i: [out], env(tmp_path))
    for i, (returncode, stdout, stderr) in enumerate(results):
        assert returncode == 0 and f"MULTIHOST OK {i}" in stdout, stderr[-3000:]
    two = open_run(out)
    assert {committed_by(two, i) for i in range(two.n_chunks)} == {0, 1}
    one = tmp_path / "one"
    run("local-basis", random_stylegan2(StyleGAN2Config(**CONFIG), 0), 21, one, chunk_size=4, options={"k": 4},
        progress=False)
    # each process runs every chunk on its one device, as the single process does: same program
    assert_same_store(out, one)


def committed_by(result, index):
    """Which process committed chunk ``index`` (its commit record says)."""
    with open(os.path.join(result.path, "chunks", f"{index:08d}.json")) as fh:
        return json.load(fh)["process"]


STAGED = {"distortion": ["--k", "2", "--pairs", "40"], "grassmann": ["--k", "3", "--pairs", "40"],
          "ganspace": ["--k", "3", "--ica-samples", "24"]}


def kill_at_random_moments_then_finish(cmd, out, total, rng, tmp_path, kills=3):
    """Start ``cmd + --out out`` and SIGKILL it ``kills`` times (while starting, then at random
    commit counts of any stage, below ``total``), then run it to the end."""
    targets = [0] + sorted(rng.sample(range(1, total - 2), kills - 1))
    sigkill_at(cmd + ["--out", out, "--quiet"], out, targets, rng, tmp_path)
    assert records(out) < total
    done = subprocess.run(cmd + ["--out", out, "--quiet"], env=env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def unbroken(cmd, ref, tmp_path):
    """Run ``cmd + --out ref`` to the end; returns its commit records' count."""
    done = subprocess.run(cmd + ["--out", ref, "--quiet"], env=env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return records(ref)


@pytest.mark.parametrize("analysis", sorted(STAGED))
def test_staged_analyses_sigkilled_at_random_moments_resume_to_the_unbroken_store(tmp_path, analysis):
    n, chunk = 48, 4
    ckpt = str(tmp_path / "model")
    io.save(random_stylegan2(StyleGAN2Config(**CONFIG), 0), ckpt)
    cmd = [sys.executable, "-c", CLI, "run", analysis, ckpt, "--n", str(n), "--chunk-size", str(chunk),
           *STAGED[analysis]]
    ref, out = str(tmp_path / "unbroken"), str(tmp_path / "killed")
    total = unbroken(cmd, ref, tmp_path)
    kill_at_random_moments_then_finish(cmd, out, total, random.Random(hash(analysis) % 1000), tmp_path)
    assert_same_store(out, ref)


DIGITS_STAGED = {"controlling-set": ["--class-pairs", "0:3,3:8,8:0", "--max-k", "4", "--curve-samples", "4"],
                 "edit-fid": ["--indices", "0,1", "--strength-values=-2,2", "--layers", "0:2"]}


@pytest.mark.parametrize("analysis", sorted(DIGITS_STAGED))
def test_classifier_analyses_sigkilled_at_random_moments_resume_to_the_unbroken_store(tmp_path, analysis):
    ckpt = jaxlatent.models.digits.assets_dir()
    extra = list(DIGITS_STAGED[analysis])
    if analysis == "edit-fid":
        run("ganspace", jaxlatent.load(ckpt), 32, tmp_path / "gs", chunk_size=16, options={"k": 2, "method": "pca"},
            progress=False)
        extra += ["--directions", str(tmp_path / "gs")]
    cmd = [sys.executable, "-c", CLI, "run", analysis, ckpt, "--n", "24", "--chunk-size", "4", *extra]
    ref, out = str(tmp_path / "unbroken"), str(tmp_path / "killed")
    total = unbroken(cmd, ref, tmp_path)
    kill_at_random_moments_then_finish(cmd, out, total, random.Random(len(analysis)), tmp_path, kills=2)
    assert_same_store(out, ref)


STAGED_DEVICES = textwrap.dedent("""
    import sys
    import jax
    import jaxlatent
    import jaxlatent.models.digits
    from helpers import random_stylegan2
    from jaxlatent.models.stylegan2.model import StyleGAN2Config
    from jaxlatent.engine.parallel import batch_mesh
    from jaxlatent.runs import run

    assert len(jax.devices()) == 4, jax.devices()
    model = random_stylegan2(StyleGAN2Config(**{config}), 0)
    for name, opts in {staged}.items():
        for d in (1, 4):
            run(name, model, 24, sys.argv[1] + f"/{{name}}{{d}}", chunk_size=8, options=opts,
                mesh=batch_mesh(jax.devices()[:d]), progress=False)
    digits = jaxlatent.load(jaxlatent.models.digits.assets_dir())
    for d in (1, 4):
        run("controlling-set", digits, 48, sys.argv[1] + f"/controlling-set{{d}}", chunk_size=24,
            options={classified}, mesh=batch_mesh(jax.devices()[:d]), progress=False)
    print("DEVICES OK")
""")


def test_staged_analyses_on_one_and_four_host_devices_give_equal_stores(tmp_path):
    staged = {"distortion": {"k": 2, "pairs": 30}, "grassmann": {"k": 3, "pairs": 30}, "ganspace": {"k": 3}}
    classified = {"class_pairs": "0:3,3:8", "max_k": 4, "curve_samples": 4}
    script = STAGED_DEVICES.format(config=CONFIG, staged=staged, classified=classified)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env(tmp_path, devices=4),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "DEVICES OK" in proc.stdout, proc.stderr[-3000:]
    for name in staged:
        # the same pairs (drawn from the run's identity); the Jacobians of 8 or 2 rows per device
        # round float32 differently by a few ulps, and the distances and moments with them
        assert_same_store(tmp_path / f"{name}4", tmp_path / f"{name}1", rtol=1e-4, atol=1e-5)
    # images and probabilities in batches of 24 or 6 per device: float32 ulps; the same classes,
    # rankings and sizes
    assert_same_store(tmp_path / "controlling-set4", tmp_path / "controlling-set1", rtol=1e-4, atol=1e-5)
