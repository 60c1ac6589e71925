"""Clumping + thresholding (C+T) polygenic scores from base summary statistics.

1. The summary statistics are aligned to the genotypes (:func:`cohortflow.prs.base.align_sumstats`:
   position and alleles, swaps and strand flips, ambiguous A/T and C/G SNPs dropped by default).
2. Aligned variants with p <= ``clump_p1`` are clumped on the genotypes exactly as
   ``plink1.9 --clump`` does (:func:`cohortflow.gwas.clump.clump_loci`: greedy by p-value, EM
   haplotype r2 among founders, window of ``clump_kb``).
3. For each p-value threshold t, the score is the sum over index variants with p <= t of
   beta x A1 dosage, missing calls mean-imputed as ``plink2 --score`` does (2 x the cohort's A1
   frequency). All thresholds are scored in one pass over the genotypes.

The threshold itself is not chosen here: that is done on a validation split by
:mod:`cohortflow.prs.evaluate`, and the chosen score is judged on a separate test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cohortflow.errors import CohortflowError
from cohortflow.gwas.clump import clump_loci
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.plink import open_bed
from cohortflow.prs.base import align_sumstats, read_base, write_scores
from cohortflow.prs.scoring import score_bed

DEFAULT_P_THRESHOLDS = (5e-8, 1e-6, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1.0)
WEIGHT_COLUMNS = ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "weight",
                  "p_value"]


def threshold_column(p_threshold: float) -> str:
    """Score column name of a C+T threshold: ``ct_p<{t}`` (the evaluation picks one per method ``ct``)."""
    return f"ct_p<{p_threshold:g}"


def prs_ct(*, bfile: str | Path, sumstats: str | Path, out_prefix: str | Path, clump_p1: float = 1.0,
           clump_p2: float | None = None, clump_r2: float = 0.1, clump_kb: float = 250,
           p_thresholds=DEFAULT_P_THRESHOLDS, ld_samples: list[str] | None = None, keep_ambiguous: bool = False,
           n: float | None = None, threads: int = 1) -> dict:
    """C+T scores of every sample of ``bfile`` at each of ``p_thresholds`` (see the module docstring).

    ``sumstats``: GWAS-SSF or any layout :func:`cohortflow.io.sumstats_formats.read_base_sumstats`
    reads. ``ld_samples``: IIDs whose genotypes give the LD for clumping (default all founders).
    ``clump_p2`` (default ``clump_p1``; as in plink, not below it) only sets which clumped variants
    count as significant members in the clump statistics.

    Writes:
    - ``{out_prefix}.weights.tsv``: the index variants with p <= the largest threshold
      (variant_id, chromosome, base_pair_location, effect_allele = .bim A1, other_allele, weight =
      beta per A1 copy, p_value), .bim order; a threshold's score uses the rows with p_value <= it;
    - ``{out_prefix}.scores.tsv.gz``: ``#FID IID`` and one column per threshold
      (:func:`threshold_column`), .fam order (individual-level; stays in the cohort);
    - ``{out_prefix}.json``: settings, variant matching counts, clumping counts and the number of
      variants per threshold (aggregate only).
    Returns the json content.
    """
    thresholds = sorted({float(t) for t in p_thresholds})
    if not thresholds or thresholds[0] <= 0 or thresholds[-1] > clump_p1:
        raise CohortflowError(f"p-value thresholds must be in (0, clump_p1 = {clump_p1:g}], not "
                              f"{', '.join(f'{t:g}' for t in thresholds) or 'none'}")
    clump_p2 = clump_p1 if clump_p2 is None else clump_p2
    if clump_p2 < clump_p1:
        raise CohortflowError(f"clump_p2 ({clump_p2:g}) must not be below clump_p1 ({clump_p1:g}), as in plink")
    bed = open_bed(bfile)
    table, read_log = read_base(sumstats, bim=bed.bim, n=n)
    aligned = align_sumstats(table, bed.bim, keep_ambiguous=keep_ambiguous, source=str(sumstats))
    if aligned.empty:
        raise CohortflowError(f"no summary-statistics variant matches the genotypes of {bfile} "
                              f"({aligned.attrs['match']['dropped_by_reason']})", path=sumstats)
    leads = clump_loci(aligned, bed, p1=clump_p1, p2=clump_p2, r2=clump_r2, kb=clump_kb, samples=ld_samples,
                       threads=threads)
    n_ld_samples = int(leads.attrs.get("n_ld_samples", 0))
    leads = leads[leads["p_value"].to_numpy(float) <= thresholds[-1]].sort_values("bim_row", kind="stable")
    p = leads["p_value"].to_numpy(float)
    include = p[:, None] <= np.asarray(thresholds)[None, :]
    weights = np.where(include, leads["beta"].to_numpy(float)[:, None], 0.0)
    rows = leads["bim_row"].to_numpy(np.int64)
    sums = score_bed(bed, rows, weights, threads=threads) if len(rows) else np.zeros((bed.n_samples, len(thresholds)))

    out_prefix = Path(str(out_prefix))
    out = leads[["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                 "p_value"]].rename(columns={"beta": "weight"})
    with atomic_open(f"{out_prefix}.weights.tsv") as fh:
        out.to_csv(fh, sep="\t", index=False, lineterminator="\n", float_format="%.10g")
    write_scores(f"{out_prefix}.scores.tsv.gz", bed.fam, {threshold_column(t): sums[:, k]
                                                           for k, t in enumerate(thresholds)})
    summary = {
        "method": "clumping + thresholding", "sumstats": str(sumstats), "read": read_log,
        "match": aligned.attrs["match"], "n_aligned": int(len(aligned)),
        "clump": {"p1": clump_p1, "p2": clump_p2, "r2": clump_r2, "kb": clump_kb,
                  "n_ld_samples": n_ld_samples,
                  "n_index_variants": int(len(leads))},
        "keep_ambiguous": bool(keep_ambiguous),
        "imputation": "missing calls = 2 x cohort A1 frequency (plink2 --score default)",
        "thresholds": [{"p_threshold": t, "column": threshold_column(t), "n_variants": int(include[:, k].sum())}
                       for k, t in enumerate(thresholds)],
    }
    write_json_atomic(f"{out_prefix}.json", summary)
    return summary
