"""The timing rule every benchmark here shares: warm up, then the median of repeated calls."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(call: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """Median wall time of ``call()`` in seconds over ``repeats`` runs after ``warmup`` untimed ones.

    ``call`` must block until its work is done (``block_until_ready`` for JAX results).
    """
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
