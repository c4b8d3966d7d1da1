"""Test-session settings shared by every test file."""

import os

# As the `jaxlatent` command does (jaxlatent/cli/__init__.py): one OpenBLAS thread per LAPACK
# call, so that jaxlib's CPU SVDs do not fight XLA's thread pool on a 2-core CI machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

from report_fixtures import run_quick_demo  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test file.

    Each XLA CPU executable keeps its machine code in a few memory mappings of its own; the whole
    suite in one process compiles enough programs to reach the kernel's limit on mappings
    (``vm.max_map_count``, 65,530 by default), past which the next compile crashes.
    """
    yield
    jax.clear_caches()


@pytest.fixture
def x64():
    """Float64 for one test (finite-difference and numpy references), restored afterwards."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """The quick demo report (tests/report_fixtures.py), built once for test_report and test_explorer;
    ``demo_dir.stdout`` is what the command printed."""
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        stdout = run_quick_demo(out, mp)
    (out / "stdout.txt").write_text(stdout)
    return out
