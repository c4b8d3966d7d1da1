"""One BLAS thread per LAPACK call while our compiled programs run on CPU.

jaxlib's CPU decompositions (SVD, eigh, QR, ...) call the OpenBLAS that scipy bundles, and
XLA already runs them from its own thread pool, one piece of the batch per pool thread. If
OpenBLAS then starts its own worker threads as well, the two pools oversubscribe the cores:
on 2 cores a batch of 512 x 512 SVDs ran 5x slower with OpenBLAS's default threads than with
one (``benchmarks/local_basis.py``). :func:`single_blas_thread` sets OpenBLAS (and any other
BLAS loaded in the process) to one thread for the duration of a call and restores the
previous setting afterwards, through ``threadpoolctl``. Unlike ``OPENBLAS_NUM_THREADS``, it
works whenever it is called, not only when set before ``import jax``.

A user who sets ``OPENBLAS_NUM_THREADS`` (or ``JAXLATENT_BLAS_THREADS``) keeps that choice:
the limit is then taken from the variable (``JAXLATENT_BLAS_THREADS=0`` turns the handling off).
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterator

from threadpoolctl import ThreadpoolController

ENV = "JAXLATENT_BLAS_THREADS"


@functools.lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # scans the libraries loaded so far once; jax has loaded scipy's OpenBLAS by the time
    # any of our programs runs
    return ThreadpoolController()


def blas_thread_limit() -> int | None:
    """The BLAS thread count our calls run with: ``JAXLATENT_BLAS_THREADS``, else
    ``OPENBLAS_NUM_THREADS``, else 1; ``None`` when ``JAXLATENT_BLAS_THREADS=0`` (left alone)."""
    for name in (ENV, "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                limit = int(value)
            except ValueError as err:
                raise ValueError(f"{name} must be an integer thread count, found {value!r}") from err
            return limit if limit > 0 else None
    return 1


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with BLAS limited to :func:`blas_thread_limit` threads (1 by default).

    Results computed inside must be finished inside (``jax.block_until_ready``): JAX
    dispatches asynchronously, and a program still running after the block would run with
    the restored setting. :func:`jaxlatent.engine.parallel.map_batched` does both.
    """
    limit = blas_thread_limit()
    if limit is None:
        yield
        return
    with _controller().limit(limits=limit, user_api="blas"):
        yield
