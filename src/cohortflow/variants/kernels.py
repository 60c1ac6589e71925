"""numba kernels for variant ingestion, QC and PCA: pure functions on numpy arrays, no I/O.

Genotype matrices are int8 counts of the .bim column-5 allele (A1 = ALT), -1 missing,
variants x samples, as returned by ``cohortflow.io.plink``. The QC kernels read packed .bed rows
(uint8, variants x ceil(samples / 4)) directly, 32 samples per 64-bit word.

Chromosome classes (``chrom_class`` arrays): 0 autosome/PAR (diploid for everyone), 1 chrX (males
haploid), 2 chrY (males only, haploid), 3 MT (haploid for everyone). Sex codes as in .fam:
1 male, 2 female, 0 unknown (diploid, as plink2 treats them on chrX).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cohortflow.bitops import popcount_u64, trailing_zeros_u64
from cohortflow.numfmt import put_g, put_int

CLASS_AUTOSOME = 0
CLASS_X = 1
CLASS_Y = 2
CLASS_MT = 3


# --------------------------------------------------------------------------------------------
# VCF GT decoding
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def gt_alt_dosage(gt: np.ndarray, alt_index: int, half_call_haploid: bool, out: np.ndarray) -> int:
    """Count copies of allele ``alt_index`` per sample from a cyvcf2 ``genotype.array()``.

    ``gt`` is (samples, ploidy + 1) int16: allele indices, -1 missing, -2 vector end (a haploid
    call in a diploid record), last column the phase flag. Other ALT alleles count as REF, as
    after ``bcftools norm -m-``. Haploid calls are coded homozygous (0 or 2). A half-call such as
    ``0/.`` is read as haploid when ``half_call_haploid`` (plink2 ``--vcf-half-call h``), else
    missing. Writes int8 into ``out`` and returns the number of called samples.
    """
    n = gt.shape[0]
    ploidy = gt.shape[1] - 1
    called = 0
    for s in range(n):
        a0 = gt[s, 0]
        a1 = gt[s, 1] if ploidy >= 2 else -2
        if a1 == -2:
            if a0 < 0:
                out[s] = -1
            else:
                out[s] = 2 if a0 == alt_index else 0
                called += 1
        elif a0 < 0 and a1 < 0:
            out[s] = -1
        elif a0 < 0 or a1 < 0:
            if half_call_haploid:
                present = a1 if a0 < 0 else a0
                out[s] = 2 if present == alt_index else 0
                called += 1
            else:
                out[s] = -1
        else:
            out[s] = (1 if a0 == alt_index else 0) + (1 if a1 == alt_index else 0)
            called += 1
    return called


# --------------------------------------------------------------------------------------------
# QC counting straight from packed .bed rows
# --------------------------------------------------------------------------------------------
#
# A .bed row packs 4 samples per byte, 2 bits each, low bits first: 00 hom A1, 01 missing,
# 10 het, 11 hom A2. Eight bytes read as a little-endian uint64 hold 32 samples; with
# lo = word & 0x55.. and hi = (word >> 1) & 0x55.., each sample's pair becomes one bit at an even
# position in  missing = lo & ~hi,  het = hi & ~lo,  hom A2 = lo & hi  (hom A1 is the rest).
# Sample masks use the same layout (bit 2k set when sample k of the word is included), so a
# masked genotype count is one AND and one popcount per 32 samples.

_M5 = np.uint64(0x5555555555555555)
_M1 = np.uint64(0x1111111111111111)
_M0F = np.uint64(0x0F0F0F0F0F0F0F0F)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U4 = np.uint64(4)
_UFF = np.uint64(0xFF)
_LN2 = math.log(2.0)

# rows of the mask matrix built by ``cohortflow.variants.qc.sample_masks``
MASK_ALL = 0              # samples counted for missingness (all but chrY)
MASK_MALE = 1             # samples counted for chrY missingness
MASK_FOUNDER = 2          # founders: frequencies and HWE (autosomes, MT)
MASK_FOUNDER_FEMALE = 3   # chrX: diploid founders in the HWE test, diploid in frequencies
MASK_FOUNDER_MALE = 4     # chrX, chrY: haploid founders
MASK_FOUNDER_UNKNOWN = 5  # chrX: unknown-sex founders, diploid in frequencies, not in HWE
N_MASKS = 6

# columns of the per-variant count table written by ``packed_variant_counts``
N_COUNT_COLUMNS = 11


@numba.njit(cache=True, nogil=True, inline="always")
def _full_word(row: np.ndarray, j: int) -> np.uint64:
    """Bytes j..j+7 of a row (all inside it) as a little-endian word; LLVM merges the byte loads."""
    return (np.uint64(row[j]) | (np.uint64(row[j + 1]) << np.uint64(8))
            | (np.uint64(row[j + 2]) << np.uint64(16)) | (np.uint64(row[j + 3]) << np.uint64(24))
            | (np.uint64(row[j + 4]) << np.uint64(32)) | (np.uint64(row[j + 5]) << np.uint64(40))
            | (np.uint64(row[j + 6]) << np.uint64(48)) | (np.uint64(row[j + 7]) << np.uint64(56)))


@numba.njit(cache=True, nogil=True, inline="always")
def _word(row: np.ndarray, w: int, nb: int) -> np.uint64:
    """Word w of a packed row of ``nb`` bytes; bytes past the row read as 0 (hom A1, which every
    mask excludes and no per-sample sum counts)."""
    j = 8 * w
    if j + 8 <= nb:
        return _full_word(row, j)
    x = np.uint64(0)
    for k in range(nb - j):
        x |= np.uint64(row[j + k]) << np.uint64(8 * k)
    return x


@numba.njit(cache=True, nogil=True)
def _masked_counts(row: np.ndarray, nb: int, mask: np.ndarray) -> tuple[int, int, int]:
    """(missing, het, hom A2) calls among the samples set in ``mask``."""
    missing = 0
    het = 0
    hom2 = 0
    n_full = min(mask.shape[0], nb // 8)
    for w in range(n_full):
        x = _full_word(row, 8 * w)
        mk = mask[w]
        lo = x & mk
        hi = (x >> _U1) & mk
        missing += popcount_u64(lo & ~hi)
        het += popcount_u64(hi & ~lo)
        hom2 += popcount_u64(lo & hi)
    for w in range(n_full, mask.shape[0]):
        x = _word(row, w, nb)
        mk = mask[w]
        lo = x & mk
        hi = (x >> _U1) & mk
        missing += popcount_u64(lo & ~hi)
        het += popcount_u64(hi & ~lo)
        hom2 += popcount_u64(lo & hi)
    return missing, het, hom2


@numba.njit(cache=True, nogil=True)
def _variant_counts_row(row: np.ndarray, nb: int, cls: int, masks: np.ndarray, sizes: np.ndarray,
                        founders_are_all: bool, out: np.ndarray) -> None:
    for c in range(N_COUNT_COLUMNS):
        out[c] = 0
    if cls == CLASS_Y:
        miss, _, _ = _masked_counts(row, nb, masks[MASK_MALE])
        out[0] = miss
        out[1] = sizes[MASK_MALE]
        fm, fh, f2 = _masked_counts(row, nb, masks[MASK_FOUNDER_MALE])
        out[2] = sizes[MASK_FOUNDER_MALE] - fm - fh - f2
        out[3] = fh
        out[4] = f2
        return
    if cls == CLASS_X:
        miss, _, _ = _masked_counts(row, nb, masks[MASK_ALL])
        out[0] = miss
        out[1] = sizes[MASK_ALL]
        for k, col in ((MASK_FOUNDER_FEMALE, 2), (MASK_FOUNDER_MALE, 5), (MASK_FOUNDER_UNKNOWN, 8)):
            fm, fh, f2 = _masked_counts(row, nb, masks[k])
            out[col] = sizes[k] - fm - fh - f2
            out[col + 1] = fh
            out[col + 2] = f2
        return
    if founders_are_all:
        miss, het, hom2 = _masked_counts(row, nb, masks[MASK_ALL])
        out[0] = miss
        out[1] = sizes[MASK_ALL]
        out[2] = sizes[MASK_ALL] - miss - het - hom2
        out[3] = het
        out[4] = hom2
        return
    miss, _, _ = _masked_counts(row, nb, masks[MASK_ALL])
    out[0] = miss
    out[1] = sizes[MASK_ALL]
    fm, fh, f2 = _masked_counts(row, nb, masks[MASK_FOUNDER])
    out[2] = sizes[MASK_FOUNDER] - fm - fh - f2
    out[3] = fh
    out[4] = f2


@numba.njit(cache=True, nogil=True, parallel=True)
def packed_variant_counts(block: np.ndarray, chrom_class: np.ndarray, masks: np.ndarray, sizes: np.ndarray,
                          founders_are_all: bool, out: np.ndarray) -> None:
    """Genotype counts per variant of a block of packed .bed rows (variants x bytes, uint8).

    ``masks`` (``N_MASKS`` x words, uint64) and ``sizes`` (samples per mask) select the samples
    (``cohortflow.variants.qc.sample_masks``); ``founders_are_all`` says the founder mask equals
    the all-samples mask, so autosomes need one count. Writes ``out`` (variants x 11, int64):

    0 missing calls among eligible samples (chrY: males), 1 eligible samples;
    2-4 founders' hom A1 / het / hom A2 calls (autosomes, MT: all founders; chrX: female founders;
    chrY: male founders); 5-7 chrX male founders' hom A1 / het / hom A2; 8-10 chrX unknown-sex
    founders' hom A1 / het / hom A2 (A1 = .bim column 5).
    """
    m, nb = block.shape
    for v in numba.prange(m):
        _variant_counts_row(block[v], nb, chrom_class[v], masks, sizes, founders_are_all, out[v])


@numba.njit(cache=True, nogil=True)
def allele_counts_from_counts(counts: np.ndarray, chrom_class: np.ndarray, a1: np.ndarray, obs: np.ndarray) -> None:
    """A1 allele count and observed allele count per variant from ``packed_variant_counts`` rows,
    as plink2 ``--freq counts`` (ALT_CTS, OBS_CT): founders; chrX males, chrY and MT haploid, a
    haploid het call counting half an allele."""
    for v in range(counts.shape[0]):
        c = counts[v]
        cls = chrom_class[v]
        if cls == CLASS_Y or cls == CLASS_MT:
            a1[v] = c[2] + 0.5 * c[3]
            obs[v] = c[2] + c[3] + c[4]
        else:
            a1[v] = 2.0 * c[2] + c[3]
            obs[v] = 2 * (c[2] + c[3] + c[4])
            if cls == CLASS_X:
                a1[v] += 2.0 * c[8] + c[9] + c[5] + 0.5 * c[6]
                obs[v] += 2 * (c[8] + c[9] + c[10]) + c[5] + c[6] + c[7]


@numba.njit(cache=True, nogil=True)
def inbreeding_variant_sets(counts: np.ndarray, chrom_class: np.ndarray, maf: float, vflag: np.ndarray,
                            e_het: np.ndarray, e_sex: np.ndarray) -> None:
    """The variants plink1.9 ``--maf {maf} --het`` and ``--check-sex`` use, from
    ``packed_variant_counts`` rows, as ``packed_sample_sums`` flags: bit 1 chrY, bit 2 het set
    (autosomal or PAR), bit 4 sex set (chrX); with each variant's expected homozygosity
    1 - 2p(1 - p) (Nei, without the n/(n - 1) factor) in ``e_het`` / ``e_sex`` (0 outside the set).

    p is plink1.9's founder frequency (chrX males haploid, their het calls left out; 0.5 when no
    founder is called); a variant is used when someone is called and 1e-8 <= p <= 1 - 1e-8, and
    for the het set when min(p, 1 - p) >= ``maf``.
    """
    for v in range(counts.shape[0]):
        c = counts[v]
        cls = chrom_class[v]
        vflag[v] = 1 if cls == CLASS_Y else 0
        e_het[v] = 0.0
        e_sex[v] = 0.0
        if (cls != CLASS_AUTOSOME and cls != CLASS_X) or c[1] - c[0] <= 0:
            continue
        a1 = 2.0 * c[2] + c[3]
        n_obs = 2.0 * (c[2] + c[3] + c[4])
        if cls == CLASS_X:
            a1 += 2.0 * c[8] + c[9] + c[5]
            n_obs += 2.0 * (c[8] + c[9] + c[10]) + c[5] + c[7]
        p = a1 / n_obs if n_obs > 0 else 0.5
        if p < 1e-8 or p > 1.0 - 1e-8:
            continue
        e = 1.0 - 2.0 * p * (1.0 - p)
        if cls == CLASS_X:
            vflag[v] = 4
            e_sex[v] = e
        elif min(p, 1.0 - p) >= maf:
            vflag[v] = 2
            e_het[v] = e


@numba.njit(cache=True, nogil=True)
def _vertical_add(row: np.ndarray, nb: int, w0: int, nt: int, miss_e: np.ndarray, miss_o: np.ndarray,
                  het_e: np.ndarray, het_o: np.ndarray, with_het: bool, miss_words: np.ndarray) -> None:
    """Add one row's per-sample missing (and het) bits of words w0..w0+nt-1 to nibble counters:
    sample 2i of word t into nibble i of ``*_e[t]``, sample 2i + 1 into nibble i of ``*_o[t]``;
    with ``with_het`` also keep the missing bits in ``miss_words``."""
    n_full = max(0, min(nt, nb // 8 - w0))
    if with_het:
        for t in range(n_full):
            x = _full_word(row, 8 * (w0 + t))
            lo = x & _M5
            hi = (x >> _U1) & _M5
            miss = lo & ~hi
            het = hi & ~lo
            miss_e[t] += miss & _M1
            miss_o[t] += (miss >> _U2) & _M1
            het_e[t] += het & _M1
            het_o[t] += (het >> _U2) & _M1
            miss_words[t] = miss
    else:
        for t in range(n_full):
            x = _full_word(row, 8 * (w0 + t))
            miss = x & ~(x >> _U1) & _M5
            miss_e[t] += miss & _M1
            miss_o[t] += (miss >> _U2) & _M1
    for t in range(n_full, nt):  # the row's last, partial word
        x = _word(row, w0 + t, nb)
        lo = x & _M5
        hi = (x >> _U1) & _M5
        miss = lo & ~hi
        miss_e[t] += miss & _M1
        miss_o[t] += (miss >> _U2) & _M1
        if with_het:
            het = hi & ~lo
            het_e[t] += het & _M1
            het_o[t] += (het >> _U2) & _M1
            miss_words[t] = miss


@numba.njit(cache=True, nogil=True)
def _nibbles_to_bytes(nib_e: np.ndarray, nib_o: np.ndarray, byt: np.ndarray) -> None:
    """Move nibble counters into byte counters ``byt`` (4 x words): byte j of byt[0], byt[1],
    byt[2], byt[3] counts sample 4j, 4j + 2, 4j + 1, 4j + 3 of the word."""
    for t in range(nib_e.shape[0]):
        a = nib_e[t]
        b = nib_o[t]
        byt[0, t] += a & _M0F
        byt[1, t] += (a >> _U4) & _M0F
        byt[2, t] += b & _M0F
        byt[3, t] += (b >> _U4) & _M0F
        nib_e[t] = 0
        nib_o[t] = 0


@numba.njit(cache=True, nogil=True)
def _bytes_to_counts(byt: np.ndarray, w0: int, q: int, counts: np.ndarray) -> None:
    for t in range(byt.shape[1]):
        base = (w0 + t) * 32
        for j in range(8):
            shift = np.uint64(8 * j)
            counts[base + 4 * j, q] += np.int64((byt[0, t] >> shift) & _UFF)
            counts[base + 4 * j + 1, q] += np.int64((byt[2, t] >> shift) & _UFF)
            counts[base + 4 * j + 2, q] += np.int64((byt[1, t] >> shift) & _UFF)
            counts[base + 4 * j + 3, q] += np.int64((byt[3, t] >> shift) & _UFF)
        for k in range(4):
            byt[k, t] = 0


@numba.njit(cache=True, nogil=True)
def _sample_sums_tile(block: np.ndarray, vflag: np.ndarray, e_het: np.ndarray, e_sex: np.ndarray,
                      w0: int, w1: int, counts: np.ndarray, e_missing: np.ndarray) -> None:
    """Per-sample sums of words w0..w1-1 (see ``packed_sample_sums``) with vertical counters for
    ``counts`` columns 0-3: nibble counters flushed into byte counters every 15 variants and into
    ``counts`` every 255. Missing calls in the het / sex sets are sparse: visited one by one for
    columns 4-5 and ``e_missing``."""
    m, nb = block.shape
    nt = w1 - w0
    nq = 4
    nib_e = np.zeros((nq, nt), dtype=np.uint64)
    nib_o = np.zeros((nq, nt), dtype=np.uint64)
    byt = np.zeros((nq, 4, nt), dtype=np.uint64)
    miss_words = np.zeros(nt, dtype=np.uint64)
    touched = np.zeros(nq, dtype=np.bool_)
    since_nib = 0
    since_byte = 0
    for v in range(m):
        fl = vflag[v]
        q_miss = 1 if fl & 1 else 0
        with_het = (fl & 6) != 0
        q_het = 2 if fl & 2 else 3
        _vertical_add(block[v], nb, w0, nt, nib_e[q_miss], nib_o[q_miss], nib_e[q_het], nib_o[q_het], with_het,
                      miss_words)
        touched[q_miss] = True
        if with_het:
            touched[q_het] = True
            e = e_het[v] if q_het == 2 else e_sex[v]
            e_row = e_missing[q_het - 2]
            q_count = q_het + 2
            for t in range(nt):
                miss = miss_words[t]
                base = (w0 + t) * 32
                while miss:
                    sample = base + np.int64(trailing_zeros_u64(miss) >> _U1)
                    counts[sample, q_count] += 1
                    e_row[sample] += e
                    miss &= miss - _U1
        since_nib += 1
        if since_nib == 15 or v == m - 1:
            for q in range(nq):
                if touched[q]:
                    _nibbles_to_bytes(nib_e[q], nib_o[q], byt[q])
            since_nib = 0
            since_byte += 1
            if since_byte == 17 or v == m - 1:
                for q in range(nq):
                    if touched[q]:
                        _bytes_to_counts(byt[q], w0, q, counts)
                        touched[q] = False
                since_byte = 0


@numba.njit(cache=True, nogil=True, parallel=True)
def packed_sample_sums(block: np.ndarray, vflag: np.ndarray, e_het: np.ndarray, e_sex: np.ndarray,
                       tile_words: int, counts: np.ndarray, e_missing: np.ndarray) -> None:
    """Add per-sample sums over a block of packed .bed rows (variants x bytes, uint8).

    ``vflag`` per variant: bit 1 chrY, bit 2 in the heterozygosity set, bit 4 in the sex-check
    set (the two sets are disjoint); ``e_het`` / ``e_sex``: the variant's expected homozygosity.
    Adds to ``counts`` (samples rounded up to 32 x 6, int64) the columns 0 missing calls off chrY,
    1 missing calls on chrY, 2 het calls in the het set, 3 het calls in the sex set, 4 missing calls
    in the het set, 5 missing calls in the sex set; and to ``e_missing`` (2 x samples rounded up to
    32) the expected homozygosity of the variants a sample misses (0 het set, 1 sex set).
    Parallel over tiles of ``tile_words`` x 32 samples; each sample's sums run in variant order, so
    results do not depend on the tiling or the thread count.
    """
    nb = block.shape[1]
    nw = (nb + 7) // 8
    n_tiles = (nw + tile_words - 1) // tile_words
    for tile in numba.prange(n_tiles):
        w0 = tile * tile_words
        _sample_sums_tile(block, vflag, e_het, e_sex, w0, min(nw, w0 + tile_words), counts, e_missing)


@numba.njit(cache=True, nogil=True, parallel=True)
def subset_packed_rows(block: np.ndarray, rows: np.ndarray, samples: np.ndarray, out: np.ndarray) -> None:
    """Pack rows ``rows`` of ``block`` keeping only the (ascending) sample indices ``samples``
    into ``out`` (len(rows) x ceil(len(samples) / 4)); padding bits are 0, as plink writes them."""
    nb_out = out.shape[1]
    for i in numba.prange(rows.shape[0]):
        row = block[rows[i]]
        for j in range(nb_out):
            out[i, j] = 0
        for k in range(samples.shape[0]):
            s = samples[k]
            code = (np.int64(row[s >> 2]) >> (2 * (s & 3))) & 3
            out[i, k >> 2] |= np.uint8(code << (2 * (k & 3)))


# --------------------------------------------------------------------------------------------
# Hardy-Weinberg exact tests
# --------------------------------------------------------------------------------------------
#
# Both tests sum the probabilities (given the allele counts) of all genotype configurations no
# more likely than the observed one, with a 1e-8 relative slack so that ties count, as plink2 does.
# Rather than enumerating the whole support, they compute the observed probability from a table of
# log factorials, locate where the (unimodal) law drops below it, and either take p = 1 - the
# central mass (when the centre is narrow and p is not small) or sum the two tails directly until
# their terms vanish. The chrX test does this per male allele count (``hwe_x_p_table``).

@numba.njit(cache=True)
def log_factorials(n_max: int) -> np.ndarray:
    """log(k!) for k = 0..n_max."""
    out = np.empty(n_max + 1)
    for k in range(n_max + 1):
        out[k] = math.lgamma(k + 1.0)
    return out


@numba.njit(cache=True, nogil=True)
def _hwe_log_prob(n: int, n_a: int, het: int, lf: np.ndarray) -> float:
    """log P(het | n diploids carrying n_a copies of allele A) under HWE (Levene 1949)."""
    hom_a = (n_a - het) // 2
    hom_b = n - het - hom_a
    return (lf[n] - lf[het] - lf[hom_a] - lf[hom_b] + het * _LN2
            + lf[n_a] + lf[2 * n - n_a] - lf[2 * n])


@numba.njit(cache=True, nogil=True, inline="always")
def _ratio_up(n: int, n_a: int, het: int) -> float:
    """P(het + 2) / P(het)."""
    hom_a = (n_a - het) // 2
    hom_b = n - het - hom_a
    return 4.0 * hom_a * hom_b / ((het + 1.0) * (het + 2.0))


@numba.njit(cache=True, nogil=True, inline="always")
def _ratio_down(n: int, n_a: int, het: int) -> float:
    """P(het - 2) / P(het)."""
    hom_a = (n_a - het) // 2
    hom_b = n - het - hom_a
    return het * (het - 1.0) / (4.0 * (hom_a + 1.0) * (hom_b + 1.0))


@numba.njit(cache=True, nogil=True)
def _cut_up(n: int, n_a: int, log_t: float, mode: int, h_hi: int, lf: np.ndarray, hint: int) -> int:
    """Smallest het count >= ``mode`` (its parity) whose log probability is <= ``log_t``
    (``h_hi`` + 2 if none): a few steps from ``hint`` when given (>= 0), else bisection."""
    if _hwe_log_prob(n, n_a, h_hi, lf) > log_t:
        return h_hi + 2
    if hint >= 0:
        h = max(mode, min(h_hi, hint - ((hint - mode) & 1)))
        for _ in range(8):
            if _hwe_log_prob(n, n_a, h, lf) <= log_t:
                if h == mode or _hwe_log_prob(n, n_a, h - 2, lf) > log_t:
                    return h
                h -= 2
            else:
                h += 2  # h < h_hi here, as log P(h_hi) <= log_t
    lo, hi = mode, h_hi  # log P(lo) > log_t >= log P(hi) unless lo == hi
    if _hwe_log_prob(n, n_a, lo, lf) <= log_t:
        return lo
    while hi - lo > 2:
        mid = lo + ((hi - lo) // 4) * 2
        if _hwe_log_prob(n, n_a, mid, lf) <= log_t:
            hi = mid
        else:
            lo = mid
    return hi


@numba.njit(cache=True, nogil=True)
def _cut_down(n: int, n_a: int, log_t: float, mode: int, h_lo: int, lf: np.ndarray, hint: int) -> int:
    """Largest het count <= ``mode`` whose log probability is <= ``log_t`` (``h_lo`` - 2 if none)."""
    if _hwe_log_prob(n, n_a, h_lo, lf) > log_t:
        return h_lo - 2
    if hint >= 0:
        h = min(mode, max(h_lo, hint + ((mode - hint) & 1)))
        for _ in range(8):
            if _hwe_log_prob(n, n_a, h, lf) <= log_t:
                if h == mode or _hwe_log_prob(n, n_a, h + 2, lf) > log_t:
                    return h
                h += 2
            else:
                h -= 2
    lo, hi = h_lo, mode
    if _hwe_log_prob(n, n_a, hi, lf) <= log_t:
        return hi
    while hi - lo > 2:
        mid = lo + ((hi - lo) // 4) * 2
        if _hwe_log_prob(n, n_a, mid, lf) <= log_t:
            lo = mid
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _hwe_tail_mass(n: int, n_a: int, t: float, lf: np.ndarray, hints: np.ndarray) -> float:
    """Total probability of the het counts (n diploids, n_a copies of A) whose probability is at
    most ``t``.

    The law is unimodal, so those counts form two tails beyond cut points (found near ``hints``
    when these are >= 0; the cuts found are stored back into ``hints``). Where ``t`` is close to
    the mode's probability the centre is narrow: it is summed and subtracted from 1. Otherwise the
    tails are steep and summed directly until their terms vanish.
    """
    if t <= 0.0:
        return 0.0
    n_b = 2 * n - n_a
    h_lo = n_a & 1
    h_hi = min(n_a, n_b)
    mode = (n_a * n_b) // (2 * n)
    if (mode & 1) != (n_a & 1):
        mode += 1
    mode = max(h_lo, min(mode, h_hi))
    while mode + 2 <= h_hi and _ratio_up(n, n_a, mode) > 1.0:
        mode += 2
    while mode - 2 >= h_lo and _ratio_down(n, n_a, mode) > 1.0:
        mode -= 2
    q_mode = math.exp(_hwe_log_prob(n, n_a, mode, lf))
    if q_mode <= t:
        return 1.0
    log_t = math.log(t)
    up_cut = _cut_up(n, n_a, log_t, mode, h_hi, lf, hints[0])
    down_cut = _cut_down(n, n_a, log_t, mode, h_lo, lf, hints[1])
    hints[0] = up_cut
    hints[1] = max(down_cut, 0)
    if t >= 1e-4 * q_mode:
        central = q_mode
        q = q_mode
        for h in range(mode, up_cut - 2, 2):
            q *= _ratio_up(n, n_a, h)
            central += q
        q = q_mode
        for h in range(mode, down_cut + 2, -2):
            q *= _ratio_down(n, n_a, h)
            central += q
        tail = 1.0 - central
        # the log factorials carry an absolute error of about 1e-15 * lf[2n]: trust 1 - central
        # only where that error is below 1e-7 of it
        if tail > max(1e-3, 1e-8 * lf[2 * n]):
            return tail
    tail = 0.0
    if up_cut <= h_hi:
        h = up_cut
        q = math.exp(_hwe_log_prob(n, n_a, h, lf))
        tail += q
        while h + 2 <= h_hi:
            q *= _ratio_up(n, n_a, h)
            h += 2
            tail += q
            if q <= 1e-17 * tail:
                break
    if down_cut >= h_lo:
        h = down_cut
        q = math.exp(_hwe_log_prob(n, n_a, h, lf))
        tail += q
        while h - 2 >= h_lo:
            q *= _ratio_down(n, n_a, h)
            h -= 2
            tail += q
            if q <= 1e-17 * tail:
                break
    return tail


@numba.njit(cache=True, nogil=True)
def hwe_p_table(n_het: int, n_hom1: int, n_hom2: int, lf: np.ndarray) -> float:
    """Two-sided exact HWE test (Wigginton, Cutler & Abecasis 2005) with log factorials ``lf``
    (``log_factorials(2 n)`` or longer)."""
    n = n_het + n_hom1 + n_hom2
    if n == 0:
        return 1.0
    n_a = 2 * n_hom1 + n_het
    t = math.exp(_hwe_log_prob(n, n_a, n_het, lf)) * (1.0 + 1e-8)
    return min(_hwe_tail_mass(n, n_a, t, lf, np.full(2, -1, dtype=np.int64)), 1.0)


@numba.njit(cache=True, nogil=True)
def hwe_x_p_table(f_het: int, f_hom1: int, f_hom2: int, m_a1: int, m_a2: int, lf: np.ndarray) -> float:
    """Exact HWE test for chrX (Graffelman & Weir 2016) with log factorials ``lf``
    (``log_factorials(2 females + males)`` or longer).

    Conditions on the total A1 count over female and male alleles. Given the male A1 count ``ma``
    (hypergeometric), the female het count follows the autosomal HWE law, so the p-value is the
    sum over ``ma`` of P(ma) times the female tail mass below P_obs / P(ma); slices whose P(ma) is
    itself below P_obs count whole.
    """
    nf = f_het + f_hom1 + f_hom2
    nm = m_a1 + m_a2
    n_all = 2 * nf + nm
    if n_all == 0:
        return 1.0
    n_a = 2 * f_hom1 + f_het + m_a1
    lc = lf[n_a] + lf[n_all - n_a] - lf[n_all]
    lp_obs = (lf[nm] - lf[m_a1] - lf[m_a2] + lf[2 * nf] - lf[n_a - m_a1] - lf[2 * nf - n_a + m_a1] + lc)
    if nf > 0:
        lp_obs += _hwe_log_prob(nf, n_a - m_a1, f_het, lf)
    t = math.exp(lp_obs) * (1.0 + 1e-8)
    if t <= 0.0:
        return 0.0
    ma_lo = max(0, n_a - 2 * nf)
    ma_hi = min(nm, n_a)
    mode = max(ma_lo, min(ma_hi, ((nm + 1) * (n_a + 1)) // (n_all + 2)))
    p = 0.0
    hints = np.empty(2, dtype=np.int64)
    for direction in (1, -1):
        ma = mode if direction == 1 else mode - 1
        hints[:] = -1  # the female cut points move by about one count from slice to slice
        while ma_lo <= ma <= ma_hi:
            fa = n_a - ma
            slice_p = math.exp(lf[nm] - lf[ma] - lf[nm - ma] + lf[2 * nf] - lf[fa] - lf[2 * nf - fa] + lc)
            if slice_p <= t:
                p += slice_p
                if slice_p <= 1e-17 * p:
                    break  # P(ma) decreases away from its mode: the rest is negligible
            elif nf > 0:
                p += slice_p * _hwe_tail_mass(nf, fa, t / slice_p, lf, hints)
            ma += direction
    return min(p, 1.0)


@numba.njit(cache=True)
def hwe_exact_p(n_het: int, n_hom1: int, n_hom2: int) -> float:
    """Two-sided exact HWE p-value (Wigginton, Cutler & Abecasis 2005), as plink2 ``--hardy``."""
    n = n_het + n_hom1 + n_hom2
    return hwe_p_table(n_het, n_hom1, n_hom2, log_factorials(2 * n))


@numba.njit(cache=True)
def hwe_x_exact_p(f_het: int, f_hom1: int, f_hom2: int, m_a1: int, m_a2: int) -> float:
    """chrX exact HWE p-value (Graffelman & Weir 2016), as plink2 ``--hardy`` (.hardy.x)."""
    return hwe_x_p_table(f_het, f_hom1, f_hom2, m_a1, m_a2,
                         log_factorials(2 * (f_het + f_hom1 + f_hom2) + m_a1 + m_a2))


@numba.njit(cache=True, nogil=True, parallel=True)
def hwe_from_counts(counts: np.ndarray, chrom_class: np.ndarray, lf: np.ndarray, out: np.ndarray) -> None:
    """HWE p per variant from ``packed_variant_counts`` rows: founders (autosomes), female founders
    with male founders' hom calls (chrX); NaN for chrY and MT, which plink2 does not test."""
    for v in numba.prange(counts.shape[0]):
        cls = chrom_class[v]
        if cls == CLASS_Y or cls == CLASS_MT:
            out[v] = np.nan
        elif cls == CLASS_X:
            out[v] = hwe_x_p_table(counts[v, 3], counts[v, 2], counts[v, 4], counts[v, 5], counts[v, 7], lf)
        else:
            out[v] = hwe_p_table(counts[v, 3], counts[v, 2], counts[v, 4], lf)


# --------------------------------------------------------------------------------------------
# Table formatting (the QC tables: 10^5-10^7 rows, where Python or Arrow float printing dominates;
# the number formatter itself is cohortflow.numfmt)
# --------------------------------------------------------------------------------------------

NUMBER_FIELD_WIDTH = 24  # bytes per field of format_number_columns: sign, 15 digits, point, exponent


@numba.njit(cache=True, nogil=True, parallel=True)
def format_number_columns(values: np.ndarray, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number columns as text: row c of ``values`` (columns x rows, float64) printed as C's
    ``%.{digits[c]}g`` (1 <= digits <= 15; round half to even on the scaled value, so a value within
    an ulp of a rounding tie may differ from printf in the last digit), or as an integer where
    ``digits[c]`` is 0; NaN prints as an empty field. Returns (offsets, data): field c of row r is
    ``data[offsets[c, r]:offsets[c, r + 1]]``. Parallel over (column, row-chunk) pieces."""
    n_cols, n = values.shape
    chunk = 16384
    n_chunks = (n + chunk - 1) // chunk
    data = np.empty(n_cols * n * NUMBER_FIELD_WIDTH, dtype=np.uint8)
    ends = np.empty((n_cols, n), dtype=np.int64)
    for piece in numba.prange(n_cols * n_chunks):
        c = piece // n_chunks
        r0 = (piece % n_chunks) * chunk
        for r in range(r0, min(n, r0 + chunk)):
            pos = (c * n + r) * NUMBER_FIELD_WIDTH
            x = values[c, r]
            if digits[c] == 0 and x == x:
                pos = put_int(np.int64(x), data, pos)
            else:
                pos = put_g(x, max(digits[c], 1), False, data, pos)
            ends[c, r] = pos
    offsets = np.empty((n_cols, n + 1), dtype=np.int64)
    for c in range(n_cols):
        offsets[c, 0] = c * n * NUMBER_FIELD_WIDTH
        for r in range(n):
            offsets[c, r + 1] = ends[c, r]
    return offsets, data


@numba.njit(cache=True, nogil=True)
def _field_start(offsets: np.ndarray, c: int, r: int, width: int) -> int:
    # number columns leave a gap after each field: row r starts at its own slot
    return offsets[c, r] if width == 0 else offsets[c, 0] + r * width


@numba.njit(cache=True, nogil=True, parallel=True)
def join_text_columns(offsets: np.ndarray, data: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Rows of tab-separated fields, each ending in a newline. Field c of row r is
    ``data[start:offsets[c, r + 1]]`` with start = ``offsets[c, r]`` for packed columns
    (``slot[c]`` = 0, e.g. Arrow strings) or ``offsets[c, 0] + r * slot[c]`` for columns written in
    fixed slots (``format_number_columns``: slot = its field width). Parallel over row chunks."""
    n_cols = offsets.shape[0]
    n = offsets.shape[1] - 1
    row_end = np.empty(n + 1, dtype=np.int64)
    row_end[0] = 0
    for r in range(n):
        size = n_cols
        for c in range(n_cols):
            size += offsets[c, r + 1] - _field_start(offsets, c, r, slot[c])
        row_end[r + 1] = row_end[r] + size
    out = np.empty(row_end[n], dtype=np.uint8)
    chunk = 16384
    for piece in numba.prange((n + chunk - 1) // chunk):
        for r in range(piece * chunk, min(n, piece * chunk + chunk)):
            pos = row_end[r]
            for c in range(n_cols):
                for k in range(_field_start(offsets, c, r, slot[c]), offsets[c, r + 1]):
                    out[pos] = data[k]
                    pos += 1
                out[pos] = 9 if c < n_cols - 1 else 10
                pos += 1
    return out


# --------------------------------------------------------------------------------------------
# PCA helpers
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def standardize_block(geno: np.ndarray, a1_freq: np.ndarray) -> np.ndarray:
    """(g - 2p) / sqrt(2p(1-p)) as float32; missing calls -> 0 (mean imputation)."""
    m, n = geno.shape
    out = np.zeros((m, n), dtype=np.float32)
    for v in range(m):
        p = a1_freq[v]
        sd = math.sqrt(2.0 * p * (1.0 - p))
        if sd <= 0.0:
            continue
        mean = 2.0 * p
        for s in range(n):
            g = geno[v, s]
            if g >= 0:
                out[v, s] = (g - mean) / sd
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def ld_prune_greedy(z: np.ndarray, chrom: np.ndarray, pos: np.ndarray, keep: np.ndarray,
                    first_new: int, r2_max: float, window_bp: int) -> None:
    """Greedy windowed LD pruning over rows of standardized genotypes ``z`` (mean-imputed).

    Rows before ``first_new`` are already-kept variants carried over from earlier blocks. Each
    new row is kept unless its r^2 with a kept row on the same chromosome within ``window_bp``
    exceeds ``r2_max``. r is the correlation of the mean-imputed standardized vectors.
    """
    m, n = z.shape
    norms = np.empty(m)
    for i in range(m):
        acc = 0.0
        for s in range(n):
            acc += z[i, s] * z[i, s]
        norms[i] = acc
    for i in range(first_new, m):
        if norms[i] <= 0.0:
            keep[i] = False
            continue
        ok = True
        j = i - 1
        while j >= 0:
            if chrom[j] != chrom[i] or pos[i] - pos[j] > window_bp:
                break
            if keep[j]:
                dot = 0.0
                for s in range(n):
                    dot += z[i, s] * z[j, s]
                if dot * dot > r2_max * norms[i] * norms[j]:
                    ok = False
                    break
            j -= 1
        keep[i] = ok


@numba.njit(cache=True)
def standardize_rows(geno: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genotype rows (int8 A1 counts, -1 missing) centred and scaled to mean square 1 over the
    samples, missing calls set to the row mean (0 after centring), for LD (r = z z' / n).

    Returns ``(z, polymorphic)``: float64 z (variants x samples) and a mask that is False for rows
    without variation (their z row is all 0).
    """
    m, n = geno.shape
    out = np.zeros((m, n), dtype=np.float64)
    poly = np.zeros(m, dtype=np.bool_)
    for v in range(m):
        total = 0.0
        count = 0
        for i in range(n):
            g = geno[v, i]
            if g >= 0:
                total += g
                count += 1
        if count == 0:
            continue
        mean = total / count
        ss = 0.0
        for i in range(n):
            g = geno[v, i]
            x = (g - mean) if g >= 0 else 0.0
            out[v, i] = x
            ss += x * x
        if ss <= 1e-12 * n:
            for i in range(n):
                out[v, i] = 0.0
            continue
        scale = 1.0 / np.sqrt(ss / n)
        for i in range(n):
            out[v, i] *= scale
        poly[v] = True
    return out, poly
