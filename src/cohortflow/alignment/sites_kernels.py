"""Base counts at known SNP sites from uncompressed BAM records (pure numba kernels).

Input is the common record interface of the alignment stage: ``buf`` (uint8, uncompressed BAM
records as the BAM spec lays them out) and ``rec_off`` (int64, offset of each record's block_size
field, file order). Sites come from :func:`cohortflow.alignment.sites.index_sites`: per BAM
contig ``tid`` the sites are rows ``tid_start[tid]:tid_start[tid + 1]`` of ``site_pos`` (0-based,
ascending), ``site_ref``/``site_alt`` (nt16 codes) and ``site_row`` (the row of ``counts`` each
site's counts go to).
"""

from __future__ import annotations

import numba
import numpy as np

# flags whose reads are never counted: unmapped, secondary, QC fail, duplicate (samtools mpileup's
# default --ff); supplementary alignments are counted, as mpileup does
SKIP_FLAGS = 0x4 | 0x100 | 0x200 | 0x400

# status codes returned by count_site_bases
STATUS_OK = 0
STATUS_UNSORTED = 1  # a mapped read starts before the previous one (or on an earlier contig)
STATUS_MALFORMED = 2  # a record runs past the buffer, or names a contig the header lacks


def new_site_state(tid_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state :func:`count_site_bases` carries between batches of one file.

    ``next_site`` (int64, one per contig): first site of the contig not behind the reads seen so
    far; ``last_read`` (int64 [tid, pos]): the last mapped read's start, to check the order.
    """
    next_site = np.ascontiguousarray(tid_start[:-1], dtype=np.int64).copy()
    last_read = np.array([-1, -1], dtype=np.int64)
    return next_site, last_read


@numba.njit(cache=True, inline="always")
def _i32(buf, o):
    return np.int32(np.uint32(buf[o]) | (np.uint32(buf[o + 1]) << 8) | (np.uint32(buf[o + 2]) << 16)
                    | (np.uint32(buf[o + 3]) << 24))


@numba.njit(cache=True, inline="always")
def _u32(buf, o):
    return np.uint32(buf[o]) | (np.uint32(buf[o + 1]) << 8) | (np.uint32(buf[o + 2]) << 16) | (np.uint32(buf[o + 3]) << 24)


@numba.njit(cache=True, nogil=True)
def count_site_bases(buf, rec_off, n_records, site_pos, site_ref, site_alt, site_row, tid_start,
                     next_site, last_read, counts, min_mapq, min_baseq):
    """Add, for each site, the reads showing its ref / alt / another base to ``counts``.

    ``counts`` is int32 (n_sites, 3): columns ref, alt, other (any other code, N included), row
    ``site_row[j]`` for site ``j``. Reads with flag unmapped / secondary / QC-fail / duplicate, or
    MAPQ < ``min_mapq``, are skipped; a base is counted when its quality >= ``min_baseq`` (a
    missing quality string, 0xff, passes, as in samtools). The CIGAR is walked: M/=/X give a base at
    each reference position, I and S consume the read only, D and N the reference only (no base at
    a site they cover), H and P nothing.

    Each read is counted on its own, as VerifyBamID does: where the two mates of a template overlap
    a site, that molecule counts twice (samtools mpileup ``-x``; mosdepth-style overlap removal is
    not applied).

    Reads must arrive coordinate-sorted, batch after batch of one file, with ``next_site`` and
    ``last_read`` from :func:`new_site_state` carried between calls (``next_site[tid]`` only moves
    forward, so each site is passed once per read that reaches it). Returns ``(status, record)``:
    ``STATUS_OK`` and -1, or the problem and the index in ``rec_off`` of the offending record,
    processing stopped there (counts hold the records before it).
    """
    n_buf = buf.shape[0]
    n_ref = tid_start.shape[0] - 1
    for r in range(n_records):
        o = rec_off[r]
        if o + 36 > n_buf:
            return STATUS_MALFORMED, r
        block_size = np.int64(_i32(buf, o))
        end = o + 4 + block_size
        if block_size < 32 or end > n_buf:
            return STATUS_MALFORMED, r
        tid = np.int64(_i32(buf, o + 4))
        pos = np.int64(_i32(buf, o + 8))
        l_read_name = np.int64(buf[o + 12])
        mapq = np.int64(buf[o + 13])
        n_cigar = np.int64(buf[o + 16]) | (np.int64(buf[o + 17]) << 8)
        flag = np.int64(buf[o + 18]) | (np.int64(buf[o + 19]) << 8)
        l_seq = np.int64(_i32(buf, o + 20))
        if flag & 0x4 or tid < 0:
            continue  # unmapped reads (placed or not) never count and carry no order
        if tid >= n_ref or pos < 0:
            return STATUS_MALFORMED, r
        if tid < last_read[0] or (tid == last_read[0] and pos < last_read[1]):
            return STATUS_UNSORTED, r
        last_read[0] = tid
        last_read[1] = pos
        cigar_off = o + 36 + l_read_name
        seq_off = cigar_off + 4 * n_cigar
        qual_off = seq_off + (l_seq + 1) // 2
        if qual_off + l_seq > end or l_seq < 0:
            return STATUS_MALFORMED, r
        # later reads start at or after pos: sites before it are done with
        j = next_site[tid]
        stop = tid_start[tid + 1]
        while j < stop and site_pos[j] < pos:
            j += 1
        next_site[tid] = j
        if flag & SKIP_FLAGS or mapq < min_mapq or j >= stop:
            continue
        rpos = pos
        qpos = np.int64(0)
        for c in range(n_cigar):
            word = _u32(buf, cigar_off + 4 * c)
            op = np.int64(word & 0xF)
            length = np.int64(word >> 4)
            if op == 0 or op == 7 or op == 8:  # M = X
                op_end = rpos + length
                while j < stop and site_pos[j] < rpos:
                    j += 1  # sites in a deletion / skip before this block
                while j < stop and site_pos[j] < op_end:
                    q = qpos + (site_pos[j] - rpos)
                    if q < l_seq and buf[qual_off + q] >= min_baseq:
                        byte = buf[seq_off + (q >> 1)]
                        base = (byte >> 4) if (q & 1) == 0 else (byte & 0xF)
                        row = site_row[j]
                        if base == site_ref[j]:
                            counts[row, 0] += 1
                        elif base == site_alt[j]:
                            counts[row, 1] += 1
                        else:
                            counts[row, 2] += 1
                    j += 1
                rpos = op_end
                qpos += length
            elif op == 1 or op == 4:  # I S
                qpos += length
            elif op == 2 or op == 3:  # D N
                rpos += length
            # H P: nothing
            if j >= stop:
                break
    return STATUS_OK, np.int64(-1)
