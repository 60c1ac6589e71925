"""Genotype QC matching ``plink2 --bfile X --geno G --mind M --maf F --hwe H --make-bed``, with
plink1.9's ``--het`` and ``--check-sex`` per sample.

Order (as plink2 applies the flags given in one command, see its log):

1. ``--mind``: sample missingness over all variants (chrY counted for males only) on all samples;
   samples with missing rate > ``mind`` are removed;
2. sex check (plink1.9 ``--check-sex``): flagged always, removed only with ``remove_sex_problems``;
3. relatedness (``remove_samples``, e.g. the IIDs plink2 ``--king-cutoff`` drops);
4. on the remaining samples: ``--geno`` (variant missing rate > ``geno``), then ``--hwe``
   (exact test p < ``hwe``; founders only; chrX with the Graffelman-Weir males+females test;
   chrY and MT not tested), then ``--maf`` (minor allele frequency < ``maf``; founders; chrX
   males, chrY and MT counted as haploid, a haploid het call as half an allele).

Sample filters act per sample, so the kept samples are those of plink2 with ``--remove`` of the
removed IIDs; all variant statistics are computed on the samples left after steps 1-3, so a
variant's pass/fail does not depend on the order of step 4; the per-filter counts in the summary
are sequential (a variant failing --geno and --maf is counted under geno only), as plink2 logs them.

Everything is counted straight from the packed .bed bytes (``kernels.packed_variant_counts``,
``kernels.packed_sample_sums``), in one pass when no sample is removed, two otherwise, plus one
that writes the kept genotypes; results do not depend on the thread count or the block size.

Chromosome codes: 1-22 and any other contig are autosomal; X/23/chrX haploid in males, Y/24
males only, XY/25 (PAR) autosomal, MT/26/M haploid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import atomic_path, write_json_atomic
from cohortflow.io.plink import BED_MAGIC, Bed, open_bed, write_fam
from cohortflow.io.tsv import write_tsv
from cohortflow.threads import thread_limit
from cohortflow.variants.kernels import (
    CLASS_AUTOSOME, CLASS_MT, CLASS_X, CLASS_Y, MASK_ALL, MASK_FOUNDER, MASK_FOUNDER_FEMALE, MASK_FOUNDER_MALE,
    MASK_FOUNDER_UNKNOWN, MASK_MALE, N_COUNT_COLUMNS, N_MASKS, allele_counts_from_counts,
    hwe_from_counts, inbreeding_variant_sets, log_factorials,
    packed_sample_sums, packed_variant_counts, subset_packed_rows,
)
from cohortflow.variants.plots import plot_sample_qc, plot_variant_qc

_X_NAMES = {"X", "23", "CHRX", "CHR23"}
_Y_NAMES = {"Y", "24", "CHRY", "CHR24"}
_MT_NAMES = {"MT", "26", "M", "CHRM", "CHRMT", "CHR26"}

#: plink1.9 --check-sex defaults: F below this calls female, above MALE_MIN_F male
SEX_FEMALE_MAX_F = 0.2
SEX_MALE_MIN_F = 0.8
#: about 16 MiB of .bed per block
_BLOCK_BYTES = 1 << 24

#: per-chromosome shards are cut into chunks of at most this many variants (config shard_variants)
DEFAULT_SHARD_VARIANTS = 2_000_000

SAMPLE_STEPS = ("mind", "sex_check", "king_cutoff")
VARIANT_STEPS = ("geno", "hwe", "maf")


def chromosome_classes(chrom) -> np.ndarray:
    """0 autosomal/PAR, 1 X, 2 Y, 3 MT for each .bim chromosome code (pandas Series or Arrow
    array; classified once per distinct code)."""
    if isinstance(chrom, pd.Series):
        chrom = pa.array(chrom.astype(str).to_numpy(dtype=object))
    encoded = pc.dictionary_encode(chrom)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = np.empty(len(encoded.dictionary), dtype=np.int8)
    for i, name in enumerate(encoded.dictionary.to_pylist()):
        upper = str(name).upper()
        codes[i] = (CLASS_X if upper in _X_NAMES else CLASS_Y if upper in _Y_NAMES
                    else CLASS_MT if upper in _MT_NAMES else CLASS_AUTOSOME)
    if len(encoded) == 0:
        return np.zeros(0, dtype=np.int8)
    return codes[encoded.indices.to_numpy(zero_copy_only=False)]


def founder_mask(fam: pd.DataFrame) -> np.ndarray:
    """Founders as plink defines them: neither parent is in the fileset (same FID)."""
    present = set(zip(fam["fid"].astype(str), fam["iid"].astype(str)))
    fid = fam["fid"].astype(str)
    father = [(f, p) in present for f, p in zip(fid, fam["father"].astype(str))]
    mother = [(f, p) in present for f, p in zip(fid, fam["mother"].astype(str))]
    return ~(np.asarray(father, dtype=bool) | np.asarray(mother, dtype=bool))


def sample_masks(keep: np.ndarray, founder: np.ndarray, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sample masks of ``kernels.packed_variant_counts``: (``N_MASKS`` x words) uint64 with
    bit 2k of word w set for sample 32w + k, and the number of samples in each."""
    keep = np.asarray(keep, dtype=bool)
    founder = np.asarray(founder, dtype=bool) & keep
    male, female = sex == 1, sex == 2
    members = np.zeros((N_MASKS, len(keep)), dtype=bool)
    members[MASK_ALL] = keep
    members[MASK_MALE] = keep & male
    members[MASK_FOUNDER] = founder
    members[MASK_FOUNDER_FEMALE] = founder & female
    members[MASK_FOUNDER_MALE] = founder & male
    members[MASK_FOUNDER_UNKNOWN] = founder & ~male & ~female
    n_words = (len(keep) + 31) // 32
    padded = np.zeros((N_MASKS, n_words * 32), dtype=np.uint64)
    padded[:, :len(keep)] = members
    weights = np.uint64(1) << (2 * np.arange(32, dtype=np.uint64))
    masks = (padded.reshape(N_MASKS, n_words, 32) * weights).sum(axis=2, dtype=np.uint64)
    return np.ascontiguousarray(masks), members.sum(axis=1).astype(np.int64)


def _block_variants(bed: Bed) -> int:
    return max(64, _BLOCK_BYTES // max(1, bed.bytes_per_variant))


def _variant_count_table(bed: Bed, classes: np.ndarray, keep: np.ndarray, founder: np.ndarray,
                         sex: np.ndarray, block_size: int, variant_range: tuple[int, int] | None = None) -> np.ndarray:
    """``kernels.packed_variant_counts`` table (variants x 11, int32) over the samples in ``keep``,
    for the .bim rows ``variant_range`` (start, stop; default all)."""
    first, last = variant_range if variant_range is not None else (0, bed.n_variants)
    masks, sizes = sample_masks(keep, founder, sex)
    founders_all = bool(np.array_equal(masks[MASK_FOUNDER], masks[MASK_ALL]))
    out = np.zeros((last - first, N_COUNT_COLUMNS), dtype=np.int32)
    for start, block in bed.iter_packed_blocks(block_size, start=first, stop=last):
        packed_variant_counts(block, classes[start:start + len(block)], masks, sizes, founders_all,
                              out[start - first:start - first + len(block)])
    return out


def allele_counts(counts: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A1 allele count and observed allele count per variant, as plink2 ``--freq counts``
    (ALT_CTS, OBS_CT); see ``kernels.allele_counts_from_counts``."""
    a1 = np.empty(len(counts))
    obs = np.empty(len(counts), dtype=np.int64)
    allele_counts_from_counts(counts, classes, a1, obs)
    return a1, obs


def allele_frequencies(counts: np.ndarray) -> np.ndarray:
    """A1 frequency from a ``count_variants`` table (NaN where no founder allele is observed)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, 3] > 0, counts[:, 2] / counts[:, 3], np.nan)


def count_variants(bed: Bed, *, sample_mask: np.ndarray, block_size: int | None = None) -> np.ndarray:
    """Per-variant counts over the samples in ``sample_mask`` (variants x 10, float64):
    0 missing calls, 1 eligible samples (chrY: males), 2 A1 allele count, 3 observed allele count
    (plink2 ``--freq``), 4 hom A1, 5 het, 6 hom A2 (founders; chrX females only), 7 male A1 calls,
    8 male A2 calls (founder males on chrX), 9 unused."""
    classes = chromosome_classes(bed.bim_table.column("chrom"))
    sex = bed.fam["sex"].to_numpy(dtype=np.int64)
    counts = _variant_count_table(bed, classes, np.asarray(sample_mask, dtype=bool), founder_mask(bed.fam), sex,
                                  block_size or _block_variants(bed))
    a1, obs = allele_counts(counts, classes)
    out = np.zeros((bed.n_variants, 10))
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = counts[:, 0], counts[:, 1], a1, obs
    out[:, 4:7] = counts[:, 2:5]
    is_x = classes == CLASS_X
    out[is_x, 7], out[is_x, 8] = counts[is_x, 5], counts[is_x, 7]
    return out


@dataclass
class QCStatistics:
    """Variant and sample statistics of a fileset (``qc_statistics``).

    Variant arrays (one entry per .bim row): ``counts`` (``kernels.packed_variant_counts`` table on
    the ``samples`` set), ``a1_count`` / ``allele_obs`` (plink2 ``--freq counts`` ALT_CTS / OBS_CT),
    ``n_missing`` / ``n_eligible`` (plink2 ``--missing`` .vmiss MISSING_CT / OBS_CT), ``hwe_p``
    (plink2 ``--hardy`` / .hardy.x P; NaN on chrY and MT).

    Sample arrays (one entry per .fam row, NaN / 0 for samples outside ``samples``): ``missing`` /
    ``observed`` (.smiss MISSING_CT / OBS_CT); ``het_hom_obs``, ``het_hom_exp``, ``het_n``, ``het_f``
    (plink1.9 ``--het`` O(HOM), E(HOM), N(NM), F over autosomal and PAR variants with founder MAF
    >= ``maf``); ``sex_f`` (plink1.9 ``--check-sex`` F over chrX), ``n_sex_variants`` (the
    polymorphic chrX variants it used; 0: no sex check).
    """

    classes: np.ndarray
    samples: np.ndarray
    counts: np.ndarray
    a1_count: np.ndarray
    allele_obs: np.ndarray
    n_missing: np.ndarray
    n_eligible: np.ndarray
    hwe_p: np.ndarray
    missing: np.ndarray
    observed: np.ndarray
    het_hom_obs: np.ndarray
    het_hom_exp: np.ndarray
    het_n: np.ndarray
    het_f: np.ndarray
    sex_f: np.ndarray
    n_sex_variants: int

    @property
    def a1_freq(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.allele_obs > 0, self.a1_count / self.allele_obs, np.nan)

    @property
    def missing_rate(self) -> np.ndarray:
        """Per-sample missing call rate (0 where nothing is observed)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.observed > 0, self.missing / self.observed, 0.0)

    @property
    def variant_missing_rate(self) -> np.ndarray:
        """Per-variant missing call rate among eligible samples (0 where none is eligible)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_eligible > 0, self.n_missing / self.n_eligible, 0.0)


def _hwe(counts: np.ndarray, classes: np.ndarray, n_samples: int) -> np.ndarray:
    out = np.empty(len(counts))
    hwe_from_counts(counts, classes, log_factorials(2 * n_samples + 2), out)
    return out


@dataclass
class ShardStatistics:
    """The first QC pass over the .bim rows ``start:stop`` (one shard), before combining.

    Per variant of the shard: ``counts`` (``kernels.packed_variant_counts`` table), ``vflag``,
    ``e_het``, ``e_sex`` (``kernels.inbreeding_variant_sets``). Per sample (all .fam rows), the
    shard's part of the sums: ``sample_counts`` (n x 6, int64), ``e_missing`` (2 x n), and the
    shard's ``e_het_sum`` / ``e_sex_sum`` (expected homozygosity summed over its variants).
    Adding the shards' parts in order (:func:`combine_statistics`) is how the whole file's
    statistics are made, in one process or from per-chromosome jobs: both give the same bytes.
    """

    start: int
    stop: int
    counts: np.ndarray
    vflag: np.ndarray
    e_het: np.ndarray
    e_sex: np.ndarray
    sample_counts: np.ndarray
    e_missing: np.ndarray
    e_het_sum: float
    e_sex_sum: float

    def save(self, path) -> None:
        """Write to ``path`` (.npz; written atomically)."""
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, range=np.array([self.start, self.stop], dtype=np.int64), counts=self.counts,
                     vflag=self.vflag, e_het=self.e_het, e_sex=self.e_sex, sample_counts=self.sample_counts,
                     e_missing=self.e_missing, sums=np.array([self.e_het_sum, self.e_sex_sum]))

    @classmethod
    def load(cls, path) -> "ShardStatistics":
        with np.load(path) as z:
            start, stop = (int(x) for x in z["range"])
            return cls(start, stop, z["counts"], z["vflag"], z["e_het"], z["e_sex"], z["sample_counts"],
                       z["e_missing"], float(z["sums"][0]), float(z["sums"][1]))


def shard_statistics(bed: Bed, *, variant_range: tuple[int, int], maf: float = 0.01,
                     samples: np.ndarray | None = None, block_size: int | None = None) -> ShardStatistics:
    """The first QC pass over the .bim rows ``variant_range`` on the samples in ``samples``
    (boolean mask; default all), with the caller's numba threads."""
    n = bed.n_samples
    first, last = variant_range
    keep = np.ones(n, dtype=bool) if samples is None else np.asarray(samples, dtype=bool)
    classes = chromosome_classes(bed.bim_table.column("chrom"))
    sex = bed.fam["sex"].to_numpy(dtype=np.int64)
    masks, sizes = sample_masks(keep, founder_mask(bed.fam), sex)
    founders_all = bool(np.array_equal(masks[MASK_FOUNDER], masks[MASK_ALL]))
    block_size = block_size or _block_variants(bed)
    n_words = masks.shape[1]
    mv = last - first
    counts = np.zeros((mv, N_COUNT_COLUMNS), dtype=np.int32)
    e_het = np.zeros(mv)
    e_sex = np.zeros(mv)
    vflag = np.zeros(mv, dtype=np.uint8)
    sample_counts = np.zeros((n_words * 32, 6), dtype=np.int64)
    e_missing = np.zeros((2, n_words * 32))
    tile_words = max(1, -(-n_words // (2 * numba.get_num_threads())))
    for start, block in bed.iter_packed_blocks(block_size, start=first, stop=last):
        sl = slice(start - first, start - first + len(block))
        cls = classes[start:start + len(block)]
        packed_variant_counts(block, cls, masks, sizes, founders_all, counts[sl])
        inbreeding_variant_sets(counts[sl], cls, maf, vflag[sl], e_het[sl], e_sex[sl])
        packed_sample_sums(block, vflag[sl], e_het[sl], e_sex[sl], tile_words, sample_counts, e_missing)
    return ShardStatistics(first, last, counts, vflag, e_het, e_sex, sample_counts[:n], e_missing[:, :n],
                           float(np.sum(e_het)), float(np.sum(e_sex)))


def combine_statistics(bed: Bed, parts: list[ShardStatistics], *, samples: np.ndarray | None = None) -> QCStatistics:
    """The whole file's :class:`QCStatistics` from its shards' first passes (in .bim order,
    covering every row once)."""
    n, m = bed.n_samples, bed.n_variants
    if [(p.start, p.stop) for p in parts] != list(zip([0] + [p.stop for p in parts[:-1]], [p.stop for p in parts])) \
            or (parts and parts[-1].stop != m) or (not parts and m):
        raise CohortflowError("QC shards do not cover the .bim rows in order")
    keep = np.ones(n, dtype=bool) if samples is None else np.asarray(samples, dtype=bool)
    classes = chromosome_classes(bed.bim_table.column("chrom"))
    sex = bed.fam["sex"].to_numpy(dtype=np.int64)

    def cat(name, dtype, width=None):
        arrays = [getattr(p, name) for p in parts]
        if arrays:
            return np.concatenate(arrays)
        return np.zeros((0, width) if width else 0, dtype=dtype)

    counts = cat("counts", np.int32, N_COUNT_COLUMNS)
    vflag = cat("vflag", np.uint8)
    sample_counts = np.zeros((n, 6), dtype=np.int64)
    e_missing = np.zeros((2, n))
    e_het_sum = e_sex_sum = 0.0
    for p in parts:                     # in shard order: the same sums whoever computes them
        sample_counts += p.sample_counts
        e_missing += p.e_missing
        e_het_sum += p.e_het_sum
        e_sex_sum += p.e_sex_sum
    hwe_p = _hwe(counts, classes, n)
    a1, obs = allele_counts(counts, classes)
    is_male = sex == 1
    n_y = int((classes == CLASS_Y).sum())
    missing = sample_counts[:, 0] + np.where(is_male, sample_counts[:, 1], 0)
    observed = np.where(is_male, m, m - n_y)

    het_set, sex_set = (vflag & 2) > 0, (vflag & 4) > 0
    het_n = int(het_set.sum()) - sample_counts[:, 4]
    het_hom_obs = het_n - sample_counts[:, 2]
    het_hom_exp = e_het_sum - e_missing[0]  # e_het is 0 off the set
    n_sex = int(sex_set.sum())
    sex_n = n_sex - sample_counts[:, 5]
    sex_hom_exp = e_sex_sum - e_missing[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        het_f = np.where(het_n > 0, (het_hom_obs - het_hom_exp) / (het_n - het_hom_exp), np.nan)
        sex_f = np.where(sex_n > 0, (sex_n - sample_counts[:, 3] - sex_hom_exp) / (sex_n - sex_hom_exp), np.nan)
    outside = ~keep
    for arr in (het_f, sex_f, het_hom_exp):
        arr[outside] = np.nan
    for arr in (missing, observed, het_n, het_hom_obs):
        arr[outside] = 0
    return QCStatistics(
        classes=classes, samples=keep, counts=counts, a1_count=a1, allele_obs=obs,
        n_missing=counts[:, 0].astype(np.int64), n_eligible=counts[:, 1].astype(np.int64), hwe_p=hwe_p,
        missing=missing, observed=observed, het_hom_obs=het_hom_obs, het_hom_exp=het_hom_exp, het_n=het_n,
        het_f=het_f, sex_f=sex_f if n_sex else np.full(n, np.nan), n_sex_variants=n_sex,
    )


def qc_shard_ranges(bed: Bed, max_shard_variants: int = DEFAULT_SHARD_VARIANTS) -> list[tuple[int, int]]:
    """The (start, stop) rows of the per-chromosome shards of ``bed``
    (:func:`cohortflow.gwas.shards.shard_plan`)."""
    from cohortflow.gwas.shards import shard_plan

    plan = shard_plan(bed.bim_table.column("chrom").to_pandas(), max_variants=max_shard_variants)
    return [(int(a), int(b)) for a, b in zip(plan["start"], plan["stop"])]


def qc_statistics(bfile, *, maf: float = 0.01, samples: np.ndarray | None = None, threads: int = 1,
                  block_size: int | None = None, max_shard_variants: int = DEFAULT_SHARD_VARIANTS) -> QCStatistics:
    """One pass over a PLINK fileset (a prefix or an open ``Bed``): what plink2 ``--freq counts
    --missing --hardy`` and plink1.9 ``--maf {maf} --het`` and ``--check-sex`` report, on the
    samples in ``samples`` (boolean mask; default all). See ``QCStatistics`` for the fields.

    Computed shard by shard (per chromosome, chunks of at most ``max_shard_variants``) and
    combined, as the workflow's per-chromosome jobs do. ``maf`` only selects the heterozygosity
    variants. Uses ``threads`` numba threads; results do not depend on it or on ``block_size``.
    """
    bed = bfile if isinstance(bfile, Bed) else open_bed(bfile)
    with thread_limit(threads):
        parts = [shard_statistics(bed, variant_range=r, maf=maf, samples=samples, block_size=block_size)
                 for r in qc_shard_ranges(bed, max_shard_variants)]
    return combine_statistics(bed, parts, samples=samples)


def check_sex(sex_f: np.ndarray, pedsex: np.ndarray, *, female_max_f: float = SEX_FEMALE_MAX_F,
              male_min_f: float = SEX_MALE_MIN_F) -> tuple[np.ndarray, np.ndarray]:
    """plink1.9 ``--check-sex`` calls: SNPSEX (1 if F > ``male_min_f``, 2 if F < ``female_max_f``,
    else 0; 0 where F is NaN) and STATUS (True = OK: the .fam sex is known and equals SNPSEX)."""
    inferred = np.where(sex_f > male_min_f, 1, np.where(sex_f < female_max_f, 2, 0))
    return inferred, (pedsex > 0) & (pedsex == inferred)


def _check_threshold(name: str, value, path) -> None:
    try:
        ok = 0.0 <= float(value) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CohortflowError(f"QC threshold {name}={value!r} is not a number in [0, 1]", path=path)


def _bool_text(mask: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(mask.astype(np.int8)), pa.array(["False", "True"])).cast(pa.string())


def _qc_inputs(bfile, out_prefix, *, thresholds: dict, remove_samples, threads: int):
    """Validated inputs of a QC run: the open fileset, its prefix and the relatedness-removal mask."""
    bfile_path = Path(str(bfile).removesuffix(".bed"))
    for name, value in thresholds.items():
        _check_threshold(name, value, f"{bfile_path}.bed")
    if int(threads) < 1:
        raise CohortflowError(f"threads={threads!r} must be at least 1")
    if out_prefix is not None and Path(f"{out_prefix}.bed").resolve() == Path(f"{bfile_path}.bed").resolve():
        raise CohortflowError("QC output prefix is the input fileset; choose another out_prefix",
                              path=f"{bfile_path}.bed")
    bed = open_bed(bfile_path)
    n, m = bed.n_samples, bed.n_variants
    if n == 0 or m == 0:
        raise CohortflowError(f"empty fileset ({n} samples, {m} variants)", path=f"{bfile_path}.bed")
    iids = bed.fam["iid"].astype(str).to_numpy()
    king = np.zeros(n, dtype=bool)
    if isinstance(remove_samples, (str, Path)):
        raise CohortflowError(f"remove_samples must be a list of IIDs, not {remove_samples!r}")
    if remove_samples:
        wanted = {str(s) for s in remove_samples}
        unknown = sorted(wanted - set(iids))
        if unknown:
            raise CohortflowError(f"{len(unknown)} IID(s) to remove are not in the fileset (first: {unknown[0]})",
                                  path=f"{bfile_path}.fam")
        king = np.isin(iids, list(wanted))
    return bed, bfile_path, king


# ---------------------------------------------------------------------------------------------
# the same QC as per-chromosome jobs (workflow rules qc_stats_shard, qc_filter_shard, genotype_qc)
# ---------------------------------------------------------------------------------------------

def qc_stats_shard_file(*, bfile, plan, shard: str, maf: float = 0.01, out, threads: int = 1) -> None:
    """Job 1 of the sharded QC: the statistics pass over ``shard`` of the plan (:func:`shard_statistics`) -> ``out`` (.npz)."""
    from cohortflow.gwas.shards import shard_range

    bed = open_bed(Path(str(bfile).removesuffix(".bed")))
    with thread_limit(threads):
        part = shard_statistics(bed, variant_range=shard_range(plan, shard), maf=maf)
    part.save(out)


def _load_parts(bed: Bed, stats_parts: list):
    parts = [ShardStatistics.load(p) for p in stats_parts]
    return parts, combine_statistics(bed, parts)


def qc_filter_shard_file(*, bfile, stats_parts: list, shard: str | int, plan=None, remove_samples=None, geno: float = 0.05,
                         mind: float = 0.05, maf: float = 0.01, hwe: float = 1e-6, remove_sex_problems: bool = False,
                         out_filtered, out_bed_part, threads: int = 1) -> None:
    """Job 2 of the sharded QC, for ``shard`` (its name in ``plan``, or its position) of
    ``stats_parts`` (every shard's job-1 output, in plan order): the sample decisions (from all
    shards' statistics), then the
    variant steps on this shard (:func:`filter_shard`) -> ``out_filtered`` (.npz) and its kept
    rows, packed, without the .bed magic bytes -> ``out_bed_part``."""
    bed, bfile_path, king = _qc_inputs(bfile, None, thresholds=dict(geno=geno, mind=mind, maf=maf, hwe=hwe),
                                       remove_samples=remove_samples, threads=threads)
    parts, stats = _load_parts(bed, stats_parts)
    decisions = sample_decisions(bed, stats, mind=mind, king=king, remove_sex_problems=remove_sex_problems,
                                 path=f"{bfile_path}.bed")
    if isinstance(shard, str):
        from cohortflow.gwas.shards import read_shard_plan

        if plan is None:
            raise CohortflowError(f"shard {shard!r} given by name without its plan")
        names = read_shard_plan(plan)["shard"].tolist()
        if shard not in names or len(names) != len(parts):
            raise CohortflowError(f"shard {shard!r} is not one of the plan's {len(parts)} shards", path=plan)
        shard = names.index(shard)
    part = parts[shard]
    block = _block_variants(bed)
    with thread_limit(threads):
        shard = filter_shard(bed, part, decisions, geno=geno, hwe=hwe, maf=maf, block_size=block)
        with atomic_path(Path(out_bed_part)) as tmp, open(tmp, "wb") as fh:
            _write_rows(bed, fh, decisions.keep, shard.keep, (part.start, part.stop), block)
    shard.save(out_filtered)


def genotype_qc_gather(*, bfile, stats_parts: list, filtered_parts: list, bed_parts: list, out_prefix,
                       remove_samples=None, geno: float = 0.05, mind: float = 0.05, maf: float = 0.01,
                       hwe: float = 1e-6, remove_sex_problems: bool = False, king_cutoff: float | None = None) -> dict:
    """Job 3 of the sharded QC: the outputs of :func:`genotype_qc` from the shards' jobs (lists
    in plan order); the same bytes as one :func:`genotype_qc` call."""
    bed, bfile_path, king = _qc_inputs(bfile, out_prefix, thresholds=dict(geno=geno, mind=mind, maf=maf, hwe=hwe),
                                       remove_samples=remove_samples, threads=1)
    _, stats = _load_parts(bed, stats_parts)
    decisions = sample_decisions(bed, stats, mind=mind, king=king, remove_sex_problems=remove_sex_problems,
                                 path=f"{bfile_path}.bed")
    filtered = [FilteredShard.load(p) for p in filtered_parts]
    if len(filtered) != len(bed_parts) or len(filtered) != len(stats_parts):
        raise CohortflowError(f"{len(stats_parts)} statistics, {len(filtered)} filter and {len(bed_parts)} "
                              ".bed parts: one of each per shard")
    _require_variants(filtered, bed.n_variants, bfile_path)
    with atomic_path(Path(f"{out_prefix}.bed")) as tmp, open(tmp, "wb") as fh:
        fh.write(BED_MAGIC)
        for part in bed_parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    fh.write(chunk)
    return _finish_qc(bed, out_prefix, stats, decisions, filtered, geno=geno, mind=mind, maf=maf, hwe=hwe,
                      remove_sex_problems=remove_sex_problems, king_cutoff=king_cutoff)


def genotype_qc(bfile, *, out_prefix, geno: float = 0.05, mind: float = 0.05, maf: float = 0.01,
                hwe: float = 1e-6, remove_sex_problems: bool = False, remove_samples: list[str] | None = None,
                king_cutoff: float | None = None, threads: int = 1, block_size: int | None = None,
                max_shard_variants: int = DEFAULT_SHARD_VARIANTS) -> dict:
    """Sample and variant QC of a PLINK fileset, with plink2's filter order (module docstring).

    ``remove_samples``: IIDs to drop after --mind (the relatedness step, e.g. plink2 --king-cutoff's
    .king.cutoff.out.id); every IID must be in the .fam. ``remove_sex_problems``: also drop the
    samples whose sex check STATUS is PROBLEM (which includes every sample of unknown sex).
    ``king_cutoff``: the kinship cutoff that chose ``remove_samples``, recorded in the summary's
    thresholds. ``threads``: numba threads; outputs do not depend on it.

    Writes:

    - ``{out_prefix}.bed/.bim/.fam``: samples and variants that pass (input order kept);
    - ``{out_prefix}.sample_qc.tsv``: ``FID IID call_rate n_called n_missing het_f sex_f inferred_sex
      sex_check pass reason`` for every input sample, on all input samples:
      ``call_rate``/``n_called``/``n_missing`` as plink2 ``--missing`` (.smiss); ``het_f`` = plink1.9
      ``--maf {maf} --het`` F = (O(HOM) - E(HOM)) / (N - E(HOM)) over autosomal and PAR variants,
      E(HOM) summing Nei's 1 - 2pq without the n/(n-1) factor (the plink1.9 and plink2 default; their
      ``small-sample`` modifier adds it), p from the founders; ``sex_f``, ``inferred_sex``,
      ``sex_check`` = plink1.9 ``--check-sex`` F, SNPSEX (1/2/0) and STATUS (OK/PROBLEM) over the
      chrX (non-PAR) variants, frequencies from founders with males haploid, at F thresholds 0.2/0.8
      (all three empty when there is no polymorphic chrX variant); ``reason`` = comma-separated
      failed sample steps among ``mind,sex_check,king_cutoff``;
    - ``{out_prefix}.variant_qc.tsv``: ``variant_id chromosome position a1 a2 call_rate n_called
      a1_freq maf hwe_p a1_count allele_obs pass reason`` for every input variant, statistics on the
      samples kept by the sample steps; ``a1_freq`` = frequency of the .bim column-5 allele (ALT),
      ``a1_count``/``allele_obs`` = plink2 ``--freq counts`` ALT_CTS/OBS_CT; ``hwe_p`` = plink2
      ``--hardy`` P (empty for chrY/MT); ``reason`` = comma-separated failed filters among
      ``geno,hwe,maf``;
    - ``{out_prefix}.summary.json``: ``n_samples_in, n_samples_out, n_variants_in, n_variants_out,
      samples_removed`` ({mind, sex_check, king_cutoff}), ``variants_removed`` ({geno, hwe, maf},
      sequential as plink2 logs them), ``order``, ``funnel`` (the steps in order, each
      ``{step, samples_removed, variants_removed, samples_left, variants_left}``), ``thresholds``
      ({geno, mind, maf, hwe}), ``sex_check`` ({n_chrx_variants, n_problem, n_male_called,
      n_female_called, female_max_f, male_min_f, removed});
    - ``{out_prefix}.sample_qc.png`` and ``{out_prefix}.variant_qc.png``: the distributions with
      their thresholds (:func:`cohortflow.variants.plots.plot_sample_qc`, ``plot_variant_qc``).

    Runs shard by shard (per chromosome, chunks of at most ``max_shard_variants``): the
    statistics pass (:func:`shard_statistics`), the sample decisions on the combined statistics,
    then per shard the variant statistics on the kept samples, the filters and the kept rows
    (:func:`filter_shard`), as the workflow's per-chromosome jobs do (:func:`qc_filter_shard_file`,
    :func:`genotype_qc_gather`); both give the same bytes.

    Returns the summary dict. Raises ``CohortflowError`` for thresholds outside [0, 1], an empty
    fileset, unknown ``remove_samples`` IDs, an output prefix equal to the input, or when no sample
    or no variant is left.
    """
    bed, bfile_path, king = _qc_inputs(bfile, out_prefix, thresholds=dict(geno=geno, mind=mind, maf=maf, hwe=hwe),
                                       remove_samples=remove_samples, threads=threads)
    m = bed.n_variants
    with thread_limit(threads):
        block = block_size or _block_variants(bed)
        parts = [shard_statistics(bed, variant_range=r, maf=maf, block_size=block)
                 for r in qc_shard_ranges(bed, max_shard_variants)]
        stats = combine_statistics(bed, parts)
        decisions = sample_decisions(bed, stats, mind=mind, king=king, remove_sex_problems=remove_sex_problems,
                                     path=f"{bfile_path}.bed")
        filtered = []
        with atomic_path(Path(f"{out_prefix}.bed")) as tmp, open(tmp, "wb") as fh:
            fh.write(BED_MAGIC)
            for part in parts:
                shard = filter_shard(bed, part, decisions, geno=geno, hwe=hwe, maf=maf, block_size=block)
                _write_rows(bed, fh, decisions.keep, shard.keep, (part.start, part.stop), block)
                filtered.append(shard)
            _require_variants(filtered, m, bfile_path)
        return _finish_qc(bed, out_prefix, stats, decisions, filtered, geno=geno, mind=mind, maf=maf, hwe=hwe,
                          remove_sex_problems=remove_sex_problems, king_cutoff=king_cutoff)


@dataclass
class SampleDecisions:
    """The sample steps' outcome: ``keep`` and each step's failures (one entry per .fam row), the
    sex check's ``inferred`` sex and ``sex_ok``, and whether a sex check was possible."""

    keep: np.ndarray
    fail_mind: np.ndarray
    fail_sex: np.ndarray
    king: np.ndarray
    inferred: np.ndarray
    sex_ok: np.ndarray
    has_sex_check: bool


def sample_decisions(bed: Bed, stats: QCStatistics, *, mind: float, king: np.ndarray, remove_sex_problems: bool,
                     path=None) -> SampleDecisions:
    """--mind, the sex check and the relatedness removals (``king`` mask) on the first pass's statistics."""
    n = bed.n_samples
    pedsex = bed.fam["sex"].to_numpy(dtype=np.int64)
    fail_mind = stats.missing_rate > mind
    has_sex_check = stats.n_sex_variants > 0
    if has_sex_check:
        inferred, sex_ok = check_sex(stats.sex_f, pedsex)
    else:
        inferred, sex_ok = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    fail_sex = ~sex_ok if remove_sex_problems else np.zeros(n, dtype=bool)
    keep = ~(fail_mind | fail_sex | king)
    if not keep.any():
        raise CohortflowError(f"no sample passes the sample QC steps ({n} in)", path=path)
    return SampleDecisions(keep, fail_mind, fail_sex, king, inferred, sex_ok, bool(has_sex_check))


@dataclass
class FilteredShard:
    """One shard's variant statistics on the kept samples (``counts``, ``hwe_p``) and which of its
    variants pass (``keep``)."""

    start: int
    stop: int
    counts: np.ndarray
    hwe_p: np.ndarray
    keep: np.ndarray

    def save(self, path) -> None:
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, range=np.array([self.start, self.stop], dtype=np.int64), counts=self.counts,
                     hwe_p=self.hwe_p, keep=self.keep)

    @classmethod
    def load(cls, path) -> "FilteredShard":
        with np.load(path) as z:
            start, stop = (int(x) for x in z["range"])
            return cls(start, stop, z["counts"], z["hwe_p"], z["keep"])


def _variant_fails(counts: np.ndarray, hwe_p: np.ndarray, classes: np.ndarray, *, geno: float, hwe: float,
                   maf: float) -> tuple[dict, dict]:
    """The variant filters' failures and the statistics they use, from kept-sample counts."""
    a1_count, allele_obs = allele_counts(counts, classes)
    n_missing, n_eligible = counts[:, 0].astype(np.int64), counts[:, 1].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(allele_obs > 0, a1_count / allele_obs, np.nan)
        missing_rate = np.where(n_eligible > 0, n_missing / n_eligible, 0.0)
    minor = np.minimum(freq, 1 - freq)
    fails = {
        "geno": missing_rate > geno,
        "hwe": np.isfinite(hwe_p) & (hwe_p < hwe),
        # plink2 drops a variant whose frequency is undefined (no founder calls) under --maf
        "maf": (~np.isfinite(minor) & (maf > 0)) | (minor < maf),
    }
    values = {"a1_count": a1_count, "allele_obs": allele_obs, "n_missing": n_missing, "n_eligible": n_eligible,
              "freq": freq, "missing_rate": missing_rate, "minor": minor}
    return fails, values


def filter_shard(bed: Bed, part: ShardStatistics, decisions: SampleDecisions, *, geno: float, hwe: float,
                 maf: float, block_size: int | None = None) -> FilteredShard:
    """The variant steps on one shard: statistics on the kept samples (the first pass's when
    every sample is kept), then --geno, --hwe, --maf."""
    classes = chromosome_classes(bed.bim_table.column("chrom"))[part.start:part.stop]
    if decisions.keep.all():
        counts = part.counts
    else:
        counts = _variant_count_table(bed, chromosome_classes(bed.bim_table.column("chrom")), decisions.keep,
                                      founder_mask(bed.fam), bed.fam["sex"].to_numpy(dtype=np.int64),
                                      block_size or _block_variants(bed), (part.start, part.stop))
    hwe_p = _hwe(counts, classes, bed.n_samples)
    fails, _ = _variant_fails(counts, hwe_p, classes, geno=geno, hwe=hwe, maf=maf)
    keep = ~(fails["geno"] | fails["hwe"] | fails["maf"])
    return FilteredShard(part.start, part.stop, counts, hwe_p, keep)


def _require_variants(filtered: list[FilteredShard], m: int, bfile_path) -> None:
    if not any(f.keep.any() for f in filtered):
        raise CohortflowError(f"no variant passes the variant QC filters ({m} in)", path=f"{bfile_path}.bed")


def _write_rows(bed: Bed, fh, keep_samples: np.ndarray, keep_variants: np.ndarray, variant_range: tuple[int, int],
                block_size: int) -> None:
    """Append the packed rows of the kept variants of ``variant_range`` (``keep_variants`` one
    flag per variant of the range), kept samples only, to ``fh`` (no magic bytes)."""
    sample_idx = np.flatnonzero(keep_samples).astype(np.int64)
    all_samples = len(sample_idx) == bed.n_samples
    nb_out = (len(sample_idx) + 3) // 4
    buffer = np.empty((block_size, nb_out), dtype=np.uint8)  # reused: no fresh pages per block
    first, last = variant_range
    for start, block in bed.iter_packed_blocks(block_size, start=first, stop=last):
        rows = np.flatnonzero(keep_variants[start - first:start - first + len(block)])
        if not len(rows):
            continue
        out = buffer[:len(rows)]
        if all_samples:
            np.take(block, rows, axis=0, out=out)
        else:
            subset_packed_rows(block, rows, sample_idx, out)
        fh.write(memoryview(out).cast("B"))


def _finish_qc(bed: Bed, out_prefix, stats: QCStatistics, decisions: SampleDecisions, filtered: list[FilteredShard],
               *, geno: float, mind: float, maf: float, hwe: float, remove_sex_problems: bool,
               king_cutoff: float | None) -> dict:
    """Everything after the kept rows are in ``{out_prefix}.bed``: .bim, .fam, the tables, the
    figures and the summary."""
    n, m = bed.n_samples, bed.n_variants
    iids = bed.fam["iid"].astype(str).to_numpy()
    pedsex = bed.fam["sex"].to_numpy(dtype=np.int64)
    counts = np.concatenate([f.counts for f in filtered])
    hwe_p = np.concatenate([f.hwe_p for f in filtered])
    keep_variants = np.concatenate([f.keep for f in filtered])
    fails, v = _variant_fails(counts, hwe_p, stats.classes, geno=geno, hwe=hwe, maf=maf)
    keep_samples = decisions.keep
    inferred, sex_ok, has_sex_check = decisions.inferred, decisions.sex_ok, decisions.has_sex_check

    bim = bed.bim_table.filter(pa.array(keep_variants))
    write_tsv(Path(f"{out_prefix}.bim"), {
        "chrom": bim.column("chrom"), "id": bim.column("id"), "cm": bim.column("cm").to_numpy(),
        "pos": bim.column("pos").to_numpy(), "a1": bim.column("a1"), "a2": bim.column("a2")}, header=False)
    write_fam(Path(f"{out_prefix}.fam"), bed.fam.loc[keep_samples].reset_index(drop=True))

    bim = bed.bim_table
    reasons = _reason_strings(fails, VARIANT_STEPS)
    n_eligible, missing_rate = v["n_eligible"], v["missing_rate"]
    write_tsv(Path(f"{out_prefix}.variant_qc.tsv"), {
        "variant_id": bim.column("id"), "chromosome": bim.column("chrom"), "position": bim.column("pos"),
        "a1": bim.column("a1"), "a2": bim.column("a2"),
        "call_rate": np.where(n_eligible > 0, 1.0 - missing_rate, np.nan), "n_called": n_eligible - v["n_missing"],
        "a1_freq": v["freq"], "maf": v["minor"], "hwe_p": hwe_p, "a1_count": v["a1_count"],
        "allele_obs": v["allele_obs"], "pass": _bool_text(keep_variants), "reason": reasons,
    })
    sample_fails = {"mind": decisions.fail_mind, "sex_check": decisions.fail_sex, "king_cutoff": decisions.king}
    write_tsv(Path(f"{out_prefix}.sample_qc.tsv"), {
        "FID": pa.array(bed.fam["fid"].astype(str).to_numpy(dtype=object)), "IID": pa.array(iids.astype(object)),
        "call_rate": 1.0 - stats.missing_rate, "n_called": stats.observed - stats.missing,
        "n_missing": stats.missing, "het_f": stats.het_f,
        "sex_f": stats.sex_f,
        "inferred_sex": pa.array(inferred, mask=np.full(n, not has_sex_check)),
        "sex_check": pa.array(np.where(sex_ok, "OK", "PROBLEM").astype(object), mask=np.full(n, not has_sex_check)),
        "pass": _bool_text(keep_samples), "reason": _reason_strings(sample_fails, SAMPLE_STEPS),
    })

    plot_sample_qc(pd.DataFrame({"call_rate": 1.0 - stats.missing_rate, "het_f": stats.het_f,
                                 "sex_f": stats.sex_f if has_sex_check else np.full(n, np.nan),
                                 "reported_sex": pedsex}),
                   path=f"{out_prefix}.sample_qc.png", mind=mind, female_max_f=SEX_FEMALE_MAX_F,
                   male_min_f=SEX_MALE_MIN_F)
    plot_variant_qc(pd.DataFrame({"call_rate": np.where(n_eligible > 0, 1.0 - missing_rate, np.nan),
                                  "maf": v["minor"], "hwe_p": hwe_p}),
                    path=f"{out_prefix}.variant_qc.png", geno=geno, maf=maf, hwe=hwe)

    funnel = []
    left_s, left_v = np.ones(n, dtype=bool), np.ones(m, dtype=bool)
    for step in SAMPLE_STEPS + VARIANT_STEPS:
        if step in SAMPLE_STEPS:
            removed_s, removed_v = int((left_s & sample_fails[step]).sum()), 0
            left_s &= ~sample_fails[step]
        else:
            removed_s, removed_v = 0, int((left_v & fails[step]).sum())
            left_v &= ~fails[step]
        funnel.append({"step": step, "samples_removed": removed_s, "variants_removed": removed_v,
                       "samples_left": int(left_s.sum()), "variants_left": int(left_v.sum())})
    summary = {
        "n_samples_in": n,
        "n_samples_out": int(keep_samples.sum()),
        "n_variants_in": m,
        "n_variants_out": int(keep_variants.sum()),
        "samples_removed": {f["step"]: f["samples_removed"] for f in funnel if f["step"] in SAMPLE_STEPS},
        "variants_removed": {f["step"]: f["variants_removed"] for f in funnel if f["step"] in VARIANT_STEPS},
        "thresholds": {"geno": geno, "mind": mind, "maf": maf, "hwe": hwe}
        | ({"king_cutoff": king_cutoff} if king_cutoff is not None else {}),
        "order": list(SAMPLE_STEPS + VARIANT_STEPS),
        "funnel": funnel,
        "sex_check": {
            "n_chrx_variants": stats.n_sex_variants,
            "n_problem": int((~sex_ok).sum()) if has_sex_check else 0,
            "n_male_called": int((inferred == 1).sum()) if has_sex_check else 0,
            "n_female_called": int((inferred == 2).sum()) if has_sex_check else 0,
            "female_max_f": SEX_FEMALE_MAX_F, "male_min_f": SEX_MALE_MIN_F,
            "removed": bool(remove_sex_problems),
        },
    }
    write_json_atomic(Path(f"{out_prefix}.summary.json"), summary)
    return summary


def _reason_strings(fails: dict[str, np.ndarray], steps: tuple[str, ...]) -> pa.Array:
    """Comma-separated failed steps per row, as an Arrow string array (no Python string per row)."""
    code = np.zeros(len(fails[steps[0]]), dtype=np.int64)
    for bit, step in enumerate(steps):
        code |= fails[step].astype(np.int64) << bit
    names = [",".join(s for bit, s in enumerate(steps) if c >> bit & 1) for c in range(1 << len(steps))]
    return pa.array(names).take(pa.array(code))


def read_id_list(path) -> list[str]:
    """IIDs of a plink sample-ID file (``#FID IID`` / ``FID IID`` / ``IID`` lines, e.g. plink2's
    ``.king.cutoff.out.id``): the last column of each non-header line."""
    path = Path(path)
    if not path.exists():
        raise CohortflowError("file not found", path=path)
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or (number == 1 and fields[-1] == "IID"):
            continue
        if len(fields) > 2:
            raise CohortflowError(f"{len(fields)} columns; expected IID or FID IID", path=path,
                                  record=f"line {number}")
        ids.append(fields[-1])
    return ids
