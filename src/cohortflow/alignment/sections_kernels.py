"""numba kernels for the per-base samtools-stats sections: pure functions on arrays, no I/O.

``accumulate_base_sections`` walks uncompressed BAM records (``buf`` at offsets ``rec_off``) and
folds them into the accumulators of FFQ/LFQ (quality per cycle), GCF/GCL (GC content), GCC/GCT/
FBC/FTC/LBC/LTC (base content per cycle) and ID/IC (indels), with samtools 1.16 ``stats``
definitions (default options):

* secondary alignments and records without sequence are skipped entirely;
* fragment order: unpaired reads are first fragments; paired reads with exactly one of
  READ1/READ2 are first/last; paired reads with both or neither bit ("other") add nothing to the
  per-cycle, GC or quality tables, and only to the indel size distribution (ID);
* base, GC and quality tables take primary reads only (not supplementary); the cycle of the
  base at sequence index j is ``l_seq - 1 - j`` on reverse-strand reads (hard clips ignored);
  the read-oriented table (GCT) adds the complement of reverse-strand bases;
* indels come from mapped reads, supplementary included; ID counts lengths 1..ID_MAX_LEN only;
  the cycle of an insertion is that of its first inserted base, of a deletion the base before
  it (leading deletions, cycle -1, are dropped from both ID and IC), soft clips count as cycles;
* "maximum first/last fragment length" (rows of FFQ/LFQ) is the longest unclipped length
  (l_seq + hard clips) of a first/last-fragment record, supplementary included.

Accumulator layouts (``quals`` and ``bases`` uint32 or int64, the others int64):
  ``quals`` (2, cycles, qual_width): first/last fragment, cycle, quality value;
  ``bases`` (2, 2, cycles, 16): first/last fragment, forward/reverse strand, cycle, 4-bit BAM
  base code (=ACMGRSVTWYHKDBN); the strand split lets the read-oriented table (GCT: reverse-strand
  bases complemented) be derived when formatting, so each base costs one count, not two;
  ``gc_hist`` (2, GC_BINS); ``indel_len`` (2, ID_MAX_LEN + 1): insertions/deletions by length;
  ``indel_cycle`` (4, cycles): insertions first/last, deletions first/last;
  ``state`` (S_N,): the S_* scalars.
"""

from __future__ import annotations

import numba
import numpy as np

GC_BINS = 200  # samtools stats default: --GC-depth bins of the GC-content histogram (ngc)
ID_MAX_LEN = 300  # samtools counts indels up to its initial cycle capacity (300) in ID

# state scalars
S_MAX_LEN_1ST = 0  # longest unclipped first-fragment record (FFQ rows)
S_MAX_LEN_2ND = 1  # longest unclipped last-fragment record (LFQ rows)
S_MAX_QUAL = 2  # highest quality of a counted base, -1 before any
S_NEED_CYCLES = 3  # set with STATUS_GROW: cycles the arrays must hold
S_NEED_QUALS = 4  # set with STATUS_GROW: quality width ``quals`` must have
S_N = 5

STATUS_DONE = 0
STATUS_GROW = 1  # grow the arrays to state[S_NEED_*] and call again from the returned index
STATUS_CORRUPT = 2  # the record at the returned index does not fit its block

_FLAG_PAIRED = 0x1
_FLAG_UNMAP = 0x4
_FLAG_REVERSE = 0x10
_FLAG_READ1 = 0x40
_FLAG_READ2 = 0x80
_FLAG_SECONDARY = 0x100
_FLAG_SUPPLEMENTARY = 0x800

# 4-bit BAM base codes (=ACMGRSVTWYHKDBN) of A C G T N
CODE_A, CODE_C, CODE_G, CODE_T, CODE_N = 1, 2, 4, 8, 15
_IS_GC = np.array([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=np.int64)  # C, G


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(buf, o):
    return np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8) | (np.int64(buf[o + 2]) << 16) | (np.int64(buf[o + 3]) << 24)


@numba.njit(cache=True, nogil=True, inline="always")
def _i32(buf, o):
    v = _u32(buf, o)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(cache=True, nogil=True)
def accumulate_base_sections(buf, rec_off, start, n, quals, bases, gc_hist,
                             indel_len, indel_cycle, state):
    """Fold records ``rec_off[start:n]`` of ``buf`` into the per-base accumulators.

    Returns (index of the first record not folded, status). With STATUS_GROW the caller grows the
    arrays to hold ``state[S_NEED_CYCLES]`` cycles and ``state[S_NEED_QUALS]`` quality values and
    calls again from that index; nothing of that record has been counted yet.
    """
    n_cycles = bases.shape[2]
    qual_width = quals.shape[2]
    n_gc = gc_hist.shape[1]
    max_indel = indel_len.shape[1] - 1
    buf_len = buf.shape[0]
    for i in range(start, n):
        o = rec_off[i]
        if o < 0 or o + 36 > buf_len:
            return i, STATUS_CORRUPT
        end = o + 4 + _i32(buf, o)
        r = o + 4
        l_read_name = np.int64(buf[r + 8])
        n_cigar = np.int64(buf[r + 12]) | (np.int64(buf[r + 13]) << 8)
        flag = np.int64(buf[r + 14]) | (np.int64(buf[r + 15]) << 8)
        l_seq = _i32(buf, r + 16)
        p_cigar = r + 32 + l_read_name
        p_seq = p_cigar + 4 * n_cigar
        p_qual = p_seq + (l_seq + 1) // 2
        if l_seq < 0 or p_qual + l_seq > end or end > buf_len:
            return i, STATUS_CORRUPT
        if (flag & _FLAG_SECONDARY) or l_seq == 0:
            continue
        if flag & _FLAG_PAIRED:
            order = (1 if flag & _FLAG_READ1 else 0) + (2 if flag & _FLAG_READ2 else 0)
        else:
            order = 1
        primary = (flag & _FLAG_SUPPLEMENTARY) == 0
        counted = primary and (order == 1 or order == 2)

        # capacity checks first, so that a record is either folded completely or not at all
        max_q = np.int64(-1)
        if counted:
            for j in range(l_seq):
                q = np.int64(buf[p_qual + j])
                if q > max_q:
                    max_q = q
        if l_seq > n_cycles or max_q >= qual_width:
            state[S_NEED_CYCLES] = max(l_seq, n_cycles)
            state[S_NEED_QUALS] = max(max_q + 1, qual_width)
            return i, STATUS_GROW

        unclipped = l_seq
        for k in range(n_cigar):
            c = _u32(buf, p_cigar + 4 * k)
            if (c & 0xF) == 5:  # H
                unclipped += c >> 4
        if order == 1 and unclipped > state[S_MAX_LEN_1ST]:
            state[S_MAX_LEN_1ST] = unclipped
        elif order == 2 and unclipped > state[S_MAX_LEN_2ND]:
            state[S_MAX_LEN_2ND] = unclipped

        reverse = (flag & _FLAG_REVERSE) != 0
        if counted:
            f = order - 1
            if max_q > state[S_MAX_QUAL]:
                state[S_MAX_QUAL] = max_q
            # one count per (fragment, strand, cycle, 4-bit base code): the base content tables,
            # strand-summed, and the read-oriented one (reverse strand complemented) derive from it
            strand = 1 if reverse else 0
            step = -1 if reverse else 1
            cycle = l_seq - 1 if reverse else 0
            gc = 0
            for j in range(l_seq):
                byte = np.int64(buf[p_seq + (j >> 1)])
                code = (byte >> 4) if (j & 1) == 0 else (byte & 0xF)
                gc += _IS_GC[code]
                bases[f, strand, cycle, code] += 1
                quals[f, cycle, np.int64(buf[p_qual + j])] += 1
                cycle += step
            # samtools spreads a read over the bins [gc*(ngc-1)/len, (gc+1)*(ngc-1)/len)
            lo = gc * (n_gc - 1) // l_seq
            hi = (gc + 1) * (n_gc - 1) // l_seq
            if hi >= n_gc:
                hi = n_gc - 1
            for b in range(lo, hi):
                gc_hist[f, b] += 1

        if flag & _FLAG_UNMAP:
            continue
        # indels, in read cycles: soft clips count, hard clips/N/P do not
        cycle = np.int64(0)
        for k in range(n_cigar):
            c = _u32(buf, p_cigar + 4 * k)
            op = c & 0xF
            ln = c >> 4
            if ln == 0:
                continue
            if op == 1:  # I
                idx = l_seq - cycle - ln if reverse else cycle
                if idx < 0 or idx >= n_cycles:
                    return i, STATUS_CORRUPT
                if order == 1 or order == 2:
                    indel_cycle[order - 1, idx] += 1
                cycle += ln
                if ln <= max_indel:
                    indel_len[0, ln] += 1
            elif op == 2:  # D
                idx = l_seq - cycle - 1 if reverse else cycle - 1
                if idx < 0:
                    continue  # a deletion before the first base has no cycle: samtools drops it
                if idx >= n_cycles:
                    return i, STATUS_CORRUPT
                if order == 1 or order == 2:
                    indel_cycle[order + 1, idx] += 1
                if ln <= max_indel:
                    indel_len[1, ln] += 1
            elif op != 3 and op != 5 and op != 6:  # N H P take no cycle
                cycle += ln
    return n, STATUS_DONE
