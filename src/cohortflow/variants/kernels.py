"""numba kernels for variant ingestion, QC and PCA: pure functions on numpy arrays, no I/O.

Genotype matrices are int8 counts of the .bim column-5 allele (A1 = ALT), -1 missing,
variants x samples, as returned by ``cohortflow.io.plink``.

Chromosome classes (``chrom_class`` arrays): 0 autosome/PAR (diploid for everyone), 1 chrX (males
haploid), 2 chrY (males only, haploid), 3 MT (haploid for everyone). Sex codes as in .fam:
1 male, 2 female, 0 unknown (diploid, as plink2 treats them on chrX).
"""

from __future__ import annotations

import math

import numba
import numpy as np

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
# Counting (QC)
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def sample_missing_counts(geno: np.ndarray, chrom_class: np.ndarray, is_male: np.ndarray,
                          missing: np.ndarray, observed: np.ndarray) -> None:
    """Add per-sample missing / eligible call counts of a block (plink2 ``--missing`` rules:
    chrY counts for males only)."""
    m, n = geno.shape
    for v in range(m):
        cls = chrom_class[v]
        for s in range(n):
            if cls == CLASS_Y and not is_male[s]:
                continue
            observed[s] += 1
            if geno[v, s] < 0:
                missing[s] += 1


@numba.njit(cache=True, nogil=True)
def variant_counts(geno: np.ndarray, chrom_class: np.ndarray, sample_mask: np.ndarray,
                   founder: np.ndarray, sex: np.ndarray, out: np.ndarray) -> None:
    """Per-variant counts over samples where ``sample_mask`` is set.

    ``out`` (variants x 10) float64 columns:
    0 missing calls, 1 eligible samples (chrY: males only),
    2 A1 allele count, 3 observed allele count (plink2 ``--freq``: founders; chrX males and
      chrY/MT count as haploid, a het haploid call counting half),
    4 hom A1, 5 het, 6 hom A2 (founders; chrX females only),
    7 male A1 calls, 8 male A2 calls (founder males, chrX; het males left out),
    9 spare.
    """
    m, n = geno.shape
    for v in range(m):
        cls = chrom_class[v]
        for c in range(10):
            out[v, c] = 0.0
        for s in range(n):
            if not sample_mask[s]:
                continue
            male = sex[s] == 1
            if cls == CLASS_Y and not male:
                continue
            g = geno[v, s]
            out[v, 1] += 1
            if g < 0:
                out[v, 0] += 1
                continue
            if not founder[s]:
                continue
            haploid = cls == CLASS_MT or cls == CLASS_Y or (cls == CLASS_X and male)
            if haploid:
                out[v, 2] += 0.5 * g
                out[v, 3] += 1
            else:
                out[v, 2] += g
                out[v, 3] += 2
            if cls == CLASS_X:
                if male:
                    if g == 2:
                        out[v, 7] += 1
                    elif g == 0:
                        out[v, 8] += 1
                    continue
                if sex[s] != 2:
                    continue
            if g == 2:
                out[v, 4] += 1
            elif g == 1:
                out[v, 5] += 1
            else:
                out[v, 6] += 1


@numba.njit(cache=True, nogil=True)
def heterozygosity_accumulate(geno: np.ndarray, a1_freq: np.ndarray, use: np.ndarray,
                              obs_hom: np.ndarray, exp_hom: np.ndarray, n_used: np.ndarray) -> None:
    """plink2 ``--het``: per sample, observed and expected homozygous counts over the variants
    in ``use``; expected homozygosity per called variant is 1 - 2pq (plink2 uses no sample-size
    correction)."""
    m, n = geno.shape
    for v in range(m):
        if not use[v]:
            continue
        p = a1_freq[v]
        e = 1.0 - 2.0 * p * (1.0 - p)
        for s in range(n):
            g = geno[v, s]
            if g < 0:
                continue
            n_used[s] += 1
            exp_hom[s] += e
            if g != 1:
                obs_hom[s] += 1


# --------------------------------------------------------------------------------------------
# Hardy-Weinberg exact tests
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def hwe_exact_p(n_het: int, n_hom1: int, n_hom2: int) -> float:
    """Two-sided exact HWE test (Wigginton, Cutler & Abecasis 2005).

    Sums the probabilities of all het counts (given the allele counts) that are no more likely
    than the observed one; the tiny relative slack absorbs rounding so ties count, as plink does.
    """
    n = n_het + n_hom1 + n_hom2
    if n == 0:
        return 1.0
    n_rare = 2 * min(n_hom1, n_hom2) + n_het
    # het counts have the parity of n_rare
    probs = np.zeros(n_rare + 1)
    mid = (n_rare * (2 * n - n_rare)) // (2 * n)
    if (mid & 1) != (n_rare & 1):
        mid += 1
    probs[mid] = 1.0
    total = 1.0
    hom_r = (n_rare - mid) // 2
    hom_c = n - mid - hom_r
    h = mid
    while h > 1:
        probs[h - 2] = probs[h] * h * (h - 1.0) / (4.0 * (hom_r + 1.0) * (hom_c + 1.0))
        total += probs[h - 2]
        h -= 2
        hom_r += 1
        hom_c += 1
    hom_r = (n_rare - mid) // 2
    hom_c = n - mid - hom_r
    h = mid
    while h <= n_rare - 2:
        probs[h + 2] = probs[h] * 4.0 * hom_r * hom_c / ((h + 2.0) * (h + 1.0))
        total += probs[h + 2]
        h += 2
        hom_r -= 1
        hom_c -= 1
    p_obs = probs[n_het]
    limit = p_obs * (1.0 + 1e-8)
    p = 0.0
    for i in range(n_rare + 1):
        if probs[i] <= limit:
            p += probs[i]
    p /= total
    return min(p, 1.0)


@numba.njit(cache=True, nogil=True)
def _log_factorial(k: float) -> float:
    return math.lgamma(k + 1.0)


@numba.njit(cache=True, nogil=True)
def hwe_x_exact_p(f_het: int, f_hom1: int, f_hom2: int, m_a1: int, m_a2: int) -> float:
    """Exact HWE test for chrX (Graffelman & Weir 2016): females diploid, males haploid.

    Conditions on the total A1 count over female and male alleles; enumerates male A1 counts and
    female het counts, summing configurations no more likely than the observed one.
    """
    nf = f_het + f_hom1 + f_hom2
    nm = m_a1 + m_a2
    n_alleles = 2 * nf + nm
    if n_alleles == 0:
        return 1.0
    n_a = 2 * f_hom1 + f_het + m_a1
    n_b = n_alleles - n_a
    const = (_log_factorial(n_a) + _log_factorial(n_b) + _log_factorial(nf) + _log_factorial(nm)
             - _log_factorial(n_alleles))

    def log_p(ma, het):
        fa = n_a - ma  # female A1 alleles
        hom1 = (fa - het) // 2
        hom2 = nf - het - hom1
        return (const + het * math.log(2.0) - _log_factorial(ma) - _log_factorial(nm - ma)
                - _log_factorial(hom1) - _log_factorial(het) - _log_factorial(hom2))

    lp_obs = log_p(m_a1, f_het)
    limit = lp_obs + 1e-8
    p = 0.0
    total = 0.0
    for ma in range(max(0, n_a - 2 * nf), min(nm, n_a) + 1):
        fa = n_a - ma
        # female hets: same parity as fa, het <= fa, het <= 2 nf - fa
        lo = fa & 1
        hi = min(fa, 2 * nf - fa)
        het = lo
        while het <= hi:
            lp = log_p(ma, het)
            q = math.exp(lp - lp_obs)
            total += q
            if lp <= limit:
                p += q
            het += 2
    return min(p / total, 1.0)


@numba.njit(cache=True, nogil=True)
def hwe_block(counts: np.ndarray, chrom_class: np.ndarray, out: np.ndarray) -> None:
    """HWE p per variant from ``variant_counts`` rows (NaN for chrY/MT, as plink2 skips them)."""
    for v in range(counts.shape[0]):
        cls = chrom_class[v]
        if cls == CLASS_Y or cls == CLASS_MT:
            out[v] = np.nan
        elif cls == CLASS_X:
            out[v] = hwe_x_exact_p(int(counts[v, 5]), int(counts[v, 4]), int(counts[v, 6]),
                                   int(counts[v, 7]), int(counts[v, 8]))
        else:
            out[v] = hwe_exact_p(int(counts[v, 5]), int(counts[v, 4]), int(counts[v, 6]))


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
