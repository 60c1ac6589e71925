"""numba kernels for KING-robust kinship: pure functions on numpy arrays, no I/O.

Genotypes arrive as raw PLINK 1 .bed bytes (2-bit codes, low bits first: 00 hom A1, 01 missing,
10 het, 11 hom A2) and are turned, by 64 x 64 bit-matrix transposes, into sample-major bit planes:
for every sample, one 64-bit word per 64 variants in each of the planes ``het``, ``hom A1``,
``hom A2`` (``geno_planes``) and ``missing`` (``missing_plane``). Words are grouped in sub-blocks
of ``SUB_WORDS`` words, stored ``(sub-block, sample, plane, word)`` so that a tile of samples over
one sub-block stays in L2 while its pairs are counted.

For a pair of samples (i, j) the kernels count, with AND and popcount per word,

- ``hethet`` = #(het_i & het_j), ``ibs0`` = #(homA1_i & homA2_j | homA2_i & homA1_j),
- ``het_i & miss_j``, ``miss_i & het_j``, ``miss_i & miss_j`` (only on sub-blocks where i or j has
  a missing call; elsewhere they are zero, which halves the work on complete data).

With the per-sample totals of het and missing calls these give every count plink2 reports:
``het_i hom_j = het_i - hethet - #(het_i & miss_j)``, ``NSNP = M - miss_i - miss_j + #(miss_i &
miss_j)``. All counts are integers, so results do not depend on the thread count or tiling.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from cohortflow.numfmt import put_g, put_int

SUB_WORDS = 32  # 2048 variants per sub-block: a 64-sample tile of it is 48 KiB (L2)
TILE = 64  # samples per side of a pair tile (measured best of 16/32/64 with SUB_WORDS 32/64/128)
N_COUNTS = 5  # hethet, ibs0, het_i&miss_j, miss_i&het_j, miss_i&miss_j
C_HETHET, C_IBS0, C_HET_MISS, C_MISS_HET, C_MISS_MISS = range(N_COUNTS)


@intrinsic
def popcount64(typingctx, word):
    """Number of set bits of a uint64 (LLVM ctpop: one instruction, vectorised in loops)."""
    if not isinstance(word, types.Integer) or word.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        (value,) = args
        fn = builder.module.declare_intrinsic("llvm.ctpop", [value.type])
        return builder.call(fn, [value])

    # int64 result: numba would turn int64 + uint64 into float64
    return types.int64(word), codegen


@numba.njit(cache=True, parallel=True)
def gather_rows(packed: np.ndarray, rows: np.ndarray, sample_idx: np.ndarray, all_samples: bool,
                out: np.ndarray) -> None:
    """Copy the .bed rows ``rows`` of ``packed`` (uint8, variants x bytes) into ``out`` (uint8,
    at least len(rows) x a multiple of 8 bytes, zeroed), keeping only the samples ``sample_idx``
    (int64, ascending) packed from bit 0; with ``all_samples`` the bytes are copied as they are."""
    nb = packed.shape[1]
    n = sample_idx.size
    for v in numba.prange(rows.size):
        src = packed[rows[v]]
        dst = out[v]
        if all_samples:
            for c in range(nb):
                dst[c] = src[c]
        else:
            for s in range(n):
                t = sample_idx[s]
                code = (src[t >> 2] >> ((t & 3) * 2)) & 3
                dst[s >> 2] |= np.uint8(code << ((s & 3) * 2))


@numba.njit(cache=True, inline="always")
def _transpose64(a: np.ndarray) -> None:
    """In-place transpose of a 64 x 64 bit matrix (row r = a[r], column c = bit c)."""
    j = 32
    m = np.uint64(0x00000000FFFFFFFF)
    while j != 0:
        sj = np.uint64(j)
        k = 0
        while k < 64:
            t = ((a[k] >> sj) ^ a[k + j]) & m
            a[k + j] ^= t
            a[k] ^= t << sj
            k = (k + j + 1) & ~j
        j >>= 1
        m ^= m << np.uint64(j)


@numba.njit(cache=True, parallel=True)
def rows_to_bitplanes(rows64: np.ndarray, n_var: int, n: int, geno_planes: np.ndarray,
                      missing_plane: np.ndarray) -> None:
    """Sample-major bit planes of one chunk of variants.

    ``rows64``: the chunk's .bed rows as uint64 (at least ``64 * ceil(n_var / 64)`` rows; each word
    holds 32 samples' 2-bit codes; rows past ``n_var`` are ignored). Fills ``geno_planes``
    (uint64 ``(n_sub, n, 3, SUB_WORDS)``: het, hom A1, hom A2) and ``missing_plane`` (uint64
    ``(n_sub, n, SUB_WORDS)``) for words 0..ceil(n_var / 64) - 1; bit b of word w = variant
    64 w + b. Each 64 variants x 32 samples block becomes two 64 x 64 bit transposes: one of
    (het | missing << 1) and one of (hom A1 | hom A2 << 1) per sample bit pair.
    """
    n_words = (n_var + 63) // 64
    n_groups = (n + 31) // 32
    even = np.uint64(0x5555555555555555)
    for w in numba.prange(n_words):
        het_miss = np.empty(64, dtype=np.uint64)
        homs = np.empty(64, dtype=np.uint64)
        n_valid = min(64, n_var - w * 64)
        valid = np.uint64(0xFFFFFFFFFFFFFFFF)
        if n_valid < 64:
            valid = (np.uint64(1) << np.uint64(n_valid)) - np.uint64(1)
        sub = w // SUB_WORDS
        k = w - sub * SUB_WORDS
        for g in range(n_groups):
            for v in range(64):
                x = rows64[w * 64 + v, g] if v < n_valid else np.uint64(0)
                lo = x & even
                hi = (x >> np.uint64(1)) & even
                # codes: 00 hom A1, 01 missing, 10 het, 11 hom A2 (lo = low bit)
                het_miss[v] = (hi & ~lo) | ((lo & ~hi) << np.uint64(1))
                homs[v] = (~(lo | hi) & even) | ((lo & hi) << np.uint64(1))
            _transpose64(het_miss)
            _transpose64(homs)
            for q in range(min(32, n - g * 32)):
                s = g * 32 + q
                geno_planes[sub, s, 0, k] = het_miss[2 * q] & valid
                missing_plane[sub, s, k] = het_miss[2 * q + 1] & valid
                geno_planes[sub, s, 1, k] = homs[2 * q] & valid
                geno_planes[sub, s, 2, k] = homs[2 * q + 1] & valid


@numba.njit(cache=True, parallel=True)
def plane_totals(geno_planes: np.ndarray, missing_plane: np.ndarray, het_total: np.ndarray,
                 miss_total: np.ndarray, miss_any: np.ndarray) -> None:
    """Add each sample's het and missing call counts of the chunk to ``het_total`` /
    ``miss_total`` (int64, n) and set ``miss_any[sub, s]`` (bool) when sample s has a missing call
    in sub-block ``sub``."""
    n_sub, n = missing_plane.shape[0], missing_plane.shape[1]
    for s in numba.prange(n):
        h = 0
        m = 0
        for sub in range(n_sub):
            ms = 0
            for k in range(SUB_WORDS):
                h += popcount64(geno_planes[sub, s, 0, k])
                ms += popcount64(missing_plane[sub, s, k])
            miss_any[sub, s] = ms > 0
            m += ms
        het_total[s] += h
        miss_total[s] += m


@numba.njit(cache=True, inline="always")
def _tile_index(t: int) -> tuple[int, int]:
    """Tile t of the lower triangle, row-major: (0,0), (1,0), (1,1), (2,0), ..."""
    ti = int((np.sqrt(8.0 * t + 1.0) - 1.0) / 2.0)
    while ti * (ti + 1) // 2 > t:
        ti -= 1
    while (ti + 1) * (ti + 2) // 2 <= t:
        ti += 1
    return ti, t - ti * (ti + 1) // 2


@numba.njit(cache=True, inline="always")
def _add_1x1(pa, ma, ha, i, pb, mb, hb, j, counts, p):
    """Counts of sample i (planes ``pa``, missing ``ma``, has-missing ``ha``) and sample j (``pb``,
    ``mb``, ``hb``) over one sub-block, added at pair column ``p``."""
    hethet = 0
    ibs0 = 0
    het_i, hom1_i, hom2_i = pa[i, 0], pa[i, 1], pa[i, 2]
    het_j, hom1_j, hom2_j = pb[j, 0], pb[j, 1], pb[j, 2]
    for k in range(SUB_WORDS):
        hethet += popcount64(het_i[k] & het_j[k])
        ibs0 += popcount64((hom1_i[k] & hom2_j[k]) | (hom2_i[k] & hom1_j[k]))
    counts[C_HETHET, p] += hethet
    counts[C_IBS0, p] += ibs0
    if ha[i] or hb[j]:
        miss_i, miss_j = ma[i], mb[j]
        het_miss = 0
        miss_het = 0
        miss_miss = 0
        for k in range(SUB_WORDS):
            het_miss += popcount64(het_i[k] & miss_j[k])
            miss_het += popcount64(miss_i[k] & het_j[k])
            miss_miss += popcount64(miss_i[k] & miss_j[k])
        counts[C_HET_MISS, p] += het_miss
        counts[C_MISS_HET, p] += miss_het
        counts[C_MISS_MISS, p] += miss_miss


@numba.njit(cache=True, inline="always")
def _add_2x2(pa, ma, ha, i, pb, mb, hb, j, counts, p0, p1):
    """Pairs (i, j), (i, j+1), (i+1, j), (i+1, j+1) at once (i from ``pa``/``ma``/``ha``, j from
    ``pb``/``mb``/``hb``), added at columns p0, p0 + 1, p1, p1 + 1: each loaded word serves two
    pairs, halving the loads per popcount (the bound on this loop)."""
    e0, e1, f0, f1 = pa[i, 0], pa[i + 1, 0], pb[j, 0], pb[j + 1, 0]
    u0, u1, x0, x1 = pa[i, 1], pa[i + 1, 1], pb[j, 1], pb[j + 1, 1]
    v0, v1, y0, y1 = pa[i, 2], pa[i + 1, 2], pb[j, 2], pb[j + 1, 2]
    a00 = 0
    a01 = 0
    a10 = 0
    a11 = 0
    b00 = 0
    b01 = 0
    b10 = 0
    b11 = 0
    for k in range(SUB_WORDS):
        a00 += popcount64(e0[k] & f0[k])
        a01 += popcount64(e0[k] & f1[k])
        a10 += popcount64(e1[k] & f0[k])
        a11 += popcount64(e1[k] & f1[k])
        b00 += popcount64((u0[k] & y0[k]) | (v0[k] & x0[k]))
        b01 += popcount64((u0[k] & y1[k]) | (v0[k] & x1[k]))
        b10 += popcount64((u1[k] & y0[k]) | (v1[k] & x0[k]))
        b11 += popcount64((u1[k] & y1[k]) | (v1[k] & x1[k]))
    counts[C_HETHET, p0] += a00
    counts[C_HETHET, p0 + 1] += a01
    counts[C_HETHET, p1] += a10
    counts[C_HETHET, p1 + 1] += a11
    counts[C_IBS0, p0] += b00
    counts[C_IBS0, p0 + 1] += b01
    counts[C_IBS0, p1] += b10
    counts[C_IBS0, p1 + 1] += b11
    if ha[i] or ha[i + 1] or hb[j] or hb[j + 1]:
        m0, m1, n0, n1 = ma[i], ma[i + 1], mb[j], mb[j + 1]
        c00 = 0
        c01 = 0
        c10 = 0
        c11 = 0
        d00 = 0
        d01 = 0
        d10 = 0
        d11 = 0
        g00 = 0
        g01 = 0
        g10 = 0
        g11 = 0
        for k in range(SUB_WORDS):
            c00 += popcount64(e0[k] & n0[k])
            c01 += popcount64(e0[k] & n1[k])
            c10 += popcount64(e1[k] & n0[k])
            c11 += popcount64(e1[k] & n1[k])
            d00 += popcount64(m0[k] & f0[k])
            d01 += popcount64(m0[k] & f1[k])
            d10 += popcount64(m1[k] & f0[k])
            d11 += popcount64(m1[k] & f1[k])
            g00 += popcount64(m0[k] & n0[k])
            g01 += popcount64(m0[k] & n1[k])
            g10 += popcount64(m1[k] & n0[k])
            g11 += popcount64(m1[k] & n1[k])
        counts[C_HET_MISS, p0] += c00
        counts[C_HET_MISS, p0 + 1] += c01
        counts[C_HET_MISS, p1] += c10
        counts[C_HET_MISS, p1 + 1] += c11
        counts[C_MISS_HET, p0] += d00
        counts[C_MISS_HET, p0 + 1] += d01
        counts[C_MISS_HET, p1] += d10
        counts[C_MISS_HET, p1 + 1] += d11
        counts[C_MISS_MISS, p0] += g00
        counts[C_MISS_MISS, p0 + 1] += g01
        counts[C_MISS_MISS, p1] += g10
        counts[C_MISS_MISS, p1 + 1] += g11


@numba.njit(cache=True, parallel=True)
def king_pair_counts(geno_planes: np.ndarray, missing_plane: np.ndarray, miss_any: np.ndarray,
                     counts: np.ndarray) -> None:
    """Add one chunk's pair counts to ``counts`` (int32, ``(N_COUNTS, n (n - 1) / 2)``).

    Pair (i, j), j < i, sits at column ``i (i - 1) / 2 + j`` (plink2's lower-triangle order).
    Rows of ``counts``: C_HETHET, C_IBS0, C_HET_MISS (#het_i & miss_j), C_MISS_HET
    (#miss_i & het_j), C_MISS_MISS. Work is split into TILE x TILE sample tiles, one per task, each
    walking the sub-blocks (whose tile data stays in L2) in 2 x 2 pair blocks; every pair belongs
    to one tile, so the sums do not depend on the thread count.
    """
    n_sub, n = geno_planes.shape[0], geno_planes.shape[1]
    nt = (n + TILE - 1) // TILE
    n_tiles = nt * (nt + 1) // 2
    for t in numba.prange(n_tiles):
        ti, tj = _tile_index(t)
        i0 = ti * TILE
        i1 = min(i0 + TILE, n)
        j0 = tj * TILE
        j1 = min(j0 + TILE, n)
        for sub in range(n_sub):
            planes = geno_planes[sub]
            missing = missing_plane[sub]
            has_missing = miss_any[sub]
            i = i0
            while i + 1 < i1:
                j = j0
                while j + 1 < min(j1, i):  # both j's below both i's
                    _add_2x2(planes, missing, has_missing, i, planes, missing, has_missing, j, counts,
                             i * (i - 1) // 2 + j, (i + 1) * i // 2 + j)
                    j += 2
                for ii in range(i, i + 2):
                    for jj in range(j, min(j1, ii)):
                        _add_1x1(planes, missing, has_missing, ii, planes, missing, has_missing, jj, counts,
                                 ii * (ii - 1) // 2 + jj)
                i += 2
            if i < i1:
                for jj in range(j0, min(j1, i)):
                    _add_1x1(planes, missing, has_missing, i, planes, missing, has_missing, jj, counts,
                             i * (i - 1) // 2 + jj)


@numba.njit(cache=True, parallel=True)
def king_cross_counts(planes_a: np.ndarray, missing_a: np.ndarray, miss_any_a: np.ndarray,
                      planes_b: np.ndarray, missing_b: np.ndarray, miss_any_b: np.ndarray,
                      counts: np.ndarray) -> None:
    """Add the counts of every pair (i of block a, j of block b) to ``counts`` (int32,
    ``(N_COUNTS, n_a * n_b)``, pair (i, j) at column ``i * n_b + j``; rows as
    ``king_pair_counts``). Blocks hold the same variants (``(sub-block, sample, ...)`` planes of
    their own samples); work is split into TILE x TILE tiles of the rectangle, one per task."""
    n_sub, n_a, n_b = planes_a.shape[0], planes_a.shape[1], planes_b.shape[1]
    ta = (n_a + TILE - 1) // TILE
    tb = (n_b + TILE - 1) // TILE
    for t in numba.prange(ta * tb):
        i0 = (t // tb) * TILE
        i1 = min(i0 + TILE, n_a)
        j0 = (t % tb) * TILE
        j1 = min(j0 + TILE, n_b)
        for sub in range(n_sub):
            pa, ma, ha = planes_a[sub], missing_a[sub], miss_any_a[sub]
            pb, mb, hb = planes_b[sub], missing_b[sub], miss_any_b[sub]
            i = i0
            while i + 1 < i1:
                j = j0
                while j + 1 < j1:
                    _add_2x2(pa, ma, ha, i, pb, mb, hb, j, counts, i * n_b + j, (i + 1) * n_b + j)
                    j += 2
                if j < j1:
                    _add_1x1(pa, ma, ha, i, pb, mb, hb, j, counts, i * n_b + j)
                    _add_1x1(pa, ma, ha, i + 1, pb, mb, hb, j, counts, (i + 1) * n_b + j)
                i += 2
            if i < i1:
                for j in range(j0, j1):
                    _add_1x1(pa, ma, ha, i, pb, mb, hb, j, counts, i * n_b + j)


@numba.njit(cache=True, inline="always")
def _finalize_pair(counts, p, het_i, miss_i, het_j, miss_j, n_variants, nsnp, hethet, ibs0, het1_hom2,
                   het2_hom1, kinship, q):
    """plink2's counts and kinship of the pair at column ``p`` of ``counts`` (i = '1', the larger
    sample index), written at row ``q`` of the outputs."""
    hh = np.int64(counts[C_HETHET, p])
    h1 = het_i - hh - counts[C_HET_MISS, p]
    h2 = het_j - hh - counts[C_MISS_HET, p]
    nsnp[q] = n_variants - miss_i - miss_j + counts[C_MISS_MISS, p]
    hethet[q] = hh
    ibs0[q] = counts[C_IBS0, p]
    het1_hom2[q] = h1
    het2_hom1[q] = h2
    smaller = hh + min(h1, h2)
    kinship[q] = 0.5 - np.float64(4 * np.int64(counts[C_IBS0, p]) + h1 + h2) / np.float64(4 * smaller)


@numba.njit(cache=True, parallel=True)
def king_finalize(counts: np.ndarray, het_total: np.ndarray, miss_total: np.ndarray, n_variants: int,
                  nsnp: np.ndarray, hethet: np.ndarray, ibs0: np.ndarray, het1_hom2: np.ndarray,
                  het2_hom1: np.ndarray, kinship: np.ndarray) -> None:
    """Per pair (lower-triangle order), plink2's counts and KING-robust kinship.

    '1' is the larger sample index i (plink2's ID1), '2' the smaller j. ``kinship`` is computed
    with plink2's operations in the same order, so it is bit-identical:
    ``0.5 - (4 ibs0 + het1hom2 + het2hom1) / (4 (hethet + min(het1hom2, het2hom1)))``
    (-inf or NaN when the smaller het count is 0)."""
    n = het_total.size
    for i in numba.prange(1, n):
        base = i * (i - 1) // 2
        for j in range(i):
            _finalize_pair(counts, base + j, het_total[i], miss_total[i], het_total[j], miss_total[j], n_variants,
                           nsnp, hethet, ibs0, het1_hom2, het2_hom1, kinship, base + j)


@numba.njit(cache=True, parallel=True)
def king_finalize_cross(counts: np.ndarray, het_a: np.ndarray, miss_a: np.ndarray, het_b: np.ndarray,
                        miss_b: np.ndarray, n_variants: int, nsnp: np.ndarray, hethet: np.ndarray,
                        ibs0: np.ndarray, het1_hom2: np.ndarray, het2_hom1: np.ndarray,
                        kinship: np.ndarray) -> None:
    """``king_finalize`` of ``king_cross_counts``' rectangle (pair (i, j) at ``i * n_b + j``;
    block a holds the larger sample indices, so i is plink2's ID1)."""
    n_a, n_b = het_a.size, het_b.size
    for i in numba.prange(n_a):
        for j in range(n_b):
            p = i * n_b + j
            _finalize_pair(counts, p, het_a[i], miss_a[i], het_b[j], miss_b[j], n_variants,
                           nsnp, hethet, ibs0, het1_hom2, het2_hom1, kinship, p)


@numba.njit(cache=True)
def kinship_prune(n: int, edge_i: np.ndarray, edge_j: np.ndarray) -> np.ndarray:
    """plink2 ``--king-cutoff`` greedy pruning of the graph with the given edges (sample indices
    0..n-1); returns a bool mask of the samples removed.

    While edges remain: if some vertex has degree 1, remove the partner of the lowest-index such
    vertex; otherwise remove the lowest-index vertex of maximal degree. Degrees count the edges to
    samples not yet removed.
    """
    degree = np.zeros(n, dtype=np.int64)
    for e in range(edge_i.size):
        degree[edge_i[e]] += 1
        degree[edge_j[e]] += 1
    # CSR adjacency
    start = np.zeros(n + 1, dtype=np.int64)
    for v in range(n):
        start[v + 1] = start[v] + degree[v]
    fill = start[:-1].copy()
    adjacent = np.empty(start[n], dtype=np.int64)
    for e in range(edge_i.size):
        a = edge_i[e]
        b = edge_j[e]
        adjacent[fill[a]] = b
        fill[a] += 1
        adjacent[fill[b]] = a
        fill[b] += 1
    removed = np.zeros(n, dtype=np.bool_)
    while True:
        prune = -1
        for v in range(n):
            if not removed[v] and degree[v] == 1:
                for q in range(start[v], start[v + 1]):
                    if not removed[adjacent[q]]:
                        prune = adjacent[q]
                        break
                break
        if prune < 0:
            best = 0
            for v in range(n):
                if not removed[v] and degree[v] > best:
                    best = degree[v]
                    prune = v
            if prune < 0:
                break
        removed[prune] = True
        for q in range(start[prune], start[prune + 1]):
            u = adjacent[q]
            if not removed[u]:
                degree[u] -= 1
    return removed


# ---------------------------------------------------------------------------------------------
# .kin0 text formatting (bytes in memory; the caller writes them)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def put_g6(out: np.ndarray, pos: int, x: float) -> int:
    """Write ``x`` as plink2's dtoa_g prints it (6 significant digits, trailing zeros dropped,
    half-to-even within 5e-9; exponential below 1e-4 and from 1e6; ``cohortflow.numfmt.put_g``
    with plink2 rounding), NaN as ``nan``, at ``out[pos:]``; returns the new position (at most 14
    bytes written)."""
    if x != x:
        out[pos] = 110  # nan
        out[pos + 1] = 97
        out[pos + 2] = 110
        return pos + 3
    return put_g(x, 6, True, out, pos)


@numba.njit(cache=True)
def format_kin0_rows(id_bytes: np.ndarray, id_start: np.ndarray, id1: np.ndarray, id2: np.ndarray,
                     nsnp: np.ndarray, hethet: np.ndarray, ibs0: np.ndarray, kinship: np.ndarray) -> np.ndarray:
    """.kin0 lines as bytes: ``ID1 \\t ID2 \\t NSNP \\t HETHET \\t IBS0 \\t KINSHIP \\n`` per row.

    ``id_bytes`` / ``id_start``: the samples' ``FID\\tIID`` texts concatenated (uint8) and their
    offsets (n + 1); ``id1`` / ``id2``: sample indices per row; ``hethet`` / ``ibs0``: counts,
    printed as plink2's ``(1 / NSNP) * count``; ``kinship``: float64.
    """
    n_rows = id1.size
    size = 0
    for r in range(n_rows):
        size += (id_start[id1[r] + 1] - id_start[id1[r]]) + (id_start[id2[r] + 1] - id_start[id2[r]]) + 64
    out = np.empty(size, dtype=np.uint8)
    pos = 0
    for r in range(n_rows):
        for s in (id1[r], id2[r]):
            for k in range(id_start[s], id_start[s + 1]):
                out[pos] = id_bytes[k]
                pos += 1
            out[pos] = 9
            pos += 1
        pos = put_int(nsnp[r], out, pos)
        out[pos] = 9
        recip = 1.0 / np.float64(nsnp[r])
        pos = put_g6(out, pos + 1, recip * np.float64(hethet[r]))
        out[pos] = 9
        pos = put_g6(out, pos + 1, recip * np.float64(ibs0[r]))
        out[pos] = 9
        pos = put_g6(out, pos + 1, kinship[r])
        out[pos] = 10
        pos += 1
    return out[:pos]


@numba.njit(cache=True)
def format_g6_array(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``put_g6`` of every value: (concatenated uint8 text, int64 offsets of length n + 1)."""
    out = np.empty(values.size * 16, dtype=np.uint8)
    offsets = np.zeros(values.size + 1, dtype=np.int64)
    pos = 0
    for k in range(values.size):
        pos = put_g6(out, pos, values[k])
        offsets[k + 1] = pos
    return out[:pos], offsets
