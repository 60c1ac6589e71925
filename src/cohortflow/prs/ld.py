"""Linkage disequilibrium in blocks, from a PLINK fileset, for summary-statistics methods.

The correlation matrix of the variants is approximated as block diagonal, as with LDetect's
independent blocks (Berisa & Pickrell 2016): variants in different blocks are treated as
uncorrelated. Blocks either come from a BED file of regions (e.g. LDetect's) or are chosen from the
LD panel itself, chromosome by chromosome:

- a block starts where the previous one ended and holds at most ``max_block_variants`` variants
  spanning less than ``max_block_bp``;
- where it must end before the chromosome does, the cut goes where LD across it is weakest: among
  the cut points in the second half of the allowed range, the one with the smallest mean r^2
  between the ``cut_window`` variants on either side of it (ties: the later cut, so blocks are as
  long as allowed).
This costs one correlation matrix of at most ``max_block_variants + cut_window`` variants per block
(memory O(block^2 + samples x block)); blocks are computed one at a time.

Correlations are Pearson correlations of the genotype counts with missing calls set to the
variant's mean (the same r as :func:`cohortflow.variants.kernels.standardize_rows` gives, z z'/n).
They are assembled from integer cross-products (counts x counts, counts x missing indicators,
missing x missing), which matrix products compute exactly whatever their summation order, so the
result does not depend on the BLAS library or its thread count. Each block's matrix is the exact
sample correlation of its variants and therefore positive semi-definite, which the Gibbs sampler
relies on; no correlation is set to zero inside a block (that would break positive
semi-definiteness, a cause of diverging chains). Shrinkage towards the identity is left to the
sampler (``shrink_corr``), which keeps the matrix positive semi-definite.

The LD panel can be another fileset (``ld_bed``): variants are matched by chromosome, position and
alleles (A1/A2 swapped: the correlations of that variant change sign), A/T and C/G SNPs as written.
Variants absent from the panel or without variation in it are left out and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.chrom import normalise_chrom
from cohortflow.io.plink import Bed
from cohortflow.prs.pgs import match_variants

log = logging.getLogger(__name__)

DEFAULT_MAX_BLOCK_VARIANTS = 1000
DEFAULT_MAX_BLOCK_BP = 3_000_000
DEFAULT_CUT_WINDOW = 100
# below this many LD-panel samples the sampling noise of r (about 1/sqrt(n)) is large enough to
# matter for LDpred-type methods
MIN_LD_SAMPLES = 500
_READ_CHUNK = 2048


@dataclass
class LDBlocks:
    """Block-diagonal LD of a list of variants.

    ``variant_index``: positions (into the caller's variant list) of the variants kept, ascending.
    Block k covers kept variants ``block_start[k]:block_start[k+1]``; its correlation matrix is
    ``corr[block_offset[k]:block_offset[k+1]]`` reshaped row-major to size x size (float32, unit
    diagonal, signs for the caller's A1 alleles). ``a1_freq``: A1 frequency of the kept variants in
    the LD panel. ``dropped``: variants left out, by reason.
    """

    variant_index: np.ndarray
    block_start: np.ndarray
    block_offset: np.ndarray
    corr: np.ndarray
    a1_freq: np.ndarray
    n_samples: int
    dropped: dict = field(default_factory=dict)
    source: str = ""

    @property
    def n_blocks(self) -> int:
        return len(self.block_start) - 1

    @property
    def n_variants(self) -> int:
        return len(self.variant_index)

    def block(self, k: int) -> np.ndarray:
        """Block k's correlation matrix (a view)."""
        size = int(self.block_start[k + 1] - self.block_start[k])
        return self.corr[self.block_offset[k]:self.block_offset[k + 1]].reshape(size, size)

    def ld_scores(self, *, bias_corrected: bool = True) -> np.ndarray:
        """Per kept variant, the sum of r^2 over its block (r^2 - (1 - r^2) / (n - 2) off the
        diagonal when ``bias_corrected``, the usual correction for sampling noise in r^2)."""
        out = np.empty(self.n_variants)
        n = self.n_samples
        for k in range(self.n_blocks):
            r2 = self.block(k).astype(np.float64) ** 2
            if bias_corrected and n > 2:
                r2 = r2 - (1.0 - r2) / (n - 2)
                np.fill_diagonal(r2, 1.0)
            out[self.block_start[k]:self.block_start[k + 1]] = r2.sum(axis=1)
        return out

    def summary(self) -> dict:
        sizes = np.diff(self.block_start)
        return {"source": self.source, "n_samples": int(self.n_samples), "n_variants": int(self.n_variants),
                "n_blocks": int(self.n_blocks),
                "block_size_median": float(np.median(sizes)) if len(sizes) else 0.0,
                "block_size_max": int(sizes.max()) if len(sizes) else 0,
                "dropped": {k: int(v) for k, v in self.dropped.items()}}


# ---------------------------------------------------------------------------------------------
# correlations


@numba.njit(cache=True, nogil=True)
def _row_sums(geno: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: A1 count over the called samples, number of missing calls."""
    m, n = geno.shape
    total = np.zeros(m)
    missing = np.zeros(m)
    for v in range(m):
        t = 0
        miss = 0
        for i in range(n):
            g = geno[v, i]
            if g < 0:
                miss += 1
            else:
                t += g
        total[v] = t
        missing[v] = miss
    return total, missing


def genotype_correlation(geno: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation matrix of genotype rows (int8 A1 counts, -1 missing; missing calls at the row
    mean), float64, and a mask of rows with variation. Rows without variation get 0 off the
    diagonal and 1 on it.

    With G the counts (0 where missing), M the missing indicators, s_i = row sums of G, c_i the
    called counts and mu_i = s_i / c_i, the centred cross-product over samples called for both is
    G_i.G_j - mu_j (s_i - G_i.M_j) - mu_i (s_j - G_j.M_i) + mu_i mu_j (n - k_i - k_j + M_i.M_j) with
    k the missing counts: every product is a sum of small integers, exact in floating point.
    """
    geno = np.ascontiguousarray(geno, dtype=np.int8)
    m, n = geno.shape
    if m == 0:
        return np.zeros((0, 0)), np.zeros(0, dtype=bool)
    total, n_missing = _row_sums(geno)
    called = n - n_missing
    g0 = np.where(geno < 0, 0, geno)
    # float32 products of counts <= 2 are exact while every partial sum stays below 2^24
    dtype = np.float32 if 4 * n < (1 << 24) else np.float64
    gf = g0.astype(dtype)
    gg = (gf @ gf.T).astype(np.float64)
    mean = np.divide(total, called, out=np.zeros(m), where=called > 0)
    if n_missing.any():
        miss = sp.csr_matrix((geno < 0).astype(np.float64))
        gm = np.asarray((miss @ g0.T.astype(np.float64)).T)  # gm[i, j] = G_i . M_j
        mm = (miss @ miss.T).toarray()
        both = n - n_missing[:, None] - n_missing[None, :] + mm
        num = (gg - mean[None, :] * (total[:, None] - gm) - mean[:, None] * (total[None, :] - gm.T)
               + np.outer(mean, mean) * both)
    else:
        num = gg - n * np.outer(mean, mean)
    ss = np.diag(num).copy()
    poly = (called > 0) & (ss > 1e-9 * np.maximum(called, 1))
    scale = np.where(poly, 1.0 / np.sqrt(np.where(poly, ss, 1.0)), 0.0)
    r = num * scale[:, None] * scale[None, :]
    np.clip(r, -1.0, 1.0, out=r)
    np.fill_diagonal(r, 1.0)
    return r, poly


class _PanelReader:
    """Genotypes of the LD panel for positions in the caller's variant list (sign-aligned)."""

    def __init__(self, bed: Bed, rows: np.ndarray, sign: np.ndarray, samples: np.ndarray | None):
        self.bed = bed
        self.rows = rows
        self.sign = sign
        self.samples = samples

    def read(self, idx: np.ndarray) -> np.ndarray:
        rows = self.rows[idx]
        order = np.argsort(rows, kind="stable")
        geno = np.empty((len(rows), self.n_samples), dtype=np.int8)
        geno[order] = self.bed.read_rows(rows[order], self.samples)
        flip = self.sign[idx] < 0
        if flip.any():
            g = geno[flip]
            geno[flip] = np.where(g < 0, g, 2 - g)
        return geno

    @property
    def n_samples(self) -> int:
        return self.bed.n_samples if self.samples is None else len(self.samples)


def _cut_scores(r2: np.ndarray, lo: int, hi: int, window: int, seg_end_local: int) -> np.ndarray:
    """Mean r^2 across each cut c in [lo, hi] (local coordinates; the cut falls before variant c)
    between variants [c - window, c) and [c, c + window) (clipped to [0, seg_end_local))."""
    csum = np.zeros((r2.shape[0] + 1, r2.shape[1] + 1))
    csum[1:, 1:] = np.cumsum(np.cumsum(r2, axis=0), axis=1)
    cuts = np.arange(lo, hi + 1)
    i0 = np.maximum(cuts - window, 0)
    j1 = np.minimum(cuts + window, seg_end_local)
    total = csum[cuts, j1] - csum[i0, j1] - csum[cuts, cuts] + csum[i0, cuts]
    pairs = (cuts - i0) * (j1 - cuts)
    return total / np.maximum(pairs, 1)


# ---------------------------------------------------------------------------------------------
# matching, blocks


def match_ld_panel(bim: pd.DataFrame, rows: np.ndarray, ld_bim: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For the .bim rows ``rows`` of ``bim``: the matching rows of ``ld_bim`` (-1 when absent) and
    the sign (+1 same A1, -1 alleles swapped). Matched by chromosome, position and alleles; A/T and
    C/G SNPs as written (two genotype files are taken to be on the same strand)."""
    table = pd.DataFrame({"chrom": bim["chrom"].to_numpy()[rows], "pos": bim["pos"].to_numpy()[rows],
                          "effect_allele": bim["a1"].astype(str).str.upper().to_numpy()[rows],
                          "other_allele": bim["a2"].astype(str).str.upper().to_numpy()[rows],
                          "weight": np.ones(len(rows)), "line": np.asarray(rows) + 1})
    matched = match_variants(table, ld_bim, keep_ambiguous=True)
    ld_rows = matched["bim_row"].to_numpy(np.int64)
    sign = np.where(matched["swapped"].to_numpy(), -1, 1).astype(np.int8)
    return ld_rows, sign


def read_blocks_bed(path: str | Path) -> pd.DataFrame:
    """A BED file of LD blocks (chromosome, 0-based start, end; further columns ignored; lines
    starting with ``#``, ``track`` or ``browser`` skipped; a header line ``chr start stop`` as in
    LDetect's files is skipped too)."""
    path = Path(path)
    rows = []
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputFormatError(f"cannot read LD blocks ({exc.strerror})", path=path) from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(("#", "track", "browser")):
            continue
        if len(fields) < 3:
            raise InputFormatError("a BED line needs chromosome, start and end", path=path, record=f"line {line_no}")
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            if not rows:  # a header line
                continue
            raise InputFormatError(f"start/end {fields[1]!r}/{fields[2]!r} are not integers", path=path,
                                   record=f"line {line_no}") from None
        if end <= start or start < 0:
            raise InputFormatError(f"empty or negative region {start}-{end}", path=path, record=f"line {line_no}")
        rows.append((fields[0], start, end))
    if not rows:
        raise InputFormatError("no LD blocks in the file", path=path)
    return pd.DataFrame(rows, columns=["chrom", "start", "end"])


def _segments(chrom: np.ndarray, pos: np.ndarray, blocks: pd.DataFrame | None) -> list[tuple[int, int]]:
    """Runs [a, b) of consecutive variants that may share a block: a chromosome each, or each
    region of ``blocks`` (variants in no region: runs of their own)."""
    norm = normalise_chrom(chrom)
    change = np.flatnonzero(norm[1:] != norm[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(norm)]])
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if blocks is None:
            out.append((int(a), int(b)))
            continue
        regions = blocks[normalise_chrom(blocks["chrom"].to_numpy()) == norm[a]]
        # region id of each variant: the region (by start) containing it, else -1
        label = np.full(b - a, -1, dtype=np.int64)
        for rid, (start, end) in enumerate(zip(regions["start"].to_numpy(), regions["end"].to_numpy())):
            inside = (pos[a:b] > start) & (pos[a:b] <= end)  # BED is 0-based half-open, .bim 1-based
            label[inside & (label < 0)] = rid
        cut = np.flatnonzero(label[1:] != label[:-1]) + 1
        edges = np.concatenate([[0], cut, [b - a]]) + a
        out.extend((int(x), int(y)) for x, y in zip(edges[:-1], edges[1:]))
    return out


def compute_ld_blocks(bed: Bed, rows: np.ndarray, *, ld_bed: Bed | None = None, ld_samples=None,
                      max_block_variants: int = DEFAULT_MAX_BLOCK_VARIANTS,
                      max_block_bp: int = DEFAULT_MAX_BLOCK_BP, cut_window: int = DEFAULT_CUT_WINDOW,
                      blocks_bed: str | Path | None = None) -> LDBlocks:
    """Block-diagonal LD for the ascending .bim rows ``rows`` of ``bed`` (see the module docstring).

    ``ld_bed``: the LD panel (default ``bed`` itself); ``ld_samples``: the panel's samples to use,
    as .fam indices (ints) or IIDs (strings); default all. ``blocks_bed``: regions (BED) to use as
    blocks instead of choosing cuts (a region with more than ``max_block_variants`` variants is
    cut further by the same rule).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and np.any(np.diff(rows) <= 0):
        raise ValueError("rows must be ascending and unique")
    if max_block_variants < 2:
        raise CohortflowError(f"max_block_variants must be at least 2, not {max_block_variants}")
    panel = bed if ld_bed is None else ld_bed
    source = str(panel.prefix)
    dropped = {}
    if ld_bed is None:
        ld_rows, sign = rows.copy(), np.ones(len(rows), dtype=np.int8)
    else:
        try:
            ld_rows, sign = match_ld_panel(bed.bim, rows, ld_bed.bim)
        except CohortflowError as err:
            raise CohortflowError(f"matching to the LD panel: {err.problem}", path=source) from None
        dropped["not_in_ld_panel"] = int((ld_rows < 0).sum())
    samples = _sample_indices(panel, ld_samples, source)
    n_ld = panel.n_samples if samples is None else len(samples)
    if n_ld < MIN_LD_SAMPLES:
        log.warning("LD panel %s has %d samples; correlations from fewer than %d samples are noisy "
                    "(sampling error of r about %.2f)", source, n_ld, MIN_LD_SAMPLES, 1 / np.sqrt(max(n_ld, 1)))
    present = np.flatnonzero(ld_rows >= 0)
    reader = _PanelReader(panel, ld_rows[present], sign[present], samples)

    # A1 frequency and variation in the panel (one pass), to leave out monomorphic variants
    freq = np.zeros(len(present))
    poly = np.zeros(len(present), dtype=bool)
    for a in range(0, len(present), _READ_CHUNK):
        idx = np.arange(a, min(a + _READ_CHUNK, len(present)))
        geno = reader.read(idx)
        total, missing = _row_sums(geno)
        called = geno.shape[1] - missing
        freq[idx] = np.divide(total, 2 * called, out=np.zeros(len(idx)), where=called > 0)
        lo = geno.min(axis=1, initial=127, where=geno >= 0)
        hi = geno.max(axis=1, initial=-1)
        poly[idx] = (called > 1) & (hi > lo)
    dropped["monomorphic_in_ld_panel"] = int((~poly).sum())
    keep = present[poly]
    reader = _PanelReader(panel, ld_rows[keep], sign[keep], samples)
    freq = freq[poly]

    chrom = bed.bim["chrom"].to_numpy()[rows[keep]]
    pos = bed.bim["pos"].to_numpy(np.int64)[rows[keep]]
    if len(keep) and np.any(np.diff(pos)[normalise_chrom(chrom[1:]) == normalise_chrom(chrom[:-1])] < 0):
        raise CohortflowError("variants are not sorted by position within chromosomes", path=bed.prefix)
    regions = read_blocks_bed(blocks_bed) if blocks_bed is not None else None

    starts = [0]
    offsets = [0]
    # one buffer of the largest possible size (every variant in a full block); pages never written
    # are never resident, and the unused end is released at the end, so memory holds the blocks once
    flat = np.empty(len(keep) * min(max_block_variants, max(len(keep), 1)), dtype=np.float32)
    for a, b in _segments(chrom, pos, regions):
        s = a
        while s < b:
            e_max = min(s + max_block_variants, b)
            e_span = int(np.searchsorted(pos[s:b], pos[s] + max_block_bp, side="left")) + s
            e_max = min(e_max, max(e_span, s + 1))
            if e_max == b:
                corr, _ = genotype_correlation(reader.read(np.arange(s, b)))
                end = b
            else:
                hi_read = min(b, e_max + cut_window)
                corr_all, _ = genotype_correlation(reader.read(np.arange(s, hi_read)))
                lo = max(1, (e_max - s) // 2)
                scores = _cut_scores(corr_all ** 2, lo, e_max - s, cut_window, hi_read - s)
                best = np.flatnonzero(scores == scores.min())[-1]
                end = s + lo + int(best)
                corr = corr_all[:end - s, :end - s]
            flat[offsets[-1]:offsets[-1] + (end - s) ** 2] = corr.ravel()
            starts.append(end)
            offsets.append(offsets[-1] + (end - s) ** 2)
            s = end
    flat.resize(offsets[-1], refcheck=False)  # shrinks in place
    return LDBlocks(variant_index=keep.astype(np.int64), block_start=np.asarray(starts, dtype=np.int64),
                    block_offset=np.asarray(offsets, dtype=np.int64), corr=flat, a1_freq=freq,
                    n_samples=int(n_ld), dropped=dropped, source=source)


def _sample_indices(panel: Bed, ld_samples, source: str) -> np.ndarray | None:
    if ld_samples is None:
        return None
    values = np.asarray(ld_samples)
    if values.size == 0:
        raise CohortflowError("the list of LD samples is empty", path=source)
    if values.dtype.kind in "iu":
        idx = np.unique(values.astype(np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= panel.n_samples):
            raise CohortflowError(f"LD sample index out of range (the panel has {panel.n_samples} samples)",
                                  path=source)
        return idx
    iids = pd.Index(panel.fam["iid"].astype(str))
    pos = iids.get_indexer(values.astype(str))
    if (pos < 0).any():
        missing = values.astype(str)[pos < 0]
        raise CohortflowError(f"{len(missing)} LD samples not in the panel's .fam (first: {missing[0]})",
                              path=f"{source}.fam")
    return np.unique(pos.astype(np.int64))
