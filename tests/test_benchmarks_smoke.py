"""benchmarks/device.py --smoke: every listed benchmark gets rows (measured, or a row that says
why not), and the JSON and markdown come out. Timings are printed, never asserted."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_device_script_smoke(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAXLATENT_NVLABS", None)
    env.pop("JAXLATENT_FASTGAN", None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "device.py"), "--smoke",
                           "--only", "generate", "correlation", "local_basis", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "device.json").read_text())
    assert report["smoke"] and "cpu" in report["device"]["jax"]
    assert set(report["benchmarks"]) == {"local_basis", "generate", "correlation"}
    lb = report["benchmarks"]["local_basis"]["rows"]
    names = {r["row"] for r in lb}
    if not names & {"stopped", "skipped"}:  # a loaded machine may stop it at the budget: it says so
        assert {"ref-loop (a)", "local_basis", "local_basis_topk k=4"} <= names
        assert all(r["ms_per_latent"] > 0 for r in lb)
    gen = report["benchmarks"]["generate"]["rows"]
    assert gen and all("skipped: needs the official checkout" in r["note"] for r in gen), gen
    assert all(r["row"] for r in report["benchmarks"]["correlation"]["rows"])
    md = (tmp_path / "device.md").read_text()
    assert "## local_basis" in md and "## generate" in md


def test_missing_benchmark_is_a_row_not_a_crash(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import device

    rows = device.run_one("no_such_benchmark", 1.0, True)
    assert rows == [dict(row="not present", note="benchmarks/no_such_benchmark.py does not exist yet")]
