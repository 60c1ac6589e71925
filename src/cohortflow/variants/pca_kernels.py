"""numba kernels for LD pruning (plink2 ``--indep-pairwise``) and ancestry PCA: pure functions on
numpy arrays, no I/O.

Packed genotypes are PLINK 1 .bed rows (uint8, 4 samples a byte, low bits first; codes 00 = A1/A1,
01 = missing, 10 = het, 11 = A2/A2).

LD pruning works on two bit planes per variant and sample group, 64 samples a word:

- ``hom``: the call is homozygous (codes 00 and 11);
- ``hi``: the call carries an A2 allele (codes 10 and 11).

so that the centred count x = (A2 count) - 1 is +1 (hom & hi), 0 (hi only), -1 (hom only) and
missing (neither). Pearson r^2 over the samples called at both variants then needs only popcounts
(dot product, sums and sums of squares over the jointly called samples), as in plink2.

Sample groups: group 0 counts once, group 1 twice (plink2's chrX rule: males haploid with
weight 1, other founders diploid with weight 2); haploid groups have heterozygous calls set missing.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from cohortflow.bitops import even_bits, popcount_u64, trailing_zeros_u64

# plink2's kSmallEpsilon (2^-44): tolerance on the r^2 threshold and on MAF ties
SMALL_EPSILON = 2.0 ** -44


_M5 = np.uint64(0x5555555555555555)


@numba.njit(cache=True, nogil=True)
def packed_to_planes(raw64, n_samples, haploid, hom, hi):
    """Bit planes of all samples of packed rows ``raw64`` (the .bed bytes of each row zero-padded
    to 16 bytes a word and viewed as uint64, 32 samples each) into ``hom``/``hi`` (rows x words),
    64 samples a word; bits past ``n_samples`` are zero. ``haploid``: heterozygous calls missing."""
    n_words = hom.shape[1]
    rem = n_samples % 64
    last_mask = (np.uint64(1) << np.uint64(rem)) - np.uint64(1) if rem else ~np.uint64(0)
    for v in range(raw64.shape[0]):
        for w in range(n_words):
            x0 = raw64[v, 2 * w]
            x1 = raw64[v, 2 * w + 1]
            lo0 = x0 & _M5
            hi0 = (x0 >> np.uint64(1)) & _M5
            lo1 = x1 & _M5
            hi1 = (x1 >> np.uint64(1)) & _M5
            hom0 = ~(lo0 ^ hi0) & _M5
            hom1 = ~(lo1 ^ hi1) & _M5
            if haploid:
                hi0 &= hom0
                hi1 &= hom1
            h = even_bits(hom0) | (even_bits(hom1) << np.uint64(32))
            a = even_bits(hi0) | (even_bits(hi1) << np.uint64(32))
            if w == n_words - 1:
                h &= last_mask
                a &= last_mask
            hom[v, w] = h
            hi[v, w] = a


@numba.njit(cache=True, nogil=True)
def packed_to_planes_subset(raw, samples, haploid, hom, hi):
    """Bit planes of the samples ``samples`` (indices into the .bed columns, in that order)."""
    n = samples.shape[0]
    n_words = hom.shape[1]
    for v in range(raw.shape[0]):
        for w in range(n_words):
            hom[v, w] = 0
            hi[v, w] = 0
        for i in range(n):
            s = samples[i]
            code = (raw[v, s >> 2] >> (2 * (s & 3))) & 3
            bit = np.uint64(1) << np.uint64(i & 63)
            w = i >> 6
            if code == 0:
                hom[v, w] |= bit
            elif code == 3:
                hom[v, w] |= bit
                hi[v, w] |= bit
            elif code == 2 and not haploid:
                hi[v, w] |= bit


@numba.njit(cache=True, nogil=True)
def plane_aggregates(hom, hi, out):
    """Per row: out[:, 0] called samples, out[:, 1] sum of x, out[:, 2] sum of x^2 (= hom count),
    out[:, 3] A2/A2 count (x = +1)."""
    for v in range(hom.shape[0]):
        nm = 0
        ssq = 0
        plus = 0
        for w in range(hom.shape[1]):
            h = hom[v, w]
            a = hi[v, w]
            nm += popcount_u64(h | a)
            ssq += popcount_u64(h)
            plus += popcount_u64(h & a)
        out[v, 0] = nm
        out[v, 1] = 2 * plus - ssq
        out[v, 2] = ssq
        out[v, 3] = plus


@numba.njit(cache=True, nogil=True)
def missing_lists(hom, hi, n_samples, out_idx, out_count):
    """Per row the (ascending) sample positions with a missing call, up to ``out_idx.shape[1]``
    of them; ``out_count`` is their number, or -1 when there are more (r^2 then uses masks)."""
    cap = out_idx.shape[1]
    n_words = hom.shape[1]
    rem = n_samples % 64
    last_mask = (np.uint64(1) << np.uint64(rem)) - np.uint64(1) if rem else ~np.uint64(0)
    for v in range(hom.shape[0]):
        count = 0
        for w in range(n_words):
            bits = ~(hom[v, w] | hi[v, w])
            if w == n_words - 1:
                bits &= last_mask
            while bits:
                if count == cap:
                    count = -1
                    break
                out_idx[v, count] = w * 64 + np.int64(trailing_zeros_u64(bits))
                count += 1
                bits &= bits - np.uint64(1)
            if count < 0:
                break
        out_count[v] = count


@numba.njit(cache=True, nogil=True, inline="always")
def _x_at(hom, hi, row, i):
    """Centred count (-1, 0, +1) of a called sample ``i`` in plane row ``row``."""
    w = i >> 6
    b = np.uint64(i & 63)
    if (hom[row, w] >> b) & np.uint64(1):
        return 1 if (hi[row, w] >> b) & np.uint64(1) else -1
    return 0


@numba.njit(cache=True, nogil=True, inline="always")
def _dot_counts(hom, hi, f, s):
    """Jointly homozygous calls of rows f and s, and those of opposite homozygotes
    (dot = both - 2 neg)."""
    both = np.uint64(0)
    neg = np.uint64(0)
    for w in range(hom.shape[1]):
        hh = hom[f, w] & hom[s, w]
        both += popcount_u64(hh)
        neg += popcount_u64(hh & (hi[f, w] ^ hi[s, w]))
    return np.int64(both), np.int64(neg)


@numba.njit(cache=True, nogil=True, inline="always")
def _pair_group(hom, hi, f, s, agg, t_f, t_s, g, group_n, miss, count_f, count_s, comp):
    """r^2 components of one sample group over the samples called at both variants:
    comp = [n, sum_f, ssq_f, sum_s, ssq_s, dot].

    The dot product needs no mask (a missing call has neither bit). With short missing lists (a
    few calls per 64 samples) the sums over the jointly called samples are the variant totals
    less the calls where the other variant is missing; otherwise popcounts over the joint mask."""
    n_words = hom.shape[1]
    # the list walk costs a few ns a missing call, the masked popcounts about 1.5 ns a word
    if count_f >= 0 and count_s >= 0 and 4 * (count_f + count_s) <= n_words:
        both, neg = _dot_counts(hom, hi, f, s)
        sum_f = agg[t_f, g, 1]
        ssq_f = agg[t_f, g, 2]
        sum_s = agg[t_s, g, 1]
        ssq_s = agg[t_s, g, 2]
        union = 0
        a = 0
        b = 0
        while a < count_f or b < count_s:
            union += 1
            if b == count_s or (a < count_f and miss[f, a] < miss[s, b]):
                x = _x_at(hom, hi, s, miss[f, a])  # missing in f only
                sum_s -= x
                ssq_s -= x * x
                a += 1
            elif a == count_f or miss[s, b] < miss[f, a]:
                x = _x_at(hom, hi, f, miss[s, b])  # missing in s only
                sum_f -= x
                ssq_f -= x * x
                b += 1
            else:
                a += 1
                b += 1
        comp[0] = group_n - union
        comp[1] = sum_f
        comp[2] = ssq_f
        comp[3] = sum_s
        comp[4] = ssq_s
        comp[5] = both - 2 * neg
        return
    if agg[t_f, g, 0] == group_n and agg[t_s, g, 0] == group_n:
        both, neg = _dot_counts(hom, hi, f, s)
        comp[0] = group_n
        comp[1] = agg[t_f, g, 1]
        comp[2] = agg[t_f, g, 2]
        comp[3] = agg[t_s, g, 1]
        comp[4] = agg[t_s, g, 2]
        comp[5] = both - 2 * neg
        return
    # unsigned accumulators keep the loop in vector registers
    nm = np.uint64(0)
    ssq_f = np.uint64(0)
    plus_f = np.uint64(0)
    ssq_s = np.uint64(0)
    plus_s = np.uint64(0)
    both = np.uint64(0)
    neg = np.uint64(0)
    for w in range(n_words):
        hf = hom[f, w]
        af = hi[f, w]
        hs = hom[s, w]
        a_s = hi[s, w]
        nm_f = hf | af
        nm_s = hs | a_s
        nm += popcount_u64(nm_f & nm_s)
        x = hf & nm_s
        ssq_f += popcount_u64(x)
        plus_f += popcount_u64(x & af)
        y = hs & nm_f
        ssq_s += popcount_u64(y)
        plus_s += popcount_u64(y & a_s)
        hh = hf & hs
        both += popcount_u64(hh)
        neg += popcount_u64(hh & (af ^ a_s))
    comp[0] = np.int64(nm)
    comp[1] = 2 * np.int64(plus_f) - np.int64(ssq_f)
    comp[2] = np.int64(ssq_f)
    comp[3] = 2 * np.int64(plus_s) - np.int64(ssq_s)
    comp[4] = np.int64(ssq_s)
    comp[5] = np.int64(both) - 2 * np.int64(neg)


@numba.njit(cache=True, nogil=True, inline="always")
def _r2_exceeds(slot_f, slot_s, t_f, t_s, hom0, hi0, hom1, hi1, agg, group_n, miss0, miss1, miss_count,
                threshold, comp):
    """plink2's test cov^2 > threshold * var_f * var_s, in the same integer / double arithmetic."""
    _pair_group(hom0, hi0, slot_f, slot_s, agg, t_f, t_s, 0, group_n[0], miss0,
                miss_count[slot_f, 0], miss_count[slot_s, 0], comp)
    nm = comp[0]
    sum_f = comp[1]
    ssq_f = comp[2]
    sum_s = comp[3]
    ssq_s = comp[4]
    dot = comp[5]
    if group_n[1] > 0:
        _pair_group(hom1, hi1, slot_f, slot_s, agg, t_f, t_s, 1, group_n[1], miss1,
                    miss_count[slot_f, 1], miss_count[slot_s, 1], comp)
        nm += 2 * comp[0]
        sum_f += 2 * comp[1]
        ssq_f += 2 * comp[2]
        sum_s += 2 * comp[3]
        ssq_s += 2 * comp[4]
        dot += 2 * comp[5]
    cov = float(dot * nm - sum_f * sum_s)
    var_f = float(ssq_f * nm - sum_f * sum_f)
    var_s = float(ssq_s * nm - sum_s * sum_s)
    return cov * cov > threshold * var_f * var_s


@numba.njit(cache=True, nogil=True)
def prune_windows(win_start, win_end, state, loaded_end, capacity, hom0, hi0, hom1, hi1, agg,
                  group_n, miss0, miss1, miss_count, maj_freq, threshold, removed, first_unchecked,
                  winpos):
    """Run plink2 ``--indep-pairwise`` (PLINK 1.x pruning order) over the windows of one
    subcontig whose variants up to ``loaded_end`` are in the plane ring buffers (with their
    missing-call lists ``miss0``/``miss1``, counts ``miss_count``, see ``missing_lists``).

    Variants are numbered 0..L-1 within the subcontig; their planes sit at slot ``t % capacity``.
    ``win_start``/``win_end`` are the windows (end exclusive). ``state`` = [next window, window
    size, end of the previous window] carries over between calls; ``winpos`` holds the window's
    variants in order. Within a window, each kept variant is compared with the later kept ones
    it has not been compared with yet (``first_unchecked``); when r^2 exceeds the threshold the
    variant with the lower MAF (higher ``maj_freq``) is removed, the later one on a tie, and
    passes repeat until nothing more is removed. ``removed`` is updated in place; monomorphic
    variants must already be marked. Returns the number of windows done.
    """
    comp = np.zeros(6, dtype=np.int64)
    winslot = np.empty_like(winpos)
    j = state[0]
    size = state[1]
    prev_end = state[2]
    n_windows = win_start.shape[0]
    while j < n_windows and win_end[j] <= loaded_end:
        start = win_start[j]
        end = win_end[j]
        # keep the survivors of the previous window still inside this one
        w = 0
        for i in range(size):
            t = winpos[i]
            if not removed[t] and t >= start:
                winpos[w] = t
                w += 1
        size = w
        for t in range(prev_end, end):
            winpos[size] = t
            size += 1
            first_unchecked[t] = t + 1
        for i in range(size):
            winslot[i] = winpos[i] % capacity
        prev_end = end
        n_removed = 0
        for i in range(size):
            if removed[winpos[i]]:
                n_removed += 1
        while True:
            before = n_removed
            for fp in range(size):
                tf = winpos[fp]
                if removed[tf]:
                    continue
                unchecked = first_unchecked[tf]
                if unchecked >= end:
                    continue  # compared with everything in the window already
                sp = fp + 1
                while sp < size and (removed[winpos[sp]] or winpos[sp] < unchecked):
                    sp += 1
                if sp == size:
                    continue
                slot_f = winslot[fp]
                while True:
                    ts = winpos[sp]
                    if _r2_exceeds(slot_f, winslot[sp], tf, ts, hom0, hi0, hom1, hi1, agg, group_n,
                                   miss0, miss1, miss_count, threshold, comp):
                        if maj_freq[tf] > maj_freq[ts] * (1.0 + SMALL_EPSILON):
                            removed[tf] = True
                        else:
                            removed[ts] = True
                            nxt = sp + 1
                            while nxt < size and removed[winpos[nxt]]:
                                nxt += 1
                            first_unchecked[tf] = winpos[nxt] if nxt < size else end
                        n_removed += 1
                        break
                    sp += 1
                    while sp < size and removed[winpos[sp]]:
                        sp += 1
                    if sp == size:
                        first_unchecked[tf] = end
                        break
            if n_removed == before:
                break
        j += 1
    state[0] = j
    state[1] = size
    state[2] = prev_end
    return j


@numba.njit(cache=True, nogil=True)
def count_windows(length, window, step):
    """Variant-count windows of a subcontig of ``length`` variants: (starts, ends)."""
    starts = [0]
    ends = [min(length, window)]
    while ends[-1] != length:
        s = starts[-1] + step
        starts.append(s)
        ends.append(min(s + window, length))
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def bp_windows(bp, window_bp):
    """Base-pair windows of a subcontig (positions ``bp``, sorted) as plink2 slides them: a
    window holds the variants within ``window_bp`` of its first; the next starts at the first
    variant within ``window_bp`` of the variant just past the current end, and reaches as far as
    ``window_bp`` past its own start (always at least one variant further)."""
    length = bp.shape[0]
    thresh = bp[0] + window_bp
    end = 1
    while end < length and bp[end] <= thresh:
        end += 1
    starts = [0]
    ends = [end]
    start = 0
    while end != length:
        start_min = bp[end] - window_bp
        start += 1
        while bp[start] < start_min:
            start += 1
        thresh = bp[start] + window_bp
        while True:
            end += 1
            if end == length or bp[end] > thresh:
                break
        starts.append(start)
        ends.append(end)
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def bp_subcontigs(bp, window_bp):
    """Split one chromosome's variants (positions ``bp``) where consecutive positions are more
    than ``window_bp`` apart (no window can span the gap), as plink2 does; positions below
    ``window_bp`` never split. Returns (first index, length) of each piece."""
    firsts = [0]
    prev = bp[0]
    for i in range(1, bp.shape[0]):
        cur = bp[i]
        if cur >= window_bp and cur - window_bp > prev:
            firsts.append(i)
        prev = cur
    firsts.append(bp.shape[0])
    out_first = np.array(firsts[:-1], dtype=np.int64)
    out_len = np.diff(np.array(firsts, dtype=np.int64))
    return out_first, out_len


# --------------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def standardize_table(a1_freq, out):
    """Per variant the standardized value of each .bed code, (g - 2p) / sqrt(2p(1-p)) with g the
    A1 count and p the A1 frequency; a missing call gets 0 (the mean)."""
    for v in range(a1_freq.shape[0]):
        p = a1_freq[v]
        scale = 1.0 / math.sqrt(2.0 * p * (1.0 - p))
        out[v, 0] = (2.0 - 2.0 * p) * scale
        out[v, 1] = 0.0
        out[v, 2] = (1.0 - 2.0 * p) * scale
        out[v, 3] = -2.0 * p * scale


@numba.njit(cache=True, nogil=True, parallel=True)
def decode_standardized(raw, n_samples, table, out):
    """Standardized genotypes (rows x samples) of packed rows, one value per code from
    ``table`` (rows x 4, see ``standardize_table``; same dtype as ``out``). The code indexes the
    table (no branches: genotype codes are unpredictable, a branch per call costs ~10x more)."""
    n_full = n_samples >> 2
    for v in prange(raw.shape[0]):
        for b in range(n_full):
            byte = raw[v, b]
            out[v, 4 * b] = table[v, byte & 3]
            out[v, 4 * b + 1] = table[v, (byte >> 2) & 3]
            out[v, 4 * b + 2] = table[v, (byte >> 4) & 3]
            out[v, 4 * b + 3] = table[v, byte >> 6]
        for s in range(4 * n_full, n_samples):
            out[v, s] = table[v, (raw[v, s >> 2] >> (2 * (s & 3))) & 3]


@numba.njit(cache=True, nogil=True, parallel=True)
def decode_called(raw, n_samples, out):
    """1.0 where the call is present, 0.0 where missing (rows x samples)."""
    for v in prange(raw.shape[0]):
        for s in range(n_samples):
            code = (raw[v, s >> 2] >> (2 * (s & 3))) & 3
            out[v, s] = 0.0 if code == 1 else 1.0


@numba.njit(cache=True, nogil=True)
def count_missing(raw, n_samples):
    """Number of missing calls in packed rows."""
    total = 0
    for v in range(raw.shape[0]):
        for s in range(n_samples):
            if ((raw[v, s >> 2] >> (2 * (s & 3))) & 3) == 1:
                total += 1
    return total


@numba.njit(cache=True, nogil=True)
def projection_table(a1_freq, swap, out):
    """Like ``standardize_table`` for the loadings' A1 allele, which is the .bed A2 allele where
    ``swap`` is set (A1 count 2 - g)."""
    standardize_table(a1_freq, out)
    for v in range(swap.shape[0]):
        if swap[v]:
            hom_a1 = out[v, 3]
            out[v, 3] = out[v, 0]
            out[v, 0] = hom_a1
