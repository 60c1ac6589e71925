"""Pieces every polygenic-score method shares: base summary statistics read and aligned to a
PLINK fileset, and the per-sample score table.

A summary-statistics row is matched to the .bim by chromosome, position and alleles with the same
rules as published scoring files (:func:`cohortflow.prs.pgs.match_variants`: direct, swapped, strand
flipped; A/T and C/G SNPs dropped unless ``keep_ambiguous``). After alignment every effect is the
effect of one more copy of the .bim A1 allele (the allele a .bed counts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError
from cohortflow.io.atomic import atomic_open
from cohortflow.prs.pgs import match_counts, match_variants

ALIGNED_COLUMNS = ["bim_row", "variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele",
                   "beta", "standard_error", "p_value", "neg_log10_p", "n", "effect_allele_frequency"]


def usable_rows(sumstats: pd.DataFrame) -> np.ndarray:
    """Rows that were tested (empty errcode) with a finite beta and p-value and a positive SE."""
    ok = np.isfinite(sumstats["beta"].to_numpy(float)) & np.isfinite(sumstats["neg_log10_p"].to_numpy(float))
    se = sumstats["standard_error"].to_numpy(float)
    ok &= np.isfinite(se) & (se > 0)
    if "errcode" in sumstats.columns:
        ok &= (sumstats["errcode"].fillna("").astype(str) == "").to_numpy()
    return ok


def align_sumstats(sumstats: pd.DataFrame, bim: pd.DataFrame, *, keep_ambiguous: bool = False,
                   source: str | None = None) -> pd.DataFrame:
    """GWAS-SSF rows (as :func:`cohortflow.io.sumstats.read_sumstats` returns) aligned to ``bim``.

    Returns one row per matched variant in .bim order, columns :data:`ALIGNED_COLUMNS`:
    ``variant_id``/``chromosome``/``base_pair_location``/``effect_allele``/``other_allele`` from the
    .bim (effect allele = A1), ``beta`` and ``effect_allele_frequency`` turned to A1 where the
    summary statistics had the alleles swapped, ``n`` as float (NaN unknown).
    ``attrs['match']``: the counts of :func:`cohortflow.prs.pgs.match_counts` over the usable rows,
    plus ``not_usable`` (rows without a test result, beta, SE or p-value).

    Two summary-statistics rows matching one .bim variant raise CohortflowError naming ``source``.
    """
    ok = usable_rows(sumstats)
    ss = sumstats.loc[ok].reset_index(drop=True)
    if ss.empty:
        raise CohortflowError("no usable rows (each lacks a test result, beta, SE or p-value)", path=source)
    table = pd.DataFrame({
        "chrom": ss["chromosome"].astype(str).to_numpy(dtype=object),
        "pos": pd.array(ss["base_pair_location"].to_numpy(), dtype="Int64"),
        "effect_allele": ss["effect_allele"].astype(str).str.upper().to_numpy(dtype=object),
        "other_allele": ss["other_allele"].fillna("").astype(str).str.upper().to_numpy(dtype=object),
        "weight": ss["beta"].to_numpy(float),
        "line": np.flatnonzero(ok) + 2,  # header is line 1
    })
    try:
        matched = match_variants(table, bim, keep_ambiguous=keep_ambiguous)
    except CohortflowError as err:
        raise CohortflowError(err.problem, path=source) from None
    counts = match_counts(matched)
    counts["not_usable"] = int((~ok).sum())
    used = np.flatnonzero(matched["bim_row"].to_numpy() >= 0)
    rows = matched["bim_row"].to_numpy()[used]
    order = np.argsort(rows, kind="stable")
    used, rows = used[order], rows[order]
    sign = np.where(matched["swapped"].to_numpy()[used], -1.0, 1.0)
    eaf = ss["effect_allele_frequency"].to_numpy(float)[used]
    eaf = np.where(sign < 0, 1.0 - eaf, eaf)
    n = pd.to_numeric(ss["n"], errors="coerce").to_numpy(float)[used] if "n" in ss.columns else np.full(len(used), np.nan)
    out = pd.DataFrame({
        "bim_row": rows.astype(np.int64),
        "variant_id": bim["id"].to_numpy()[rows],
        "chromosome": bim["chrom"].astype(str).to_numpy()[rows],
        "base_pair_location": bim["pos"].to_numpy(np.int64)[rows],
        "effect_allele": bim["a1"].to_numpy()[rows],
        "other_allele": bim["a2"].to_numpy()[rows],
        "beta": sign * ss["beta"].to_numpy(float)[used],
        "standard_error": ss["standard_error"].to_numpy(float)[used],
        "p_value": ss["p_value"].to_numpy(float)[used],
        "neg_log10_p": ss["neg_log10_p"].to_numpy(float)[used],
        "n": n,
        "effect_allele_frequency": eaf,
    }, columns=ALIGNED_COLUMNS)
    out.attrs["match"] = counts
    return out


def read_base(path: str | Path, *, bim: pd.DataFrame | None = None, n: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Base summary statistics in any layout :mod:`cohortflow.io.sumstats_formats` reads, as GWAS-SSF
    columns plus ``neg_log10_p``; and the reader's log (layout, column mapping, rows dropped).
    ``bim`` supplies positions for rsID-only files; ``n`` the sample size where the file has none."""
    from cohortflow.io.sumstats_formats import read_base_sumstats

    return read_base_sumstats(path, bim=bim, n=n)


def write_scores(path: str | Path, fam: pd.DataFrame, columns: dict[str, np.ndarray]) -> None:
    """Per-sample scores, .fam order: ``#FID IID`` then one column per score (10 significant
    digits), gzip when ``path`` ends in .gz. Individual-level: stays in the cohort."""
    table = pd.DataFrame({"#FID": fam["fid"].to_numpy(), "IID": fam["iid"].to_numpy(),
                          **{name: np.asarray(values, dtype=float) for name, values in columns.items()}})
    with atomic_open(path) as fh:
        table.to_csv(fh, sep="\t", index=False, lineterminator="\n", float_format="%.10g")
