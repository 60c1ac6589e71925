"""Timing shared by the benchmarks (run as scripts: ``python benchmarks/bench_x.py``)."""

from __future__ import annotations

import time


def best_of(repeats: int, fn) -> float:
    """The fastest wall time of ``repeats`` calls of ``fn()`` (the least disturbed run)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
