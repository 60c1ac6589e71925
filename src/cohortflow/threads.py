"""How many threads a library call may use: numba's parallel loops and BLAS/OpenMP pools."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba


@contextmanager
def thread_limit(threads: int) -> Iterator[int]:
    """Run the block with at most ``threads`` numba threads (and as many BLAS/OpenMP threads,
    through threadpoolctl when installed); the previous settings come back afterwards. Yields
    the number granted (1 to NUMBA_NUM_THREADS)."""
    granted = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(granted)
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=granted)
    except ImportError:  # BLAS threads then follow the environment
        limiter = None
    try:
        yield granted
    finally:
        numba.set_num_threads(previous)
        if limiter is not None:
            limiter.restore_original_limits()
