"""GWAS summaries: genomic inflation, lead loci with their nearest gene, Manhattan and QQ plots."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cohortflow.gwas.api import read_gwas_meta
from cohortflow.gwas.plots import manhattan_plot, qq_plot
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.gtf import read_gtf_genes
from cohortflow.io.sumstats import format_p_values, read_sumstats

# median of the chi-square(1) distribution
CHI2_1_MEDIAN = float(stats.chi2.ppf(0.5, 1))

LEAD_COLUMNS = ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                "standard_error", "p_value", "nearest_gene", "gene_distance"]


def lambda_gc(neg_log10_p: np.ndarray) -> float:
    """Genomic inflation: median chi-square(1) of the p-values / 0.4549 (NaN without p-values)."""
    nl = np.asarray(neg_log10_p, dtype=float)
    nl = nl[~np.isnan(nl)]
    if len(nl) == 0:
        return float("nan")
    # the median p needs no log-space care; tiny p only push chi2 to +inf, which the median ignores
    chi2 = stats.chi2.isf(10.0 ** -np.median(nl), 1)
    return float(chi2 / CHI2_1_MEDIAN)


def lead_loci(sumstats: pd.DataFrame, *, p_threshold: float = 5e-8, window_kb: float = 250) -> pd.DataFrame:
    """Greedy distance clumping: take the most significant variant below ``p_threshold``, drop every
    variant within +-window on its chromosome, repeat. Returns the lead rows, most significant first."""
    sig = sumstats[(sumstats["neg_log10_p"] > -math.log10(p_threshold)) & (sumstats["errcode"] == "")]
    sig = sig.sort_values("neg_log10_p", ascending=False, kind="stable")
    window = window_kb * 1000.0
    taken: dict[str, list[int]] = {}
    keep = []
    for idx, chrom, pos in zip(sig.index, sig["chromosome"], sig["base_pair_location"]):
        near = taken.setdefault(chrom, [])
        if any(abs(pos - p) <= window for p in near):
            continue
        near.append(pos)
        keep.append(idx)
    return sig.loc[keep]


def _norm_chrom(c) -> str:
    return re.sub(r"^chr", "", str(c), flags=re.IGNORECASE)


def nearest_genes(leads: pd.DataFrame, genes: pd.DataFrame) -> tuple[list[str], list[float]]:
    """Nearest gene (distance 0 when inside the gene; ties -> smaller start, then name) per lead."""
    names, dists = [], []
    gchrom = genes["chrom"].map(_norm_chrom).to_numpy() if len(genes) else np.array([])
    for chrom, pos in zip(leads["chromosome"], leads["base_pair_location"]):
        sub = genes[gchrom == _norm_chrom(chrom)]
        if sub.empty:
            names.append("")
            dists.append(float("nan"))
            continue
        start = sub["start"].to_numpy()
        end = sub["end"].to_numpy()
        dist = np.where((start <= pos) & (pos <= end), 0, np.minimum(np.abs(start - pos), np.abs(end - pos)))
        order = np.lexsort((sub["gene_name"].to_numpy(), start, dist))
        best = order[0]
        names.append(str(sub["gene_name"].iloc[best]))
        dists.append(float(dist[best]))
    return names, dists


def summarize_gwas(sumstats: str | Path, *, genes_gtf: str | Path | None = None,
                   nopcs_sumstats: str | Path | None = None, trait: str, out_leads: str | Path,
                   out_summary: str | Path, out_manhattan: str | Path, out_qq: str | Path,
                   p_threshold: float = 5e-8, locus_window_kb: float = 250, model: str | None = None) -> dict:
    """Summarise one trait's GWAS-SSF results.

    Writes:
    - ``out_leads`` TSV: variant_id, chromosome, base_pair_location, effect_allele, other_allele,
      beta, standard_error, p_value, nearest_gene, gene_distance (bp; 0 inside the gene; empty
      without an annotation), one row per lead locus, most significant first;
    - ``out_summary`` JSON: trait, model, n (largest per-variant n), n_variants (tested),
      n_errors, lambda_gc, lambda_gc_nopcs (null without ``nopcs_sumstats``), n_significant,
      n_loci, p_threshold, locus_window_kb, top_hit (variant_id, chromosome, base_pair_location,
      effect_allele, beta, standard_error, p_value (text), nearest_gene; null if nothing tested);
    - ``out_manhattan`` and ``out_qq`` PNGs.
    ``model`` defaults to the one recorded in the sumstats' ``-meta.yaml`` sidecar.
    Returns the summary dict.
    """
    ss = read_sumstats(sumstats)
    tested = ss[(ss["errcode"] == "") & ss["neg_log10_p"].notna()]
    lam = lambda_gc(tested["neg_log10_p"].to_numpy())
    lam_nopcs = None
    nopcs_nl10 = None
    if nopcs_sumstats is not None:
        ns = read_sumstats(nopcs_sumstats)
        ns = ns[(ns["errcode"] == "") & ns["neg_log10_p"].notna()]
        nopcs_nl10 = ns["neg_log10_p"].to_numpy()
        lam_nopcs = lambda_gc(nopcs_nl10)

    leads = lead_loci(tested, p_threshold=p_threshold, window_kb=locus_window_kb).copy()
    if genes_gtf is not None:
        genes = read_gtf_genes(genes_gtf)
        names, dists = nearest_genes(leads, genes)
    else:
        names, dists = [""] * len(leads), [float("nan")] * len(leads)
    leads["nearest_gene"] = names
    leads["gene_distance"] = dists
    lead_out = pd.DataFrame({
        "variant_id": leads["variant_id"], "chromosome": leads["chromosome"],
        "base_pair_location": leads["base_pair_location"], "effect_allele": leads["effect_allele"],
        "other_allele": leads["other_allele"], "beta": leads["beta"], "standard_error": leads["standard_error"],
        "p_value": format_p_values(-leads["neg_log10_p"].to_numpy()), "nearest_gene": names,
        "gene_distance": ["" if d != d else str(int(d)) for d in dists],
    }, columns=LEAD_COLUMNS)
    text = lead_out.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g", na_rep="NA")
    with atomic_open(out_leads) as fh:
        fh.write(text)

    if model is None:
        model = read_gwas_meta(sumstats).get("model", "unknown")
    top_hit = None
    if len(tested):
        best = tested.sort_values("neg_log10_p", ascending=False, kind="stable").iloc[[0]]
        gene = ""
        if genes_gtf is not None:
            gene = nearest_genes(best, genes)[0][0]
        row = best.iloc[0]
        top_hit = {"variant_id": row["variant_id"], "chromosome": str(row["chromosome"]),
                   "base_pair_location": int(row["base_pair_location"]), "effect_allele": row["effect_allele"],
                   "beta": float(row["beta"]), "standard_error": float(row["standard_error"]),
                   "p_value": format_p_values(np.array([-row["neg_log10_p"]]))[0], "nearest_gene": gene}
    n_sig = int((tested["neg_log10_p"] > -math.log10(p_threshold)).sum())
    summary = {
        "trait": trait, "model": model, "n": int(ss["n"].max()) if len(ss) else 0,
        "n_variants": int(len(tested)), "n_errors": int((ss["errcode"] != "").sum()),
        "lambda_gc": _round(lam), "lambda_gc_nopcs": None if lam_nopcs is None else _round(lam_nopcs),
        "n_significant": n_sig, "n_loci": int(len(leads)), "p_threshold": p_threshold,
        "locus_window_kb": locus_window_kb, "top_hit": top_hit,
    }
    write_json_atomic(out_summary, summary)

    manhattan_plot(tested, leads=leads, out=out_manhattan, title=f"{trait} ({model})", p_threshold=p_threshold)
    series = [(f"with PCs, λGC = {lam:.3f}", tested["neg_log10_p"].to_numpy())]
    if nopcs_nl10 is not None:
        series.append((f"without PCs, λGC = {lam_nopcs:.3f}", nopcs_nl10))
    qq_plot(series, out=out_qq, title=trait)
    return summary


def _round(x: float) -> float | None:
    return None if x != x else round(float(x), 6)
