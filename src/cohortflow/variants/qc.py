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
                         sex: np.ndarray, block_size: int) -> np.ndarray:
    """``kernels.packed_variant_counts`` table (variants x 11, int32) over the samples in ``keep``."""
    masks, sizes = sample_masks(keep, founder, sex)
    founders_all = bool(np.array_equal(masks[MASK_FOUNDER], masks[MASK_ALL]))
    out = np.zeros((bed.n_variants, N_COUNT_COLUMNS), dtype=np.int32)
    for start, block in bed.iter_packed_blocks(block_size):
        packed_variant_counts(block, classes[start:start + len(block)], masks, sizes, founders_all,
                              out[start:start + len(block)])
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


def qc_statistics(bfile, *, maf: float = 0.01, samples: np.ndarray | None = None, threads: int = 1,
                  block_size: int | None = None) -> QCStatistics:
    """One pass over a PLINK fileset (a prefix or an open ``Bed``): what plink2 ``--freq counts
    --missing --hardy`` and plink1.9 ``--maf {maf} --het`` and ``--check-sex`` report, on the
    samples in ``samples`` (boolean mask; default all). See ``QCStatistics`` for the fields.

    ``maf`` only selects the heterozygosity variants. Uses ``threads`` numba threads; results do not
    depend on it or on ``block_size`` (variants per block).
    """
    bed = bfile if isinstance(bfile, Bed) else open_bed(bfile)
    n, m = bed.n_samples, bed.n_variants
    keep = np.ones(n, dtype=bool) if samples is None else np.asarray(samples, dtype=bool)
    classes = chromosome_classes(bed.bim_table.column("chrom"))
    sex = bed.fam["sex"].to_numpy(dtype=np.int64)
    founder = founder_mask(bed.fam)
    masks, sizes = sample_masks(keep, founder, sex)
    founders_all = bool(np.array_equal(masks[MASK_FOUNDER], masks[MASK_ALL]))
    block_size = block_size or _block_variants(bed)
    n_words = masks.shape[1]
    counts = np.zeros((m, N_COUNT_COLUMNS), dtype=np.int32)
    e_het = np.zeros(m)
    e_sex = np.zeros(m)
    vflag = np.zeros(m, dtype=np.uint8)
    sample_counts = np.zeros((n_words * 32, 6), dtype=np.int64)
    e_missing = np.zeros((2, n_words * 32))
    with thread_limit(threads):
        tile_words = max(1, -(-n_words // (2 * numba.get_num_threads())))
        for start, block in bed.iter_packed_blocks(block_size):
            sl = slice(start, start + len(block))
            cls = classes[sl]
            packed_variant_counts(block, cls, masks, sizes, founders_all, counts[sl])
            inbreeding_variant_sets(counts[sl], cls, maf, vflag[sl], e_het[sl], e_sex[sl])
            packed_sample_sums(block, vflag[sl], e_het[sl], e_sex[sl], tile_words, sample_counts, e_missing)
        hwe_p = _hwe(counts, classes, n)
    a1, obs = allele_counts(counts, classes)
    sample_counts, e_missing = sample_counts[:n], e_missing[:, :n]
    is_male = sex == 1
    n_y = int((classes == CLASS_Y).sum())
    missing = sample_counts[:, 0] + np.where(is_male, sample_counts[:, 1], 0)
    observed = np.where(is_male, m, m - n_y)

    het_set, sex_set = (vflag & 2) > 0, (vflag & 4) > 0
    het_n = int(het_set.sum()) - sample_counts[:, 4]
    het_hom_obs = het_n - sample_counts[:, 2]
    het_hom_exp = float(np.sum(e_het)) - e_missing[0]  # e_het is 0 off the set
    n_sex = int(sex_set.sum())
    sex_n = n_sex - sample_counts[:, 5]
    sex_hom_exp = float(np.sum(e_sex)) - e_missing[1]
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


def _write_fileset(bed: Bed, out_prefix, keep_samples: np.ndarray, keep_variants: np.ndarray, block_size: int) -> None:
    """Write the kept samples and variants as ``{out_prefix}.bed/.bim/.fam`` (input order), copying
    packed rows when every sample is kept and repacking them otherwise."""
    sample_idx = np.flatnonzero(keep_samples).astype(np.int64)
    all_samples = len(sample_idx) == bed.n_samples
    nb_out = (len(sample_idx) + 3) // 4
    buffer = np.empty((block_size, nb_out), dtype=np.uint8)  # reused: no fresh pages per block
    with atomic_path(Path(f"{out_prefix}.bed")) as tmp, open(tmp, "wb") as fh:
        fh.write(BED_MAGIC)
        for start, block in bed.iter_packed_blocks(block_size):
            rows = np.flatnonzero(keep_variants[start:start + len(block)])
            if not len(rows):
                continue
            out = buffer[:len(rows)]
            if all_samples:
                np.take(block, rows, axis=0, out=out)
            else:
                subset_packed_rows(block, rows, sample_idx, out)
            fh.write(memoryview(out).cast("B"))
        fh.close()
        bim = bed.bim_table.filter(pa.array(keep_variants))
        write_tsv(Path(f"{out_prefix}.bim"), {
            "chrom": bim.column("chrom"), "id": bim.column("id"), "cm": bim.column("cm").to_numpy(),
            "pos": bim.column("pos").to_numpy(), "a1": bim.column("a1"), "a2": bim.column("a2")}, header=False)
        write_fam(Path(f"{out_prefix}.fam"), bed.fam.loc[keep_samples].reset_index(drop=True))


def genotype_qc(bfile, *, out_prefix, geno: float = 0.05, mind: float = 0.05, maf: float = 0.01,
                hwe: float = 1e-6, remove_sex_problems: bool = False, remove_samples: list[str] | None = None,
                king_cutoff: float | None = None, threads: int = 1, block_size: int | None = None) -> dict:
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

    Returns the summary dict. Raises ``CohortflowError`` for thresholds outside [0, 1], an empty
    fileset, unknown ``remove_samples`` IDs, an output prefix equal to the input, or when no sample
    or no variant is left.
    """
    bfile_path = Path(str(bfile).removesuffix(".bed"))
    for name, value in (("geno", geno), ("mind", mind), ("maf", maf), ("hwe", hwe)):
        _check_threshold(name, value, f"{bfile_path}.bed")
    if int(threads) < 1:
        raise CohortflowError(f"threads={threads!r} must be at least 1")
    if Path(f"{out_prefix}.bed").resolve() == Path(f"{bfile_path}.bed").resolve():
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
    with thread_limit(threads):
        summary = _run_qc(bed, bfile_path, out_prefix, geno=geno, mind=mind, maf=maf, hwe=hwe, king=king,
                          remove_sex_problems=remove_sex_problems, block_size=block_size or _block_variants(bed),
                          king_cutoff=king_cutoff)
    return summary


def _run_qc(bed: Bed, bfile_path: Path, out_prefix, *, geno: float, mind: float, maf: float, hwe: float,
            king: np.ndarray, remove_sex_problems: bool, block_size: int, king_cutoff: float | None) -> dict:
    """``genotype_qc`` on validated input, within its numba thread setting."""
    n, m = bed.n_samples, bed.n_variants
    iids = bed.fam["iid"].astype(str).to_numpy()
    stats = qc_statistics(bed, maf=maf, threads=numba.get_num_threads(), block_size=block_size)
    pedsex = bed.fam["sex"].to_numpy(dtype=np.int64)
    fail_mind = stats.missing_rate > mind
    has_sex_check = stats.n_sex_variants > 0
    if has_sex_check:
        inferred, sex_ok = check_sex(stats.sex_f, pedsex)
    else:
        inferred, sex_ok = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    fail_sex = ~sex_ok if remove_sex_problems else np.zeros(n, dtype=bool)
    keep_samples = ~(fail_mind | fail_sex | king)
    if not keep_samples.any():
        raise CohortflowError(f"no sample passes the sample QC steps ({n} in)", path=f"{bfile_path}.bed")

    # variant statistics on the kept samples (the first pass counted everyone)
    if keep_samples.all():
        counts, hwe_p = stats.counts, stats.hwe_p
    else:
        counts = _variant_count_table(bed, stats.classes, keep_samples, founder_mask(bed.fam), pedsex, block_size)
        hwe_p = _hwe(counts, stats.classes, n)
    a1_count, allele_obs = allele_counts(counts, stats.classes)
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
    keep_variants = ~(fails["geno"] | fails["hwe"] | fails["maf"])
    if not keep_variants.any():
        raise CohortflowError(f"no variant passes the variant QC filters ({m} in)", path=f"{bfile_path}.bed")

    _write_fileset(bed, out_prefix, keep_samples, keep_variants, block_size)

    bim = bed.bim_table
    reasons = _reason_strings(fails, VARIANT_STEPS)
    write_tsv(Path(f"{out_prefix}.variant_qc.tsv"), {
        "variant_id": bim.column("id"), "chromosome": bim.column("chrom"), "position": bim.column("pos"),
        "a1": bim.column("a1"), "a2": bim.column("a2"),
        "call_rate": np.where(n_eligible > 0, 1.0 - missing_rate, np.nan), "n_called": n_eligible - n_missing,
        "a1_freq": freq, "maf": minor, "hwe_p": hwe_p, "a1_count": a1_count, "allele_obs": allele_obs,
        "pass": _bool_text(keep_variants), "reason": reasons,
    })
    sample_fails = {"mind": fail_mind, "sex_check": fail_sex, "king_cutoff": king}
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
                                  "maf": minor, "hwe_p": hwe_p}),
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
