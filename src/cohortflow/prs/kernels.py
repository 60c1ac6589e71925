"""numba kernels for polygenic scores: LD clumping and scoring (pure functions, no I/O)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def clump(order: np.ndarray, chrom: np.ndarray, pos: np.ndarray, z: np.ndarray, r2_max: float,
          window_bp: float) -> np.ndarray:
    """Greedy LD clumping. ``order``: candidate indices, most significant first. A candidate not yet
    clumped becomes an index variant and clumps every unclumped candidate on its chromosome within
    ``window_bp`` whose r^2 with it exceeds ``r2_max`` (r from standardised genotypes ``z``).
    Returns a boolean mask of index variants."""
    c, n = z.shape
    clumped = np.zeros(c, dtype=np.bool_)
    index = np.zeros(c, dtype=np.bool_)
    for a in order:
        if clumped[a]:
            continue
        index[a] = True
        clumped[a] = True
        for b in range(c):
            if clumped[b] or chrom[b] != chrom[a] or abs(pos[b] - pos[a]) > window_bp:
                continue
            r = 0.0
            for i in range(n):
                r += z[a, i] * z[b, i]
            r /= n
            if r * r > r2_max:
                clumped[b] = True
    return index


@numba.njit(cache=True, parallel=True)
def score_block(geno: np.ndarray, weights: np.ndarray, mean_dosage: np.ndarray) -> np.ndarray:
    """Per-sample sum over variants of weight x effect-allele count (m x n int8 block); a missing
    call counts as ``mean_dosage`` of that variant (2 x effect allele frequency)."""
    m, n = geno.shape
    out = np.zeros(n)
    for i in numba.prange(n):
        s = 0.0
        for v in range(m):
            g = geno[v, i]
            s += weights[v] * (mean_dosage[v] if g < 0 else g)
        out[i] = s
    return out
