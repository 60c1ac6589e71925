"""numba kernels for polygenic scores: scoring from packed .bed rows and the score table writer
(pure functions, no I/O)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from cohortflow.bitops import popcount_u64
from cohortflow.numfmt import put_g

# --------------------------------------------------------------------------------------------
# Scoring straight from packed .bed rows
# --------------------------------------------------------------------------------------------
#
# Four variants form a group. Their four 2-bit codes for one sample make an 8-bit index; a
# 256-row table per group holds, for every index, the summed contributions of the four variants
# to each of the k score columns. Scoring is then one table lookup and one k-wide addition per
# sample per four variants, with no decoding. The .bed codes: 00 hom A1 (2 copies), 01 missing
# (the variant's mean dosage), 10 het (1 copy), 11 hom A2 (0 copies).

_M55 = np.uint64(0x5555555555555555)
_U1 = np.uint64(1)
# score columns are padded to a multiple of this (one 256-bit vector of float64) when k > 1
VECTOR_WIDTH = 4


def _vector_sum_codegen(context, builder, signature, args):
    """dst[i:i+4] = (...((dst[i:i+4] + src1[j1:j1+4]) + src2[j2:j2+4]) ...) for the arguments
    (dst, i, src1, j1, src2, j2, ...): 4-wide float64 vectors, the additions in that order."""
    vector = ir.VectorType(ir.DoubleType(), VECTOR_WIDTH)

    def pointer(k):
        data = context.make_array(signature.args[k])(context, builder, args[k]).data
        index = context.cast(builder, args[k + 1], signature.args[k + 1], types.intp)
        return builder.bitcast(builder.gep(data, [index]), vector.as_pointer())

    target = pointer(0)
    total = builder.load(target, align=8)
    for k in range(2, len(args), 2):
        total = builder.fadd(total, builder.load(pointer(k), align=8))
    builder.store(total, target, align=8)
    return context.get_dummy_value()


def _float_vectors(*arrays) -> bool:
    return all(isinstance(a, types.Array) and a.dtype == types.float64 and a.ndim == 1 for a in arrays)


@intrinsic
def _add_f64x4(typingctx, dst, i, src, j):
    """dst[i:i+4] += src[j:j+4] as one 4-wide vector load/add/store (float64, 1-D, contiguous;
    the caller keeps the ranges in bounds). numba's own loop does this one element at a time:
    LLVM cannot rule out that the two arrays overlap."""
    if not _float_vectors(dst, src):
        return None
    return types.void(dst, i, src, j), _vector_sum_codegen


@intrinsic
def _add4_f64x4(typingctx, dst, i, src1, j1, src2, j2, src3, j3, src4, j4):
    """dst[i:i+4] = (((dst[i:i+4] + src1[j1:..]) + src2[j2:..]) + src3[j3:..]) + src4[j4:..]: the
    same additions, in the same order, as four :func:`_add_f64x4`, with one load and store of dst."""
    if not _float_vectors(dst, src1, src2, src3, src4):
        return None
    return types.void(dst, i, src1, j1, src2, j2, src3, j3, src4, j4), _vector_sum_codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _row_word(row: np.ndarray, w: int, nb: int) -> np.uint64:
    """Word w (bytes 8w..8w+7) of a packed row of ``nb`` bytes, little-endian; bytes past the row
    read as 0. LLVM merges the byte loads of a full word into one load."""
    j = 8 * w
    if j + 8 <= nb:
        return (np.uint64(row[j]) | (np.uint64(row[j + 1]) << np.uint64(8))
                | (np.uint64(row[j + 2]) << np.uint64(16)) | (np.uint64(row[j + 3]) << np.uint64(24))
                | (np.uint64(row[j + 4]) << np.uint64(32)) | (np.uint64(row[j + 5]) << np.uint64(40))
                | (np.uint64(row[j + 6]) << np.uint64(48)) | (np.uint64(row[j + 7]) << np.uint64(56)))
    x = np.uint64(0)
    for b in range(nb - j):
        x |= np.uint64(row[j + b]) << np.uint64(8 * b)
    return x


def sample_mask_words(n_samples: int, samples: np.ndarray | None = None) -> np.ndarray:
    """uint64 words over a packed row with both bits of every selected sample's field set (all
    ``n_samples`` samples when ``samples`` is None); padding fields are clear."""
    nb = (n_samples + 3) // 4
    selected = np.zeros(8 * ((nb + 7) // 8) * 4, dtype=bool)
    if samples is None:
        selected[:n_samples] = True
    else:
        selected[np.asarray(samples, dtype=np.int64)] = True
    fields = np.where(selected, np.uint64(3), np.uint64(0)).reshape(-1, 32)
    shifts = (2 * np.arange(32)).astype(np.uint64)
    return np.bitwise_or.reduce(fields << shifts, axis=1).astype(np.uint64)


@numba.njit(cache=True, nogil=True, parallel=True)
def packed_code_counts(data: np.ndarray, rows: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    """Genotype counts of each row ``rows[i]`` of the packed .bed rows ``data`` (variants x
    bytes) over the samples set in ``mask`` (:func:`sample_mask_words`): ``out[i]`` = (selected
    samples, missing, het, hom A2) calls (int64; hom A1 = the rest)."""
    nb = data.shape[1]
    selected = 0
    for w in range(mask.shape[0]):
        selected += popcount_u64(mask[w] & _M55)
    for i in numba.prange(rows.shape[0]):
        row = data[rows[i]]
        missing = 0
        het = 0
        hom2 = 0
        for w in range(mask.shape[0]):
            mk = mask[w] & _M55
            x = _row_word(row, w, nb)
            lo = x & mk
            hi = (x >> _U1) & mk
            missing += popcount_u64(lo & ~hi)
            het += popcount_u64(hi & ~lo)
            hom2 += popcount_u64(lo & hi)
        out[i, 0] = selected
        out[i, 1] = missing
        out[i, 2] = het
        out[i, 3] = hom2


@numba.njit(cache=True, nogil=True, parallel=True)
def accumulate_direct(data: np.ndarray, rows: np.ndarray, weights: np.ndarray, dose: np.ndarray,
                      count_a2: np.ndarray, full: float, include: np.ndarray, acc: np.ndarray) -> None:
    """acc[s * kp + c] += include[s] x weights[i, c] x the dosage of sample s at row ``rows[i]``
    of ``data`` (dose[i, code] for its 2-bit code; full - that where count_a2[i, c]), one sample at
    a time (for the few variants whose dosage rule is per sample: chrY, MT). ``include`` (float per
    sample, 0 or 1) leaves samples out. Parallel over samples; each sample's sum runs over the rows
    in order."""
    n = include.shape[0]
    kp = weights.shape[1]
    for s in numba.prange(n):
        if include[s] == 0.0:
            continue
        byte = s >> 2
        shift = 2 * (s & 3)
        for i in range(rows.shape[0]):
            d = dose[i, (np.int64(data[rows[i], byte]) >> shift) & 3]
            for c in range(kp):
                acc[s * kp + c] += ((full - d) if count_a2[i, c] else d) * weights[i, c]


@numba.njit(cache=True, nogil=True, parallel=True)
def group_tables(weights: np.ndarray, dose: np.ndarray, count_a2: np.ndarray, full: float, n_blocks: int,
                 tables: np.ndarray) -> None:
    """Fill ``tables`` (groups x 256 * kp, flat per group): entry [g, idx * kp + c] = sum over
    j = 0..3 of weights[4g + j, c] x the dosage of variant 4g + j for code j of idx (bits 2j,
    2j+1): dose[v, code] (dose[v] holds the A1 dosage of hom A1, missing, het, hom A2), or
    full - that where count_a2[v, c] (the weight is on A2). ``weights`` (4 x groups, kp), ``dose``
    and ``count_a2`` cover whole groups (padding rows: zero weights). Parallel over ``n_blocks``
    blocks of groups (scratch space allocated once per block).

    The sums are built in stages, ((c0 + c1) + c2) + c3: 16 pairs, 64 triples, 256 entries."""
    n_groups = tables.shape[0]
    kp = weights.shape[1]
    n_blocks = max(1, min(n_groups, n_blocks))
    per_block = (n_groups + n_blocks - 1) // n_blocks
    for block in numba.prange(n_blocks):
        contrib = np.empty((4, 4, kp))  # variant j, code, column
        pairs = np.empty((16, kp))
        triples = np.empty((64, kp))
        for g in range(block * per_block, min(n_groups, (block + 1) * per_block)):
            for j in range(4):
                v = 4 * g + j
                for code in range(4):
                    d = dose[v, code]
                    for c in range(kp):
                        contrib[j, code, c] = ((full - d) if count_a2[v, c] else d) * weights[v, c]
            for i in range(16):
                for c in range(kp):
                    pairs[i, c] = contrib[0, i & 3, c] + contrib[1, i >> 2, c]
            for i in range(64):
                for c in range(kp):
                    triples[i, c] = pairs[i & 15, c] + contrib[2, i >> 4, c]
            table = tables[g]
            for idx in range(256):
                for c in range(kp):
                    table[idx * kp + c] = triples[idx & 63, c] + contrib[3, idx >> 6, c]


def _spread_table() -> np.ndarray:
    """For each byte (four 2-bit fields), a uint32 with field j in the low bits of byte j."""
    table = np.zeros(256, dtype=np.uint32)
    for b in range(256):
        for j in range(4):
            table[b] |= ((b >> (2 * j)) & 3) << (8 * j)
    return table


SPREAD = _spread_table()


@numba.njit(cache=True, nogil=True, inline="always")
def _group_indices(spread: np.ndarray, r0: np.ndarray, r1: np.ndarray, r2: np.ndarray, r3: np.ndarray, b0: int,
                   b1: int, out: np.ndarray) -> None:
    """The table index of every sample of bytes [b0, b1) of a group's four rows, four samples per
    uint32 of ``out`` (byte j = sample 4b + j: its fields of r0[b], r1[b], r2[b], r3[b] as bits
    0-1, 2-3, 4-5, 6-7), from the ``SPREAD`` table: four lookups per four samples."""
    for b in range(b0, b1):
        out[b - b0] = (spread[r0[b]] | (spread[r1[b]] << np.uint32(2)) | (spread[r2[b]] << np.uint32(4))
                       | (spread[r3[b]] << np.uint32(6)))


@numba.njit(cache=True, nogil=True, parallel=True)
def accumulate_groups(data: np.ndarray, rows: np.ndarray, tables: np.ndarray, kp: int, tile_bytes: int,
                      spread: np.ndarray, acc: np.ndarray) -> None:
    """acc[s * kp + c] += tables[g, idx(s, g) * kp + c] for every group g (rows 4g..4g+3 of
    ``rows``, indices into ``data``, variants x bytes), every sample s (``acc``: 4 x bytes x kp,
    flat; samples past the real ones get padding codes and are to be ignored) and column c.
    ``spread`` is :data:`SPREAD`.

    Parallel over tiles of ``tile_bytes`` bytes (4 samples each). A tile's sums are carried in a
    local copy; four groups are added per pass (sum + t1 + t2 + t3 + t4, in that order, so one load
    and store of the sum per four groups) and the sums written back at the end. Each sample's sum
    runs over the groups in order whatever the tiling, chunking or thread count. ``kp`` is 1 or a
    multiple of VECTOR_WIDTH."""
    n_groups = tables.shape[0]
    nb = data.shape[1]
    n_tiles = (nb + tile_bytes - 1) // tile_bytes
    for tile in numba.prange(n_tiles):
        b0 = tile * tile_bytes
        b1 = min(nb, b0 + tile_bytes)
        ns = 4 * (b1 - b0)
        packed_idx = np.empty((4, b1 - b0), dtype=np.uint32)
        base = 4 * b0 * kp
        local = acc[base:base + ns * kp].copy()
        g = 0
        while g + 4 <= n_groups:
            for q in range(4):
                r = 4 * (g + q)
                _group_indices(spread, data[rows[r]], data[rows[r + 1]], data[rows[r + 2]], data[rows[r + 3]],
                               b0, b1, packed_idx[q])
            i0 = packed_idx[0].view(np.uint8)
            i1 = packed_idx[1].view(np.uint8)
            i2 = packed_idx[2].view(np.uint8)
            i3 = packed_idx[3].view(np.uint8)
            t0 = tables[g]
            t1 = tables[g + 1]
            t2 = tables[g + 2]
            t3 = tables[g + 3]
            if kp == 1:
                for s in range(ns):
                    local[s] = (((local[s] + t0[i0[s]]) + t1[i1[s]]) + t2[i2[s]]) + t3[i3[s]]
            else:
                for s in range(ns):
                    j0 = np.int64(i0[s]) * kp
                    j1 = np.int64(i1[s]) * kp
                    j2 = np.int64(i2[s]) * kp
                    j3 = np.int64(i3[s]) * kp
                    for c in range(0, kp, VECTOR_WIDTH):
                        _add4_f64x4(local, s * kp + c, t0, j0 + c, t1, j1 + c, t2, j2 + c, t3, j3 + c)
            g += 4
        while g < n_groups:  # the last groups of the chunk, one at a time
            r = 4 * g
            _group_indices(spread, data[rows[r]], data[rows[r + 1]], data[rows[r + 2]], data[rows[r + 3]],
                           b0, b1, packed_idx[0])
            i0 = packed_idx[0].view(np.uint8)
            t0 = tables[g]
            if kp == 1:
                for s in range(ns):
                    local[s] += t0[i0[s]]
            else:
                for s in range(ns):
                    j0 = np.int64(i0[s]) * kp
                    for c in range(0, kp, VECTOR_WIDTH):
                        _add_f64x4(local, s * kp + c, t0, j0 + c)
            g += 1
        acc[base:base + ns * kp] = local


@numba.njit(cache=True, nogil=True)
def format_score_table(id_bytes: np.ndarray, id_offsets: np.ndarray, values: np.ndarray, digits: int) -> np.ndarray:
    """The body of a tab-separated score table: per row, the ID (bytes id_offsets[i] to
    id_offsets[i + 1] of ``id_bytes``) then each value of ``values`` (rows x columns) as
    ``%.{digits}g`` (:func:`cohortflow.numfmt.put_g`, C rounding; NaN empty), tab-separated,
    newline-terminated. Returns the bytes (uint8)."""
    n, c = values.shape
    out = np.empty(id_bytes.shape[0] + n * (1 + c * (digits + 10)), dtype=np.uint8)
    pos = 0
    for i in range(n):
        for b in range(id_offsets[i], id_offsets[i + 1]):
            out[pos] = id_bytes[b]
            pos += 1
        for j in range(c):
            out[pos] = 9
            pos = put_g(values[i, j], digits, False, out, pos + 1)
        out[pos] = 10
        pos += 1
    return out[:pos]
