"""Genetics integration: GWAS -> gene scores -> per-cell disease scores -> cell-type ranking.

Three steps, each usable alone:

1. :func:`gene_scores` — MAGMA-style SNP-wise *mean* gene test. For gene g with SNPs j (inside
   the gene +/- ``window_kb``) the statistic is T = sum_j z_j^2 with z_j = beta_j / se_j from the
   summary statistics. Under H0, z ~ N(0, R) with R the SNP correlation (LD) matrix, so
   T ~ sum_k lambda_k chi2_1 with lambda the eigenvalues of R. R is computed from the cohort's
   own QC'd genotypes (the GWAS sample, so it is the right LD), mean-imputed and standardised, on
   a seeded subset of at most ``ld_max_samples`` individuals. The tail P(T > t) is computed with
   the saddlepoint approximation (Kuonen 1999; Barndorff-Nielsen r* form), falling back to the
   Satterthwaite scaled chi2 (mean/variance matching) only where t is within ~1e-3 sd-units of
   E[T]. Checked against Monte-Carlo and exact chi2 (tests): relative error of p < 2 % for many
   comparable eigenvalues, up to ~10-15 % (conservative) when one eigenvalue dominates (strong
   LD), |error of z| < 0.05, holding down to p = 1e-250; Satterthwaite is off by ~50 % at 1e-3.
   The gene z-score is Phi^-1(1 - p), computed as r* directly so it stays finite below 1e-300.
2. :func:`disease_scores` — scDRS per-cell scores (Zhang et al. 2022), computed as scDRS 1.0.2
   does (:mod:`cohortflow.singlecell.scdrs`; counts normalised to 1e4 per cell, log1p).
   Disease genes: the top ``n_genes`` genes by gene z; GWAS weight = z clipped to [0, 10] (what
   ``scdrs munge-gs --weight zscore`` does); gene weight = GWAS weight / sqrt(technical variance
   + 0.01) (scDRS "vs"); control sets matched on scDRS's mean x variance bins; per-cell
   normalisation against the control sets; pooled Monte-Carlo p per cell. Cell-type
   association: the 95 % quantile of a group's normalised scores against the same statistic of
   each control set (Monte-Carlo p), as scDRS's group analysis.
3. :func:`integrate` — the stage: runs 1 and 2 (and the spatial slide, with Moran's I of the spot
   scores), writes the tables, a summary JSON and plots.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special, stats

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import write_json_atomic, write_table_atomic
from cohortflow.io.gtf import read_gtf_genes
from cohortflow.io.h5ad import read_h5ad
from cohortflow.io.plink import open_bed
from cohortflow.io.sumstats import read_sumstats
from cohortflow.singlecell.integration_kernels import quadform_saddlepoint
from cohortflow.variants.kernels import standardize_rows

GENE_SCORE_COLUMNS = ["gene", "chromosome", "start", "end", "n_snps", "stat", "p_value", "z"]
CELL_SCORE_COLUMNS = ["cell", "cell_type", "raw_score", "norm_score", "mc_p"]
RANKING_COLUMNS = ["rank", "cell_type", "n_cells", "mean_norm_score", "assoc_stat", "mc_p", "mc_z"]
SPATIAL_SCORE_COLUMNS = ["spot", "x", "y", "score", "raw_score", "mc_p", "cluster"]

# scDRS clips GWAS weights at this z
MAX_GWAS_WEIGHT = 10.0
# obs columns taken as spot annotation (regions / domains / clusters), first match wins
REGION_KEYS = ("region", "spatial_region", "domain", "spatial_domain", "layer", "annotation",
               "cluster", "spatial_cluster", "leiden", "louvain")


# ---------------------------------------------------------------------------------------------
# 1. gene scores
# ---------------------------------------------------------------------------------------------

def _norm_chrom(values) -> np.ndarray:
    s = pd.Series(values, dtype=str)
    return s.str.replace(r"^chr", "", regex=True, case=False).to_numpy()


def _chrom_order_key(chrom: pd.Series) -> pd.Series:
    """Numeric chromosomes first in numeric order, then the others by name."""
    num = pd.to_numeric(chrom, errors="coerce")
    return num.fillna(1e6)


def sumstats_z(sumstats: pd.DataFrame) -> np.ndarray:
    """Signed z per variant: beta/se where both are finite (se > 0), else sign(beta) * |z(p)|.

    ``sumstats`` as returned by :func:`cohortflow.io.sumstats.read_sumstats` (needs beta,
    standard_error, neg_log10_p). NaN where neither is usable.
    """
    beta = pd.to_numeric(sumstats["beta"], errors="coerce").to_numpy(dtype=float)
    se = pd.to_numeric(sumstats["standard_error"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(beta) & np.isfinite(se) & (se > 0), beta / se, np.nan)
    need = ~np.isfinite(z) & np.isfinite(beta)
    if need.any() and "neg_log10_p" in sumstats:
        log_half_p = -sumstats["neg_log10_p"].to_numpy(dtype=float)[need] * math.log(10.0) - math.log(2.0)
        with np.errstate(invalid="ignore"):
            abs_z = -special.ndtri_exp(np.minimum(log_half_p, math.log(0.5)))
        z[need] = np.sign(beta[need]) * abs_z
    return z


def quadform_pvalue(stat: float, eigenvalues: np.ndarray, *, method: str = "saddlepoint") -> tuple[float, float]:
    """Upper tail P(sum_k lambda_k chi2_1 > stat) and its normal deviate z = Phi^-1(1 - p).

    ``method``: "saddlepoint" (default; Satterthwaite where the saddlepoint is numerically
    unstable, i.e. stat within ~1e-3 sd of the mean) or "satterthwaite" (a * chi2_d with
    a = sum lambda^2 / sum lambda, d = (sum lambda)^2 / sum lambda^2). One eigenvalue: exact chi2.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    lam = lam[lam > 0]
    if lam.size == 0:
        return 1.0, -np.inf
    if lam.size == 1:
        p = float(stats.chi2.sf(stat / lam[0], 1))
        logp = float(stats.chi2.logsf(stat / lam[0], 1))
        return p, float(-special.ndtri_exp(logp)) if logp < math.log(0.5) else float(stats.norm.isf(p))
    if method == "saddlepoint":
        r_star, ok = quadform_saddlepoint(float(stat), lam)
        if ok:
            return float(special.ndtr(-r_star)), float(r_star)
    elif method != "satterthwaite":
        raise ValueError(f"unknown method {method!r}")
    s1 = lam.sum()
    s2 = np.square(lam).sum()
    scale = s2 / s1
    dof = s1 * s1 / s2
    logp = float(stats.chi2.logsf(stat / scale, dof))
    p = math.exp(logp)
    z = float(-special.ndtri_exp(logp)) if logp < math.log(0.5) else float(stats.norm.isf(p))
    return p, z



def gene_scores(*, bfile: str | Path, sumstats: str | Path, genes_gtf: str | Path, window_kb: float = 10.0,
                max_snps_per_gene: int = 1000, ld_max_samples: int = 1000, method: str = "saddlepoint",
                seed: int = 0, out: str | Path | None = None) -> pd.DataFrame:
    """MAGMA-style SNP-wise mean gene test from GWAS summary statistics and cohort LD.

    SNPs are variants whose ``variant_id`` is a .bim ID, with a finite z and polymorphic in the LD
    sample, located (sumstats chromosome/position) within [start - window, end + window] of a gene
    record of ``genes_gtf``. Genes with more than ``max_snps_per_gene`` SNPs are thinned to that
    many evenly spaced SNPs (unbiased; keeps the eigen-decomposition small). Genes without SNPs
    are left out. The allele coding does not matter: T = sum z^2 is invariant to sign flips.

    Returns (and writes to ``out`` as TSV when given) columns
    gene, chromosome, start, end, n_snps, stat (= sum z^2), p_value, z (= Phi^-1(1 - p)),
    sorted by chromosome (numeric first), start, gene. ``df.attrs`` holds n_genes_annotated,
    n_genes_tested, n_snps_used (distinct SNPs in any gene), ld_samples, window_kb, method.
    """
    genes = read_gtf_genes(genes_gtf)
    if genes.empty:
        raise InputFormatError("no gene records in the annotation", path=genes_gtf)
    genes = genes.assign(chrom=_norm_chrom(genes["chrom"]))
    ss = read_sumstats(sumstats)
    bed = open_bed(bfile)
    z_all = sumstats_z(ss)
    bim_row = pd.Series(np.arange(bed.n_variants), index=bed.bim["id"].to_numpy())
    bim_row = bim_row[~bim_row.index.duplicated(keep=False)]
    rows = bim_row.reindex(ss["variant_id"].to_numpy()).to_numpy()
    use = np.isfinite(rows) & np.isfinite(z_all)
    if not use.any():
        raise CohortflowError("no summary-statistics variant_id matches a .bim ID with a usable z",
                              path=sumstats)
    snps = pd.DataFrame({"chrom": _norm_chrom(ss["chromosome"].to_numpy()[use]),
                         "pos": pd.to_numeric(ss["base_pair_location"], errors="coerce").to_numpy()[use],
                         "row": rows[use].astype(np.int64), "z": z_all[use]})
    snps = snps.sort_values(["chrom", "pos", "row"], kind="stable").reset_index(drop=True)

    rng = np.random.default_rng(seed)
    n = bed.n_samples
    sample_idx = np.sort(rng.choice(n, size=min(n, ld_max_samples), replace=False)).astype(np.int64)
    window = int(round(window_kb * 1000))

    by_chrom = {c: g for c, g in snps.groupby("chrom", sort=False)}
    records = []
    snp_used = np.zeros(bed.n_variants, dtype=bool)
    for gene in genes.itertuples(index=False):
        cs = by_chrom.get(gene.chrom)
        if cs is None:
            continue
        pos = cs["pos"].to_numpy()
        lo = np.searchsorted(pos, gene.start - window, side="left")
        hi = np.searchsorted(pos, gene.end + window, side="right")
        if hi <= lo:
            continue
        sub = cs.iloc[lo:hi]
        if len(sub) > max_snps_per_gene:
            keep = np.unique(np.linspace(0, len(sub) - 1, max_snps_per_gene).round().astype(int))
            sub = sub.iloc[keep]
        order = np.argsort(sub["row"].to_numpy(), kind="stable")
        bim_rows = sub["row"].to_numpy()[order]
        z = sub["z"].to_numpy()[order]
        std, poly = standardize_rows(bed.read_rows(bim_rows, sample_idx))
        if not poly.any():
            continue
        std = std[poly]
        z = z[poly]
        snp_used[bim_rows[poly]] = True
        ld = (std @ std.T) / std.shape[1]
        eig = np.linalg.eigvalsh(ld)
        # drop numerically-zero directions of R (LD-redundant SNPs add nothing to T's null)
        eig = eig[eig > 1e-8 * max(eig.max(), 1.0)]
        stat = float(np.dot(z, z))
        p, gz = quadform_pvalue(stat, eig, method=method)
        records.append((gene.gene_name, gene.chrom, int(gene.start), int(gene.end), int(z.size), stat, p, gz))
    table = pd.DataFrame.from_records(records, columns=GENE_SCORE_COLUMNS)
    table = (table.assign(_c=_chrom_order_key(table["chromosome"]))
             .sort_values(["_c", "chromosome", "start", "gene"], kind="stable")
             .drop(columns="_c").reset_index(drop=True))
    table.attrs.update(n_genes_annotated=int(len(genes)), n_genes_tested=int(len(table)),
                       n_snps_used=int(snp_used.sum()), ld_samples=int(sample_idx.size),
                       window_kb=float(window_kb), method=method)
    if out is not None:
        write_table_atomic(out, table)
    return table


def read_gene_scores(path: str | Path) -> pd.DataFrame:
    """Read a gene-score TSV written by :func:`gene_scores` (needs columns gene and z)."""
    try:
        df = pd.read_csv(path, sep="\t", dtype={"gene": str, "chromosome": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot read gene scores ({exc})", path=path) from None
    for col in ("gene", "z"):
        if col not in df.columns:
            raise InputFormatError(f"missing column {col!r}", path=path)
    return df


# ---------------------------------------------------------------------------------------------
# 2. per-cell disease scores (scDRS-style)
# ---------------------------------------------------------------------------------------------

def default_n_genes(n_universe: int) -> int:
    """scDRS uses 1,000 disease genes of ~15-20k; keep the same ~5-10 % share in small universes:
    min(1000, max(10, round(0.1 * n_universe)))."""
    return int(min(1000, max(10, round(0.1 * n_universe))))


def select_disease_genes(gene_table: pd.DataFrame, var_names, *, n_genes: int | None = None,
                         fdr: float | None = None, fwer: float | None = None, n_min: int = 10) -> pd.Series:
    """The disease gene set among the genes expressed in ``var_names``; returns GWAS weights.

    ``scdrs munge-gs``'s rule (:func:`cohortflow.singlecell.scdrs.gene_set_from_gene_scores`):
    the top ``n_genes`` genes by gene z, or with ``fdr`` / ``fwer`` the genes passing
    Benjamini-Hochberg / Bonferroni over all scored genes, bounded to [``n_min``, ``n_genes``];
    weight = z clipped at 10. ``n_genes=None`` uses :func:`default_n_genes` of the
    gene-score/expression overlap; at most half of the overlap is used so that control genes
    remain. Genes with weight <= 0 are not scored (only in tiny universes or null traits).
    Returns a Series gene -> weight ordered by decreasing z (ties by name).
    """
    from cohortflow.singlecell.scdrs import gene_set_from_gene_scores

    table = gene_table.loc[np.isfinite(gene_table["z"].to_numpy(dtype=float))].drop_duplicates("gene", keep="first")
    n_overlap = int(table["gene"].astype(str).isin(pd.Index(var_names).astype(str)).sum())
    if n_overlap == 0:
        raise CohortflowError("no gene with a gene score is among the expression matrix's genes")
    n_use = default_n_genes(n_overlap) if n_genes is None else int(n_genes)
    n_use = max(1, min(n_use, n_overlap // 2 if n_overlap >= 2 else 1))
    weights = gene_set_from_gene_scores(table, n_genes=n_use, fdr=fdr, fwer=fwer, n_min=n_min, universe=var_names)
    return weights.clip(lower=0.0).rename("gwas_weight")


def score_cells(mat: sp.csr_matrix, gene_names, gwas_weights: pd.Series, *, n_ctrl: int = 200,
                seed: int = 0) -> dict:
    """scDRS scores of every cell (row of ``mat``, on scDRS's log scale) for one gene set: the
    method of :mod:`cohortflow.singlecell.scdrs` (scDRS 1.0.2's gene statistics, mean-variance
    bins, control sets, "vs" weights and normalisation), without covariates.

    Returns dict with raw_score (n_cells), norm_score (n_cells), mc_p (n_cells; scDRS's pooled
    p-value over all cells' control scores: (1 + #ctrl >= s) / (1 + n_cells * n_ctrl)),
    ctrl_norm_score (n_cells x n_ctrl), genes (disease genes used, sorted), gwas_weights, n_ctrl.
    """
    from cohortflow.singlecell import scdrs

    names = pd.Index(gene_names).astype(str)
    weights = gwas_weights.loc[gwas_weights.index.isin(names)]
    weights = weights[weights > 0]
    if weights.empty:
        raise CohortflowError("no disease gene with a positive weight is expressed")
    mat = sp.csr_matrix(mat)
    data = scdrs.preprocess(mat, obs_names=np.arange(mat.shape[0]).astype(str), var_names=names)
    scores, ctrl = scdrs.score_cells(data, weights, n_ctrl=n_ctrl, seed=seed, return_ctrl_norm_score=True)
    return {"raw_score": scores["raw_score"].to_numpy(dtype=np.float64),
            "norm_score": scores["norm_score"].to_numpy(dtype=np.float64),
            "mc_p": scores["pval"].to_numpy(dtype=np.float64), "ctrl_norm_score": ctrl.astype(np.float64),
            "genes": scores.attrs["genes"], "gwas_weights": weights, "n_ctrl": int(n_ctrl)}


def group_association(norm_score: np.ndarray, ctrl_norm_score: np.ndarray, groups, *,
                      quantile: float = 0.95) -> pd.DataFrame:
    """scDRS group analysis: per group, statistic = ``quantile`` of its cells' normalised scores;
    Monte-Carlo p = (1 + #control sets with statistic >= it) / (1 + n_ctrl); mc_z = (stat -
    mean of control statistics) / their sd.

    Returns columns rank, cell_type (the group), n_cells, mean_norm_score, assoc_stat, mc_p, mc_z,
    sorted by assoc_stat (descending; ties by mc_p, then name), rank 1 first.
    """
    groups = pd.Series(np.asarray(groups, dtype=object)).astype(str)
    rows = []
    for name in sorted(groups.unique()):
        idx = np.flatnonzero(groups.to_numpy() == name)
        stat = float(np.quantile(norm_score[idx], quantile))
        ctrl_stats = np.quantile(ctrl_norm_score[idx], quantile, axis=0)
        mc_p = (1.0 + np.sum(ctrl_stats >= stat)) / (1.0 + ctrl_stats.size)
        sd = ctrl_stats.std(ddof=1) if ctrl_stats.size > 1 else 0.0
        mc_z = (stat - ctrl_stats.mean()) / sd if sd > 0 else 0.0
        rows.append((name, idx.size, float(norm_score[idx].mean()), stat, float(mc_p), float(mc_z)))
    table = pd.DataFrame(rows, columns=RANKING_COLUMNS[1:])
    table = table.sort_values(["assoc_stat", "mc_p", "cell_type"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def disease_scores(adata, *, gene_scores: pd.DataFrame | str | Path, n_genes: int | None = None,
                   fdr: float | None = None, fwer: float | None = None, n_min: int = 10,
                   n_ctrl: int = 200, seed: int = 0, cell_type_key: str = "cell_type") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell disease scores and the cell-type ranking (scDRS-style; see the module docstring).

    ``gene_scores``: a table (or TSV path) with columns gene and z (:func:`gene_scores`).
    ``n_genes=None``: :func:`default_n_genes` of the overlap with ``adata.var_names``; ``fdr``,
    ``fwer``, ``n_min``: the gene-set size rule of :func:`select_disease_genes`.

    Returns ``(cells, ranking)``: cells has columns cell (obs name), cell_type, raw_score,
    norm_score, mc_p in obs order; ranking as :func:`group_association`. ``cells.attrs`` holds
    disease_genes (Series gene -> GWAS weight, the genes actually scored) and n_ctrl.
    """
    if cell_type_key not in adata.obs:
        raise CohortflowError(f"obs has no {cell_type_key!r} column (cell types)")
    table = read_gene_scores(gene_scores) if isinstance(gene_scores, (str, Path)) else gene_scores
    weights = select_disease_genes(table, adata.var_names, n_genes=n_genes, fdr=fdr, fwer=fwer, n_min=n_min)
    from cohortflow.singlecell import scdrs

    mat = scdrs.log_normalize(adata)
    res = score_cells(mat, adata.var_names, weights, n_ctrl=n_ctrl, seed=seed)
    cell_types = adata.obs[cell_type_key].astype(str).to_numpy()
    cells = pd.DataFrame({"cell": adata.obs_names.astype(str), "cell_type": cell_types,
                          "raw_score": res["raw_score"], "norm_score": res["norm_score"], "mc_p": res["mc_p"]})
    ranking = group_association(res["norm_score"], res["ctrl_norm_score"], cell_types)
    cells.attrs["disease_genes"] = res["gwas_weights"]
    cells.attrs["n_ctrl"] = res["n_ctrl"]
    return cells, ranking


# ---------------------------------------------------------------------------------------------
# spatial slide
# ---------------------------------------------------------------------------------------------

def _kmeans_clusters(mat: sp.csr_matrix, *, n_clusters: int, seed: int, n_pcs: int = 20,
                     max_genes: int = 1000) -> np.ndarray:
    """k-means (k-means++ init, seeded) on the top principal components of standardised log
    expression of the ``max_genes`` most variable genes (PCs from the gene covariance matrix)."""
    from scipy.cluster.vq import kmeans2

    var = np.asarray(mat.multiply(mat).mean(axis=0)).ravel() - np.asarray(mat.mean(axis=0)).ravel() ** 2
    genes = np.sort(np.argsort(-var, kind="stable")[:max_genes])
    genes = genes[var[genes] > 0]
    dense = mat[:, genes].toarray()
    dense -= dense.mean(axis=0)
    dense /= dense.std(axis=0)
    evals, evecs = np.linalg.eigh(dense.T @ dense)
    pcs = dense @ evecs[:, ::-1][:, :n_pcs]
    _, labels = kmeans2(pcs, n_clusters, seed=np.random.default_rng(seed), minit="++")
    return np.array([f"cluster{int(x)}" for x in labels], dtype=object)


def spatial_disease_scores(adata, *, disease_genes: pd.Series, n_ctrl: int = 200, seed: int = 0,
                           n_perms: int = 999, region_key: str | None = None,
                           n_clusters: int = 6) -> tuple[pd.DataFrame, dict]:
    """Disease score of every spot (same gene set, weights and method as the cells), its spatial
    autocorrelation and the highest-scoring region: scDRS scores of the spots, then
    :func:`cohortflow.singlecell.scdrs.spatial_score_analysis` (what ``cohortflow disease-score``
    does on a slide).

    ``disease_genes``: Series gene -> GWAS weight (``cells.attrs['disease_genes']``). Spot
    coordinates from ``obsm['spatial']``; the spot graph from ``obsp['spatial_connectivities']``
    (else squidpy's 6-nearest-neighbour graph), row-standardised. Regions: ``region_key`` or the
    first of :data:`REGION_KEYS` in obs; else k-means clusters of expression (``n_clusters``).

    Returns ``(spots, info)``: spots has columns spot, x, y, score (normalised score), raw_score,
    mc_p, cluster (region label); info is :func:`~cohortflow.singlecell.scdrs.spatial_score_analysis`'s
    (Moran's I and Geary's C with analytic and permutation p, region_key, region_source,
    top_region) plus n_genes_used and regions: records rank, region, n_spots, mean_norm_score,
    mc_p (association), mc_z, hetero_mcp, most significant first.
    """
    from cohortflow.singlecell import scdrs

    if "spatial" not in adata.obsm:
        raise CohortflowError("spatial AnnData has no obsm['spatial'] coordinates")
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    weights = disease_genes.loc[disease_genes.index.isin(adata.var_names)]
    weights = weights[weights > 0]
    if weights.empty:
        raise CohortflowError("none of the disease genes is measured on the spatial slide")
    X = scdrs.log_normalize(adata)
    data = scdrs.preprocess(X, obs_names=adata.obs_names.astype(str), var_names=adata.var_names.astype(str))
    scores, ctrl = scdrs.score_cells(data, weights, n_ctrl=n_ctrl, seed=seed, return_ctrl_norm_score=True)
    regions = scdrs.spot_regions(adata, X, region_key=region_key, n_clusters=n_clusters, seed=seed)
    info, table = scdrs.spatial_score_analysis(adata, X, scores, ctrl, n_perms=n_perms, seed=seed, regions=regions)
    info = {"n_genes_used": int(scores.attrs["n_genes"]), **info}
    records = []
    if table is not None:
        for rank, region in enumerate(scdrs.region_order(table), start=1):
            row = table.loc[region]
            records.append({"rank": rank, "region": region, "n_spots": int(row["n_cell"]),
                            "mean_norm_score": _round(float(row["mean_norm_score"])),
                            "mc_p": _round(float(row["assoc_mcp"])), "mc_z": _round(float(row["assoc_mcz"])),
                            "hetero_mcp": _round(float(row["hetero_mcp"]))})
    info["regions"] = records
    spots = pd.DataFrame({"spot": adata.obs_names.astype(str), "x": xy[:, 0], "y": xy[:, 1],
                          "score": scores["norm_score"].to_numpy(dtype=np.float64),
                          "raw_score": scores["raw_score"].to_numpy(dtype=np.float64),
                          "mc_p": scores["pval"].to_numpy(dtype=np.float64), "cluster": regions[1]})
    return spots, info


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (_round(v) if isinstance(v, float) else (int(v) if isinstance(v, np.integer) else v))
                    for k, v in rec.items()})
    return out


def _round(x: float, digits: int = 6) -> float:
    """Floats in the summary at 6 significant digits (stable bytes, no false precision)."""
    if not math.isfinite(x) or x == 0:
        return float(x) if math.isfinite(x) else None
    return float(f"{x:.{digits}g}")


# ---------------------------------------------------------------------------------------------
# 3. the stage
# ---------------------------------------------------------------------------------------------

def integrate(*, sumstats: str | Path, bfile: str | Path, genes_gtf: str | Path, sc_h5ad: str | Path,
              spatial_h5ad: str | Path | None = None, trait: str, n_genes: int | None = None,
              fdr: float | None = None, fwer: float | None = None, n_min: int = 10, n_ctrl: int = 200,
              window_kb: float = 10.0, seed: int = 0, out_gene_scores: str | Path, out_cell_scores: str | Path,
              out_ranking: str | Path, out_spatial_scores: str | Path | None = None, out_summary: str | Path,
              out_png: str | Path, out_spatial_png: str | Path | None = None, cell_type_key: str = "cell_type",
              n_perms: int = 999, ld_max_samples: int = 1000, n_top_genes_reported: int = 20) -> dict:
    """Run the integration stage for one trait and write its outputs (all atomically).

    Outputs: ``out_gene_scores`` (TSV, :data:`GENE_SCORE_COLUMNS`), ``out_cell_scores`` (TSV.gz,
    :data:`CELL_SCORE_COLUMNS`), ``out_ranking`` (TSV, :data:`RANKING_COLUMNS`),
    ``out_spatial_scores`` (TSV.gz, :data:`SPATIAL_SCORE_COLUMNS`; when ``spatial_h5ad``),
    ``out_summary`` (JSON, returned too), ``out_png`` (cell-type association bars and, when the
    .h5ad has ``obsm['X_umap']``, the UMAP coloured by disease score),
    ``out_spatial_png`` (map of spot scores; when ``spatial_h5ad``).
    """
    from cohortflow.singlecell.integration_plots import plot_celltype_ranking

    if spatial_h5ad is not None and (out_spatial_scores is None or out_spatial_png is None):
        raise CohortflowError("spatial_h5ad given without out_spatial_scores and out_spatial_png")
    genes_table = gene_scores(bfile=bfile, sumstats=sumstats, genes_gtf=genes_gtf, window_kb=window_kb,
                              ld_max_samples=ld_max_samples, seed=seed, out=out_gene_scores)
    adata = read_h5ad(sc_h5ad)
    cells, ranking = disease_scores(adata, gene_scores=genes_table, n_genes=n_genes, fdr=fdr, fwer=fwer, n_min=n_min,
                                    n_ctrl=n_ctrl, seed=seed,
                                    cell_type_key=cell_type_key)
    write_table_atomic(out_cell_scores, cells)
    write_table_atomic(out_ranking, ranking)
    umap = np.asarray(adata.obsm["X_umap"])[:, :2] if "X_umap" in adata.obsm else None
    plot_celltype_ranking(ranking, out_png, title=f"{trait}: cell-type association (scDRS-style)", umap=umap,
                          norm_score=cells["norm_score"].to_numpy())

    used = cells.attrs["disease_genes"]
    gt = genes_table.drop_duplicates("gene").set_index("gene")
    top = genes_table.sort_values(["z", "gene"], ascending=[False, True], kind="stable").head(n_top_genes_reported)
    summary = {
        "trait": trait,
        "gene_scores": {"n_genes_annotated": genes_table.attrs["n_genes_annotated"],
                        "n_genes_tested": genes_table.attrs["n_genes_tested"],
                        "n_snps_used": genes_table.attrs["n_snps_used"],
                        "ld_samples": genes_table.attrs["ld_samples"], "window_kb": float(window_kb),
                        "test": "SNP-wise mean (sum z^2), LD from cohort genotypes",
                        "p_value_method": "saddlepoint (Barndorff-Nielsen r*), Satterthwaite near the mean"},
        "top_genes": [{"gene": g, "z": _round(float(r.z)), "p_value": _round(float(r.p_value)), "n_snps": int(r.n_snps)}
                      for g, r in zip(top["gene"], top.itertuples(index=False))],
        "disease_genes": [{"gene": g, "z": _round(float(gt.loc[g, "z"])), "weight": _round(float(w))}
                          for g, w in used.items()],
        "n_genes_requested": n_genes,
        "gene_set_rule": ("top n_genes by gene z" if fdr is None and fwer is None else
                          f"{'Benjamini-Hochberg FDR' if fdr is not None else 'Bonferroni FWER'} < "
                          f"{fdr if fdr is not None else fwer} over {genes_table.attrs['n_genes_tested']} genes, "
                          f"bounded to [{n_min}, {n_genes}]"),
        "n_genes_used": int(len(used)), "n_ctrl": int(n_ctrl), "seed": int(seed),
        "n_cells": int(len(cells)), "n_cells_mc_p_below_0.05": int((cells["mc_p"] < 0.05).sum()),
        "top_cell_type": str(ranking["cell_type"].iloc[0]),
        "top_cell_type_mc_p": _round(float(ranking["mc_p"].iloc[0])),
        "ranking": _records(ranking),
        "spatial": None,
    }
    if spatial_h5ad is not None:
        sdata = read_h5ad(spatial_h5ad)
        summary["spatial"] = _spatial_outputs(sdata, used, trait=trait, n_ctrl=n_ctrl, seed=seed, n_perms=n_perms,
                                              out_scores=out_spatial_scores, out_png=out_spatial_png)
    write_json_atomic(out_summary, summary)
    return summary


def _spatial_outputs(sdata, disease_genes: pd.Series, *, trait: str, n_ctrl: int, seed: int, n_perms: int,
                     out_scores: str | Path, out_png: str | Path) -> dict:
    from cohortflow.singlecell.integration_plots import plot_spatial_scores

    spots, info = spatial_disease_scores(sdata, disease_genes=disease_genes, n_ctrl=n_ctrl, seed=seed, n_perms=n_perms)
    write_table_atomic(out_scores, spots)
    plot_spatial_scores(spots, out_png, title=f"{trait}: spot disease score (Moran's I {info['morans_i']:.3f})")
    return {k: (_round(v) if isinstance(v, float) else v) for k, v in info.items()}


def spatial_integration(*, spatial_h5ad: str | Path, integration_summary: str | Path, trait: str, n_ctrl: int = 200,
                        seed: int = 0, n_perms: int = 999, out_scores: str | Path, out_summary: str | Path,
                        out_png: str | Path) -> dict:
    """The trait's disease score on a spatial slide, with the disease genes and weights chosen by
    :func:`integrate` on the single-cell data (read from its summary JSON, ``disease_genes``).

    Writes ``out_scores`` (TSV.gz, :data:`SPATIAL_SCORE_COLUMNS`), ``out_png`` (map of spot scores)
    and ``out_summary`` (JSON: trait plus the keys of :func:`spatial_disease_scores`' info).
    """
    import json

    cells_summary = json.loads(Path(integration_summary).read_text())
    genes = cells_summary.get("disease_genes") or []
    if not genes:
        raise CohortflowError("no disease genes in the integration summary", path=integration_summary)
    disease_genes = pd.Series([g["weight"] for g in genes], index=[g["gene"] for g in genes], dtype=float)
    sdata = read_h5ad(spatial_h5ad)
    info = _spatial_outputs(sdata, disease_genes, trait=trait, n_ctrl=n_ctrl, seed=seed, n_perms=n_perms,
                            out_scores=out_scores, out_png=out_png)
    summary = {"trait": trait, **info}
    write_json_atomic(out_summary, summary)
    return summary
