"""Genotype QC matching ``plink2 --bfile X --geno G --mind M --maf F --hwe H --make-bed``.

Order (as plink2 applies the flags given in one command, see its log):

1. ``--mind``: sample missingness over all variants (chrY counted for males only) on all samples;
   samples with missing rate > ``mind`` are removed;
2. on the remaining samples: ``--geno`` (variant missing rate > ``geno``), then ``--hwe``
   (exact test p < ``hwe``; founders only; chrX with the Graffelman-Weir males+females test;
   chrY and MT not tested), then ``--maf`` (minor allele frequency < ``maf``; founders; chrX
   males, chrY and MT counted as haploid).

All variant statistics are computed on the samples left after step 1, so a variant's pass/fail
does not depend on the order of steps 2; the per-filter counts in the summary are sequential
(a variant failing --geno and --maf is counted under geno only), as plink2 logs them.

Chromosome codes: 1-22 and any other contig are autosomal; X/23/chrX haploid in males, Y/24
males only, XY/25 (PAR) autosomal, MT/26/M haploid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import write_json_atomic, write_table_atomic
from cohortflow.io.plink import BedWriter, open_bed
from cohortflow.variants.kernels import (
    CLASS_AUTOSOME, CLASS_MT, CLASS_X, CLASS_Y, heterozygosity_accumulate, hwe_block,
    sample_missing_counts, variant_counts,
)

_X_NAMES = {"X", "23", "CHRX", "CHR23"}
_Y_NAMES = {"Y", "24", "CHRY", "CHR24"}
_MT_NAMES = {"MT", "26", "M", "CHRM", "CHRMT", "CHR26"}


def chromosome_classes(chrom: pd.Series) -> np.ndarray:
    """0 autosomal/PAR, 1 X, 2 Y, 3 MT for each .bim chromosome code."""
    upper = chrom.astype(str).str.upper()
    cls = np.full(len(upper), CLASS_AUTOSOME, dtype=np.int8)
    cls[upper.isin(_X_NAMES).to_numpy()] = CLASS_X
    cls[upper.isin(_Y_NAMES).to_numpy()] = CLASS_Y
    cls[upper.isin(_MT_NAMES).to_numpy()] = CLASS_MT
    return cls


def founder_mask(fam: pd.DataFrame) -> np.ndarray:
    """Founders as plink defines them: neither parent is in the fileset (same FID)."""
    present = set(zip(fam["fid"].astype(str), fam["iid"].astype(str)))
    fid = fam["fid"].astype(str)
    father = [(f, p) in present for f, p in zip(fid, fam["father"].astype(str))]
    mother = [(f, p) in present for f, p in zip(fid, fam["mother"].astype(str))]
    return ~(np.asarray(father, dtype=bool) | np.asarray(mother, dtype=bool))


def count_variants(bed, *, sample_mask: np.ndarray, block_size: int = 4096) -> np.ndarray:
    """Per-variant count table (see ``kernels.variant_counts``) over ``sample_mask``."""
    cls = chromosome_classes(bed.bim["chrom"])
    sex = bed.fam["sex"].to_numpy(dtype=np.int64)
    founder = founder_mask(bed.fam)
    out = np.zeros((bed.n_variants, 10))
    for start, geno in bed.iter_blocks(block_size):
        variant_counts(geno, cls[start:start + len(geno)], sample_mask, founder, sex,
                       out[start:start + len(geno)])
    return out


def allele_frequencies(counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, 3] > 0, counts[:, 2] / counts[:, 3], np.nan)


def genotype_qc(bfile, *, out_prefix, geno: float = 0.05, mind: float = 0.05, maf: float = 0.01,
                hwe: float = 1e-6, block_size: int = 4096) -> dict:
    """Sample and variant QC of a PLINK fileset, with plink2's filter order (module docstring).

    Writes:

    - ``{out_prefix}.bed/.bim/.fam``: samples and variants that pass (input order kept);
    - ``{out_prefix}.sample_qc.tsv``: ``FID IID call_rate n_called n_missing het_f pass reason``
      for every input sample. ``het_f`` is plink2 ``--het`` F = (O(HOM) - E(HOM)) / (N - E(HOM))
      over autosomal variants with MAF >= ``maf`` (frequencies from all input founders);
      ``reason`` is ``mind`` or empty;
    - ``{out_prefix}.variant_qc.tsv``: ``variant_id chromosome position a1 a2 call_rate n_called
      a1_freq maf hwe_p pass reason`` for every input variant, statistics on the samples kept by
      --mind; ``a1_freq`` = frequency of the .bim column-5 allele (ALT); ``hwe_p`` empty for chrY/MT;
      ``reason`` = comma-separated failed filters among ``geno,hwe,maf``;
    - ``{out_prefix}.summary.json``: ``n_samples_in, n_samples_out, n_variants_in, n_variants_out,
      samples_removed`` ({mind}), ``variants_removed`` ({geno, hwe, maf}, sequential as plink2 logs),
      ``thresholds`` ({geno, mind, maf, hwe}).

    Returns the summary dict.
    """
    for name, value in (("geno", geno), ("mind", mind), ("maf", maf), ("hwe", hwe)):
        if not 0.0 <= value <= 1.0:
            raise CohortflowError(f"QC threshold {name}={value} is not in [0, 1]")
    bed = open_bed(bfile)
    n, m = bed.n_samples, bed.n_variants
    cls = chromosome_classes(bed.bim["chrom"])
    sex = bed.fam["sex"].to_numpy(dtype=np.int64)
    is_male = sex == 1
    founder = founder_mask(bed.fam)
    all_samples = np.ones(n, dtype=bool)

    # Pass 1: sample missingness and (all-sample) frequencies for the heterozygosity F.
    s_missing = np.zeros(n, dtype=np.int64)
    s_observed = np.zeros(n, dtype=np.int64)
    obs_hom = np.zeros(n)
    exp_hom = np.zeros(n)
    het_n = np.zeros(n, dtype=np.int64)
    counts_all = np.zeros((m, 10))
    for start, g in bed.iter_blocks(block_size):
        stop = start + len(g)
        c_block = cls[start:stop]
        sample_missing_counts(g, c_block, is_male, s_missing, s_observed)
        variant_counts(g, c_block, all_samples, founder, sex, counts_all[start:stop])
        freq = allele_frequencies(counts_all[start:stop])
        use = (c_block == CLASS_AUTOSOME) & np.isfinite(freq) & (np.minimum(freq, 1 - freq) >= maf)
        heterozygosity_accumulate(g, np.nan_to_num(freq), use, obs_hom, exp_hom, het_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_miss_rate = np.where(s_observed > 0, s_missing / s_observed, 0.0)
        het_f = (obs_hom - exp_hom) / (het_n - exp_hom)
    het_f[het_n == 0] = np.nan
    keep_samples = ~(s_miss_rate > mind)

    # Pass 2: variant statistics on the kept samples; write what passes.
    counts = np.zeros((m, 10))
    hwe_p = np.full(m, np.nan)
    fails = {"geno": np.zeros(m, dtype=bool), "hwe": np.zeros(m, dtype=bool), "maf": np.zeros(m, dtype=bool)}
    kept_fam = bed.fam.loc[keep_samples].reset_index(drop=True)
    keep_variant = np.zeros(m, dtype=bool)
    with BedWriter(out_prefix, kept_fam) as writer:
        for start, g in bed.iter_blocks(block_size):
            stop = start + len(g)
            sl = slice(start, stop)
            variant_counts(g, cls[sl], keep_samples, founder, sex, counts[sl])
            hwe_block(counts[sl], cls[sl], hwe_p[sl])
            with np.errstate(invalid="ignore", divide="ignore"):
                v_miss = np.where(counts[sl, 1] > 0, counts[sl, 0] / counts[sl, 1], 0.0)
            freq = allele_frequencies(counts[sl])
            minor = np.minimum(freq, 1 - freq)
            fails["geno"][sl] = v_miss > geno
            fails["hwe"][sl] = np.isfinite(hwe_p[sl]) & (hwe_p[sl] < hwe)
            # plink2 drops a variant whose frequency is undefined (no founder calls) under --maf
            fails["maf"][sl] = (~np.isfinite(minor) & (maf > 0)) | (minor < maf)
            keep_variant[sl] = ~(fails["geno"][sl] | fails["hwe"][sl] | fails["maf"][sl])
            kept = keep_variant[sl]
            if kept.any():
                writer.write(g[kept][:, keep_samples], bed.bim.iloc[start:stop].loc[kept])

    freq_all = allele_frequencies(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        v_call_rate = np.where(counts[:, 1] > 0, 1.0 - counts[:, 0] / counts[:, 1], np.nan)
    reasons = np.array([",".join(name for name in ("geno", "hwe", "maf") if fails[name][i]) for i in range(m)],
                       dtype=object)
    variant_qc = pd.DataFrame({
        "variant_id": bed.bim["id"], "chromosome": bed.bim["chrom"], "position": bed.bim["pos"],
        "a1": bed.bim["a1"], "a2": bed.bim["a2"],
        "call_rate": v_call_rate, "n_called": (counts[:, 1] - counts[:, 0]).astype(np.int64),
        "a1_freq": freq_all, "maf": np.minimum(freq_all, 1 - freq_all), "hwe_p": hwe_p,
        "pass": keep_variant, "reason": reasons,
    })
    sample_qc = pd.DataFrame({
        "FID": bed.fam["fid"], "IID": bed.fam["iid"], "call_rate": 1.0 - s_miss_rate,
        "n_called": s_observed - s_missing, "n_missing": s_missing, "het_f": het_f,
        "pass": keep_samples, "reason": np.where(keep_samples, "", "mind"),
    })
    write_table_atomic(Path(f"{out_prefix}.variant_qc.tsv"), variant_qc, float_format="%.8g")
    write_table_atomic(Path(f"{out_prefix}.sample_qc.tsv"), sample_qc, float_format="%.8g")

    removed_geno = int(fails["geno"].sum())
    removed_hwe = int((fails["hwe"] & ~fails["geno"]).sum())
    removed_maf = int((fails["maf"] & ~fails["geno"] & ~fails["hwe"]).sum())
    summary = {
        "n_samples_in": n,
        "n_samples_out": int(keep_samples.sum()),
        "n_variants_in": m,
        "n_variants_out": int(keep_variant.sum()),
        "samples_removed": {"mind": int((~keep_samples).sum())},
        "variants_removed": {"geno": removed_geno, "hwe": removed_hwe, "maf": removed_maf},
        "thresholds": {"geno": geno, "mind": mind, "maf": maf, "hwe": hwe},
        "order": ["mind", "geno", "hwe", "maf"],
    }
    write_json_atomic(Path(f"{out_prefix}.summary.json"), summary)
    return summary
