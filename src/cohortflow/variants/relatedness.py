"""KING-robust kinship and relatedness pruning, as ``plink2 --make-king-table`` / ``--king-cutoff``.

KING-robust (between-family) kinship of samples i and j over the variants where both have a call
(Manichaikul et al. 2010, as plink2 computes it)::

    kinship = 0.5 - (4 IBS0 + HET1_HOM2 + HET2_HOM1) / (4 (HETHET + min(HET1_HOM2, HET2_HOM1)))

with IBS0 = opposite homozygotes, HETHET = both heterozygous, HETx_HOMy = x heterozygous and y
homozygous. It does not use allele frequencies, so it holds across ancestries. Expected values:
0.5 duplicates / monozygotic twins, 0.25 parent-offspring and full siblings, 0.125 second degree,
0.0625 third degree, 0 unrelated (negative between ancestries).

Variants: as plink2, chromosomes X (23), Y (24) and MT (26) are always left out (chromosome
classes of ``cohortflow.variants.qc.chromosome_classes``); XY (25, PAR) and other contigs are used.
All samples are used unless ``sample_mask`` says otherwise (plink2 does not restrict KING to
founders).

Work: the packed .bed bytes are turned into sample-major bit planes (het, hom A1, hom A2, missing)
per chunk of variants, and every sample pair's counts are popcounts of ANDed words, tiled over
sample pairs and numba-parallel over tiles (``relatedness_kernels``). Counts are integers, so
results are identical for any thread count.

NSNP is the true number of variants where both samples have a call. plink2 2.00a3 over-counts it
by one for each "sparse" variant (all but n // 33 samples share one homozygous genotype) at which
one sample of the pair is the rare homozygote and the other has a missing call (its
CalcKingSparseThread adds a hom-hom count there); KINSHIP, HETHET and IBS0 counts are unaffected,
and only those pairs' NSNP (and the HETHET / IBS0 proportions of NSNP) differ from plink2's.

Memory, ``king_counts`` (every pair): 20 bytes per pair for the counts while computing and 28
bytes per pair in the result (``n (n - 1) / 2`` pairs: 2.4 GB peak at 10,000 samples, 100 MB at
2,000); the bit planes of one chunk of variants take at most ``chunk_bytes`` (default 256 MiB). A
full table of 10,000 samples has 50 million rows (several GB as a DataFrame): pass
``min_kinship``, or write the ``KingResult`` with ``write_king_table``, which formats in blocks.

``king_related`` (the relatedness QC step) keeps only pairs above a kinship floor: it holds the
bit planes of all used variants (``n x variants / 2`` bytes) and counts pairs per pair of sample
blocks, so its memory grows with samples x variants, not with pairs (50,000 samples x 100,000
variants: 2.5 GB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import atomic_open
from cohortflow.io.plink import Bed, open_bed, read_fam
from cohortflow.variants.kernels import CLASS_AUTOSOME
from cohortflow.threads import thread_limit
from cohortflow.variants.qc import chromosome_classes, qc_statistics
from cohortflow.variants.relatedness_kernels import (
    N_COUNTS, SUB_WORDS, format_g6_array, format_kin0_rows, gather_rows, king_cross_counts, king_finalize,
    king_finalize_cross, king_pair_counts, kinship_prune, plane_totals, rows_to_bitplanes,
)

KING_TABLE_COLUMNS = ["FID1", "IID1", "FID2", "IID2", "NSNP", "HETHET", "IBS0", "KINSHIP"]
# 2^-3.5, between 2nd and 3rd degree: removes 2nd-degree relatives and closer (0.177 = 2^-2.5,
# between 1st and 2nd degree, removes 1st degree and duplicates only)
KING_CUTOFF_DEFAULT = 0.0884
CHUNK_BYTES = 256 * 2**20
# Variants for relatedness QC: at most this many QC-passing ones, evenly spaced (UK Biobank's
# KING run used about 93,000 markers); the pair work grows with samples^2 x variants.
KING_MAX_VARIANTS = 100_000
_VARIANTS_PER_SUB = 64 * SUB_WORDS


@dataclass
class KingResult:
    """KING-robust counts and kinship of every pair of the selected samples.

    Pairs are in plink2's lower-triangle order: for i = 1..n-1, for j = 0..i-1, the pair
    (sample i = '1', sample j = '2'), at index ``i (i - 1) / 2 + j``.

    Attributes: ``samples`` (DataFrame ``fid iid``, the selected samples in .fam order),
    ``n_variants`` (variants used), and per pair int32 arrays ``nsnp`` (variants where both have
    a call), ``hethet``, ``ibs0``, ``het1_hom2``, ``het2_hom1`` and float64 ``kinship``.

    A result of :func:`king_related` holds only some pairs: ``pair_i`` / ``pair_j`` (int64) give
    their sample indices, still in pair order; None means every pair.
    """

    samples: pd.DataFrame
    n_variants: int
    nsnp: np.ndarray
    hethet: np.ndarray
    ibs0: np.ndarray
    het1_hom2: np.ndarray
    het2_hom1: np.ndarray
    kinship: np.ndarray
    pair_i: np.ndarray | None = None
    pair_j: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    def pair_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(i, j) sample indices of every pair held, i > j, in pair order."""
        if self.pair_i is not None:
            return self.pair_i, self.pair_j
        n = self.n_samples
        i = np.repeat(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64))
        j = np.arange(i.size, dtype=np.int64) - i * (i - 1) // 2
        return i, j

    def table(self, *, min_kinship: float | None = None) -> pd.DataFrame:
        """The plink2 ``.kin0`` table: columns ``FID1 IID1 FID2 IID2 NSNP HETHET IBS0 KINSHIP``,
        one row per pair in pair order (ID1 = the later sample in the .fam). HETHET and IBS0 are
        proportions of NSNP (plink2's ``(1 / NSNP) * count``). With ``min_kinship``, only pairs with
        kinship >= min_kinship (or NaN) are kept, as ``--king-table-filter`` does."""
        i, j = self.pair_indices()
        keep = None
        if min_kinship is not None:
            # plink2 drops a row when kinship < filter, so NaN rows stay
            keep = ~(self.kinship < min_kinship)
            i, j = i[keep], j[keep]

        def sel(a):
            return a if keep is None else a[keep]
        fid = self.samples["fid"].to_numpy(dtype=object)
        iid = self.samples["iid"].to_numpy(dtype=object)
        nsnp = sel(self.nsnp)
        with np.errstate(divide="ignore", invalid="ignore"):
            recip = 1.0 / nsnp.astype(np.float64)
        return pd.DataFrame({
            "FID1": fid[i], "IID1": iid[i], "FID2": fid[j], "IID2": iid[j],
            "NSNP": nsnp,
            "HETHET": recip * sel(self.hethet).astype(np.float64),
            "IBS0": recip * sel(self.ibs0).astype(np.float64),
            "KINSHIP": sel(self.kinship),
        }, columns=KING_TABLE_COLUMNS)

    def matrix(self) -> np.ndarray:
        """The symmetric n x n kinship matrix (float64, 0.5 on the diagonal, as plink2's
        ``--make-king square``); 8 n^2 bytes (800 MB at 10,000 samples). Only for a result of
        every pair."""
        if self.pair_i is not None:
            raise CohortflowError("kinship matrix of a result holding only related pairs (king_related)")
        n = self.n_samples
        out = np.full((n, n), 0.5)
        i, j = self.pair_indices()
        out[i, j] = self.kinship
        out[j, i] = self.kinship
        return out


def _as_bed(bed: Bed | str | Path) -> Bed:
    return bed if isinstance(bed, Bed) else open_bed(bed)


def _check_mask(mask, size: int, what: str, path) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_ or arr.shape != (size,):
        raise CohortflowError(f"{what} must be a boolean array of length {size}, got {arr.dtype} "
                              f"{arr.shape}", path=path)
    return arr


def king_variant_mask(bed: Bed, variant_mask: np.ndarray | None = None) -> np.ndarray:
    """The variants KING uses: ``variant_mask`` (default all) minus chromosomes X, Y and MT."""
    use = chromosome_classes(bed.bim["chrom"]) == CLASS_AUTOSOME
    if variant_mask is not None:
        use &= _check_mask(variant_mask, bed.n_variants, "variant_mask", f"{bed.prefix}.bim")
    return use


def _king_inputs(bed: Bed, sample_mask, variant_mask, max_variants: int | None = None):
    """(selected sample indices, used-variant mask, number used), checked as KING needs them.
    ``max_variants``: keep at most this many used variants, evenly spaced in .bim order."""
    fam_path = f"{bed.prefix}.fam"
    if sample_mask is None:
        sample_idx = np.arange(bed.n_samples, dtype=np.int64)
    else:
        sample_idx = np.flatnonzero(_check_mask(sample_mask, bed.n_samples, "sample_mask", fam_path))
    if sample_idx.size < 2:
        raise CohortflowError(f"KING kinship needs at least 2 samples, {sample_idx.size} selected", path=fam_path)
    use = king_variant_mask(bed, variant_mask)
    if max_variants is not None and int(use.sum()) > max_variants:
        use = thin_variants(use, max_variants)
    n_used = int(use.sum())
    if n_used == 0:
        raise CohortflowError("no autosomal variants left for KING kinship (chromosomes X, Y and MT "
                              "are left out)", path=f"{bed.prefix}.bim")
    if n_used >= 2**31:
        raise CohortflowError(f"{n_used} variants: KING counts are limited to 2^31 - 1 variants",
                              path=f"{bed.prefix}.bim")
    return sample_idx, use, n_used


def thin_variants(use: np.ndarray, max_variants: int) -> np.ndarray:
    """The mask ``use`` reduced to at most ``max_variants`` of its variants, evenly spaced over
    them in order (the k-th kept is used variant ``floor(k * n_used / max_variants)``)."""
    rows = np.flatnonzero(use)
    if rows.size <= max_variants:
        return use.copy()
    if max_variants < 1:
        raise CohortflowError(f"max_variants must be at least 1, not {max_variants}")
    keep = np.zeros_like(use)
    keep[rows[(np.arange(max_variants, dtype=np.int64) * rows.size) // max_variants]] = True
    return keep


def _block_rows(n: int, chunk_bytes: int) -> int:
    """.bed rows read per chunk: those of about ``chunk_bytes`` of bit planes of ``n`` samples."""
    sub_bytes = n * 4 * SUB_WORDS * 8
    return max(1, int(chunk_bytes) // sub_bytes) * _VARIANTS_PER_SUB


def _chunk_planes(bed: Bed, use: np.ndarray, sample_idx: np.ndarray, chunk_bytes: int):
    """Yield the bit planes ``(geno_planes (n_sub, n, 3, SUB_WORDS), missing_plane (n_sub, n,
    SUB_WORDS))`` of the used variants of the selected samples, one chunk (``_block_rows`` .bed
    rows) at a time, in .bim order (a chunk's last sub-block is padded with empty words, which add
    nothing to any count)."""
    n = sample_idx.size
    all_samples = n == bed.n_samples
    row_bytes = -(-n // 32) * 8  # whole uint64 words of 32 samples
    for start, packed in bed.iter_packed_blocks(_block_rows(n, chunk_bytes)):
        rows = np.flatnonzero(use[start:start + len(packed)]).astype(np.int64)
        if rows.size == 0:
            continue
        n_sub = -(-rows.size // _VARIANTS_PER_SUB)
        geno_planes = np.zeros((n_sub, n, 3, SUB_WORDS), dtype=np.uint64)
        missing_plane = np.zeros((n_sub, n, SUB_WORDS), dtype=np.uint64)
        selected = np.zeros((rows.size, row_bytes), dtype=np.uint8)
        gather_rows(packed, rows, sample_idx, all_samples, selected)
        rows_to_bitplanes(selected.view(np.uint64), rows.size, n, geno_planes, missing_plane)
        del selected
        yield geno_planes, missing_plane


def _fam_rows(fam: pd.DataFrame, sample_idx: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"fid": fam["fid"].to_numpy()[sample_idx].astype(str),
                         "iid": fam["iid"].to_numpy()[sample_idx].astype(str)})


def king_counts(bed: Bed | str | Path, *, sample_mask: np.ndarray | None = None,
                variant_mask: np.ndarray | None = None, threads: int = 1,
                chunk_bytes: int = CHUNK_BYTES) -> KingResult:
    """KING-robust counts and kinship of every pair of samples (see the module docstring).

    ``bed``: a ``Bed`` or a PLINK fileset prefix. ``sample_mask`` / ``variant_mask``: boolean
    arrays over the .fam / .bim rows (default all; chromosomes X, Y, MT are always left out).
    ``threads``: numba threads. ``chunk_bytes``: memory for the bit planes of one chunk of variants.
    Returns a ``KingResult``; identical for any ``threads`` and ``chunk_bytes``. Memory grows with
    the square of the samples (48 bytes per pair); :func:`king_related` keeps only related pairs.
    """
    bed = _as_bed(bed)
    sample_idx, use, n_used = _king_inputs(bed, sample_mask, variant_mask)
    n = sample_idx.size
    n_pairs = n * (n - 1) // 2
    counts = np.zeros((N_COUNTS, n_pairs), dtype=np.int32)
    het_total = np.zeros(n, dtype=np.int64)
    miss_total = np.zeros(n, dtype=np.int64)

    with thread_limit(threads):
        for geno_planes, missing_plane in _chunk_planes(bed, use, sample_idx, chunk_bytes):
            miss_any = np.zeros(missing_plane.shape[:2], dtype=np.bool_)
            plane_totals(geno_planes, missing_plane, het_total, miss_total, miss_any)
            king_pair_counts(geno_planes, missing_plane, miss_any, counts)
            del geno_planes, missing_plane
        nsnp = np.empty(n_pairs, dtype=np.int32)
        hethet = np.empty(n_pairs, dtype=np.int32)
        ibs0 = np.empty(n_pairs, dtype=np.int32)
        het1_hom2 = np.empty(n_pairs, dtype=np.int32)
        het2_hom1 = np.empty(n_pairs, dtype=np.int32)
        kinship = np.empty(n_pairs, dtype=np.float64)
        king_finalize(counts, het_total, miss_total, n_used, nsnp, hethet, ibs0, het1_hom2, het2_hom1,
                      kinship)
    del counts
    return KingResult(samples=_fam_rows(bed.fam, sample_idx), n_variants=n_used, nsnp=nsnp, hethet=hethet,
                      ibs0=ibs0, het1_hom2=het1_hom2, het2_hom1=het2_hom1, kinship=kinship)


BLOCK_SAMPLES = 2048


def king_parts(n_parts: int) -> list[tuple[int, int]]:
    """The parts of the pair triangle when the samples are cut into ``n_parts`` equal groups:
    (p, q) with q <= p, pairs between group p and group q (within group p when p == q), in order;
    ``n_parts (n_parts + 1) / 2`` parts that hold every pair once."""
    if isinstance(n_parts, bool) or not isinstance(n_parts, int) or n_parts < 1:
        raise CohortflowError(f"n_parts must be a positive integer, not {n_parts!r}")
    return [(p, q) for p in range(n_parts) for q in range(p + 1)]


def king_related(bed: Bed | str | Path, *, min_kinship: float, sample_mask: np.ndarray | None = None,
                 variant_mask: np.ndarray | None = None, max_variants: int | None = None,
                 part: tuple[int, int] = (0, 0), n_parts: int = 1, threads: int = 1,
                 block_samples: int = BLOCK_SAMPLES, chunk_bytes: int = CHUNK_BYTES) -> KingResult:
    """KING-robust kinship of every pair of samples, keeping the pairs with kinship >=
    ``min_kinship`` (and NaN), for cohorts too big for :func:`king_counts`' all-pairs arrays.

    The bit planes of every used variant are held at once (``n x variants / 2`` bytes: 2.5 GB at
    50,000 samples x 100,000 variants) and the pairs are counted per pair of blocks of
    ``block_samples`` samples (counts of one block pair: ``20 block_samples^2`` bytes), so
    memory no longer grows with the number of pairs. ``max_variants``: use at most this many of the
    variants, evenly spaced in .bim order (:func:`thin_variants`).

    ``part`` / ``n_parts``: only the pairs of one part of :func:`king_parts` (the selected samples
    cut into ``n_parts`` equal groups in .fam order; planes held for the two groups only), so the
    work can run as separate jobs; :func:`merge_king_results` of all parts equals the one-part
    result. Other options as :func:`king_counts`; the pairs kept carry the same values as there, in
    the same order (``pair_i`` / ``pair_j`` of the ``KingResult``, indices among all selected
    samples), for any ``threads``, ``block_samples``, ``chunk_bytes`` and parts.
    """
    bed = _as_bed(bed)
    if not isinstance(min_kinship, (int, float)) or math.isnan(min_kinship):
        raise CohortflowError(f"min_kinship must be a number (-inf keeps every pair), not {min_kinship!r}")
    if tuple(part) not in king_parts(n_parts):
        raise CohortflowError(f"part {tuple(part)} is not one of the {n_parts * (n_parts + 1) // 2} parts of "
                              f"n_parts={n_parts} (p, q with 0 <= q <= p < n_parts)")
    block = max(2, int(block_samples))
    sample_idx, use, n_used = _king_inputs(bed, sample_mask, variant_mask, max_variants)
    n = sample_idx.size
    p, q = part
    cut = [k * n // n_parts for k in range(n_parts + 1)]
    # the samples held: group q, then group p (later in .fam order); positions among the selected
    held = [(cut[q], cut[q + 1])] if p == q else [(cut[q], cut[q + 1]), (cut[p], cut[p + 1])]
    local = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in held])
    n_local = local.size

    def spans(lo, hi):  # blocks of a group, in local positions
        return [(a, min(a + block, hi)) for a in range(lo, hi, block)]
    spans_q = spans(0, cut[q + 1] - cut[q])
    spans_p = spans_q if p == q else spans(cut[q + 1] - cut[q], n_local)
    all_spans = spans_q if p == q else spans_q + spans_p
    het_total = np.zeros(n_local, dtype=np.int64)
    miss_total = np.zeros(n_local, dtype=np.int64)
    found: list[tuple[np.ndarray, ...]] = []
    # every chunk's sub-blocks, one contiguous array per sample block (C-contiguous for the kernels)
    block_rows = _block_rows(n_local, chunk_bytes)
    n_sub = sum(-(-int(use[s:s + block_rows].sum()) // _VARIANTS_PER_SUB)
                for s in range(0, bed.n_variants, block_rows))
    planes = {(a, b): (np.zeros((n_sub, b - a, 3, SUB_WORDS), dtype=np.uint64),
                       np.zeros((n_sub, b - a, SUB_WORDS), dtype=np.uint64),
                       np.zeros((n_sub, b - a), dtype=np.bool_)) for a, b in all_spans}
    with thread_limit(threads):
        at = 0
        if n_local:
            for geno_planes, missing_plane in _chunk_planes(bed, use, sample_idx[local], chunk_bytes):
                k = geno_planes.shape[0]
                miss_any = np.zeros(missing_plane.shape[:2], dtype=np.bool_)
                plane_totals(geno_planes, missing_plane, het_total, miss_total, miss_any)
                for (a, b), (geno, missing, any_missing) in planes.items():
                    geno[at:at + k] = geno_planes[:, a:b]
                    missing[at:at + k] = missing_plane[:, a:b]
                    any_missing[at:at + k] = miss_any[:, a:b]
                at += k
                del geno_planes, missing_plane, miss_any
        block_pairs = ([(sa, sb) for ka, sa in enumerate(spans_p) for sb in spans_q[:ka + 1]] if p == q
                       else [(sa, sb) for sa in spans_p for sb in spans_q])
        for (a0, a1), (b0, b1) in block_pairs:
            if (a0, a1) == (b0, b1):
                n_pairs = (a1 - a0) * (a1 - a0 - 1) // 2
                counts = np.zeros((N_COUNTS, n_pairs), dtype=np.int32)
                king_pair_counts(*planes[a0, a1], counts)
            else:
                n_pairs = (a1 - a0) * (b1 - b0)
                counts = np.zeros((N_COUNTS, n_pairs), dtype=np.int32)
                king_cross_counts(*planes[a0, a1], *planes[b0, b1], counts)
            values = [np.empty(n_pairs, dtype=np.int32) for _ in range(5)] + [np.empty(n_pairs)]
            if (a0, a1) == (b0, b1):
                king_finalize(counts, het_total[a0:a1], miss_total[a0:a1], n_used, *values)
            else:
                king_finalize_cross(counts, het_total[a0:a1], miss_total[a0:a1], het_total[b0:b1],
                                    miss_total[b0:b1], n_used, *values)
            del counts
            keep = np.flatnonzero(~(values[5] < min_kinship))
            if keep.size == 0:
                continue
            if (a0, a1) == (b0, b1):
                i_local = np.floor((np.sqrt(8.0 * keep + 1.0) + 1.0) / 2.0).astype(np.int64)
                i_local -= i_local * (i_local - 1) // 2 > keep  # guard the float square root
                i_local += (i_local + 1) * i_local // 2 <= keep
                pi, pj = i_local + a0, keep - i_local * (i_local - 1) // 2 + b0
            else:
                pi, pj = keep // (b1 - b0) + a0, keep % (b1 - b0) + b0
            found.append((local[pi], local[pj], *(v[keep] for v in values)))
    return _king_pairs_result(_fam_rows(bed.fam, sample_idx), n_used, found)


def _king_pairs_result(samples: pd.DataFrame, n_variants: int, found: list[tuple[np.ndarray, ...]]) -> KingResult:
    """A related-pairs ``KingResult`` from lists of (pair_i, pair_j, nsnp, hethet, ibs0,
    het1_hom2, het2_hom1, kinship) arrays, sorted into pair order."""
    if found:
        cols = [np.concatenate([f[k] for f in found]) for k in range(8)]
        order = np.argsort(cols[0] * (cols[0] - 1) // 2 + cols[1], kind="stable")
        cols = [c[order] for c in cols]
    else:
        cols = [np.zeros(0, dtype=np.int64)] * 2 + [np.zeros(0, dtype=np.int32)] * 5 + [np.zeros(0)]
    pair_i, pair_j, nsnp, hethet, ibs0, het1_hom2, het2_hom1, kinship = cols
    return KingResult(samples=samples, n_variants=n_variants, nsnp=nsnp, hethet=hethet, ibs0=ibs0,
                      het1_hom2=het1_hom2, het2_hom1=het2_hom1, kinship=kinship,
                      pair_i=pair_i.astype(np.int64), pair_j=pair_j.astype(np.int64))


_PAIR_FIELDS = ("pair_i", "pair_j", "nsnp", "hethet", "ibs0", "het1_hom2", "het2_hom1", "kinship")


def merge_king_results(parts: Sequence[KingResult]) -> KingResult:
    """One related-pairs ``KingResult`` from those of every part of :func:`king_parts` (same
    samples and variants), in pair order: equal to the one-part result."""
    if not parts:
        raise CohortflowError("no KING parts to merge")
    first = parts[0]
    for other in parts[1:]:
        if other.n_variants != first.n_variants or not other.samples.equals(first.samples):
            raise CohortflowError("KING parts of different samples or variants cannot be merged")
    found = [tuple(getattr(r, f) for f in _PAIR_FIELDS) for r in parts]
    return _king_pairs_result(first.samples, first.n_variants, found)


def king_kinship(bed: Bed | str | Path, *, sample_mask: np.ndarray | None = None,
                 variant_mask: np.ndarray | None = None, threads: int = 1,
                 min_kinship: float | None = None, chunk_bytes: int = CHUNK_BYTES) -> pd.DataFrame:
    """KING-robust kinship of every pair of samples, as ``plink2 --make-king-table``.

    Returns the ``.kin0`` table as a DataFrame, columns ``FID1 IID1 FID2 IID2 NSNP HETHET IBS0
    KINSHIP`` (plink2 2.00a3 prints them with a leading ``#``): NSNP = variants where both have a
    call, HETHET / IBS0 = proportions of NSNP with both heterozygous / opposite homozygotes,
    KINSHIP = KING-robust kinship (bit-identical to plink2's double; -inf or NaN when a sample has
    no heterozygous call). Rows in plink2's order (for each sample i in .fam order, the pairs with
    every earlier sample j; ID1 = i). ``min_kinship``: keep pairs with KINSHIP >= min_kinship (and
    NaN), as ``--king-table-filter``. Other options as ``king_counts``.
    """
    result = king_counts(bed, sample_mask=sample_mask, variant_mask=variant_mask, threads=threads,
                         chunk_bytes=chunk_bytes)
    return result.table(min_kinship=min_kinship)


def king_cutoff(data: Bed | str | Path | KingResult | pd.DataFrame, *, cutoff: float = KING_CUTOFF_DEFAULT,
                samples: Sequence[str] | None = None, sample_mask: np.ndarray | None = None,
                variant_mask: np.ndarray | None = None, threads: int = 1) -> list[str]:
    """Samples to remove so that no remaining pair has kinship > ``cutoff``, as ``plink2
    --king-cutoff``.

    ``data``: a fileset (``Bed`` or prefix; kinship computed with ``sample_mask``,
    ``variant_mask``, ``threads`` as ``king_counts``), a ``KingResult``, or a ``.kin0``-like
    DataFrame with columns ``IID1 IID2 KINSHIP`` (pairs missing from it count as unrelated) plus
    ``samples``, the IIDs in .fam order (plink2's order, which decides ties).

    plink2's greedy rule: the graph links pairs with kinship > cutoff (strictly); while it has
    edges, if some sample has exactly one relative left, remove that relative of the first such
    sample (in sample order); otherwise remove the first sample with the most relatives left.
    Returns the IIDs removed, in sample order (as ``.king.cutoff.out.id``).
    """
    if not math.isfinite(cutoff):
        raise CohortflowError(f"king cutoff must be a finite number, not {cutoff}")
    if isinstance(data, pd.DataFrame):
        if samples is None:
            raise CohortflowError("king_cutoff on a kinship table needs samples= (IIDs in .fam order)")
        for col in ("IID1", "IID2", "KINSHIP"):
            if col not in data.columns:
                raise CohortflowError(f"kinship table has no {col} column")
        order = pd.Index(pd.Series(list(samples), dtype=str))
        if not order.is_unique:
            raise CohortflowError("samples= holds duplicate IIDs")
        ids = order
        related = data[data["KINSHIP"].to_numpy(dtype=np.float64) > cutoff]
        edge_i = order.get_indexer(related["IID1"].astype(str))
        edge_j = order.get_indexer(related["IID2"].astype(str))
        if (edge_i < 0).any() or (edge_j < 0).any():
            bad = related["IID1"].astype(str)[edge_i < 0].tolist() + related["IID2"].astype(str)[edge_j < 0].tolist()
            raise CohortflowError(f"kinship table sample {bad[0]!r} is not in samples=")
    else:
        result = data if isinstance(data, KingResult) else king_counts(
            data, sample_mask=sample_mask, variant_mask=variant_mask, threads=threads)
        ids = pd.Index(result.samples["iid"])
        pairs = np.flatnonzero(result.kinship > cutoff)
        i, j = result.pair_indices()
        edge_i, edge_j = i[pairs], j[pairs]
    removed = kinship_prune(len(ids), np.asarray(edge_i, dtype=np.int64), np.asarray(edge_j, dtype=np.int64))
    return [str(x) for x in ids[removed]]


def format_g6(values) -> list[str]:
    """Numbers as plink2's dtoa_g prints them: 6 significant digits, trailing zeros dropped, ties
    (within 5e-9) rounded half to even, exponential notation below 1e-4 and from 1e6, ``nan``,
    ``inf``, ``-inf``."""
    text, offsets = format_g6_array(np.ascontiguousarray(values, dtype=np.float64))
    raw = text.tobytes().decode("ascii")
    return [raw[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)]


def _id_texts(fid: np.ndarray, iid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``FID\tIID`` of each sample as one uint8 buffer plus offsets, for ``format_kin0_rows``."""
    encoded = [f"{f}\t{i}".encode() for f, i in zip(fid, iid)]
    start = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=start[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), start


def write_king_table(data: KingResult | pd.DataFrame, path: str | Path, *,
                     min_kinship: float | None = None, rows_per_write: int = 1 << 18) -> Path:
    """Write plink2's ``.kin0`` (tab-separated, header ``#FID1 IID1 FID2 IID2 NSNP HETHET IBS0
    KINSHIP``; numbers as plink2 prints them, see ``format_g6``), atomically, from a
    ``KingResult`` (all pairs, or those with kinship >= ``min_kinship``) or a ``king_kinship``
    table. Returns the path."""
    path = Path(path)
    if isinstance(data, KingResult):
        fid = data.samples["fid"].to_numpy(dtype=object)
        iid = data.samples["iid"].to_numpy(dtype=object)
        id1, id2 = data.pair_indices()
        nsnp, hethet, ibs0, kinship = data.nsnp, data.hethet, data.ibs0, data.kinship
        if min_kinship is not None:
            keep = ~(kinship < min_kinship)
            id1, id2, nsnp, hethet, ibs0, kinship = (a[keep] for a in (id1, id2, nsnp, hethet, ibs0, kinship))
    else:
        if min_kinship is not None:
            data = data[~(data["KINSHIP"].to_numpy(dtype=np.float64) < min_kinship)]
        # sample texts and per-row indices from the table's own ID columns
        pairs = pd.concat([
            pd.DataFrame({"fid": data["FID1"].astype(str).to_numpy(), "iid": data["IID1"].astype(str).to_numpy()}),
            pd.DataFrame({"fid": data["FID2"].astype(str).to_numpy(), "iid": data["IID2"].astype(str).to_numpy()}),
        ], ignore_index=True)
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(pairs))
        fid = uniques.get_level_values(0).to_numpy(dtype=object)
        iid = uniques.get_level_values(1).to_numpy(dtype=object)
        id1, id2 = codes[:len(data)].astype(np.int64), codes[len(data):].astype(np.int64)
        nsnp = data["NSNP"].to_numpy(dtype=np.int64)
        # counts back from the proportions, which are (1 / NSNP) * count
        hethet = np.rint(data["HETHET"].to_numpy(dtype=np.float64) * nsnp).astype(np.int64)
        ibs0 = np.rint(data["IBS0"].to_numpy(dtype=np.float64) * nsnp).astype(np.int64)
        kinship = data["KINSHIP"].to_numpy(dtype=np.float64)
    id_bytes, id_start = _id_texts(fid, iid)
    with atomic_open(path, "wb") as fh:
        fh.write(("#" + "\t".join(KING_TABLE_COLUMNS) + "\n").encode())
        for lo in range(0, len(id1), rows_per_write):
            hi = lo + rows_per_write
            fh.write(format_kin0_rows(id_bytes, id_start, id1[lo:hi], id2[lo:hi], nsnp[lo:hi], hethet[lo:hi],
                                      ibs0[lo:hi], kinship[lo:hi]).tobytes())
    return path


def write_king_cutoff_ids(fam: pd.DataFrame, removed: Sequence[str], out_prefix: str | Path, *,
                          sample_mask: np.ndarray | None = None) -> tuple[Path, Path]:
    """Write ``{out_prefix}.king.cutoff.in.id`` and ``.king.cutoff.out.id`` (``#FID IID``, .fam
    order) as plink2 does: the samples (of ``sample_mask``) kept and those in ``removed``.
    Returns the two paths."""
    fam = fam if sample_mask is None else fam[np.asarray(sample_mask, dtype=bool)]
    gone = fam["iid"].astype(str).isin(set(map(str, removed))).to_numpy()
    paths = (Path(f"{out_prefix}.king.cutoff.in.id"), Path(f"{out_prefix}.king.cutoff.out.id"))
    for p, rows in zip(paths, (fam[~gone], fam[gone])):
        with atomic_open(p) as fh:
            fh.write("#FID\tIID\n")
            fh.writelines(f"{f}\t{i}\n" for f, i in zip(rows["fid"].astype(str), rows["iid"].astype(str)))
    return paths


def relatedness_qc(bfile, *, out_prefix, cutoff: float | None = KING_CUTOFF_DEFAULT, mind: float = 0.05,
                   geno: float = 0.05, maf: float = 0.01, hwe: float = 1e-6, table_min_kinship: float = 0.0442,
                   max_variants: int | None = KING_MAX_VARIANTS, threads: int = 1) -> dict:
    """The relatedness step of genotype QC: KING-robust kinship, then plink2's ``--king-cutoff``.

    Samples: those passing ``mind`` (sample call rate); variants: autosomal ones passing
    ``geno``, ``hwe`` and ``maf`` on those samples (the statistics of
    :func:`cohortflow.variants.qc.qc_statistics`), so relatives are judged on the variants QC
    keeps. ``cutoff`` None: pairs are reported, nobody is removed. ``max_variants``: at most this
    many of those variants, evenly spaced (:func:`thin_variants`; None: all). Only pairs at or above
    the lower of ``table_min_kinship`` and ``cutoff`` are kept in memory (:func:`king_related`).

    Writes ``{out_prefix}.kinship.tsv`` (plink2 ``.kin0`` layout: ``#FID1 IID1 FID2 IID2 NSNP
    HETHET IBS0 KINSHIP``, pairs with kinship >= ``table_min_kinship``, by default third-degree
    relatives and closer) and ``{out_prefix}.king.cutoff.in.id`` / ``.out.id`` (``#FID IID`` of
    the samples kept / removed, as plink2). Returns ``{"n_samples", "n_variants", "n_pairs_reported",
    "cutoff", "removed"}`` (``removed``: IIDs, in .fam order; pass them to
    ``genotype_qc(remove_samples=...)``).
    """
    bed = _as_bed(bfile)
    samples, variants = king_masks(bed, mind=mind, geno=geno, maf=maf, hwe=hwe, max_variants=max_variants,
                                   threads=threads)
    result = king_related(bed, min_kinship=kinship_floor(cutoff, table_min_kinship), sample_mask=samples,
                          variant_mask=variants, threads=threads)
    return _write_relatedness(bed.fam, samples, result, out_prefix=out_prefix, cutoff=cutoff,
                              table_min_kinship=table_min_kinship)


def kinship_floor(cutoff: float | None, table_min_kinship: float) -> float:
    """The lowest kinship the relatedness step needs: the table's, or the cutoff's if lower."""
    return table_min_kinship if cutoff is None else min(table_min_kinship, cutoff)


def king_masks(bfile, *, mind: float = 0.05, geno: float = 0.05, maf: float = 0.01, hwe: float = 1e-6,
               max_variants: int | None = KING_MAX_VARIANTS, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The samples and variants of the relatedness step (see :func:`relatedness_qc`): boolean
    masks over the .fam and .bim rows; variants thinned to at most ``max_variants``."""
    bed = _as_bed(bfile)
    with thread_limit(threads):
        everyone = qc_statistics(bed, maf=maf, threads=threads)
        samples = everyone.missing_rate <= mind
        if not samples.any():
            raise CohortflowError(f"no sample passes --mind {mind}; nothing to compare", path=f"{bed.prefix}.bed")
        stats = qc_statistics(bed, maf=maf, samples=samples, threads=threads)
    freq = stats.a1_freq
    with np.errstate(invalid="ignore", divide="ignore"):
        missing_rate = np.where(stats.n_eligible > 0, stats.n_missing / stats.n_eligible, 1.0)
    minor = np.minimum(freq, 1 - freq)
    variants = ((stats.classes == CLASS_AUTOSOME) & (missing_rate <= geno) & np.isfinite(minor)
                & (minor >= maf) & (minor > 0) & ~(np.isfinite(stats.hwe_p) & (stats.hwe_p < hwe)))
    if max_variants is not None:
        variants = thin_variants(variants, max_variants)
    return samples, variants


def _write_relatedness(fam: pd.DataFrame, samples: np.ndarray, result: KingResult, *, out_prefix,
                       cutoff: float | None, table_min_kinship: float) -> dict:
    removed = king_cutoff(result, cutoff=cutoff) if cutoff is not None else []
    write_king_table(result, f"{out_prefix}.kinship.tsv", min_kinship=table_min_kinship)
    write_king_cutoff_ids(fam, removed, out_prefix, sample_mask=samples)
    with np.errstate(invalid="ignore"):
        reported = int(np.sum(result.kinship >= table_min_kinship))
    return {"n_samples": int(samples.sum()), "n_variants": int(result.n_variants), "n_pairs_reported": reported,
            "cutoff": cutoff, "removed": list(removed)}


# The relatedness step as jobs: masks once, the pairs per part of king_parts, then the gather.

def king_masks_file(*, bfile, out, mind: float = 0.05, geno: float = 0.05, maf: float = 0.01, hwe: float = 1e-6,
                    max_variants: int | None = KING_MAX_VARIANTS, threads: int = 1) -> None:
    """:func:`king_masks` to ``out`` (.npz: ``samples``, ``variants``), atomically."""
    samples, variants = king_masks(bfile, mind=mind, geno=geno, maf=maf, hwe=hwe, max_variants=max_variants,
                                   threads=threads)
    with atomic_open(out, "wb") as fh:
        np.savez(fh, samples=samples, variants=variants)


def _read_masks(path, n_samples: int, n_variants: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        samples, variants = z["samples"], z["variants"]
    if samples.shape != (n_samples,) or (n_variants is not None and variants.shape != (n_variants,)):
        raise CohortflowError(f"KING masks of {samples.size} samples x {variants.size} variants do not fit the "
                              f"genotypes ({n_samples} samples{'' if n_variants is None else f' x {n_variants} variants'})",
                              path=path)
    return samples, variants


def parse_king_part(name: str) -> tuple[int, int]:
    """A part's file name ``p.q`` (as :func:`king_part_names`) -> (p, q)."""
    try:
        p, q = (int(x) for x in str(name).split("."))
    except ValueError:
        raise CohortflowError(f"KING part {name!r} is not of the form p.q") from None
    return p, q


def king_part_names(n_parts: int) -> list[str]:
    """``p.q`` of every part of :func:`king_parts`, in order."""
    return [f"{p}.{q}" for p, q in king_parts(n_parts)]


def king_part_file(*, bfile, masks, part: str, n_parts: int, out, cutoff: float | None = KING_CUTOFF_DEFAULT,
                   table_min_kinship: float = 0.0442, threads: int = 1) -> None:
    """The related pairs (kinship >= :func:`kinship_floor`) of one part to ``out`` (.npz of the
    ``KingResult`` pair arrays and ``n_variants``), atomically."""
    bed = _as_bed(bfile)
    samples, variants = _read_masks(masks, bed.n_samples, bed.n_variants)
    result = king_related(bed, min_kinship=kinship_floor(cutoff, table_min_kinship), sample_mask=samples,
                          variant_mask=variants, part=parse_king_part(part), n_parts=n_parts, threads=threads)
    with atomic_open(out, "wb") as fh:
        np.savez(fh, n_variants=np.int64(result.n_variants), **{f: getattr(result, f) for f in _PAIR_FIELDS})


def relatedness_gather(*, fam, masks, parts: Sequence, out_prefix, cutoff: float | None = KING_CUTOFF_DEFAULT,
                       table_min_kinship: float = 0.0442) -> dict:
    """The outputs of :func:`relatedness_qc` from the genotypes' ``.fam``, the masks and every
    part's pairs (files of :func:`king_part_file`, any order): the same bytes as one
    ``relatedness_qc`` call."""
    fam_table = read_fam(fam)
    samples, _ = _read_masks(masks, len(fam_table))
    sample_idx = np.flatnonzero(samples)
    selected = _fam_rows(fam_table, sample_idx)
    results = []
    for path in parts:
        with np.load(path) as z:
            arrays = {f: z[f] for f in _PAIR_FIELDS}
            n_variants = int(z["n_variants"])
        results.append(KingResult(samples=selected, n_variants=n_variants, **arrays))
    return _write_relatedness(fam_table, samples, merge_king_results(results), out_prefix=out_prefix, cutoff=cutoff,
                              table_min_kinship=table_min_kinship)
