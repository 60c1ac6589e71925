"""Polygenic scores computed straight from packed .bed bytes, the numbers ``plink2 --score``
reports as SCORE*_SUM.

``score_bed`` sums weight x dosage of the .bim A1 allele over the given variants for every
sample and score column. Dosages and missing calls follow plink2 (checked against plink2
2.00a3.5 in ``tests/test_prs_scoring.py``):

- autosomes, chrXY (PAR) and other contigs: dosage 2/1/0 copies of A1; a missing call counts as
  the variant's mean dosage 2 x f, f = the A1 frequency among the called samples (mean
  imputation, plink2's default);
- chrX: dosage 2/1/0 for everyone (a male's hom call is 2 copies), but f counts males as
  haploid (a male call is one allele: hom A1 1, het 1/2);
- chrY: males only, haploid: dosage 1/0.5/0 (hom A1/het/hom A2), missing f (f over called
  males); females and unknown sex contribute nothing;
- MT: haploid for everyone (1/0.5/0, missing f);
- a variant with no called genotype has f = 1/2 (plink2's fallback).

Sex is the .fam's (1 male, 2 female, anything else unknown: diploid on chrX, left out on chrY).
Frequencies come from all samples of the fileset, whatever ``samples`` asks to return. plink2
computes them over the samples it loaded, so after ``--keep``/``--remove`` they are the kept
samples' frequencies: ``mean_dosage=a1_mean_dosage(bed, rows, samples=kept)`` reproduces that;
the default keeps a sample's score independent of which other samples are scored with it.
(plink2 also refuses to impute from fewer than 50 samples without ``--read-freq``; we do not.)

How: four variants form a group; a 256-row table per group holds the summed contributions of the
four variants' 2-bit codes per score column (:mod:`cohortflow.prs.kernels`), so each sample costs
one lookup and one k-wide addition per four variants, read from the .bed bytes without decoding.
chrY/MT variants (per-sample rules) are added by a direct per-sample loop. A weight can also be
on the .bim A2 allele (``count_a2``), as plink2 scores a file's allele that is A2; no constant is
added and subtracted, so the sums stay as exact as plink2's. Variants are streamed
in chunks read by pread into one buffer (memory: one chunk of .bed rows and its tables, and a
samples x k accumulator).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import Bed
from cohortflow.prs import kernels
from cohortflow.threads import thread_limit

# ploidy classes of a variant's chromosome
DIPLOID, CHR_X, CHR_Y, CHR_MT = 0, 1, 2, 3
_CLASS_OF_NAME = {"X": CHR_X, "23": CHR_X, "Y": CHR_Y, "24": CHR_Y, "MT": CHR_MT, "M": CHR_MT, "26": CHR_MT}
# tables of a chunk (groups x 256 x columns doubles) stay within ~4 MB
_TABLE_BYTES = 4 << 20
# bytes (4 samples each) per tile of the accumulation; a tile's sums (x columns) stay in L2
_TILE_BYTES = 256


def _check_rows(bed: Bed, rows) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise CohortflowError("rows must be a 1-D array of .bim row indices")
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows[0] < 0 or rows[-1] >= bed.n_variants or np.any(np.diff(rows) <= 0)):
        raise CohortflowError(f"rows must be ascending, unique .bim rows in [0, {bed.n_variants})")
    return rows


def _check_samples(bed: Bed, samples) -> np.ndarray | None:
    if samples is None:
        return None
    samples = np.asarray(samples)
    if samples.ndim != 1 or (samples.size and not np.issubdtype(samples.dtype, np.integer)):
        raise CohortflowError("samples must be a 1-D array of .fam row indices")
    samples = samples.astype(np.int64, copy=False)
    if samples.size and (samples.min() < 0 or samples.max() >= bed.n_samples):
        raise CohortflowError(f"samples must be .fam rows in [0, {bed.n_samples})")
    return samples


def ploidy_classes(bed: Bed, rows: np.ndarray) -> np.ndarray:
    """DIPLOID, CHR_X, CHR_Y or CHR_MT per .bim row of ``rows`` (chromosome names as plink2 reads
    them: ``chr`` prefix optional, 23/24/26 = X/Y/MT; XY (PAR) is diploid)."""
    chrom = pc.dictionary_encode(bed.bim_table.column("chrom").take(pa.array(rows)).combine_chunks())
    names = [str(c).strip().upper().removeprefix("CHR") for c in chrom.dictionary.to_pylist()]
    lookup = np.array([_CLASS_OF_NAME.get(name, DIPLOID) for name in names] or [DIPLOID], dtype=np.int8)
    return lookup[chrom.indices.to_numpy(zero_copy_only=False)]


class _PackedRows:
    """Reads the packed .bed rows of given variants into a reused buffer: one pread per run of
    nearby rows (no memory map: its page faults cost more than the copy, and memory stays one
    chunk of rows)."""

    MAX_GAP = 4  # rows this close are read together with the ones between

    def __init__(self, bed: Bed):
        self.path = Path(f"{bed.prefix}.bed")
        self.nb = bed.bytes_per_variant
        size = self.path.stat().st_size
        if size < 3 + bed.n_variants * self.nb:
            raise CohortflowError(f"truncated .bed file ({size} bytes, {3 + bed.n_variants * self.nb} expected)",
                                  path=self.path)
        self.buffer = np.empty(0, dtype=np.uint8)

    def __enter__(self) -> _PackedRows:
        self.fd = os.open(self.path, os.O_RDONLY)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(packed rows (variants x bytes, a view of the buffer, valid until the next read), the
        index of each of ``rows`` (ascending .bim rows, repeats allowed) in it)."""
        nb = self.nb
        breaks = np.flatnonzero(np.diff(rows) > self.MAX_GAP) + 1
        starts = np.r_[0, breaks]
        ends = np.r_[breaks, rows.size]
        first = rows[starts]
        lengths = rows[ends - 1] - first + 1
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        total = int(lengths.sum())
        if self.buffer.size < total * nb:
            self.buffer = np.empty(total * nb, dtype=np.uint8)
        view = memoryview(self.buffer)
        for row, length, offset in zip(first.tolist(), lengths.tolist(), offsets.tolist()):
            done, want = 0, length * nb
            while done < want:
                got = os.preadv(self.fd, [view[offset * nb + done:offset * nb + want]], 3 + row * nb + done)
                if got <= 0:
                    raise CohortflowError("truncated .bed file", path=self.path)
                done += got
        local = rows - np.repeat(first - offsets, ends - starts)
        return self.buffer[:total * nb].reshape(total, nb), local


# .bim rows per read of the counting and per-sample passes
_READ_ROWS = 4096


def _frequency(alleles: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """A1 alleles / allele slots; 1/2 where nothing was observed (plink2's fallback)."""
    return np.where(slots > 0, alleles / np.maximum(slots, 1), 0.5)


def _mean_dosage_from_counts(classes: np.ndarray, counts_all: np.ndarray, counts_male: np.ndarray | None) -> np.ndarray:
    """Mean dosage per row from (selected, missing, het, hom A2) counts over all selected samples
    and over the selected males (needed for chrX and chrY rows)."""
    sel, miss, het, hom2 = (counts_all[:, j].astype(np.float64) for j in range(4))
    called = sel - miss
    hom1 = called - het - hom2
    out = 2.0 * _frequency(2.0 * hom1 + het, 2.0 * called)
    haploid = classes == CHR_MT
    out[haploid] = _frequency(hom1 + 0.5 * het, called)[haploid]
    if counts_male is not None:
        m_sel, m_miss, m_het, m_hom2 = (counts_male[:, j].astype(np.float64) for j in range(4))
        m_called = m_sel - m_miss
        m_hom1 = m_called - m_het - m_hom2
        f_called, f_het = called - m_called, het - m_het
        f_hom1 = hom1 - m_hom1
        x = classes == CHR_X
        out[x] = 2.0 * _frequency(2.0 * f_hom1 + f_het + m_hom1 + 0.5 * m_het, 2.0 * f_called + m_called)[x]
        y = classes == CHR_Y
        out[y] = _frequency(m_hom1 + 0.5 * m_het, m_called)[y]
    return out


def _males(bed: Bed) -> np.ndarray:
    return np.flatnonzero(bed.fam["sex"].to_numpy() == 1)


def _code_counts(packed: _PackedRows, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    counts = np.empty((rows.size, 4), dtype=np.int64)
    for start in range(0, rows.size, _READ_ROWS):
        data, local = packed.read(rows[start:start + _READ_ROWS])
        kernels.packed_code_counts(data, local, mask, counts[start:start + _READ_ROWS])
    return counts


def _mean_dosage(packed: _PackedRows, bed: Bed, rows: np.ndarray, classes: np.ndarray,
                 samples: np.ndarray | None) -> np.ndarray:
    counts = _code_counts(packed, rows, kernels.sample_mask_words(bed.n_samples, samples))
    sexed = np.isin(classes, (CHR_X, CHR_Y))
    counts_male = None
    if sexed.any():
        males = _males(bed)
        if samples is not None:
            males = np.intersect1d(males, samples)
        counts_male = np.zeros_like(counts)
        counts_male[sexed] = _code_counts(packed, rows[sexed], kernels.sample_mask_words(bed.n_samples, males))
    return _mean_dosage_from_counts(classes, counts, counts_male)


def a1_mean_dosage(bed: Bed, rows, *, samples=None, threads: int = 1) -> np.ndarray:
    """The value a missing call counts as in :func:`score_bed` for each .bim row of ``rows``
    (ascending, unique), from the called genotypes of all samples of the fileset or only of the
    .fam rows ``samples``: 2 x A1 frequency (chrX: males counted haploid), the A1 frequency for
    chrY (males) and MT; see the module docstring."""
    rows = _check_rows(bed, rows)
    samples = _check_samples(bed, samples)
    if rows.size == 0:
        return np.zeros(0)
    with thread_limit(threads), _PackedRows(bed) as packed:
        return _mean_dosage(packed, bed, rows, ploidy_classes(bed, rows), samples)


def score_bed(bed: Bed, rows, weights, *, samples=None, threads: int = 1, mean_dosage=None,
              count_a2=None) -> np.ndarray:
    """Polygenic scores of the samples of ``bed``: for every sample and score column c, the sum
    over the variants ``rows`` (ascending unique .bim rows, m of them) of weights[v, c] x the
    sample's dosage of the .bim A1 allele (column 5), as plink2 ``--score`` computes SCORE*_SUM.

    ``weights`` (m, k) or (m,) float64 per copy of A1, or per copy of A2 where ``count_a2``
    (bool, (m,) or (m, k)) is true (the dosage counted is then 2 - the A1 dosage, 1 - it on
    chrY/MT, as plink2 counts a score file's allele that is the .bim A2). Missing genotypes: mean imputation, a
    missing call counts as ``mean_dosage[v]`` (of A1; of A2 it is 2 - that, or 1 - that on
    chrY/MT), by default from the called genotypes of all samples of the fileset
    (:func:`a1_mean_dosage`: 2 x A1 frequency on autosomes; chrX, chrY, MT as plink2, see the
    module docstring). ``samples``: .fam rows to return (default all, .fam order); they do not
    change the default imputation. ``threads``: numba threads.

    Returns float64 (n_out_samples, k) (or (n_out_samples,) for 1-D weights). Each sample's sum
    runs over the variants in the same order whatever ``threads``: results do not depend on it.
    Raises CohortflowError for rows or samples out of range, shapes that do not agree and
    non-finite weights or mean dosages.
    """
    rows = _check_rows(bed, rows)
    samples = _check_samples(bed, samples)
    weights = np.asarray(weights, dtype=np.float64)
    one_column = weights.ndim == 1
    if one_column:
        weights = weights[:, None]
    if weights.ndim != 2 or weights.shape[0] != rows.size:
        raise CohortflowError(f"weights must be (variants, columns) with {rows.size} variants, not {weights.shape}")
    if not np.all(np.isfinite(weights)):
        bad = np.argwhere(~np.isfinite(weights))[0]
        raise CohortflowError(f"weight of .bim row {rows[bad[0]]} (column {bad[1] + 1}) is not finite: "
                              f"{weights[bad[0], bad[1]]}")
    if mean_dosage is not None:
        mean_dosage = np.asarray(mean_dosage, dtype=np.float64)
        if mean_dosage.shape != (rows.size,):
            raise CohortflowError(f"mean_dosage must have one value per variant ({rows.size}), "
                                  f"not shape {mean_dosage.shape}")
        if not np.all(np.isfinite(mean_dosage)):
            raise CohortflowError("mean_dosage has non-finite values")
    m, k = weights.shape
    count_a2 = np.zeros((m, 1), dtype=bool) if count_a2 is None else np.asarray(count_a2, dtype=bool)
    if count_a2.ndim == 1:
        count_a2 = count_a2[:, None]
    if count_a2.shape not in ((m, 1), (m, k)):
        raise CohortflowError(f"count_a2 must be (variants,) or (variants, columns) = ({m}, {k}), "
                              f"not shape {count_a2.shape}")
    n = bed.n_samples
    n_out = n if samples is None else samples.size
    if m == 0 or k == 0 or n == 0:
        out = np.zeros((n_out, k))
        return out[:, 0] if one_column else out

    kp = 1 if k == 1 else -(-k // kernels.VECTOR_WIDTH) * kernels.VECTOR_WIDTH
    count_a2 = np.broadcast_to(count_a2, (m, k))
    nb = bed.bytes_per_variant
    acc = np.zeros(4 * nb * kp)
    classes = ploidy_classes(bed, rows)
    table_part = np.flatnonzero(classes <= CHR_X)  # diploid and chrX: same dosages for every sample
    special = np.flatnonzero(classes != DIPLOID)
    with thread_limit(threads) as granted, _PackedRows(bed) as packed:
        fixed_dosage = np.full(m, np.nan) if mean_dosage is None else mean_dosage
        if mean_dosage is None and special.size:  # per-sex frequencies, computed up front (few rows)
            fixed_dosage[special] = _mean_dosage(packed, bed, rows[special], classes[special], None)
        if table_part.size == m:  # no chrY/MT: no copies
            _score_tables(packed, rows, weights, fixed_dosage, count_a2, kp, granted, kernels.sample_mask_words(n), acc)
        elif table_part.size:
            _score_tables(packed, rows[table_part], weights[table_part], fixed_dosage[table_part],
                          count_a2[table_part], kp, granted, kernels.sample_mask_words(n), acc)
        haploid = np.flatnonzero(classes >= CHR_Y)
        if haploid.size:
            males = np.zeros(n)
            males[_males(bed)] = 1.0
            for cls in (CHR_Y, CHR_MT):
                part = haploid[classes[haploid] == cls]
                for start in range(0, part.size, _READ_ROWS):
                    piece = part[start:start + _READ_ROWS]
                    padded = np.zeros((piece.size, kp))
                    padded[:, :k] = weights[piece]
                    a2 = np.zeros((piece.size, kp), dtype=bool)
                    a2[:, :k] = count_a2[piece]
                    data, local = packed.read(rows[piece])
                    kernels.accumulate_direct(data, local, padded, _dose_per_code(fixed_dosage[piece], 1.0), a2, 1.0,
                                              males if cls == CHR_Y else np.ones(n), acc)
    out = acc.reshape(4 * nb, kp)[:n, :k]
    out = out if samples is None else out[samples]
    out = np.ascontiguousarray(out)
    return out[:, 0] if one_column else out


def _dose_per_code(mean: np.ndarray, full: float) -> np.ndarray:
    """A1 dosage per .bed code (hom A1, missing, het, hom A2) per variant; ``full`` = 2 (diploid)
    or 1 (haploid), ``mean`` the A1 mean dosage on that scale."""
    return np.stack([np.full(mean.shape, full), mean, np.full(mean.shape, full / 2), np.zeros(mean.shape)], axis=1)


def _score_tables(packed: _PackedRows, rows: np.ndarray, weights: np.ndarray, dosage: np.ndarray,
                  count_a2: np.ndarray, kp: int, threads: int, mask: np.ndarray, acc: np.ndarray) -> None:
    """Add the contributions of ``rows`` (weights (m, k), count_a2 (m, 1 or k)) by the 4-variant
    tables, chunk by chunk (weights padded to kp columns and whole groups one chunk at a time, so
    memory stays one chunk); ``dosage`` NaN = mean dosage computed here (diploid, all samples)
    while the chunk's rows are in cache."""
    m, k = weights.shape
    groups_per_chunk = int(max(16, min(1024, _TABLE_BYTES // (256 * 8 * kp))))
    chunk = 4 * groups_per_chunk
    # enough tiles to share among the threads, each small enough for its sums to stay in cache
    nb = packed.nb
    n_tiles = max(threads, -(-nb // _TILE_BYTES))
    n_tiles = -(-n_tiles // threads) * threads
    tile_bytes = -(-nb // n_tiles)
    tables = np.empty((groups_per_chunk, 256 * kp))
    counts = np.empty((chunk, 4), dtype=np.int64)
    no_class = np.zeros(chunk, dtype=np.int8)
    chunk_rows = np.empty(chunk, dtype=np.int64)
    chunk_weights = np.zeros((chunk, kp))
    chunk_a2 = np.zeros((chunk, kp), dtype=bool)
    chunk_dosage = np.zeros(chunk)
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        size = stop - start
        padded = -(-size // 4) * 4  # whole groups: padding rows repeat the last row with zero weights
        chunk_rows[:size] = rows[start:stop]
        chunk_rows[size:padded] = rows[stop - 1]
        chunk_weights[:size, :k] = weights[start:stop]
        chunk_weights[size:padded] = 0.0
        chunk_a2[:size, :k] = count_a2[start:stop]
        chunk_a2[size:padded] = False
        chunk_dosage[:size] = dosage[start:stop]
        chunk_dosage[size:padded] = 0.0
        data, local = packed.read(chunk_rows[:padded])
        todo = np.isnan(chunk_dosage[:padded])
        if todo.any():
            kernels.packed_code_counts(data, local, mask, counts[:padded])
            computed = _mean_dosage_from_counts(no_class[:padded], counts[:padded], None)
            chunk_dosage[:padded][todo] = computed[todo]
        chunk_tables = tables[:padded // 4]
        kernels.group_tables(chunk_weights[:padded], _dose_per_code(chunk_dosage[:padded], 2.0), chunk_a2[:padded],
                             2.0, 8 * threads, chunk_tables)
        kernels.accumulate_groups(data, local, chunk_tables, kp, tile_bytes, kernels.SPREAD, acc)
