"""numba kernels for alignment QC: pure functions on numpy arrays, no I/O.

Two kinds of kernel:

* ``decode_bam_records`` turns a buffer of decompressed BAM records into per-read columns (a
  reader: it computes no statistics);
* ``accumulate_read_stats`` folds those columns into the samtools-stats / flagstat counters,
  histograms and the coverage distribution.

The counter layout (indices into the ``counters`` array) is given by the ``C_*`` constants; the
flagstat counters are a ``(FS_N, 2)`` array, column 0 QC-passed and column 1 QC-failed reads.
"""

from __future__ import annotations

import numba
import numpy as np

# BAM flag bits
F_PAIRED = 0x1
F_PROPER = 0x2
F_UNMAP = 0x4
F_MUNMAP = 0x8
F_REVERSE = 0x10
F_MREVERSE = 0x20
F_READ1 = 0x40
F_READ2 = 0x80
F_SECONDARY = 0x100
F_QCFAIL = 0x200
F_DUP = 0x400
F_SUPPLEMENTARY = 0x800

# samtools-stats counters
C_READS_1ST = 0
C_READS_2ND = 1
C_READS_OTHER = 2
C_UNMAPPED = 3
C_SINGLE_MAPPED = 4
C_PAIRED_AND_MAPPED = 5
C_PROPERLY_PAIRED = 6
C_PAIRED_TECH = 7
C_ANOMALOUS = 8
C_DUP = 9
C_MQ0 = 10
C_QCFAIL = 11
C_SECONDARY = 12
C_SUPPLEMENTARY = 13
C_TOTAL_LEN = 14
C_TOTAL_LEN_1ST = 15
C_TOTAL_LEN_2ND = 16
C_TOTAL_LEN_DUP = 17
C_BASES_MAPPED = 18
C_BASES_MAPPED_CIGAR = 19
C_MISMATCHES = 20
C_SUM_QUAL = 21
C_MAX_LEN = 22
C_MAX_LEN_1ST = 23
C_MAX_LEN_2ND = 24
C_IS_SORTED = 25
C_LAST_TID = 26
C_LAST_POS = 27
C_COV_TID = 28  # contig whose depths the coverage window holds (-1: none)
C_COV_BUF_POS = 29  # first reference position not yet flushed from the window
C_COV_BASES = 30  # sum of depth over all positions (aligned M/=/X bases counted in COV)
C_MAPQ20 = 31  # primary mapped reads with MAPQ >= 20
C_N = 32

# flagstat counters (rows)
FS_TOTAL = 0
FS_PRIMARY = 1
FS_SECONDARY = 2
FS_SUPPLEMENTARY = 3
FS_DUP = 4
FS_PRIMARY_DUP = 5
FS_MAPPED = 6
FS_PRIMARY_MAPPED = 7
FS_PAIRED = 8
FS_READ1 = 9
FS_READ2 = 10
FS_PROPER = 11
FS_BOTH_MAPPED = 12
FS_SINGLETON = 13
FS_DIFF_CHR = 14
FS_DIFF_CHR_MQ5 = 15
FS_N = 16

# per-read columns produced by the decoders, in this order in the int64 matrix ``cols``
K_FLAG = 0
K_TID = 1
K_POS = 2
K_MAPQ = 3
K_LSEQ = 4
K_MTID = 5
K_MPOS = 6
K_TLEN = 7
K_HCLIP = 8  # hard-clipped bases (unclipped length = l_seq + hard clips)
K_CIGAR_BASES = 9  # M + I + = + X lengths ("bases mapped (cigar)")
K_NM = 10  # NM tag value, 0 when absent
K_QUAL_SUM = 11  # sum of the raw quality bytes (0xff when absent, as samtools adds them)
K_NCIGAR = 12
K_BLOCK_END = 13  # end (exclusive) of this read's blocks in the block arrays
K_REC_OFF = 14  # offset of the record (its block_size field) in the decoded buffer
K_N = 15

COV_MAX = 1000  # samtools stats default --coverage 1,1000,1
ISIZE_MAX = 8000  # samtools stats default --insert-size


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(buf, o):
    return np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8) | (np.int64(buf[o + 2]) << 16) | (np.int64(buf[o + 3]) << 24)


@numba.njit(cache=True, nogil=True, inline="always")
def _i32(buf, o):
    v = _u32(buf, o)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(cache=True, nogil=True)
def _aux_nm(buf, p, end):
    """Value of the integer NM tag in aux bytes buf[p:end], 0 when absent (as bam_aux2i)."""
    while p + 3 <= end:
        t0 = buf[p]
        t1 = buf[p + 1]
        typ = buf[p + 2]
        p += 3
        is_nm = t0 == 78 and t1 == 77  # "NM"
        if typ == 65 or typ == 99 or typ == 67:  # A c C
            if is_nm:
                if typ == 99:
                    v = np.int64(buf[p])
                    return v - 256 if v >= 128 else v
                return np.int64(buf[p]) if typ == 67 else 0
            p += 1
        elif typ == 115 or typ == 83:  # s S
            if is_nm:
                v = np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
                if typ == 115 and v >= 32768:
                    v -= 65536
                return v
            p += 2
        elif typ == 105 or typ == 73 or typ == 102:  # i I f
            if is_nm:
                if typ == 105:
                    return _i32(buf, p)
                if typ == 73:
                    return _u32(buf, p)
                return 0
            p += 4
        elif typ == 90 or typ == 72:  # Z H: NUL-terminated
            while p < end and buf[p] != 0:
                p += 1
            p += 1
            if is_nm:
                return 0
        elif typ == 66:  # B: subtype, count, values
            sub = buf[p]
            n = _u32(buf, p + 1)
            size = 1
            if sub == 115 or sub == 83:
                size = 2
            elif sub == 105 or sub == 73 or sub == 102:
                size = 4
            p += 5 + n * size
            if is_nm:
                return 0
        else:
            return -(np.int64(1) << 62)  # corrupt aux data: flagged to the caller
    return 0


@numba.njit(cache=True, nogil=True)
def decode_bam_records(buf, n_bytes, cols, block_start, block_end):
    """Decode complete BAM records from ``buf[:n_bytes]`` (decompressed, after the header).

    Fills one row of ``cols`` (int64, shape (capacity, K_N)) per record and, for mapped
    non-secondary reads, their aligned M/=/X blocks (0-based half-open) into
    ``block_start``/``block_end``. Stops at the first incomplete record or when ``cols`` is full.

    Returns (records decoded, bytes consumed, blocks written, error offset or -1).
    """
    o = 0
    n = 0
    nb = 0
    cap = cols.shape[0]
    cap_blocks = block_start.shape[0]
    while n < cap and o + 4 <= n_bytes:
        block_size = _i32(buf, o)
        if block_size < 32:
            return n, o, nb, o
        if o + 4 + block_size > n_bytes:
            break
        r = o + 4
        end = r + block_size
        tid = _i32(buf, r)
        pos = _i32(buf, r + 4)
        l_read_name = np.int64(buf[r + 8])
        mapq = np.int64(buf[r + 9])
        n_cigar = np.int64(buf[r + 12]) | (np.int64(buf[r + 13]) << 8)
        flag = np.int64(buf[r + 14]) | (np.int64(buf[r + 15]) << 8)
        l_seq = _i32(buf, r + 16)
        mtid = _i32(buf, r + 20)
        mpos = _i32(buf, r + 24)
        tlen = _i32(buf, r + 28)
        p_cigar = r + 32 + l_read_name
        p_seq = p_cigar + 4 * n_cigar
        p_qual = p_seq + (l_seq + 1) // 2
        p_aux = p_qual + l_seq
        if l_seq < 0 or p_aux > end:
            return n, o, nb, o
        if nb + n_cigar > cap_blocks:
            break
        want_blocks = (flag & F_UNMAP) == 0 and (flag & F_SECONDARY) == 0 and l_seq > 0
        hclip = 0
        cigar_bases = 0
        ref = pos
        for k in range(n_cigar):
            c = _u32(buf, p_cigar + 4 * k)
            op = c & 0xF
            ln = c >> 4
            if op == 0 or op == 7 or op == 8:  # M = X
                cigar_bases += ln
                if want_blocks and ln > 0:
                    block_start[nb] = ref
                    block_end[nb] = ref + ln
                    nb += 1
                ref += ln
            elif op == 1:  # I
                cigar_bases += ln
            elif op == 2 or op == 3:  # D N
                ref += ln
            elif op == 5:  # H
                hclip += ln
        qsum = np.int64(0)
        for k in range(p_qual, p_aux):
            qsum += buf[k]
        nm = _aux_nm(buf, p_aux, end)
        if nm == -(np.int64(1) << 62):
            return n, o, nb, o
        row = cols[n]
        row[K_FLAG] = flag
        row[K_TID] = tid
        row[K_POS] = pos
        row[K_MAPQ] = mapq
        row[K_LSEQ] = l_seq
        row[K_MTID] = mtid
        row[K_MPOS] = mpos
        row[K_TLEN] = tlen
        row[K_HCLIP] = hclip
        row[K_CIGAR_BASES] = cigar_bases
        row[K_NM] = nm
        row[K_QUAL_SUM] = qsum
        row[K_NCIGAR] = n_cigar
        row[K_BLOCK_END] = nb
        row[K_REC_OFF] = o
        n += 1
        o = end
    return n, o, nb, -1


@numba.njit(cache=True, nogil=True)
def complete_record_offsets(buf, start, out):
    """The complete BAM records in buf[start:] (records start at ``start``): their offsets
    relative to ``start`` into ``out`` (len(buf[start:]) // 36 + 1 entries always suffice).
    Returns (records, offset just past the last one), or (-1, offset) where a block_size is
    impossibly small (corrupt data)."""
    o = start
    n = 0
    n_bytes = buf.shape[0]
    while o + 4 <= n_bytes:
        size = _i32(buf, o)
        if size < 32:
            return -1, o
        if o + 4 + size > n_bytes:
            break
        out[n] = o - start
        n += 1
        o += 4 + size
    return n, o


@numba.njit(cache=True, nogil=True)
def _cov_flush(cov_window, counters, cov_hist, upto):
    """Move depths of window positions < ``upto`` into the coverage histogram."""
    size = cov_window.shape[0]
    mask = size - 1
    start = counters[C_COV_BUF_POS]
    if upto <= start:
        return
    stop = upto if upto - start < size else start + size
    top = cov_hist.shape[0] - 1
    for p in range(start, stop):
        d = cov_window[p & mask]
        if d:
            cov_hist[d if d < top else top] += 1
            cov_window[p & mask] = 0
    counters[C_COV_BUF_POS] = upto


@numba.njit(cache=True, nogil=True)
def accumulate_read_stats(cols, n, block_start, block_end, block_offset, counters, flagstat,
                          read_lengths, mapq_hist, isize_hist, cov_window, cov_hist, span_min, span_max):
    """Fold ``n`` decoded reads into the samtools-stats and flagstat accumulators.

    ``read_lengths`` has shape (3, L): all, first and last fragments, by unclipped length;
    ``isize_hist`` (3, ISIZE_MAX + 1): inward, outward, other (each pair counted twice, as samtools
    does before halving); ``cov_hist`` (COV_MAX + 2,): positions by depth, last bin > COV_MAX;
    ``cov_window`` a power-of-two ring of depths; ``span_min``/``span_max`` per contig covered span.

    Returns the index of the first read whose aligned blocks do not fit ``cov_window`` (the caller
    grows the window and calls again from there), or ``n`` when all reads were consumed.
    """
    size = cov_window.shape[0]
    mask = size - 1
    for i in range(n):
        row = cols[i]
        flag = row[K_FLAG]
        tid = row[K_TID]
        pos = row[K_POS]
        mapq = row[K_MAPQ]
        l_seq = row[K_LSEQ]
        mtid = row[K_MTID]
        # K_BLOCK_END is cumulative over the decoded chunk; block_offset is where read 0 starts
        blk_lo = cols[i - 1, K_BLOCK_END] if i > 0 else block_offset
        blk_hi = row[K_BLOCK_END]
        unmapped = (flag & F_UNMAP) != 0
        # coverage first: if this read does not fit the window, return before counting anything
        cov_this = (not unmapped) and (flag & F_SECONDARY) == 0 and l_seq > 0
        if cov_this and blk_hi > blk_lo and counters[C_IS_SORTED] == 1:
            # after flushing up to this read's start the window holds [pos, pos + size)
            for b in range(blk_lo, blk_hi):
                if block_end[b] - pos > size:
                    return i

        # ---- flagstat (every record) ----
        w = 1 if (flag & F_QCFAIL) else 0
        flagstat[FS_TOTAL, w] += 1
        if flag & F_SECONDARY:
            flagstat[FS_SECONDARY, w] += 1
        elif flag & F_SUPPLEMENTARY:
            flagstat[FS_SUPPLEMENTARY, w] += 1
        else:
            flagstat[FS_PRIMARY, w] += 1
            if flag & F_PAIRED:
                flagstat[FS_PAIRED, w] += 1
                if (flag & F_PROPER) and not unmapped:
                    flagstat[FS_PROPER, w] += 1
                if flag & F_READ1:
                    flagstat[FS_READ1, w] += 1
                if flag & F_READ2:
                    flagstat[FS_READ2, w] += 1
                if (flag & F_MUNMAP) and not unmapped:
                    flagstat[FS_SINGLETON, w] += 1
                if not unmapped and not (flag & F_MUNMAP):
                    flagstat[FS_BOTH_MAPPED, w] += 1
                    if mtid != tid:
                        flagstat[FS_DIFF_CHR, w] += 1
                        if mapq >= 5:
                            flagstat[FS_DIFF_CHR_MQ5, w] += 1
            if not unmapped:
                flagstat[FS_PRIMARY_MAPPED, w] += 1
            if flag & F_DUP:
                flagstat[FS_PRIMARY_DUP, w] += 1
        if not unmapped:
            flagstat[FS_MAPPED, w] += 1
        if flag & F_DUP:
            flagstat[FS_DUP, w] += 1

        # ---- samtools stats ----
        if flag & F_SECONDARY:
            counters[C_SECONDARY] += 1
            continue
        if flag & F_SUPPLEMENTARY:
            counters[C_SUPPLEMENTARY] += 1
        if l_seq == 0:
            continue
        if flag & F_DUP:
            counters[C_TOTAL_LEN_DUP] += l_seq
            counters[C_DUP] += 1
        # fragment order as samtools: unpaired reads are first fragments, paired reads with
        # both or neither READ1/READ2 bits are "other"
        if flag & F_PAIRED:
            order = (1 if flag & F_READ1 else 0) + (2 if flag & F_READ2 else 0)
        else:
            order = 1
        read_len = l_seq + row[K_HCLIP]
        if read_len > counters[C_MAX_LEN]:
            counters[C_MAX_LEN] = read_len
        if order == 1 and read_len > counters[C_MAX_LEN_1ST]:
            counters[C_MAX_LEN_1ST] = read_len
        if order == 2 and read_len > counters[C_MAX_LEN_2ND]:
            counters[C_MAX_LEN_2ND] = read_len
        paired_mapped = (flag & F_PAIRED) != 0 and not unmapped and (flag & F_MUNMAP) == 0
        if (flag & F_SUPPLEMENTARY) == 0:
            read_lengths[0, read_len] += 1
            if order == 1:
                read_lengths[1, read_len] += 1
            elif order == 2:
                read_lengths[2, read_len] += 1
            counters[C_TOTAL_LEN] += l_seq
            if flag & F_QCFAIL:
                counters[C_QCFAIL] += 1
            if flag & F_PAIRED:
                counters[C_PAIRED_TECH] += 1
            # samtools adds qualities only of first and last fragments to the average
            if order == 1:
                counters[C_READS_1ST] += 1
                counters[C_TOTAL_LEN_1ST] += l_seq
                counters[C_SUM_QUAL] += row[K_QUAL_SUM]
            elif order == 2:
                counters[C_READS_2ND] += 1
                counters[C_TOTAL_LEN_2ND] += l_seq
                counters[C_SUM_QUAL] += row[K_QUAL_SUM]
            else:
                counters[C_READS_OTHER] += 1
            if unmapped:
                counters[C_UNMAPPED] += 1
            else:
                counters[C_BASES_MAPPED] += l_seq
                mapq_hist[mapq] += 1
                if mapq == 0:
                    counters[C_MQ0] += 1
                if mapq >= 20:
                    counters[C_MAPQ20] += 1
                if not paired_mapped:
                    counters[C_SINGLE_MAPPED] += 1
                else:
                    counters[C_PAIRED_AND_MAPPED] += 1
                    if flag & F_PROPER:
                        counters[C_PROPERLY_PAIRED] += 1
                    if tid != mtid:
                        counters[C_ANOMALOUS] += 1
        if unmapped:
            continue

        if paired_mapped and (flag & F_SUPPLEMENTARY) == 0:  # samtools: primary reads only
            isize = row[K_TLEN]
            if isize < 0:
                isize = -isize
            if isize > ISIZE_MAX:
                isize = ISIZE_MAX
            if isize > 0 or tid == mtid:
                pos_fst = row[K_MPOS] - pos
                is_fst = 1 if flag & F_READ1 else -1
                is_fwd = -1 if flag & F_REVERSE else 1
                is_mfwd = -1 if flag & F_MREVERSE else 1
                if is_fwd * is_mfwd > 0:
                    isize_hist[2, isize] += 1
                elif is_fst * pos_fst >= 0:
                    isize_hist[0 if is_fst * is_fwd > 0 else 1, isize] += 1
                else:
                    isize_hist[1 if is_fst * is_fwd > 0 else 0, isize] += 1

        counters[C_MISMATCHES] += row[K_NM]
        counters[C_BASES_MAPPED_CIGAR] += row[K_CIGAR_BASES]

        if counters[C_LAST_TID] == tid and pos < counters[C_LAST_POS]:
            counters[C_IS_SORTED] = 0
        counters[C_LAST_POS] = pos
        if counters[C_IS_SORTED] == 1:
            counters[C_LAST_TID] = tid
            # coverage distribution, as samtools: only while the input is sorted
            if counters[C_COV_TID] != tid:
                _cov_flush(cov_window, counters, cov_hist, counters[C_COV_BUF_POS] + size)
                counters[C_COV_TID] = tid
                counters[C_COV_BUF_POS] = pos
            _cov_flush(cov_window, counters, cov_hist, pos)
            for b in range(blk_lo, blk_hi):
                s = block_start[b]
                e = block_end[b]
                for p in range(s, e):
                    cov_window[p & mask] += 1
                counters[C_COV_BASES] += e - s
                if span_min[tid] < 0 or s < span_min[tid]:
                    span_min[tid] = s
                if e > span_max[tid]:
                    span_max[tid] = e
    return n


@numba.njit(cache=True, nogil=True)
def flush_coverage(cov_window, counters, cov_hist):
    """Flush every depth still in the coverage window (end of input)."""
    _cov_flush(cov_window, counters, cov_hist, counters[C_COV_BUF_POS] + cov_window.shape[0])


@numba.njit(cache=True, nogil=True)
def regrow_window(cov_window, counters, new_size):
    """Copy the ring ``cov_window`` into a larger power-of-two ring, keeping positions."""
    out = np.zeros(new_size, dtype=cov_window.dtype)
    size = cov_window.shape[0]
    start = counters[C_COV_BUF_POS]
    for p in range(start, start + size):
        out[p & (new_size - 1)] = cov_window[p & (size - 1)]
    return out
