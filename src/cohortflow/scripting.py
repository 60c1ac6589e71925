"""Run a library call from a Snakemake `script:` adapter with the project's error contract.

The adapter passes the injected ``snakemake`` object (duck-typed: this module never imports
snakemake). Output of the call goes to the rule's log; a CohortflowError becomes one line on
stderr and in the log plus exit status 1, with no traceback; outputs are removed by Snakemake
on failure and ours are written atomically, so nothing partial remains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cohortflow.errors import CohortflowError


def set_threads(threads: int) -> None:
    """Bound numba/BLAS threads to what the scheduler granted."""
    threads = max(int(threads), 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a hard dependency
        pass


def run_step(smk, func: Callable, /, **kwargs):
    """Call ``func(**kwargs)`` for a Snakemake job, logging to ``smk.log[0]`` when given."""
    log_path = Path(smk.log[0]) if len(smk.log) else None
    set_threads(getattr(smk, "threads", 1))
    stream = open(log_path, "a") if log_path else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(stream):
            return func(**kwargs)
    except CohortflowError as err:
        print(f"cohortflow error: {err}", file=stream, flush=True)
        if stream is not sys.stderr:
            print(f"cohortflow error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        root.removeHandler(handler)
        if stream is not sys.stderr:
            stream.close()
