"""numba kernels of LD clumping: haplotype-frequency r2 (as plink1.9 --clump computes it) and the
greedy clump loop. Pure functions on numpy arrays, no I/O.

r2 between two variants is computed, like plink1.9, from the 3x3 table of genotype pairs of the
samples called at both (pairwise-complete), by maximum-likelihood haplotype frequencies: the phase
of double heterozygotes is unknown, so the frequency f11 of one haplotype is the root, within its
feasible range, of the cubic EM fixed-point equation that has the highest likelihood.

Genotypes come in two forms:

- int8 allele counts (0, 1, 2) with -1 for a missing call (:func:`genotype_pair_counts`,
  :func:`r2_to_index`; the plain clumping loop on them is the reference of the tests);
- bit planes, 64 samples a uint64 word, as :func:`bed_rows_to_planes` (and
  :func:`select_plane_samples` for a subset of the samples) build them from .bed rows: ``hom``
  (the call is homozygous) and ``hi`` (the call carries an A2 allele), so that A1/A1 =
  hom & ~hi, A1/A2 = hi & ~hom, A2/A2 = hom & hi, missing = neither.
  Padding words and bits are zero (missing). :func:`clump_planes` works on these: the interior of
  a pair's table is 3 AND + popcounts a word, which with the variants' totals bounds r2 from
  above (:func:`surely_unlinked`, :func:`r2_exceeds`): most pairs are settled without counting
  the jointly called marginals (5 popcounts a word more) or solving the cubic.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cohortflow.bitops import even_bits, load_u64, popcount_u64, trailing_zeros_u64

# below this |D| the pair counts as unlinked (plink1.9's SMALL_EPSILON, 2^-44)
SMALL_EPSILON = 2.0 ** -44

# columns of the per-variant plane totals (see plane_totals)
N_CALLED, N_HET, N_HOM_A1 = 0, 1, 2

# below this many pair-words (~0.1 ms) a batch runs in the calling thread when several threads
# are granted: waking the others costs more
PARALLEL_WORK = 1 << 18


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
def _best_in_piece(a: float, b: float, best: float, best_ll: float, c3: float, c2: float, c1: float,
                   c0: float, k11: float, k12: float, k21: float, k22: float, center: float,
                   A: float, B: float, C: float):
    """The fixed point in [a, b] (where the cubic changes sign) if more likely than ``best``."""
    fa = _cubic(a, c3, c2, c1, c0)
    fb = _cubic(b, c3, c2, c1, c0)
    if fa != 0.0 and fb != 0.0 and (fa < 0.0) != (fb < 0.0):
        root = _bisect_root(a, b, c3, c2, c1, c0)
        ll = _loglik(root, k11, k12, k21, k22, center, A, B, C)
        if ll > best_ll:
            return root, ll
    return best, best_ll


@numba.njit(cache=True, nogil=True)
def _haplotype_r2(k11: float, k12: float, k21: float, k22: float, center: float) -> float:
    """r2 from the known haplotype counts (k11 = haplotypes carrying the counted allele at both
    variants, ...) and the number of double heterozygotes ``center``; NaN without data."""
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
        # the ML estimate: the most likely of the fixed points and the range's ends (where a
        # fixed point may sit that rounding hides from the sign test)
        best = lo
        best_ll = _loglik(lo, k11, k12, k21, k22, center, A, B, C)
        ll_hi = _loglik(hi, k11, k12, k21, k22, center, A, B, C)
        if ll_hi > best_ll:
            best = hi
            best_ll = ll_hi
        # split [lo, hi] at the cubic's turning points; each piece holds at most one root
        start = lo
        disc = c2 * c2 - 3.0 * c3 * c1
        if disc > 0.0:
            sq = math.sqrt(disc)
            t1 = (-c2 - sq) / (3.0 * c3)
            t2 = (-c2 + sq) / (3.0 * c3)
            if lo < t1 < hi:
                best, best_ll = _best_in_piece(start, t1, best, best_ll, c3, c2, c1, c0,
                                               k11, k12, k21, k22, center, A, B, C)
                start = t1
            if lo < t2 < hi:
                best, best_ll = _best_in_piece(start, t2, best, best_ll, c3, c2, c1, c0,
                                               k11, k12, k21, k22, center, A, B, C)
                start = t2
        best, best_ll = _best_in_piece(start, hi, best, best_ll, c3, c2, c1, c0,
                                       k11, k12, k21, k22, center, A, B, C)
        f11 = best
    d = f11 - p1 * q1
    if abs(d) < SMALL_EPSILON:
        return 0.0
    denom = p1 * (1.0 - p1) * q1 * (1.0 - q1)
    if denom <= 0.0:
        return 0.0
    return d * d / denom


@numba.njit(cache=True, nogil=True)
def haplotype_r2(counts: np.ndarray) -> float:
    """r2 from the 3x3 genotype-pair counts via ML haplotype frequencies; NaN without data.

    Haplotype "11" = allele counted at both variants. Known haplotype counts come from all
    genotype pairs except double heterozygotes (``counts[4]``), whose phase is estimated.
    """
    c = counts.astype(np.float64)
    return _haplotype_r2(2.0 * c[8] + c[7] + c[5], 2.0 * c[6] + c[7] + c[3],
                         2.0 * c[2] + c[5] + c[1], 2.0 * c[0] + c[3] + c[1], c[4])


@numba.njit(cache=True, nogil=True)
def r2_exceeds(k11: float, k12: float, k21: float, k22: float, center: float, threshold: float) -> bool:
    """``_haplotype_r2(...) > threshold``, mostly without solving the cubic.

    The ML f11 lies in [K11, K11 + h] and r2 = (f11 - p q)^2 / denom, so the larger of the two
    ends' values bounds it; computed with the same floating-point operations as
    :func:`_haplotype_r2` (rounding is monotone), the bound is never below the r2 it returns,
    and a bound <= threshold settles the pair exactly. Unlinked pairs (the bulk of any window)
    stop here: for independent variants the bound is p(1-p)q(1-q) <= 1/16."""
    total = k11 + k12 + k21 + k22 + 2.0 * center
    if total == 0.0:
        return False  # r2 NaN
    K11 = k11 / total
    K12 = k12 / total
    K21 = k21 / total
    h = center / total
    p1 = K11 + K12 + h
    q1 = K11 + K21 + h
    pq = p1 * q1
    d_lo = K11 - pq
    d_hi = (K11 + h) - pq
    bound = max(d_lo * d_lo, d_hi * d_hi)
    denom = p1 * (1.0 - p1) * q1 * (1.0 - q1)
    if denom <= 0.0:
        return 0.0 > threshold
    if bound / denom <= threshold:
        return False
    return _haplotype_r2(k11, k12, k21, k22, center) > threshold


@numba.njit(cache=True, nogil=True)
def r2_to_index(geno: np.ndarray, index_row: int) -> np.ndarray:
    """Haplotype r2 of every row of ``geno`` (variants x samples) with row ``index_row``."""
    m = geno.shape[0]
    out = np.empty(m, dtype=np.float64)
    g0 = geno[index_row]
    for j in range(m):
        out[j] = haplotype_r2(genotype_pair_counts(g0, geno[j]))
    return out


# --------------------------------------------------------------------------------------------
# bit planes
# --------------------------------------------------------------------------------------------

_M5 = np.uint64(0x5555555555555555)


@numba.njit(cache=True, nogil=True, parallel=True)
def bed_rows_to_planes(raw, n_samples, hom, hi):
    """Bit planes of all samples of the .bed rows ``raw`` (rows x ceil(n_samples / 4) bytes, as
    read) into ``hom``/``hi`` words [0, ceil(n_samples / 64)) of each row (bits past n_samples
    zero); 32 samples from each 8 bytes, rows in parallel."""
    n_words = (n_samples + 63) // 64
    n_bytes = raw.shape[1]
    rem = n_samples % 64
    last_mask = (np.uint64(1) << np.uint64(rem)) - np.uint64(1) if rem else ~np.uint64(0)
    for v in numba.prange(raw.shape[0]):
        row = raw[v]
        for w in range(n_words):
            first = 16 * w
            if first + 16 <= n_bytes:
                x0 = load_u64(row, first)
                x1 = load_u64(row, first + 8)
            else:  # the row's last bytes
                x0 = np.uint64(0)
                x1 = np.uint64(0)
                for k in range(first, min(first + 8, n_bytes)):
                    x0 |= np.uint64(row[k]) << np.uint64(8 * (k - first))
                for k in range(first + 8, n_bytes):
                    x1 |= np.uint64(row[k]) << np.uint64(8 * (k - first - 8))
            lo0 = x0 & _M5
            hi0 = (x0 >> np.uint64(1)) & _M5
            lo1 = x1 & _M5
            hi1 = (x1 >> np.uint64(1)) & _M5
            h = even_bits(~(lo0 ^ hi0) & _M5) | (even_bits(~(lo1 ^ hi1) & _M5) << np.uint64(32))
            a = even_bits(hi0) | (even_bits(hi1) << np.uint64(32))
            if w == n_words - 1:
                h &= last_mask
                a &= last_mask
            hom[v, w] = h
            hi[v, w] = a


def _compress_table() -> np.ndarray:
    """[mask, data] -> the bits of the byte ``data`` where ``mask`` has ones, packed low."""
    table = np.zeros((256, 256), dtype=np.uint8)
    data = np.arange(256)
    for mask in range(256):
        out = np.zeros(256, dtype=np.int64)
        k = 0
        for bit in range(8):
            if mask >> bit & 1:
                out |= ((data >> bit) & 1) << k
                k += 1
        table[mask] = out
    return table


COMPRESS_TABLE = _compress_table()


@numba.njit(cache=True, nogil=True, parallel=True)
def select_plane_samples(hom, hi, keep, table, out_hom, out_hi):
    """Planes of the samples whose bits are set in ``keep`` (one mask word per plane word), in
    their order, from planes of all samples: bits compressed a byte at a time through ``table``
    (:data:`COMPRESS_TABLE`); rows in parallel. Writes words [0, ceil(kept / 64)) of each row."""
    for v in numba.prange(hom.shape[0]):
        acc_h = np.uint64(0)
        acc_a = np.uint64(0)
        n_bits = 0
        w_out = 0
        for w in range(keep.shape[0]):
            m = keep[w]
            if m == 0:
                continue
            h = hom[v, w]
            a = hi[v, w]
            for k in range(8):
                shift = np.uint64(8 * k)
                mb = (m >> shift) & np.uint64(0xFF)
                if mb == 0:
                    continue
                count = np.int64(popcount_u64(mb))
                bits_h = np.uint64(table[mb, (h >> shift) & np.uint64(0xFF)])
                bits_a = np.uint64(table[mb, (a >> shift) & np.uint64(0xFF)])
                acc_h |= bits_h << np.uint64(n_bits)
                acc_a |= bits_a << np.uint64(n_bits)
                n_bits += count
                if n_bits >= 64:
                    out_hom[v, w_out] = acc_h
                    out_hi[v, w_out] = acc_a
                    w_out += 1
                    n_bits -= 64
                    # the byte's bits that did not fit start the next word
                    acc_h = bits_h >> np.uint64(count - n_bits) if n_bits else np.uint64(0)
                    acc_a = bits_a >> np.uint64(count - n_bits) if n_bits else np.uint64(0)
        if n_bits:
            out_hom[v, w_out] = acc_h
            out_hi[v, w_out] = acc_a


@numba.njit(cache=True, nogil=True)
def plane_totals(hom: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row: called samples, heterozygotes and A1/A1 homozygotes (columns N_CALLED, N_HET,
    N_HOM_A1)."""
    out = np.zeros((hom.shape[0], 3), dtype=np.int64)
    for v in range(hom.shape[0]):
        called = np.uint64(0)
        het = np.uint64(0)
        hom_a1 = np.uint64(0)
        for w in range(hom.shape[1]):
            a = hom[v, w]
            b = hi[v, w]
            called += popcount_u64(a | b)
            het += popcount_u64(b & ~a)
            hom_a1 += popcount_u64(a & ~b)
        out[v, N_CALLED] = np.int64(called)
        out[v, N_HET] = np.int64(het)
        out[v, N_HOM_A1] = np.int64(hom_a1)
    return out


@numba.njit(cache=True, nogil=True)
def haplotype_counts_from_table(hh, x, tt, het_i, hom_i, het_j, hom_j, n_joint):
    """(k11, k12, k21, k22, center) of :func:`_haplotype_r2` from interior and marginal counts of
    the 3x3 table over the jointly called samples: hh double heterozygotes, x = het/hom + hom/het
    (A1/A1 at the other variant), tt both A1/A1; het_i/hom_i heterozygotes and A1/A1 at variant i
    among them, het_j/hom_j at j, n_joint their number. Integer arithmetic, so the haplotype
    counts are exact (as the float sums of :func:`haplotype_r2` are)."""
    k11 = 2 * tt + x
    k12 = 2 * hom_i + het_i - 2 * tt - hh - x
    k21 = 2 * hom_j + het_j - 2 * tt - hh - x
    k22 = 2 * n_joint - 2 * hh - k11 - k12 - k21
    return k11, k12, k21, k22, hh


@numba.njit(cache=True, nogil=True, inline="always")
def _table_complete(hom, hi, j, het_i, hom_i, n_words):
    """Interior counts (hh, x, tt) of index planes (het_i, hom_i) against row j: 3 popcounts a
    word (the marginals are the variants' totals when neither has a missing call)."""
    hh = np.uint64(0)
    x = np.uint64(0)
    tt = np.uint64(0)
    for w in range(n_words):
        a = hom[j, w]
        b = hi[j, w]
        het_j = b & ~a
        hom_j = a & ~b
        hh += popcount_u64(het_i[w] & het_j)
        x += popcount_u64((het_i[w] & hom_j) | (hom_i[w] & het_j))  # disjoint: one popcount
        tt += popcount_u64(hom_i[w] & hom_j)
    return np.int64(hh), np.int64(x), np.int64(tt)


@numba.njit(cache=True, nogil=True, inline="always")
def _table_complete2(hom, hi, j, k, het_i, hom_i, n_words):
    """:func:`_table_complete` of rows j and k at once (index planes loaded once for both)."""
    hh_j = np.uint64(0)
    x_j = np.uint64(0)
    tt_j = np.uint64(0)
    hh_k = np.uint64(0)
    x_k = np.uint64(0)
    tt_k = np.uint64(0)
    for w in range(n_words):
        hw = het_i[w]
        tw = hom_i[w]
        a = hom[j, w]
        b = hi[j, w]
        hh_j += popcount_u64(hw & b & ~a)
        x_j += popcount_u64((hw & a & ~b) | (tw & b & ~a))
        tt_j += popcount_u64(tw & a & ~b)
        a = hom[k, w]
        b = hi[k, w]
        hh_k += popcount_u64(hw & b & ~a)
        x_k += popcount_u64((hw & a & ~b) | (tw & b & ~a))
        tt_k += popcount_u64(tw & a & ~b)
    return (np.int64(hh_j), np.int64(x_j), np.int64(tt_j), np.int64(hh_k), np.int64(x_k), np.int64(tt_k))


@numba.njit(cache=True, nogil=True, inline="always")
def _table_marginals(hom, hi, j, het_i, hom_i, called_i, n_words):
    """Marginals of the 3x3 table of index planes against row j over the jointly called samples:
    (het_i, hom_i, het_j, hom_j, n_joint), 5 popcounts a word."""
    r_het = np.uint64(0)
    r_hom = np.uint64(0)
    c_het = np.uint64(0)
    c_hom = np.uint64(0)
    joint = np.uint64(0)
    for w in range(n_words):
        a = hom[j, w]
        b = hi[j, w]
        called_j = a | b
        cw = called_i[w]
        r_het += popcount_u64(het_i[w] & called_j)
        r_hom += popcount_u64(hom_i[w] & called_j)
        c_het += popcount_u64(cw & b & ~a)
        c_hom += popcount_u64(cw & a & ~b)
        joint += popcount_u64(cw & called_j)
    return np.int64(r_het), np.int64(r_hom), np.int64(c_het), np.int64(c_hom), np.int64(joint)


@numba.njit(cache=True, nogil=True, inline="always")
def surely_unlinked(hh, x, tt, called_i, a1_i, called_j, a1_j, n_samples, threshold) -> bool:
    """True when r2 <= threshold for every 3x3 table with interior counts (hh, x, tt) (as
    :func:`_table_complete` counts them: exact, since missing calls have no plane bits) and
    marginals consistent with the two variants' called samples and A1 counts (``called_i``,
    ``a1_i``, ...), i.e. whatever the missing calls hide.

    With T = 2 x (jointly called samples) and S_i, S_j the A1 counts at each variant among them,
    r2 <= D^2 / (S_i (T - S_i) S_j (T - S_j)) with D between k11 T - S_i S_j and
    (k11 + hh) T - S_i S_j (f11 in [K11, K11 + h], see :func:`r2_exceeds`). Missing calls leave
    T, S_i, S_j in known ranges; D is monotone in each and S (T - S) concave, so the corners
    bound it. The margins cover the rounding of :func:`_haplotype_r2` (errors ~1e-15 on values
    <= 1): a pair let through goes to the exact table."""
    joint_min = called_i + called_j - n_samples
    if joint_min <= 0:
        return False
    t_min = 2.0 * joint_min
    t_max = 2.0 * min(called_i, called_j)
    k11 = 2 * tt + x
    # A1 counts among the jointly called: less those at the other variant's missing calls
    si_min = float(max(a1_i - 2 * (n_samples - called_j), k11 + hh))
    sj_min = float(max(a1_j - 2 * (n_samples - called_i), k11 + hh))
    si_max = float(a1_i)
    sj_max = float(a1_j)
    d_max = (k11 + hh) * t_max - si_min * sj_min
    d_min = k11 * t_min - si_max * sj_max
    d = max(abs(d_max), abs(d_min)) + 1e-12 * t_max * t_max
    var_i = min(si_min * (t_min - si_min), si_max * (t_min - si_max))
    var_j = min(sj_min * (t_min - sj_min), sj_max * (t_min - sj_max))
    if var_i <= 0.0 or var_j <= 0.0:
        return False
    return d * d <= threshold * (var_i * var_j) * (1.0 - 1e-12)


@numba.njit(cache=True, nogil=True, inline="always")
def _linked_given_interior(hom, hi, totals, n_samples, i, j, het_i, hom_i, called_i, hh, x, tt, threshold):
    """:func:`pair_linked` once the interior counts (hh, x, tt) are known."""
    if totals[i, N_CALLED] == n_samples and totals[j, N_CALLED] == n_samples:
        k11, k12, k21, k22, center = haplotype_counts_from_table(
            hh, x, tt, totals[i, N_HET], totals[i, N_HOM_A1], totals[j, N_HET], totals[j, N_HOM_A1], n_samples)
    else:
        if surely_unlinked(hh, x, tt, totals[i, N_CALLED], totals[i, N_HET] + 2 * totals[i, N_HOM_A1],
                           totals[j, N_CALLED], totals[j, N_HET] + 2 * totals[j, N_HOM_A1], n_samples, threshold):
            return False
        r_het, r_hom, c_het, c_hom, joint = _table_marginals(hom, hi, j, het_i, hom_i, called_i, hom.shape[1])
        k11, k12, k21, k22, center = haplotype_counts_from_table(hh, x, tt, r_het, r_hom, c_het, c_hom, joint)
    return r2_exceeds(float(k11), float(k12), float(k21), float(k22), float(center), threshold)


@numba.njit(cache=True, nogil=True, inline="always")
def pair_linked(hom, hi, totals, n_samples, i, j, het_i, hom_i, called_i, threshold) -> bool:
    """r2 of rows i and j above ``threshold``; ``het_i``/``hom_i``/``called_i`` are row i's
    heterozygote, A1/A1 and called planes (see :func:`index_planes`).

    The interior of the table costs 3 popcounts a word. Without missing calls at either variant
    the marginals are the totals; otherwise :func:`surely_unlinked` settles most pairs, and the
    rest count the jointly called marginals too (5 popcounts a word more)."""
    hh, x, tt = _table_complete(hom, hi, j, het_i, hom_i, hom.shape[1])
    return _linked_given_interior(hom, hi, totals, n_samples, i, j, het_i, hom_i, called_i, hh, x, tt, threshold)


@numba.njit(cache=True, nogil=True)
def index_planes(hom, hi, i, het_i, hom_i, called_i):
    """Row i's heterozygote, A1/A1 and called planes, decoded once for all its pairs."""
    for w in range(hom.shape[1]):
        a = hom[i, w]
        b = hi[i, w]
        het_i[w] = b & ~a
        hom_i[w] = a & ~b
        called_i[w] = a | b


@numba.njit(cache=True, nogil=True)
def planes_r2(hom, hi, i, j):
    """Haplotype r2 of rows i and j of the planes (as :func:`haplotype_r2` on their genotypes)."""
    n_words = hom.shape[1]
    het_i = np.empty(n_words, dtype=np.uint64)
    hom_i = np.empty(n_words, dtype=np.uint64)
    called_i = np.empty(n_words, dtype=np.uint64)
    index_planes(hom, hi, i, het_i, hom_i, called_i)
    hh, x, tt = _table_complete(hom, hi, j, het_i, hom_i, n_words)
    r_het, r_hom, c_het, c_hom, joint = _table_marginals(hom, hi, j, het_i, hom_i, called_i, n_words)
    k11, k12, k21, k22, center = haplotype_counts_from_table(hh, x, tt, r_het, r_hom, c_het, c_hom, joint)
    return _haplotype_r2(float(k11), float(k12), float(k21), float(k22), float(center))


@numba.njit(cache=True, nogil=True)
def _claim(i, bits, base, pos, p, p2, taken, is_index, n_clumped, n_clumped_p2, start, end):
    """Row i becomes an index variant and claims the rows of its link bitmap (bit k of word w:
    row base + 64 w + k) not taken since."""
    is_index[i] = True
    taken[i] = True
    for w in range(bits.shape[0]):
        word = bits[w]
        while word:
            j = base + 64 * w + np.int64(trailing_zeros_u64(word))
            word &= word - np.uint64(1)
            if taken[j]:
                continue
            taken[j] = True
            n_clumped[i] += 1
            if p[j] < p2:
                n_clumped_p2[i] += 1
                if pos[j] < start[i]:
                    start[i] = pos[j]
                if pos[j] > end[i]:
                    end[i] = pos[j]


@numba.njit(cache=True, nogil=True)
def _member_planes(hom, hi, i, s, het_m, hom_m, called_m, bits):
    """Decoded planes of member row i into slot s, and its link bitmap cleared."""
    for w in range(hom.shape[1]):
        a = hom[i, w]
        b = hi[i, w]
        het_m[s, w] = b & ~a
        hom_m[s, w] = a & ~b
        called_m[s, w] = a | b
    for w in range(bits.shape[1]):
        bits[s, w] = np.uint64(0)


@numba.njit(cache=True, nogil=True)
def _batch_tiles(members, n_members, window_lo, window_hi, tile_rows):
    """Tiles (of ``tile_rows`` rows) reached by some member's window, and for each the
    (contiguous, members being ascending) slots [a, b) of the members reaching it."""
    first_tile = window_lo[members[0]] // tile_rows
    last_tile = (window_hi[members[n_members - 1]] - 1) // tile_rows
    tiles = np.empty(last_tile - first_tile + 1, dtype=np.int64)
    tile_a = np.empty_like(tiles)
    tile_b = np.empty_like(tiles)
    n_tiles = 0
    a = 0
    b = 0
    for t in range(first_tile, last_tile + 1):
        row0 = t * tile_rows
        while a < n_members and window_hi[members[a]] <= row0:
            a += 1
        while b < n_members and window_lo[members[b]] < row0 + tile_rows:
            b += 1
        if a < b:
            tiles[n_tiles] = t
            tile_a[n_tiles] = a
            tile_b[n_tiles] = b
            n_tiles += 1
    return tiles[:n_tiles], tile_a[:n_tiles], tile_b[:n_tiles]


@numba.njit(cache=True, nogil=True, inline="always")
def _link_tile(hom, hi, totals, n_samples, members, slot_a, slot_b, row0, row1, window_lo, window_hi, taken,
               threshold, het_m, hom_m, called_m, bits):
    """Links of the members in slots [slot_a, slot_b) with the rows [row0, row1) of one tile."""
    n_words = hom.shape[1]
    for s in range(slot_a, slot_b):
        i = members[s]
        base = window_lo[i] & ~np.int64(63)
        j0 = max(row0, window_lo[i])
        j1 = min(row1, window_hi[i])
        het_s = het_m[s]
        hom_s = hom_m[s]
        called_s = called_m[s]
        j = j0
        while j < j1:  # rows two at a time (the member's planes loaded once for both)
            if taken[j] or j == i:
                j += 1
                continue
            j2 = j + 1
            while j2 < j1 and (taken[j2] or j2 == i):
                j2 += 1
            if j2 < j1:
                hh, x, tt, hh2, x2, tt2 = _table_complete2(hom, hi, j, j2, het_s, hom_s, n_words)
                if _linked_given_interior(hom, hi, totals, n_samples, i, j2, het_s, hom_s, called_s,
                                          hh2, x2, tt2, threshold):
                    bits[s, (j2 - base) >> 6] |= np.uint64(1) << np.uint64((j2 - base) & 63)
            else:
                hh, x, tt = _table_complete(hom, hi, j, het_s, hom_s, n_words)
            if _linked_given_interior(hom, hi, totals, n_samples, i, j, het_s, hom_s, called_s, hh, x, tt,
                                      threshold):
                bits[s, (j - base) >> 6] |= np.uint64(1) << np.uint64((j - base) & 63)
            j = j2 + 1


@numba.njit(cache=True, nogil=True, parallel=True)
def _link_batch_parallel(hom, hi, totals, n_samples, members, n_members, window_lo, window_hi, taken, threshold,
                         tile_rows, het_m, hom_m, called_m, bits):
    """Link bitmaps of the rows ``members[:n_members]`` (ascending): bit (j - base) of
    ``bits[s]``, base = window_lo & ~63, is set when row j of member s's window is not taken,
    is not the member, and has r2 above ``threshold`` with it.

    Work goes by tiles of ``tile_rows`` rows (a multiple of 64, so a bitmap word belongs to one
    tile): one task pairs a tile with every member whose window reaches it, so the tile's planes
    are read from memory once per batch and then from cache. Tiles run in parallel."""
    for s in numba.prange(n_members):
        _member_planes(hom, hi, members[s], s, het_m, hom_m, called_m, bits)
    tiles, tile_a, tile_b = _batch_tiles(members, n_members, window_lo, window_hi, tile_rows)
    for k in numba.prange(tiles.shape[0]):
        _link_tile(hom, hi, totals, n_samples, members, tile_a[k], tile_b[k], tiles[k] * tile_rows,
                   (tiles[k] + 1) * tile_rows, window_lo, window_hi, taken, threshold, het_m, hom_m, called_m, bits)


@numba.njit(cache=True, nogil=True)
def _link_batch_serial(hom, hi, totals, n_samples, members, n_members, window_lo, window_hi, taken, threshold,
                       tile_rows, het_m, hom_m, called_m, bits):
    """:func:`_link_batch_parallel` in the calling thread, for batches with too little work to
    wake other threads. (One thread goes through the parallel version all the same: its loop,
    compiled as a parfor, runs ~30% faster than this one, as measured.)"""
    for s in range(n_members):
        _member_planes(hom, hi, members[s], s, het_m, hom_m, called_m, bits)
    tiles, tile_a, tile_b = _batch_tiles(members, n_members, window_lo, window_hi, tile_rows)
    for k in range(tiles.shape[0]):
        _link_tile(hom, hi, totals, n_samples, members, tile_a[k], tile_b[k], tiles[k] * tile_rows,
                   (tiles[k] + 1) * tile_rows, window_lo, window_hi, taken, threshold, het_m, hom_m, called_m, bits)


@numba.njit(cache=True, nogil=True)
def clump_planes(hom, hi, n_samples, pos, p, order, window_lo, window_hi, r2_threshold, p2, max_batch,
                 tile_rows, parallel_work):
    """Greedy LD clumping on bit planes.

    ``window_lo``/``window_hi``: per row, the row range [lo, hi) within the clump distance (both
    non-decreasing). Returns (is_index, n_clumped, n_clumped_p2, start, end) as
    the plain one-index-at-a-time loop does.

    Candidates go in batches: the next ones in ``order`` not yet taken. Their links (rows of
    their window, not taken when the batch starts, with r2 above the threshold) are found
    together (:func:`_link_batch_parallel`, tile by tile), then the batch is applied in
    order: a member taken by an earlier member is skipped, the others claim their linked rows
    not taken since. Whether a pair is linked does not depend on the order, so each member
    claims exactly what the one-at-a-time loop would: the result is the same for any batch size
    and thread count. Members taken within their own batch are wasted work, so the batch doubles
    (up to ``max_batch``) while at most 1/8 of it is wasted and halves otherwise. Batches of at
    least ``parallel_work`` pair-words (pairs at most x words; see :data:`PARALLEL_WORK`; 0 with
    one thread) run on numba's threads, the others in the calling thread."""
    m = hom.shape[0]
    n_words = hom.shape[1]
    totals = plane_totals(hom, hi)
    is_index = np.zeros(m, dtype=np.bool_)
    n_clumped = np.zeros(m, dtype=np.int64)
    n_clumped_p2 = np.zeros(m, dtype=np.int64)
    start = pos.copy()
    end = pos.copy()
    taken = np.zeros(m, dtype=np.bool_)
    width = 1
    for k in range(order.shape[0]):
        i = order[k]
        width = max(width, window_hi[i] - window_lo[i])
    max_batch = max(1, max_batch)
    bits = np.empty((max_batch, (width + 63) // 64 + 1), dtype=np.uint64)
    het_m = np.empty((max_batch, n_words), dtype=np.uint64)
    hom_m = np.empty((max_batch, n_words), dtype=np.uint64)
    called_m = np.empty((max_batch, n_words), dtype=np.uint64)
    batch_rows = np.empty(max_batch, dtype=np.int64)  # members in p order
    batch = 1
    k = 0
    n_order = order.shape[0]
    while k < n_order:
        n_members = 0
        while k < n_order and n_members < batch:
            i = order[k]
            k += 1
            if not taken[i]:
                batch_rows[n_members] = i
                n_members += 1
        if n_members == 0:
            break
        slot = np.argsort(batch_rows[:n_members])  # p order -> ascending rows
        members = batch_rows[:n_members][slot]
        work = 0  # pairs at most, times the words of a pair
        for b in range(n_members):
            work += window_hi[members[b]] - window_lo[members[b]]
        if work * n_words >= parallel_work:
            _link_batch_parallel(hom, hi, totals, n_samples, members, n_members, window_lo, window_hi, taken,
                                 r2_threshold, tile_rows, het_m, hom_m, called_m, bits)
        else:
            _link_batch_serial(hom, hi, totals, n_samples, members, n_members, window_lo, window_hi, taken,
                               r2_threshold, tile_rows, het_m, hom_m, called_m, bits)
        slot_of = np.empty(n_members, dtype=np.int64)
        slot_of[slot] = np.arange(n_members)
        wasted = 0
        for b in range(n_members):
            i = batch_rows[b]
            if taken[i]:
                wasted += 1
                continue
            _claim(i, bits[slot_of[b]], window_lo[i] & ~np.int64(63), pos, p, p2, taken, is_index, n_clumped,
                   n_clumped_p2, start, end)
        if 8 * wasted <= n_members:
            batch = min(2 * batch, max_batch)
        else:
            batch = max(batch // 2, 1)
    return is_index, n_clumped, n_clumped_p2, start, end
