"""GWAS summaries: genomic inflation, lead loci (LD clumping on the cohort's genotypes, as
plink1.9 --clump, or distance clumping without genotypes) with their nearest genes, Manhattan, QQ
and regional association plots."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cohortflow.gwas.api import read_gwas_meta
from cohortflow.gwas.clump import CLUMP_COLUMNS, clump_loci, ld_with_lead
from cohortflow.gwas.plots import manhattan_plot, qq_plot, regional_plot
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.gtf import read_gtf_genes
from cohortflow.io.plink import Bed, open_bed
from cohortflow.io.sumstats import format_p_values, read_sumstats

# median of the chi-square(1) distribution
CHI2_1_MEDIAN = float(stats.chi2.ppf(0.5, 1))

LEAD_COLUMNS = ["variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                "standard_error", "p_value", "nearest_gene", "gene_distance", "nearest_genes",
                "n_clumped", "n_clumped_p2", "clump_start", "clump_end"]
REGIONAL_INDEX_COLUMNS = ["rank", "file", "variant_id", "chromosome", "base_pair_location", "p_value",
                          "nearest_gene", "n_clumped", "region_start", "region_end", "n_points", "n_r2_known"]
# genes listed per lead in ``nearest_genes``
N_NEAREST_GENES = 3


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


def genes_near(leads: pd.DataFrame, genes: pd.DataFrame, *, window_bp: float,
               max_genes: int = N_NEAREST_GENES) -> list[str]:
    """Per lead, the names of up to ``max_genes`` genes within ``window_bp`` of it, nearest first
    (distance 0 inside a gene; ties by start, then name), comma-separated ('' if none)."""
    out = []
    gchrom = genes["chrom"].map(_norm_chrom).to_numpy() if len(genes) else np.array([])
    for chrom, pos in zip(leads["chromosome"], leads["base_pair_location"]):
        sub = genes[gchrom == _norm_chrom(chrom)]
        if sub.empty:
            out.append("")
            continue
        start = sub["start"].to_numpy()
        end = sub["end"].to_numpy()
        dist = np.where((start <= pos) & (pos <= end), 0, np.minimum(np.abs(start - pos), np.abs(end - pos)))
        order = np.lexsort((sub["gene_name"].to_numpy(), start, dist))
        order = order[dist[order] <= window_bp][:max_genes]
        out.append(",".join(str(sub["gene_name"].iloc[i]) for i in order))
    return out


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text))[:60]


def write_regional_plots(tested: pd.DataFrame, leads: pd.DataFrame, *, out_dir: str | Path, trait: str,
                         window_kb: float, bfile: str | Path | Bed | None = None, genes: pd.DataFrame | None = None,
                         p_threshold: float | None = None, max_plots: int = 20,
                         ld_samples: Sequence[str] | None = None) -> pd.DataFrame:
    """One regional association plot per lead (the first ``max_plots``, most significant first)
    into the directory ``out_dir``, replaced as a whole (built beside it, then renamed).

    Each plot shows the tested variants within ``window_kb`` of the lead coloured by r2 with it,
    computed on ``bfile`` (grey without). Writes ``locus{rank:03d}_{variant}.png`` and
    ``index.tsv`` (columns: rank, file, variant_id, chromosome, base_pair_location, p_value,
    nearest_gene, n_clumped, region_start, region_end, n_points, n_r2_known); returns the index.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    rows = []
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        by_chrom = {c: idx for c, idx in tested.groupby(tested["chromosome"].astype(str), sort=False).indices.items()}
        pos_all = tested["base_pair_location"].to_numpy(np.int64)
        radius = int(window_kb * 1000)
        for rank, (_, lead) in enumerate(leads.head(max_plots).iterrows(), 1):
            chrom = str(lead["chromosome"])
            lpos = int(lead["base_pair_location"])
            start, end = max(lpos - radius, 0), lpos + radius
            idx = by_chrom.get(chrom, np.empty(0, dtype=np.int64))
            idx = idx[(pos_all[idx] >= start) & (pos_all[idx] <= end)]
            pts = tested.iloc[idx][["variant_id", "base_pair_location", "neg_log10_p"]].copy()
            if bfile is not None:
                pts["r2"] = ld_with_lead(bfile, str(lead["variant_id"]), pts["variant_id"].astype(str).tolist(),
                                         samples=ld_samples)
            else:
                pts["r2"] = np.nan
            gene = str(lead.get("nearest_gene", "") or "")
            title = f"{trait}: {lead['variant_id']}" + (f" (nearest gene {gene})" if gene else "")
            name = f"locus{rank:03d}_{_safe_name(lead['variant_id'])}.png"
            info = regional_plot(pts, lead_variant_id=str(lead["variant_id"]), chromosome=chrom, start=start,
                                 end=end, out=tmp / name, title=title, genes=genes, p_threshold=p_threshold)
            n_cl = lead.get("n_clumped", np.nan)
            rows.append([rank, name, lead["variant_id"], chrom, lpos,
                         format_p_values(np.array([-lead["neg_log10_p"]]))[0], gene,
                         "NA" if n_cl != n_cl else str(int(n_cl)), start, end, info["n_points"],
                         info["n_r2_known"]])
        index = pd.DataFrame(rows, columns=REGIONAL_INDEX_COLUMNS)
        with atomic_open(tmp / "index.tsv") as fh:
            fh.write(index.to_csv(sep="\t", index=False, lineterminator="\n"))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return index


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summarize_gwas(sumstats: str | Path, *, genes_gtf: str | Path | None = None,
                   nopcs_sumstats: str | Path | None = None, trait: str, out_leads: str | Path,
                   out_summary: str | Path, out_manhattan: str | Path, out_qq: str | Path,
                   p_threshold: float = 5e-8, locus_window_kb: float = 250, model: str | None = None,
                   bfile: str | Path | Bed | None = None, clump_r2: float = 0.1, clump_kb: float = 250,
                   clump_p2: float = 0.01, out_regional_dir: str | Path | None = None,
                   max_regional_plots: int = 20, ld_samples: Sequence[str] | None = None,
                   threads: int = 1) -> dict:
    """Summarise one trait's GWAS-SSF results.

    Lead loci: with ``bfile`` (the cohort's QC'd PLINK prefix) by LD clumping as
    ``plink1.9 --clump --clump-p1 p_threshold --clump-p2 clump_p2 --clump-r2 clump_r2
    --clump-kb clump_kb`` (:func:`cohortflow.gwas.clump.clump_loci`; LD from the .fam's founders,
    or those of ``ld_samples``; ``threads`` for the clumping); without it by distance
    (:func:`lead_loci`, ``locus_window_kb``).

    Writes:
    - ``out_leads`` TSV: variant_id, chromosome, base_pair_location, effect_allele, other_allele,
      beta, standard_error, p_value, nearest_gene, gene_distance (bp; 0 inside the gene; empty
      without an annotation), nearest_genes (up to 3 genes within the locus window, nearest
      first, comma-separated), n_clumped, n_clumped_p2, clump_start, clump_end (LD clumping only,
      NA otherwise: see :func:`~cohortflow.gwas.clump.clump_loci`), one row per lead locus, most
      significant first;
    - ``out_summary`` JSON: trait, model, n (largest per-variant n), n_variants (tested),
      n_errors, lambda_gc, lambda_gc_nopcs (null without ``nopcs_sumstats``), n_significant,
      n_loci, p_threshold, locus_window_kb, lead_method ("ld_clump" or "distance"), clump (null
      for "distance", else {p1, p2, r2, kb, n_ld_samples, n_not_in_bim}), n_regional_plots,
      top_hit (variant_id, chromosome, base_pair_location, effect_allele, beta, standard_error,
      p_value (text), nearest_gene; null if nothing tested);
    - ``out_manhattan`` and ``out_qq`` PNGs;
    - ``out_regional_dir`` (when given): a directory with one regional association plot per lead
      (at most ``max_regional_plots``) and its ``index.tsv`` (:func:`write_regional_plots`); the
      window is ``clump_kb`` (LD clumping) or ``locus_window_kb`` (distance).
    ``model`` defaults to the one recorded in the sumstats' ``-meta.yaml`` sidecar.
    Returns the summary dict. Nothing individual-level is written: only p-values and r2.
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

    clump_info = None
    if bfile is not None:
        bfile = open_bed(bfile)  # once: the .bim is read and its IDs hashed once for all lookups
        leads = clump_loci(tested, bfile, p1=p_threshold, p2=clump_p2, r2=clump_r2, kb=clump_kb, threads=threads,
                           samples=ld_samples).copy()
        clump_info = {"p1": p_threshold, "p2": clump_p2, "r2": clump_r2, "kb": clump_kb,
                      "n_ld_samples": leads.attrs["n_ld_samples"], "n_not_in_bim": leads.attrs["n_not_in_bim"]}
        lead_method, window_kb = "ld_clump", clump_kb
    else:
        leads = lead_loci(tested, p_threshold=p_threshold, window_kb=locus_window_kb).copy()
        for col in CLUMP_COLUMNS:
            leads[col] = np.nan
        lead_method, window_kb = "distance", locus_window_kb
    genes = None
    if genes_gtf is not None:
        genes = read_gtf_genes(genes_gtf)
        names, dists = nearest_genes(leads, genes)
        near = genes_near(leads, genes, window_bp=window_kb * 1000)
    else:
        names, dists, near = [""] * len(leads), [float("nan")] * len(leads), [""] * len(leads)
    leads["nearest_gene"] = names
    leads["gene_distance"] = dists
    lead_out = pd.DataFrame({
        "variant_id": leads["variant_id"], "chromosome": leads["chromosome"],
        "base_pair_location": leads["base_pair_location"], "effect_allele": leads["effect_allele"],
        "other_allele": leads["other_allele"], "beta": leads["beta"], "standard_error": leads["standard_error"],
        "p_value": format_p_values(-leads["neg_log10_p"].to_numpy()), "nearest_gene": names,
        "gene_distance": ["" if d != d else str(int(d)) for d in dists], "nearest_genes": near,
        **{col: ["NA" if v != v else str(int(v)) for v in leads[col].to_numpy(float)] for col in CLUMP_COLUMNS},
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
        "locus_window_kb": locus_window_kb, "lead_method": lead_method, "clump": clump_info,
        "n_regional_plots": 0, "top_hit": top_hit,
    }
    if out_regional_dir is not None:
        index = write_regional_plots(tested, leads, out_dir=out_regional_dir, trait=trait, window_kb=window_kb,
                                     bfile=bfile, genes=genes, p_threshold=p_threshold,
                                     max_plots=max_regional_plots, ld_samples=ld_samples)
        summary["n_regional_plots"] = int(len(index))
    write_json_atomic(out_summary, summary)

    manhattan_plot(tested, leads=leads, out=out_manhattan, title=f"{trait} ({model})", p_threshold=p_threshold)
    series = [(f"with PCs, λGC = {lam:.3f}", tested["neg_log10_p"].to_numpy())]
    if nopcs_nl10 is not None:
        series.append((f"without PCs, λGC = {lam_nopcs:.3f}", nopcs_nl10))
    qq_plot(series, out=out_qq, title=trait)
    return summary


def _round(x: float) -> float | None:
    return None if x != x else round(float(x), 6)
