"""A fast, seeded generator of a realistic coordinate-sorted paired-end BAM (benchmarks' input).

    from _bam_generator import cached_bam
    bam, fasta = cached_bam(pairs=5_000_000)        # benchmarks/out/cache/..., built once

    .venv/bin/python benchmarks/_bam_generator.py --pairs 5000000   # build (or find) and validate

What the file holds (all drawn from ``seed``; the same parameters give the same bytes):
- a human-like header: contigs 1..22, X, Y at 1/``scale`` of GRCh38's lengths (scale 16: 193 Mb,
  ~7-8x depth from 5 M pairs) plus MT at full length (16,569 bp, very deep as in real data), @RG
  with SM, @PG; a random reference sequence, written beside the BAM as FASTA + .fai, from which the
  reads are copied, so NM and MD agree with it (``--reference`` works);
- a male sample: X and Y at half the autosomes' depth;
- 2 x ``read_len`` reads, insert size ~ N(350, 60) (so ~20% of mates overlap), FR orientation,
  MAPQ mostly 60 with 4% at 0; ~8% of pairs are duplicates (same outer coordinates as an earlier
  pair, flag 0x400), ~1% have an unmapped mate placed at its partner, 0.2% are unmapped pairs at
  the end, 0.3% are QC-failed, 0.2% have a secondary and 0.3% a supplementary (hard-clipped)
  alignment; 5% of reads carry a 5' and 5% a 3' soft clip, 4% a 1-4 bp insertion or deletion;
  Poisson(0.6) mismatches per read; qualities from a pool of Illumina-like profiles (falling along
  the read, some Q2 tails), reversed for reverse-strand reads; NM, MD, AS and RG tags.

Speed: the record bytes are written by a numba kernel (per-record hash RNG, so chunks are
independent), BGZF blocks are deflated by ISA-L in threads (it releases the GIL), records never
straddle a block (as htslib writes them), then ``samtools index``. 5 M pairs take about a minute
on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from isal import isal_zlib

GENERATOR_VERSION = 1  # bump when the output changes: it is part of the cache key
CACHE_DIR = Path(__file__).resolve().parent / "out" / "cache"

GRCH38_LENGTHS = [
    ("1", 248956422), ("2", 242193529), ("3", 198295559), ("4", 190214555), ("5", 181538259),
    ("6", 170805979), ("7", 159345973), ("8", 145138636), ("9", 138394717), ("10", 133797422),
    ("11", 135086622), ("12", 133275309), ("13", 114364328), ("14", 107043718), ("15", 101991189),
    ("16", 90338345), ("17", 83257441), ("18", 80373285), ("19", 58617616), ("20", 64444167),
    ("21", 46709983), ("22", 50818468), ("X", 156040895), ("Y", 57227415),
]
MT_LENGTH = 16569
MT_READ_FRACTION = 0.002  # of pairs: ~0.2% of reads from the mitochondrion, as in blood WGS

BGZF_MAX_DATA = 0xFF00  # htslib's BGZF_BLOCK_SIZE: uncompressed bytes per block
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")

# record kinds
KIND_MAPPED, KIND_UNMAPPED, KIND_SUPPLEMENTARY = 0, 1, 2
INDEL_NONE, INDEL_INS, INDEL_DEL = 0, 1, 2

RG_ID = "bench"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# ---------------------------------------------------------------- numba kernels (pure, on arrays)

@numba.njit(cache=True, nogil=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _next(state):
    """splitmix64 step: (new state, 64 random bits)."""
    state = state + _GOLDEN
    return state, _mix64(state)


@numba.njit(cache=True, nogil=True, inline="always")
def _put_i32(out, o, v):
    out[o] = v & 255
    out[o + 1] = (v >> 8) & 255
    out[o + 2] = (v >> 16) & 255
    out[o + 3] = (v >> 24) & 255


@numba.njit(cache=True, nogil=True, inline="always")
def _put_u16(out, o, v):
    out[o] = v & 255
    out[o + 1] = (v >> 8) & 255


@numba.njit(cache=True, nogil=True)
def _put_decimal(out, o, v):
    """Write non-negative ``v`` in decimal at ``o``; returns the new offset."""
    if v == 0:
        out[o] = 48
        return o + 1
    n = 0
    t = v
    while t > 0:
        t //= 10
        n += 1
    for k in range(n - 1, -1, -1):
        out[o + k] = 48 + v % 10
        v //= 10
    return o + n


@numba.njit(cache=True, nogil=True)
def _reg2bin(beg, end):
    end -= 1
    if beg >> 14 == end >> 14:
        return ((1 << 15) - 1) // 7 + (beg >> 14)
    if beg >> 17 == end >> 17:
        return ((1 << 12) - 1) // 7 + (beg >> 17)
    if beg >> 20 == end >> 20:
        return ((1 << 9) - 1) // 7 + (beg >> 20)
    if beg >> 23 == end >> 23:
        return ((1 << 6) - 1) // 7 + (beg >> 23)
    if beg >> 26 == end >> 26:
        return ((1 << 3) - 1) // 7 + (beg >> 26)
    return 0


@numba.njit(cache=True, nogil=True)
def write_records(order, first, last, seed, read_len, ref, contig_start, qual_pool,
                  tid, pos, flag, mapq, mtid, mpos, tlen, pair, kind,
                  clip_l, clip_r, indel_type, indel_len, indel_off, hard_clip,
                  out, rec_end):
    """Serialise records ``order[first:last]`` as BAM record bytes into ``out``.

    ``rec_end[k]`` receives the end offset of the k-th record. Every random draw comes from a
    hash of (seed, record index), so any chunking gives the same bytes. Returns bytes written.
    """
    nt16 = np.array([1, 2, 4, 8], dtype=np.uint8)
    base_char = np.array([65, 67, 71, 84], dtype=np.uint8)  # ACGT
    name_prefix = np.array([83, 73, 77, 58, 49, 58, 72, 66, 78, 67, 72, 68, 83, 88, 51, 58, 49, 58],
                           dtype=np.uint8)  # "SIM:1:HBNCHDSX3:1:"
    cig_len = np.zeros(8, dtype=np.int64)
    cig_op = np.zeros(8, dtype=np.int64)
    seq = np.zeros(read_len + 8, dtype=np.uint8)  # 0-3 codes
    mism = np.zeros(8, dtype=np.int64)
    md = np.zeros(4 * read_len + 64, dtype=np.uint8)
    n_pool = qual_pool.shape[0]
    o = 0
    for k in range(first, last):
        r = order[k]
        state = _mix64(np.uint64(seed) * _GOLDEN + np.uint64(r) + np.uint64(1))
        start = o
        o += 4  # block_size, filled at the end
        t = tid[r]
        p = pos[r]
        f = flag[r]
        kd = kind[r]
        reverse = (f & 16) != 0
        # ---- CIGAR
        n_op = 0
        if kd == KIND_MAPPED:
            m_total = read_len - clip_l[r] - clip_r[r]
            if indel_type[r] == INDEL_INS:
                m_total -= indel_len[r]
            if clip_l[r] > 0:
                cig_op[n_op] = 4
                cig_len[n_op] = clip_l[r]
                n_op += 1
            if indel_type[r] == INDEL_NONE:
                cig_op[n_op] = 0
                cig_len[n_op] = m_total
                n_op += 1
            else:
                cig_op[n_op] = 0
                cig_len[n_op] = indel_off[r]
                cig_op[n_op + 1] = 1 if indel_type[r] == INDEL_INS else 2
                cig_len[n_op + 1] = indel_len[r]
                cig_op[n_op + 2] = 0
                cig_len[n_op + 2] = m_total - indel_off[r]
                n_op += 3
            if clip_r[r] > 0:
                cig_op[n_op] = 4
                cig_len[n_op] = clip_r[r]
                n_op += 1
        elif kd == KIND_SUPPLEMENTARY:
            # the clipped part is the other (primary) alignment's: 5' end of the read
            h = hard_clip[r]
            if reverse:
                cig_op[0] = 0
                cig_len[0] = read_len - h
                cig_op[1] = 5
                cig_len[1] = h
            else:
                cig_op[0] = 5
                cig_len[0] = h
                cig_op[1] = 0
                cig_len[1] = read_len - h
            n_op = 2
            m_total = read_len - h
        else:
            m_total = 0
        l_seq = 0
        ref_span = 0
        for i in range(n_op):
            op = cig_op[i]
            if op == 0 or op == 1 or op == 4:
                l_seq += cig_len[i]
            if op == 0 or op == 2:
                ref_span += cig_len[i]
        # ---- sequence (0-3 codes), mismatches, MD, NM
        nm = 0
        md_n = 0
        if kd == KIND_UNMAPPED:
            l_seq = read_len
            for i in range(l_seq):
                state, v = _next(state)
                seq[i] = np.int64(v & np.uint64(3))
        else:
            # mismatch count ~ Poisson(0.6), by inversion
            state, v = _next(state)
            u = (v >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            term = np.exp(-0.6)
            cum = term
            n_mm = 0
            while u > cum and n_mm < 6:
                n_mm += 1
                term *= 0.6 / n_mm
                cum += term
            for i in range(n_mm):
                state, v = _next(state)
                mism[i] = np.int64(v % np.uint64(m_total))
            q = 0  # query position
            rp = contig_start[t] + p  # reference position (index in ref)
            m_index = 0  # index among M bases
            run = 0
            for i in range(n_op):
                op = cig_op[i]
                ln = cig_len[i]
                if op == 4 or op == 1:
                    for j in range(ln):
                        state, v = _next(state)
                        seq[q] = np.int64(v & np.uint64(3))
                        q += 1
                    if op == 1:
                        nm += ln
                elif op == 0:
                    for j in range(ln):
                        b = ref[rp]
                        hit = False
                        for z in range(n_mm):
                            if mism[z] == m_index:
                                hit = True
                        if hit:
                            state, v = _next(state)
                            seq[q] = (np.int64(b) + 1 + np.int64(v % np.uint64(3))) & 3
                            md_n = _put_decimal(md, md_n, run)
                            md[md_n] = base_char[b]
                            md_n += 1
                            run = 0
                            nm += 1
                        else:
                            seq[q] = b
                            run += 1
                        q += 1
                        rp += 1
                        m_index += 1
                elif op == 2:
                    md_n = _put_decimal(md, md_n, run)
                    md[md_n] = 94  # '^'
                    md_n += 1
                    for j in range(ln):
                        md[md_n] = base_char[ref[rp]]
                        md_n += 1
                        rp += 1
                    run = 0
                    nm += ln
            md_n = _put_decimal(md, md_n, run)
        # ---- fixed fields
        if kd == KIND_UNMAPPED:
            bin_ = 4680 if p < 0 else _reg2bin(p, p + 1)
        else:
            bin_ = _reg2bin(p, p + ref_span)
        _put_i32(out, o, t)
        _put_i32(out, o + 4, p)
        name_pos = o + 32
        # read name: prefix + tile:x:y from the pair number
        no = name_pos
        for i in range(name_prefix.shape[0]):
            out[no] = name_prefix[i]
            no += 1
        pr = pair[r]
        no = _put_decimal(out, no, 1101 + pr // 4000000)
        out[no] = 58  # ':'
        no = _put_decimal(out, no + 1, 1000 + (pr // 2000) % 2000)
        out[no] = 58
        no = _put_decimal(out, no + 1, 1000 + pr % 2000)
        out[no] = 0
        no += 1
        l_name = no - name_pos
        out[o + 8] = l_name
        out[o + 9] = mapq[r]
        _put_u16(out, o + 10, bin_)
        _put_u16(out, o + 12, n_op)
        _put_u16(out, o + 14, f)
        _put_i32(out, o + 16, l_seq)
        _put_i32(out, o + 20, mtid[r])
        _put_i32(out, o + 24, mpos[r])
        _put_i32(out, o + 28, tlen[r])
        o = no
        for i in range(n_op):
            _put_i32(out, o, (cig_len[i] << 4) | cig_op[i])
            o += 4
        for i in range(0, l_seq, 2):
            hi = nt16[seq[i]]
            lo = nt16[seq[i + 1]] if i + 1 < l_seq else 0
            out[o] = (hi << 4) | lo
            o += 1
        # qualities: a pool profile by sequencing cycle; the hard-clipped part of a supplementary
        # read is its first cycles; reverse-strand reads are stored reversed
        state, v = _next(state)
        prof = np.int64(v % np.uint64(n_pool))
        skip = hard_clip[r] if kd == KIND_SUPPLEMENTARY else 0
        for i in range(l_seq):
            if reverse:
                out[o + i] = qual_pool[prof, skip + l_seq - 1 - i]
            else:
                out[o + i] = qual_pool[prof, skip + i]
        o += l_seq
        # ---- aux: NM:C MD:Z AS:C RG:Z (unmapped: RG only)
        if kd != KIND_UNMAPPED:
            out[o] = 78
            out[o + 1] = 77
            out[o + 2] = 67
            out[o + 3] = nm
            o += 4
            out[o] = 77
            out[o + 1] = 68
            out[o + 2] = 90
            o += 3
            for i in range(md_n):
                out[o + i] = md[i]
            o += md_n
            out[o] = 0
            o += 1
            score = m_total - 5 * nm
            if score < 0:
                score = 0
            out[o] = 65
            out[o + 1] = 83
            out[o + 2] = 67
            out[o + 3] = score
            o += 4
        out[o] = 82
        out[o + 1] = 71
        out[o + 2] = 90
        out[o + 3] = 98  # "bench"
        out[o + 4] = 101
        out[o + 5] = 110
        out[o + 6] = 99
        out[o + 7] = 104
        out[o + 8] = 0
        o += 9
        _put_i32(out, start, o - start - 4)
        rec_end[k - first] = o
    return o


@numba.njit(cache=True, nogil=True)
def block_cuts(rec_end, n, max_block):
    """End offsets of BGZF blocks holding whole records, each at most ``max_block`` bytes."""
    cuts = np.empty(n + 1, dtype=np.int64)
    n_cuts = 0
    block_start = 0
    prev = 0
    for k in range(n):
        e = rec_end[k]
        if e - block_start > max_block and prev > block_start:
            cuts[n_cuts] = prev
            n_cuts += 1
            block_start = prev
        prev = e
    if prev > block_start:
        cuts[n_cuts] = prev
        n_cuts += 1
    return cuts[:n_cuts]


# ---------------------------------------------------------------- layout (numpy, vectorised)

def genome(scale: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Contig names, lengths and read-density weights (a male: X and Y haploid)."""
    names = [n for n, _ in GRCH38_LENGTHS] + ["MT"]
    lengths = np.array([max(10_000, ln // scale) for _, ln in GRCH38_LENGTHS] + [MT_LENGTH], dtype=np.int64)
    ploidy = np.array([2.0] * 22 + [1.0, 1.0])
    w = lengths[:-1] * ploidy
    w = w / w.sum() * (1.0 - MT_READ_FRACTION)
    return names, lengths, np.append(w, MT_READ_FRACTION)


def quality_pool(rng: np.random.Generator, read_len: int, n: int = 4096) -> np.ndarray:
    """Illumina-like per-cycle quality profiles (phred values): high, falling toward the 3' end,
    occasional low bases, 3% with a Q2 tail."""
    cycle = np.arange(read_len) / read_len
    mean = 37.0 - 7.0 * cycle ** 2
    q = np.rint(rng.normal(mean, 2.5, size=(n, read_len)))
    dips = rng.random((n, read_len)) < 0.02
    q[dips] = rng.integers(8, 25, size=int(dips.sum()))
    q = np.clip(q, 2, 41)
    tail = np.nonzero(rng.random(n) < 0.03)[0]
    for i, s in zip(tail, rng.integers(int(0.7 * read_len), read_len, size=tail.size)):
        q[i, s:] = 2
    return q.astype(np.uint8)


def layout(n_pairs: int, rng: np.random.Generator, lengths: np.ndarray, weights: np.ndarray,
           read_len: int) -> dict[str, np.ndarray]:
    """Per-record fields of all records (unsorted) as arrays."""
    N = n_pairs
    n_contig = lengths.size
    u = rng.random(N)
    both_unmapped = u < 0.002
    mate_unmapped = (u >= 0.002) & (u < 0.012)
    contig = rng.choice(n_contig, size=N, p=weights).astype(np.int32)
    insert = np.clip(np.rint(rng.normal(350, 60, N)), read_len + 10, 1000).astype(np.int64)
    insert = np.minimum(insert, lengths[contig] - 1)
    left = (rng.random(N) * (lengths[contig] - insert)).astype(np.int64)
    r1_left = rng.random(N) < 0.5

    def cigars(n):
        cl = np.where(rng.random(n) < 0.05, rng.integers(1, 40, n), 0)
        cr = np.where(rng.random(n) < 0.05, rng.integers(1, 40, n), 0)
        it = np.where(rng.random(n) < 0.04, rng.integers(1, 3, n), INDEL_NONE)
        il = np.where(it != INDEL_NONE, np.minimum(rng.geometric(0.5, n), 4), 0)
        m = read_len - cl - cr - np.where(it == INDEL_INS, il, 0)
        off = (20 + rng.random(n) * (m - 40)).astype(np.int64)
        span = m + np.where(it == INDEL_DEL, il, 0)
        return cl, cr, it, il, off, span

    la = cigars(N)
    lb = cigars(N)
    # duplicates: copies of an earlier ordinary pair's coordinates and alignments
    ordinary = ~(both_unmapped | mate_unmapped)
    dup = ordinary & (rng.random(N) < 0.08 / 0.988)
    src_pool = np.nonzero(ordinary & ~dup)[0]
    src = src_pool[rng.integers(0, src_pool.size, N)]
    for a in (contig, insert, left):
        a[dup] = a[src[dup]]
    for a in la + lb:
        a[dup] = a[src[dup]]
    qcfail = rng.random(N) < 0.003
    mapq_a = np.where(rng.random(N) < 0.93, 60, np.where(rng.random(N) < 0.6, 0, rng.integers(1, 60, N)))
    mapq_b = np.where(rng.random(N) < 0.93, 60, np.where(rng.random(N) < 0.6, 0, rng.integers(1, 60, N)))
    mapped_reverse = rng.random(N) < 0.5  # strand of the mapped read of a mate-unmapped pair

    pos_a = left
    pos_b = left + insert - lb[5]
    end_a = left + la[5]
    end_b = left + insert
    extra = (dup * 1024) | (qcfail * 512)
    fa = np.where(r1_left, 64, 128) | 1 | 2 | 32 | extra
    fb = np.where(r1_left, 128, 64) | 1 | 2 | 16 | extra
    tl = (np.maximum(end_a, end_b) - pos_a)
    tlen_a, tlen_b = tl, -tl
    mt_a, mp_a, mt_b, mp_b = contig.copy(), pos_b.copy(), contig.copy(), pos_a.copy()
    kind_b = np.full(N, KIND_MAPPED)
    # mate unmapped: a = the mapped read, b = its unmapped mate at the same place
    mu = mate_unmapped
    fa = np.where(mu, np.where(r1_left, 64, 128) | 1 | 8 | (mapped_reverse * 16) | extra, fa)
    fb = np.where(mu, np.where(r1_left, 128, 64) | 1 | 4 | (mapped_reverse * 32) | extra, fb)
    pos_b = np.where(mu, pos_a, pos_b)
    mp_a = np.where(mu, pos_a, mp_a)
    tlen_a = np.where(mu, 0, tlen_a)
    tlen_b = np.where(mu, 0, tlen_b)
    kind_b[mu] = KIND_UNMAPPED
    mapq_b = np.where(mu, 0, mapq_b)
    # both unmapped: at the end of the file
    bu = both_unmapped
    fa = np.where(bu, 77 | extra, fa)
    fb = np.where(bu, 141 | extra, fb)
    contig_a = np.where(bu, -1, contig)
    contig_b = contig_a.copy()
    pos_a = np.where(bu, -1, pos_a)
    pos_b = np.where(bu, -1, pos_b)
    mt_a = np.where(bu, -1, mt_a)
    mt_b = np.where(bu, -1, mt_b)
    mp_a = np.where(bu, -1, mp_a)
    mp_b = np.where(bu, -1, mp_b)
    tlen_a = np.where(bu, 0, tlen_a)
    tlen_b = np.where(bu, 0, tlen_b)
    mapq_a = np.where(bu, 0, mapq_a)
    mapq_b = np.where(bu, 0, mapq_b)
    kind_a = np.where(bu, KIND_UNMAPPED, KIND_MAPPED)
    kind_b[bu] = KIND_UNMAPPED

    rec = {
        "tid": np.column_stack([contig_a, contig_b]).ravel(),
        "pos": np.column_stack([pos_a, pos_b]).ravel(),
        "flag": np.column_stack([fa, fb]).ravel(),
        "mapq": np.column_stack([mapq_a, mapq_b]).ravel(),
        "mtid": np.column_stack([mt_a, mt_b]).ravel(),
        "mpos": np.column_stack([mp_a, mp_b]).ravel(),
        "tlen": np.column_stack([tlen_a, tlen_b]).ravel(),
        "pair": np.repeat(np.arange(N), 2),
        "kind": np.column_stack([kind_a, kind_b]).ravel(),
        "clip_l": np.column_stack([la[0], lb[0]]).ravel(),
        "clip_r": np.column_stack([la[1], lb[1]]).ravel(),
        "indel_type": np.column_stack([la[2], lb[2]]).ravel(),
        "indel_len": np.column_stack([la[3], lb[3]]).ravel(),
        "indel_off": np.column_stack([la[4], lb[4]]).ravel(),
        "hard_clip": np.zeros(2 * N, dtype=np.int64),
    }
    # secondary (0.2%) and supplementary (0.3%) alignments of read a of ordinary pairs
    for share, is_supp in ((0.002, False), (0.003, True)):
        idx = np.nonzero(ordinary & (rng.random(N) < share))[0]
        n = idx.size
        c = rng.choice(n_contig - 1, size=n, p=weights[:-1] / weights[:-1].sum()).astype(np.int32)
        p = (rng.random(n) * (lengths[c] - 2 * read_len)).astype(np.int64)
        rev = rng.random(n) < 0.5
        pairing = (np.where(r1_left[idx], 64, 128) | 1 | 32 | extra[idx] | (rev * 16))
        flag = pairing | (2048 if is_supp else 256)
        new = {
            "tid": c, "pos": p, "flag": flag,
            "mapq": np.where(is_supp, rng.integers(20, 61, n), 0),
            "mtid": contig[idx], "mpos": pos_b[idx], "tlen": np.zeros(n, np.int64),
            "pair": idx, "kind": np.full(n, KIND_SUPPLEMENTARY if is_supp else KIND_MAPPED),
            "clip_l": np.zeros(n, np.int64), "clip_r": np.zeros(n, np.int64),
            "indel_type": np.zeros(n, np.int64), "indel_len": np.zeros(n, np.int64),
            "indel_off": np.zeros(n, np.int64),
            "hard_clip": rng.integers(30, read_len - 30, n) if is_supp else np.zeros(n, np.int64),
        }
        for k in rec:
            rec[k] = np.concatenate([rec[k], new[k]])
    dtypes = {"tid": np.int32, "pos": np.int32, "flag": np.int32, "mapq": np.uint8, "mtid": np.int32,
              "mpos": np.int32, "tlen": np.int32, "pair": np.int64, "kind": np.uint8,
              "clip_l": np.int64, "clip_r": np.int64, "indel_type": np.uint8, "indel_len": np.int64,
              "indel_off": np.int64, "hard_clip": np.int64}
    return {k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in rec.items()}


# ---------------------------------------------------------------- I/O

def bgzf_block(data) -> bytes:
    """One BGZF block (a gzip member with the BC extra field) holding ``data`` (<= 64 KiB)."""
    cdata = isal_zlib.compress(data, 2, -15)  # ISA-L level 2: about zlib 6's ratio, 5x its speed
    crc = isal_zlib.crc32(data)
    return b"".join((struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, 66, 67, 2,
                                 len(cdata) + 25), cdata, struct.pack("<II", crc, len(data))))


def bam_header(names: list[str], lengths: np.ndarray, argv: str) -> bytes:
    text = "@HD\tVN:1.6\tSO:coordinate\n"
    text += "".join(f"@SQ\tSN:{n}\tLN:{ln}\tAS:bench-GRCh38-scaled\n" for n, ln in zip(names, lengths))
    text += f"@RG\tID:{RG_ID}\tSM:BENCH01\tLB:lib1\tPL:ILLUMINA\tPU:HBNCHDSX3.1\n"
    text += f"@PG\tID:bench-bam-generator\tPN:_bam_generator.py\tVN:{GENERATOR_VERSION}\tCL:{argv}\n"
    tb = text.encode()
    out = [b"BAM\x01", struct.pack("<i", len(tb)), tb, struct.pack("<i", len(names))]
    for n, ln in zip(names, lengths):
        nb = n.encode() + b"\0"
        out += [struct.pack("<i", len(nb)), nb, struct.pack("<i", int(ln))]
    return b"".join(out)


def write_fasta(path: Path, names: list[str], lengths: np.ndarray, ref: np.ndarray, starts: np.ndarray) -> None:
    """FASTA, 60 bases a line, and its .fai."""
    width = 60
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fai = []
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        offset = 0
        for n, ln, s in zip(names, lengths, starts):
            head = f">{n}\n".encode()
            fh.write(head)
            offset += len(head)
            fai.append(f"{n}\t{ln}\t{offset}\t{width}\t{width + 1}\n")
            seq = letters[ref[s:s + ln]]
            full = ln // width
            lines = np.empty((full, width + 1), dtype=np.uint8)
            lines[:, :width] = seq[:full * width].reshape(full, width)
            lines[:, width] = 10
            fh.write(lines.tobytes())
            rest = seq[full * width:].tobytes()
            if rest:
                fh.write(rest + b"\n")
            offset += full * (width + 1) + (len(rest) + 1 if rest else 0)
    os.replace(tmp, path)
    Path(str(path) + ".fai").write_text("".join(fai))


def generate_bam(bam: Path, fasta: Path | None, *, pairs: int, seed: int = 1, read_len: int = 150,
                 scale: int = 16, threads: int = 2, chunk_records: int = 200_000) -> None:
    """Write the BAM (and the reference FASTA if ``fasta``), then index the BAM."""
    rng = np.random.default_rng(seed)
    names, lengths, weights = genome(scale)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    ref = rng.integers(0, 4, size=int(lengths.sum()), dtype=np.uint8)
    if fasta is not None:
        write_fasta(fasta, names, lengths, ref, starts)
    pool = quality_pool(rng, read_len)
    rec = layout(pairs, rng, lengths, weights, read_len)
    key = np.where(rec["tid"] < 0, np.int64(1) << 62,
                   (rec["tid"].astype(np.int64) << 32) | rec["pos"].astype(np.int64))
    order = np.argsort(key, kind="stable")
    del key
    n_rec = order.size
    argv = " ".join(["_bam_generator.py", f"--pairs {pairs}", f"--seed {seed}", f"--read-len {read_len}",
                     f"--scale {scale}"])
    fields = [rec[k] for k in ("tid", "pos", "flag", "mapq", "mtid", "mpos", "tlen", "pair", "kind",
                               "clip_l", "clip_r", "indel_type", "indel_len", "indel_off", "hard_clip")]
    per_record = 2 * read_len + 320

    def chunk(first: int) -> list[bytes]:
        last = min(first + chunk_records, n_rec)
        out = np.empty((last - first) * per_record, dtype=np.uint8)
        ends = np.empty(last - first, dtype=np.int64)
        write_records(order, first, last, seed, read_len, ref, starts, pool, *fields, out, ends)
        cuts = block_cuts(ends, last - first, BGZF_MAX_DATA)
        mv = memoryview(out)
        blocks, prev = [], 0
        for c in cuts:
            blocks.append(bgzf_block(mv[prev:c]))
            prev = int(c)
        return blocks

    tmp = bam.with_name(bam.name + ".tmp")
    with open(tmp, "wb") as fh, ThreadPoolExecutor(threads) as pool_ex:
        header = bam_header(names, lengths, argv)
        for i in range(0, len(header), BGZF_MAX_DATA):
            fh.write(bgzf_block(header[i:i + BGZF_MAX_DATA]))
        pending: deque = deque()
        for first in range(0, n_rec, chunk_records):
            pending.append(pool_ex.submit(chunk, first))
            if len(pending) > threads + 1:
                fh.writelines(pending.popleft().result())
        while pending:
            fh.writelines(pending.popleft().result())
        fh.write(BGZF_EOF)
    os.replace(tmp, bam)
    subprocess.run(["samtools", "index", "-@", str(threads), str(bam)], check=True)


def cache_paths(*, pairs: int, seed: int = 1, read_len: int = 150, scale: int = 16,
                cache_dir: Path = CACHE_DIR) -> tuple[Path, Path]:
    tag = f"s{seed}_x{scale}_v{GENERATOR_VERSION}"
    return (cache_dir / f"bench_{pairs}pairs_{read_len}bp_{tag}.bam", cache_dir / f"bench_ref_{tag}.fa")


def cached_bam(*, pairs: int, seed: int = 1, read_len: int = 150, scale: int = 16, threads: int = 2,
               cache_dir: Path = CACHE_DIR, verbose: bool = True) -> tuple[Path, Path]:
    """The generated BAM and its reference FASTA, built on first use and kept in ``cache_dir``."""
    bam, fasta = cache_paths(pairs=pairs, seed=seed, read_len=read_len, scale=scale, cache_dir=cache_dir)
    bai = Path(str(bam) + ".bai")
    if bam.exists() and bai.exists() and fasta.exists():
        return bam, fasta
    cache_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    generate_bam(bam, None if fasta.exists() else fasta, pairs=pairs, seed=seed, read_len=read_len,
                 scale=scale, threads=threads)
    if verbose:
        print(f"generated {bam} ({bam.stat().st_size / 2**20:.0f} MB, {pairs} pairs) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    return bam, fasta


def validate(bam: Path) -> str:
    """samtools quickcheck + flagstat; raises if samtools rejects the file. Returns the flagstat."""
    subprocess.run(["samtools", "quickcheck", "-vvv", str(bam)], check=True)
    subprocess.run(["samtools", "view", "-c", str(bam), "1:1-1000000"], check=True, capture_output=True)
    return subprocess.run(["samtools", "flagstat", "-@", "2", str(bam)], check=True, capture_output=True,
                          text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--read-len", type=int, default=150)
    ap.add_argument("--scale", type=int, default=16, help="contigs at 1/SCALE of GRCh38's lengths")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write here instead of the cache (FASTA beside it)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.out:
        bam = args.out
        generate_bam(bam, bam.with_suffix(".fa"), pairs=args.pairs, seed=args.seed, read_len=args.read_len,
                     scale=args.scale, threads=args.threads)
    else:
        bam, _ = cached_bam(pairs=args.pairs, seed=args.seed, read_len=args.read_len, scale=args.scale,
                            threads=args.threads)
    print(f"{bam} ready in {time.perf_counter() - t0:.1f} s")
    print(validate(bam), end="")


if __name__ == "__main__":
    main()
