"""Lead loci by LD clumping on the cohort's genotypes, with the index variants of
``plink1.9 --clump`` for the same p1/p2/r2/kb.

The procedure (plink1.9 ``--clump``, read from its documentation and source and checked against
the binary in ``tests/test_gwas_clump.py``):

- Variants take part when their ID is in the .bim and their p-value is a number; others are
  ignored (their count is kept in ``attrs['n_not_in_bim']``).
- Index candidates are the variants with p <= p1, taken in order of increasing p; equal p-values
  go in .bim order.
- A candidate already claimed by an earlier clump is skipped. Otherwise it becomes an index
  variant and claims every not yet claimed variant on its chromosome less than ``kb`` * 1000 bp
  away whose r2 with it is above ``r2`` (strictly), whatever that variant's p-value.
  ``p2`` only decides which claimed variants are counted as significant clump members
  (``n_clumped_p2``, and the span ``clump_start``..``clump_end``); it does not change which
  variants are index variants.
- r2 is the squared correlation of maximum-likelihood haplotype frequencies (EM over the unknown
  phase of double heterozygotes), from the samples called at both variants, among founders (both
  parent IDs '0' in the .fam), as plink1.9 does.

Genotypes are read only around the index candidates, cluster by cluster (candidates whose
windows overlap), straight from the .bed bytes into two bit planes per variant (64 LD samples a
word, see :mod:`cohortflow.gwas.clump_kernels`), read once. Index candidates are taken in
batches of up to 1,024 (in p order); the pairs of a batch are counted tile by tile (rows of
the chromosome, 256 kB of planes) against every member whose window reaches the tile, so each
tile comes from memory once per batch, and the tiles are shared among the threads.

Memory: 2 bits per LD sample per variant of the largest cluster (the size of that part of the
.bed; with p1 = 1 a cluster is a whole chromosome: 100,000 variants x 5,000 samples = 128 MB;
clusters with at most 64 variants between them are read together up to 65,536 variants),
plus one .bed read (32 MB), the batch's decoded index planes (at most 64 MB; 3 bits per LD
sample per member) and one bit per member per variant of its window for its links. Index order
is by p-value, not position, so the planes of the whole cluster are kept rather than a sliding
window: a batch reaches the whole chromosome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.gwas.clump_kernels import (
    COMPRESS_TABLE, PARALLEL_WORK, bed_rows_to_planes, clump_planes, r2_to_index, select_plane_samples)
from cohortflow.io.plink import Bed, open_bed
from cohortflow.threads import thread_limit

# .bed bytes read at once when building bit planes
_READ_BYTES = 32 << 20
# index candidates whose pairs are found together (see clump_planes), at most _BATCH_BYTES of
# their decoded planes, and the plane bytes of the rows paired with them in one task (fits the
# L2 cache)
_MAX_BATCH = 1024
_BATCH_BYTES = 64 << 20
_TILE_BYTES = 256 << 10
# clusters close in the .bim are clumped together up to this many rows (see _regions)
_REGION_ROWS = 1 << 16

CLUMP_COLUMNS = ["n_clumped", "n_clumped_p2", "clump_start", "clump_end"]


def _bed(bfile: str | Path | Bed) -> Bed:
    return bfile if isinstance(bfile, Bed) else open_bed(bfile)


def _sample_index(bed: Bed, samples: Sequence[str] | None) -> np.ndarray:
    """Founders (father and mother '0'), restricted to the IIDs ``samples`` when given."""
    fam = bed.fam
    keep = (fam["father"].astype(str) == "0").to_numpy() & (fam["mother"].astype(str) == "0").to_numpy()
    if samples is not None:
        keep &= fam["iid"].astype(str).isin(set(map(str, samples))).to_numpy()
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise CohortflowError("no founders among the samples to compute LD from",
                              path=f"{bed.prefix}.fam")
    return idx


def _id_index(bed: Bed) -> pd.Index:
    """The .bim IDs as an Index, built once per opened fileset (hashing millions of IDs is slow)."""
    cached = bed.__dict__.get("_cohortflow_id_index")
    if cached is None:
        cached = pd.Index(bed.bim["id"].astype(str))
        bed.__dict__["_cohortflow_id_index"] = cached
    return cached


def _bim_rows(bed: Bed, variant_ids: np.ndarray) -> np.ndarray:
    """.bim row of each ID (-1 when absent); duplicated .bim IDs among them are an error."""
    lookup = _id_index(bed)
    if not lookup.is_unique:
        ids = bed.bim["id"].astype(str)
        dup = ids[ids.duplicated(keep=False)]
        used = dup[dup.isin(set(variant_ids))]
        if len(used):
            raise CohortflowError(f"variant ID {used.iloc[0]!r} occurs more than once in the .bim; "
                                  "LD lookups need unique IDs", path=f"{bed.prefix}.bim",
                                  record=f"line {used.index[0] + 1}")
        lookup = pd.Index(ids.drop_duplicates(keep=False))
        rows = lookup.get_indexer(variant_ids)
        positions = ids.drop_duplicates(keep=False).index.to_numpy()
        return np.where(rows >= 0, positions[np.maximum(rows, 0)], -1)
    return lookup.get_indexer(variant_ids)


def _tested(sumstats: pd.DataFrame) -> pd.DataFrame:
    df = sumstats
    if "neg_log10_p" not in df.columns:
        with np.errstate(divide="ignore"):
            df = df.assign(neg_log10_p=-np.log10(df["p_value"].to_numpy(float)))
    ok = df["neg_log10_p"].notna().to_numpy()
    if "errcode" in df.columns:
        ok &= (df["errcode"].fillna("").astype(str) == "").to_numpy()
    df = df[ok]
    if df["variant_id"].duplicated().any():
        dup = df.loc[df["variant_id"].duplicated(), "variant_id"].iloc[0]
        raise CohortflowError(f"variant ID {dup!r} occurs more than once in the summary statistics")
    return df


def _read_planes(bed: Bed, rows: np.ndarray, sample_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bit planes (hom, hi; rows x words, see clump_kernels) of the ascending .bim ``rows`` for
    the ascending sample indices ``sample_idx``, read in runs of nearby rows. Words are padded to
    a multiple of 8 (zero = missing) so the popcount loops run in whole 512-bit vectors."""
    n = int(sample_idx.size)
    n_words = (n + 63) // 64
    padded_words = (n_words + 7) // 8 * 8
    hom = np.empty((rows.size, padded_words), dtype=np.uint64)
    hi = np.empty((rows.size, padded_words), dtype=np.uint64)
    hom[:, n_words:] = 0
    hi[:, n_words:] = 0
    all_samples = n == bed.n_samples and np.array_equal(sample_idx, np.arange(n))
    if not all_samples:  # planes of all samples, then the kept samples' bits compressed
        keep = np.zeros((bed.n_samples + 63) // 64 * 64, dtype=bool)
        keep[sample_idx] = True
        keep_words = np.packbits(keep.reshape(-1, 8)[:, ::-1]).view("<u8")
    span = max(1, _READ_BYTES // max(bed.bytes_per_variant, 1))
    # runs of rows less than 64 apart are read whole, at most `span` .bed rows at a time
    run_ends = np.append(np.flatnonzero(np.diff(rows) > 64) + 1, rows.size)
    a = 0
    while a < rows.size:
        b = min(int(run_ends[np.searchsorted(run_ends, a, side="right")]),
                int(np.searchsorted(rows, rows[a] + span, side="left")))
        raw = bed.read_packed(int(rows[a]), int(rows[b - 1]) + 1)
        if rows[b - 1] - rows[a] != b - a - 1:
            raw = raw[rows[a:b] - rows[a]]
        if all_samples:
            bed_rows_to_planes(raw, n, hom[a:b], hi[a:b])
        else:
            full_hom = np.empty((b - a, keep_words.size), dtype=np.uint64)
            full_hi = np.empty_like(full_hom)
            bed_rows_to_planes(raw, bed.n_samples, full_hom, full_hi)
            select_plane_samples(full_hom, full_hi, keep_words, COMPRESS_TABLE, hom[a:b], hi[a:b])
        a = b
    return hom, hi


def _clusters(pos: np.ndarray, cand: np.ndarray, radius: int) -> list[tuple[int, int]]:
    """Position ranges [lo, hi] covering the windows of the candidate positions, merged where
    they overlap (clumping in one range cannot affect another)."""
    c = np.sort(pos[cand])
    if c.size == 0:
        return []
    first = np.flatnonzero(np.diff(c) > 2 * radius) + 1  # windows that do not reach the previous one
    starts = np.concatenate([[0], first])
    ends = np.concatenate([first, [c.size]]) - 1
    return [(int(c[a]) - radius, int(c[b]) + radius) for a, b in zip(starts, ends)]


def _regions(pos: np.ndarray, clusters: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Row ranges [a, b) of the clusters, neighbours merged while at most 64 rows lie between
    them and the region stays within _REGION_ROWS rows (fewer reads and kernel calls where
    windows barely miss each other, as on sparse arrays)."""
    out: list[tuple[int, int]] = []
    for lo, hi in clusters:
        a, b = int(np.searchsorted(pos, lo, side="left")), int(np.searchsorted(pos, hi, side="right"))
        if out and a - out[-1][1] <= 64 and b - out[-1][0] <= _REGION_ROWS:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def clump_loci(sumstats: pd.DataFrame, bfile: str | Path | Bed, *, p1: float = 5e-8, p2: float = 1e-2,
               r2: float = 0.1, kb: float = 250, samples: Sequence[str] | None = None,
               threads: int = 1) -> pd.DataFrame:
    """LD clumping of summary statistics on PLINK genotypes, as ``plink1.9 --clump``.

    ``sumstats``: columns variant_id, p_value and/or neg_log10_p (plus anything else, carried
    through), errcode optional (rows with a non-empty errcode or no p-value are ignored).
    ``bfile``: PLINK prefix (or an open :class:`~cohortflow.io.plink.Bed`) whose .bim IDs match
    ``variant_id``; positions and chromosomes are taken from the .bim. ``samples``: IIDs to compute
    LD from (default all founders). ``threads``: pairs of several index candidates at once (the
    result does not depend on it).

    Returns the index variants' rows of ``sumstats`` (most significant first; equal p-values in
    .bim order) with added columns: ``n_clumped`` (variants claimed, plink's TOTAL),
    ``n_clumped_p2`` (of those with p < p2, plink's SP2 count), ``clump_start``/``clump_end``
    (.bim positions spanned by the index and its claimed variants with p < p2). ``attrs`` holds
    n_not_in_bim (tested variants absent from the .bim) and n_ld_samples.
    """
    if not (0 <= r2 <= 1):
        raise CohortflowError(f"clump r2 threshold {r2} is not in [0, 1]")
    if kb <= 0 or p1 <= 0 or p2 <= 0:
        raise CohortflowError("clump kb, p1 and p2 must be positive")
    bed = _bed(bfile)
    sample_idx = _sample_index(bed, samples)
    tested = _tested(sumstats)
    rows = _bim_rows(bed, tested["variant_id"].astype(str).to_numpy())
    found = rows >= 0
    n_not_in_bim = int((~found).sum())
    tested = tested[found]
    rows = rows[found]

    p = tested["p_value"].to_numpy(float) if "p_value" in tested.columns else 10.0 ** -tested["neg_log10_p"].to_numpy()
    nl10 = tested["neg_log10_p"].to_numpy(float)
    # order by p as plink does; p-values that underflow to 0.0 are ordered by their exact log
    order_all = np.lexsort((rows, np.where(p == 0.0, -nl10, 0.0), p))
    cand_mask = p <= p1
    # rows of the sumstats in .bim order, per chromosome
    bim_chrom = bed.bim["chrom"].astype(str).to_numpy()
    bim_pos = bed.bim["pos"].to_numpy(np.int64)
    radius = max(math.ceil(kb * 1000.0) - 1, 0)  # plink: less than kb * 1000 bp away

    n = len(tested)
    is_index = np.zeros(n, dtype=bool)
    stats = np.zeros((n, 4), dtype=np.int64)
    by_row = np.argsort(rows, kind="stable")  # tested positions in .bim order
    sorted_rows = rows[by_row]
    chrom_of = bim_chrom[sorted_rows]
    rank = np.empty(n, dtype=np.int64)
    rank[order_all] = np.arange(n)
    with thread_limit(threads) as granted:
        for chrom in pd.unique(chrom_of):
            sel = by_row[chrom_of == chrom]  # tested indices on this chromosome, .bim order
            if not cand_mask[sel].any():
                continue
            pos = bim_pos[rows[sel]]
            if np.any(np.diff(pos) < 0):
                bad = int(rows[sel][np.flatnonzero(np.diff(pos) < 0)[0] + 1])
                raise CohortflowError(f"the .bim is not sorted by position on chromosome {chrom}; "
                                      "LD clumping needs sorted variants", path=f"{bed.prefix}.bim",
                                      record=f"line {bad + 1}")
            for a, b in _regions(pos, _clusters(pos, cand_mask[sel], radius)):
                part = sel[a:b]
                local_cand = np.flatnonzero(cand_mask[part])
                local_order = local_cand[np.argsort(rank[part[local_cand]], kind="stable")].astype(np.int64)
                local_pos = pos[a:b]
                window_lo = np.searchsorted(local_pos, local_pos - radius, side="left").astype(np.int64)
                window_hi = np.searchsorted(local_pos, local_pos + radius, side="right").astype(np.int64)
                hom_plane, hi_plane = _read_planes(bed, rows[part], sample_idx)
                words = hom_plane.shape[1]
                tile_rows = max(64, _TILE_BYTES // (16 * words) // 64 * 64)
                max_batch = max(1, min(_MAX_BATCH, local_order.size, _BATCH_BYTES // (24 * words)))
                idx_flag, n_cl, n_cl_p2, start, end = clump_planes(
                    hom_plane, hi_plane, int(sample_idx.size), local_pos, p[part], local_order, window_lo, window_hi,
                    float(r2), float(p2), max_batch, tile_rows, PARALLEL_WORK if granted > 1 else 0)
                del hom_plane, hi_plane
                hits = np.flatnonzero(idx_flag)
                is_index[part[hits]] = True
                stats[part[hits]] = np.column_stack([n_cl[hits], n_cl_p2[hits], start[hits], end[hits]])

    lead_idx = order_all[is_index[order_all]]
    leads = tested.iloc[lead_idx].copy()
    for k, col in enumerate(CLUMP_COLUMNS):
        leads[col] = stats[lead_idx, k]
    leads.attrs = {"n_not_in_bim": n_not_in_bim, "n_ld_samples": int(sample_idx.size)}
    return leads


def ld_with_lead(bfile: str | Path | Bed, lead_variant_id: str, variant_ids: Sequence[str], *,
                 samples: Sequence[str] | None = None) -> np.ndarray:
    """Haplotype r2 (as :func:`clump_loci` computes it) of each of ``variant_ids`` with the lead;
    NaN for IDs absent from the .bim or without shared calls. Only r2 values leave: use for plots."""
    bed = _bed(bfile)
    sample_idx = _sample_index(bed, samples)
    ids = np.asarray([str(v) for v in variant_ids], dtype=object)
    rows = _bim_rows(bed, np.concatenate([[str(lead_variant_id)], ids]))
    out = np.full(len(ids), np.nan)
    if rows[0] < 0:
        return out
    have = np.flatnonzero(rows[1:] >= 0)
    want = np.unique(np.concatenate([[rows[0]], rows[1:][have]]))
    geno = bed.read_rows(want, samples=sample_idx)
    r2 = r2_to_index(geno, int(np.searchsorted(want, rows[0])))
    out[have] = r2[np.searchsorted(want, rows[1:][have])]
    return out
