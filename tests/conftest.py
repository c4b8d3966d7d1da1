"""Test-session settings shared by every test file."""

import os

# As the `jaxlatent` command does (jaxlatent/cli/__init__.py): one OpenBLAS thread per LAPACK
# call, so that jaxlib's CPU SVDs do not fight XLA's thread pool on a 2-core CI machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
