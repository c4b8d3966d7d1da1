"""Every benchmark's accelerator rows in one command, under a time budget.

    .venv/bin/python benchmarks/device.py --budget-s 420 [--out DIR] [--only NAME ...]
    .venv/bin/python benchmarks/device.py --smoke            # tiny sizes on CPU, < 60 s

On a bare machine, install first with ``make install`` (CUDA builds of jaxlib and torch where
the registry offers them); this script installs nothing. It says which accelerator JAX and
torch see, runs each benchmark in its own process (a fresh JAX, its own device memory) with
the time left, and writes ``device.json`` (every row) and ``device.md`` (one table per
benchmark) to ``--out``. A benchmark that would run past the budget is stopped: the rows
measured so far are kept, and its row says it was stopped.

Convention: a benchmark joins by being listed in ``BENCHMARKS`` (a module name under
``benchmarks/``) and defining

    run(budget_s: float, smoke: bool) -> list[dict]

which returns flat rows (``{"row": name, <column>: number or text, ...}``), sized for the
device at hand when ``smoke`` is false (accelerator sizes on a GPU/TPU) and tiny when it is
true, and which stops by itself within ``budget_s`` seconds. A listed module that is missing,
or has no ``run``, or fails, gets one row saying so instead of stopping the others.
``generate.py`` times the official generators, so it needs their checkouts: pass
``--nvlabs PATH`` / ``--fastgan PATH`` (or set ``JAXLATENT_NVLABS`` / ``JAXLATENT_FASTGAN``);
without them its rows say so; ``fid_features.py`` times pytorch-fid's Inception when
``JAXLATENT_FID_REF`` names a folder with the unpacked pytorch-fid and torchvision wheels, and
``biggan.py`` times pytorch-pretrained-biggan when ``JAXLATENT_BIGGAN_REF`` names a folder where
it imports.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = ("jacobian_check", "local_basis", "generate", "geometry", "ganspace", "fid_features", "correlation", "runs",
              "biggan")
SMOKE_BUDGET_S = 55.0
STARTUP_S = 5.0  # what a child process needs to start and import jax before it can measure


def device_report() -> dict:
    """Which accelerator JAX and torch see (no installation, only a look)."""
    info = {"host": platform.node(), "python": platform.python_version()}
    try:
        import jax

        devices = jax.devices()
        info["jax"] = f"{jax.__version__} on {jax.default_backend()}: {devices[0].device_kind} x {len(devices)}"
        info["jax_accelerator"] = jax.default_backend() != "cpu"
    except Exception as err:  # a broken jaxlib install must still be reported
        info["jax"] = f"unavailable ({err})"
        info["jax_accelerator"] = False
    try:
        import torch

        cuda = torch.cuda.is_available()
        name = torch.cuda.get_device_name(0) if cuda else "CPU only"
        info["torch"] = f"{torch.__version__}: {name}"
        info["torch_cuda"] = cuda
    except ImportError:
        info["torch"] = "not installed (reference rows need it: make install)"
        info["torch_cuda"] = False
    if not info["jax_accelerator"]:
        info["advice"] = ("JAX sees no accelerator: on a GPU machine run `make install` (a CUDA "
                          "jaxlib where the registry offers one); running what it can on CPU")
    return info


def _generate_rows(module, budget_s: float, smoke: bool) -> list[dict]:
    """generate.py's tables as rows: batch 1, 8 and 64 (one batch of 1 at smoke sizes)."""
    rows = []
    for family, flag, env in (("stylegan2", "--nvlabs", "JAXLATENT_NVLABS"),
                              ("fastgan", "--fastgan", "JAXLATENT_FASTGAN")):
        path = os.environ.get(env)
        if not path:
            rows.append(dict(row=family, note=f"skipped: needs the official checkout ({flag} PATH or {env})"))
            continue
        # the options generate.py's own command line would set (see its main())
        args = argparse.Namespace(nvlabs=None, fastgan=None, psi=1.0, preset="256", im_size=1024, nz=256,
                                  ngf=64, batch_sizes=[1, 8, 64], repeats=5, warmup=2)
        setattr(args, flag[2:], path)
        if smoke:
            args.batch_sizes, args.repeats, args.warmup = [1], 1, 1
            args.preset, args.im_size, args.nz, args.ngf = "32", 256, 16, 8
        result = module.FAMILIES[family](args)
        for r in result.rows:
            rows.append(dict(row=f"{family} batch {r.batch}", ours_s=r.ours_s, reference_s=r.ref_s,
                             ratio=r.ref_s / r.ours_s, note=result.title))
    return rows


ADAPTERS = {"generate": _generate_rows}  # benchmarks whose entry point is not run(budget_s, smoke)


def run_one(name: str, budget_s: float, smoke: bool) -> list[dict]:
    """Rows of ``benchmarks/<name>.py`` in this process (the child side)."""
    sys.path.insert(0, HERE)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:
            return [dict(row="not present", note=f"benchmarks/{name}.py does not exist yet")]
        raise
    if not callable(getattr(module, "run", None)) and name in ADAPTERS:
        return ADAPTERS[name](module, budget_s, smoke)
    if not callable(getattr(module, "run", None)):
        return [dict(row="not present", note=f"benchmarks/{name}.py has no run(budget_s, smoke)")]
    return list(module.run(budget_s=budget_s, smoke=smoke))


def _child(name: str, budget_s: float, smoke: bool, timeout_s: float) -> tuple[list[dict], float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--budget-s", f"{budget_s:.1f}",
               "--child-out", out] + (["--smoke"] if smoke else [])
        env = dict(os.environ)
        if smoke:
            env.setdefault("JAX_PLATFORMS", "cpu")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            rows = _read(out)
            rows.append(dict(row="stopped", note=f"ran past its {timeout_s:.0f} s share of the budget"))
            return rows, time.perf_counter() - t0
        rows = _read(out)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            rows.append(dict(row="failed", note=" / ".join(tail)[-400:]))
        return rows, time.perf_counter() - t0


def _read(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return []


def markdown(report: dict) -> str:
    info = report["device"]
    lines = [f"# Device benchmarks ({report['date']})", "",
             f"- JAX: {info['jax']}", f"- torch: {info['torch']}",
             f"- budget {report['budget_s']:.0f} s, used {report['elapsed_s']:.0f} s"
             + (" (smoke sizes)" if report["smoke"] else ""), ""]
    if "advice" in info:
        lines += [f"- {info['advice']}", ""]
    for name, entry in report["benchmarks"].items():
        rows = entry["rows"]
        lines += [f"## {name} ({entry['seconds']:.0f} s)", ""]
        keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "benchmark"]
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("| " + " | ".join("---" for _ in keys) + " |")
        for r in rows:
            lines.append("| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "/")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=None,
                        help="stop before this many seconds (default 420; 55 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU, under a minute")
    parser.add_argument("--out", default=None, help="folder for device.json and device.md "
                                                    "(default benchmarks/results/device-<time>)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--nvlabs", help="stylegan2-ada-pytorch checkout for generate.py's rows")
    parser.add_argument("--fastgan", help="FastGAN-pytorch checkout for generate.py's rows")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    budget = args.budget_s if args.budget_s is not None else (SMOKE_BUDGET_S if args.smoke else 420.0)

    if args.child:  # one benchmark, in its own process; rows written even when it fails
        rows = []
        try:
            rows = run_one(args.child, budget, args.smoke)
        except Exception:
            rows = [dict(row="failed", note=traceback.format_exc().strip().splitlines()[-1][-400:])]
            return 1
        finally:
            with open(args.child_out, "w") as fh:
                json.dump(rows, fh, default=str)
        return 0

    for flag, env in ((args.nvlabs, "JAXLATENT_NVLABS"), (args.fastgan, "JAXLATENT_FASTGAN")):
        if flag:
            os.environ[env] = os.path.abspath(flag)
    start = time.perf_counter()
    names = list(args.only or BENCHMARKS)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "smoke": args.smoke, "budget_s": budget, "device": device_report(), "benchmarks": {}}
    print(f"JAX: {report['device']['jax']}\ntorch: {report['device']['torch']}", flush=True)
    if "advice" in report["device"]:
        print(report["device"]["advice"], flush=True)
    for i, name in enumerate(names):
        left = budget - (time.perf_counter() - start)
        if left < STARTUP_S:
            rows, seconds = [dict(row="skipped", note="no budget left")], 0.0
        else:
            # each benchmark is asked to keep to an even share of what is left (what earlier ones
            # did not use passes on) and is stopped only at the overall deadline
            share = left / (len(names) - i)
            rows, seconds = _child(name, max(1.0, share - STARTUP_S), args.smoke, left)
        for r in rows:
            r["benchmark"] = name
        report["benchmarks"][name] = {"rows": rows, "seconds": seconds}
        print(f"{name}: {len(rows)} rows in {seconds:.0f} s", flush=True)
    report["elapsed_s"] = time.perf_counter() - start

    out = args.out or os.path.join(HERE, "results", "device-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "device.json"), "w") as fh:
        json.dump(report, fh, indent=1, default=str)
    with open(os.path.join(out, "device.md"), "w") as fh:
        fh.write(markdown(report))
    print(f"wrote {out}/device.json and device.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
