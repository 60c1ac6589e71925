"""numba kernels of LD clumping: haplotype-frequency r2 (as plink1.9 --clump computes it) and the
greedy clump loop. Pure functions on numpy arrays, no I/O.

Genotypes are int8 allele counts (0, 1, 2) with -1 for a missing call. r2 between two variants is
computed, like plink1.9, from the 3x3 table of genotype pairs of the samples called at both
(pairwise-complete), by maximum-likelihood haplotype frequencies: the phase of double
heterozygotes is unknown, so the frequency f11 of one haplotype is the root, within its feasible
range, of the cubic EM fixed-point equation that has the highest likelihood.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# below this |D| the pair counts as unlinked (plink1.9's SMALL_EPSILON, 2^-44)
SMALL_EPSILON = 2.0 ** -44


@numba.njit(cache=True, nogil=True)
def genotype_pair_counts(g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """3x3 counts (flattened, g1 * 3 + g2) of the samples called at both variants."""
    counts = np.zeros(9, dtype=np.int64)
    for s in range(g1.shape[0]):
        a = g1[s]
        b = g2[s]
        if a >= 0 and b >= 0:
            counts[a * 3 + b] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _cubic(x: float, c3: float, c2: float, c1: float, c0: float) -> float:
    return ((c3 * x + c2) * x + c1) * x + c0


@numba.njit(cache=True, nogil=True)
def _bisect_root(lo: float, hi: float, c3: float, c2: float, c1: float, c0: float) -> float:
    flo = _cubic(lo, c3, c2, c1, c0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        fmid = _cubic(mid, c3, c2, c1, c0)
        if fmid == 0.0:
            return mid
        if (fmid < 0.0) == (flo < 0.0):
            lo = mid
            flo = fmid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@numba.njit(cache=True, nogil=True)
def _xlogy(n: float, y: float) -> float:
    if n == 0.0:
        return 0.0
    if y <= 0.0:
        return -math.inf
    return n * math.log(y)


@numba.njit(cache=True, nogil=True)
def _loglik(x: float, k11: float, k12: float, k21: float, k22: float, center: float,
            A: float, B: float, C: float) -> float:
    """Log-likelihood of haplotype frequency f11 = x (f12 = B - x, f21 = C - x, f22 = x + A)."""
    return (_xlogy(k11, x) + _xlogy(k12, B - x) + _xlogy(k21, C - x) + _xlogy(k22, x + A)
            + _xlogy(center, x * (x + A) + (B - x) * (C - x)))


@numba.njit(cache=True, nogil=True)
def haplotype_r2(counts: np.ndarray) -> float:
    """r2 from the 3x3 genotype-pair counts via ML haplotype frequencies; NaN without data.

    Haplotype "11" = allele counted at both variants. Known haplotype counts come from all
    genotype pairs except double heterozygotes (``counts[4]``), whose phase is estimated.
    """
    c = counts.astype(np.float64)
    k11 = 2.0 * c[8] + c[7] + c[5]
    k12 = 2.0 * c[6] + c[7] + c[3]
    k21 = 2.0 * c[2] + c[5] + c[1]
    k22 = 2.0 * c[0] + c[3] + c[1]
    center = c[4]
    total = k11 + k12 + k21 + k22 + 2.0 * center
    if total == 0.0:
        return math.nan
    K11 = k11 / total
    K12 = k12 / total
    K21 = k21 / total
    K22 = k22 / total
    h = center / total
    p1 = K11 + K12 + h  # frequency of the counted allele at variant 1
    q1 = K11 + K21 + h  # ... at variant 2
    if center == 0.0:
        f11 = K11
    else:
        # f11 = x in [K11, K11 + h]; EM fixed point x = K11 + h * x(x+A) / (x(x+A) + (B-x)(C-x))
        A = K22 - K11
        B = p1
        C = q1
        c3 = 2.0
        c2 = A - B - C - 2.0 * K11 - h
        c1 = B * C - K11 * (A - B - C) - h * A
        c0 = -K11 * B * C
        lo = K11
        hi = K11 + h
        # split [lo, hi] at the cubic's turning points; each piece holds at most one root
        cuts = np.empty(4)
        n_cuts = 0
        cuts[n_cuts] = lo
        n_cuts += 1
        disc = c2 * c2 - 3.0 * c3 * c1
        if disc > 0.0:
            sq = math.sqrt(disc)
            t1 = (-c2 - sq) / (3.0 * c3)
            t2 = (-c2 + sq) / (3.0 * c3)
            if lo < t1 < hi:
                cuts[n_cuts] = t1
                n_cuts += 1
            if lo < t2 < hi:
                cuts[n_cuts] = t2
                n_cuts += 1
        cuts[n_cuts] = hi
        n_cuts += 1
        # the ML estimate: the most likely of the fixed points and the range's ends (where a
        # fixed point may sit that rounding hides from the sign test)
        best = lo
        best_ll = _loglik(lo, k11, k12, k21, k22, center, A, B, C)
        ll_hi = _loglik(hi, k11, k12, k21, k22, center, A, B, C)
        if ll_hi > best_ll:
            best = hi
            best_ll = ll_hi
        for i in range(n_cuts - 1):
            a = cuts[i]
            b = cuts[i + 1]
            fa = _cubic(a, c3, c2, c1, c0)
            fb = _cubic(b, c3, c2, c1, c0)
            if fa != 0.0 and fb != 0.0 and (fa < 0.0) != (fb < 0.0):
                root = _bisect_root(a, b, c3, c2, c1, c0)
                ll = _loglik(root, k11, k12, k21, k22, center, A, B, C)
                if ll > best_ll:
                    best_ll = ll
                    best = root
        f11 = best
    d = f11 - p1 * q1
    if abs(d) < SMALL_EPSILON:
        return 0.0
    denom = p1 * (1.0 - p1) * q1 * (1.0 - q1)
    if denom <= 0.0:
        return 0.0
    return d * d / denom


@numba.njit(cache=True, nogil=True)
def r2_to_index(geno: np.ndarray, index_row: int) -> np.ndarray:
    """Haplotype r2 of every row of ``geno`` (variants x samples) with row ``index_row``."""
    m = geno.shape[0]
    out = np.empty(m, dtype=np.float64)
    g0 = geno[index_row]
    for j in range(m):
        out[j] = haplotype_r2(genotype_pair_counts(g0, geno[j]))
    return out


@numba.njit(cache=True, nogil=True)
def clump_greedy(geno: np.ndarray, pos: np.ndarray, p: np.ndarray, order: np.ndarray,
                 bp_radius: int, r2_threshold: float, p2: float):
    """Greedy LD clumping of the variants of one chromosome region (rows sorted by position).

    ``order``: rows allowed to be index variants, most significant first (ties in file order).
    Each in turn, unless already clumped, becomes an index variant and claims every not yet
    clumped row within ``bp_radius`` bp (inclusive) whose r2 with it exceeds ``r2_threshold``.

    Returns (is_index bool[m], clumped_to int64[m] (index row or -1), n_clumped int64[m] (rows
    claimed), n_clumped_p2 int64[m] (claimed with p < p2), start int64[m], end int64[m]
    (positions spanned by the index and its claimed rows with p < p2)); per-index arrays are
    filled at index rows only.
    """
    m = geno.shape[0]
    is_index = np.zeros(m, dtype=np.bool_)
    clumped_to = np.full(m, -1, dtype=np.int64)
    n_clumped = np.zeros(m, dtype=np.int64)
    n_clumped_p2 = np.zeros(m, dtype=np.int64)
    start = pos.copy()
    end = pos.copy()
    taken = np.zeros(m, dtype=np.bool_)
    for k in range(order.shape[0]):
        i = order[k]
        if taken[i]:
            continue
        is_index[i] = True
        taken[i] = True
        lo = np.searchsorted(pos, pos[i] - bp_radius, side="left")
        hi = np.searchsorted(pos, pos[i] + bp_radius, side="right")
        gi = geno[i]
        for j in range(lo, hi):
            if taken[j]:
                continue
            r2 = haplotype_r2(genotype_pair_counts(gi, geno[j]))
            if r2 > r2_threshold:
                taken[j] = True
                clumped_to[j] = i
                n_clumped[i] += 1
                if p[j] < p2:
                    n_clumped_p2[i] += 1
                    if pos[j] < start[i]:
                        start[i] = pos[j]
                    if pos[j] > end[i]:
                        end[i] = pos[j]
    return is_index, clumped_to, n_clumped, n_clumped_p2, start, end
