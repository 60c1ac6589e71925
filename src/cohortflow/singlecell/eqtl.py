"""Pseudobulk cell-type eQTL: given variants (e.g. GWAS leads) against the genes within a window.

Model, per cell type ``t``, gene ``g`` and variant ``v``:

1. Pseudobulk: for every donor with at least ``min_cells`` cells of type ``t``, the mean over
   those cells of counts per 10,000 (each cell's raw counts divided by its total, times 1e4),
   then ``log1p``. (Normalising each cell first keeps a donor's few very deep cells from
   dominating; it is the same scale as the single-cell chain's ``X``.)
2. Genes: those expressed (pseudobulk > 0) in more than ``min_donor_fraction`` of the type's
   donors, whose TSS lies within ``window_kb`` of the variant (same chromosome; TSS = gene start
   on ``+``, end on ``-``, as GTEx and OneK1K measure cis windows).
3. Test: ordinary least squares ``expr ~ 1 + covariates + dosage`` over the donors with a
   called genotype, where dosage counts the .bim A1 allele (= ALT from our ingestion, the GWAS
   ``effect_allele``). Computed by Frisch-Waugh-Lovell: expression and dosage are both
   residualised on ``[1, covariates]`` and ``beta = <r_g, r_y> / <r_g, r_g>``,
   ``se = sqrt(RSS / df / <r_g, r_g>)`` with ``df = n - rank([1, covariates]) - 1``
   (= n - k - 2 for k independent covariates): the same beta, se, t and p as the full OLS.
4. FDR: Benjamini-Hochberg over every test of every cell type together.

Covariates: the columns of a plink2-style covariate file (e.g. sex, age) and the first ``n_pcs``
genotype PCs (plink2 ``.eigenvec`` layout); whichever are given (none: intercept only).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import write_json_atomic, write_table_atomic
from cohortflow.io.chrom import normalise_chrom_names

__all__ = ["pseudobulk", "eqtl_ols", "cell_eqtl", "run_cell_eqtl", "read_variant_list", "gene_tss",
           "RESULT_COLUMNS"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["cell_type", "variant_id", "chromosome", "base_pair_location", "effect_allele", "other_allele",
                  "gene", "distance_to_tss", "n_donors", "effect_allele_frequency", "beta", "se", "t", "p_value",
                  "fdr", "errcode"]
# Dosage whose residual on the covariates keeps less than 1/50 of its variance (VIF > 50, as the
# GWAS's rank_deficient): no estimable effect.
_MAX_VIF = 50.0


# ------------------------------------------------------------------------------------------- pseudobulk

def _count_matrix(adata, layer: str | None, path=None) -> sp.csr_matrix:
    """Raw counts (CSR, dtype as stored): ``layers[layer]``, else ``layers['counts']`` when present, else X."""
    if layer is None:
        layer = "counts" if "counts" in adata.layers else None
    if layer is not None and layer not in adata.layers:
        raise InputFormatError(f"no layer {layer!r} (layers: {', '.join(adata.layers) or 'none'})", path=path)
    x = adata.layers[layer] if layer is not None else adata.X
    # No float64 copy of the whole matrix: only the genes averaged are converted.
    x = x.tocsr() if sp.issparse(x) else sp.csr_matrix(np.asarray(x))
    data = x.data
    if data.size and (data.min() < 0 or not np.array_equal(data, np.round(data))):
        where = f"layers[{layer!r}]" if layer is not None else "X"
        raise InputFormatError(f"{where} does not hold raw counts (negative or non-integer values); "
                               "give the raw-count layer", path=path)
    return x


def pseudobulk(adata, *, cell_type_key: str = "cell_type", donor_key: str = "donor", layer: str | None = None,
               min_cells: int = 5, target_sum: float = 1e4, genes=None, path=None):
    """Per donor and cell type, ``log1p`` of the mean counts per ``target_sum`` over the cells.

    Counts come from ``layers[layer]`` (default: ``layers['counts']`` when present, else ``X``;
    raw integer counts required). Each cell is scaled to ``target_sum`` by its own total over all
    genes (also when only ``genes``, a subset of ``var_names``, are averaged). Donor x type groups
    with fewer than ``min_cells`` cells are left out.

    Returns an AnnData: one observation per kept (cell type, donor), ``obs`` columns
    ``cell_type``, ``donor``, ``n_cells`` (sorted by cell type, then donor), dense float64 ``X``
    (log1p mean CP10k), ``var`` indexed like ``adata.var_names`` (or the ``genes`` among them).
    """
    import anndata as ad

    for key in (cell_type_key, donor_key):
        if key not in adata.obs:
            raise InputFormatError(f"no obs column {key!r} (obs columns: {', '.join(map(str, adata.obs.columns))})",
                                   path=path)
    counts = _count_matrix(adata, layer, path)
    total = np.asarray(counts.sum(axis=1, dtype=np.float64)).ravel()
    cell_type = adata.obs[cell_type_key].astype(str).to_numpy()
    donor = adata.obs[donor_key].astype(str).to_numpy()
    ok = (total > 0) & ~pd.isna(adata.obs[cell_type_key]).to_numpy() & ~pd.isna(adata.obs[donor_key]).to_numpy()
    groups = pd.DataFrame({"cell_type": cell_type[ok], "donor": donor[ok]})
    codes, uniques = pd.MultiIndex.from_frame(groups).factorize(sort=True)
    n_cells = np.bincount(codes, minlength=len(uniques))
    keep = np.flatnonzero(n_cells >= min_cells)
    remap = np.full(len(uniques), -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    row_group = remap[codes]
    sel = row_group >= 0
    cells = np.flatnonzero(ok)[sel]
    # Averaging matrix: one row per kept group, weight 1 / (group size x cell total / target_sum).
    weights = target_sum / total[cells] / n_cells[keep][row_group[sel]]
    averager = sp.csr_matrix((weights, (row_group[sel], np.arange(cells.size))), shape=(keep.size, cells.size))
    var_names = pd.Index(adata.var_names.astype(str))
    if genes is not None:
        var_names = var_names[var_names.isin(list(genes))]
        counts = counts[:, adata.var_names.astype(str).get_indexer(var_names)]
    mean = np.asarray((averager @ counts[cells].astype(np.float64)).todense())
    obs = pd.DataFrame({"cell_type": [uniques[i][0] for i in keep], "donor": [uniques[i][1] for i in keep],
                        "n_cells": n_cells[keep].astype(np.int64)})
    obs.index = (obs["cell_type"] + "|" + obs["donor"]).to_numpy()
    return ad.AnnData(X=np.log1p(mean), obs=obs, var=pd.DataFrame(index=var_names))


# ---------------------------------------------------------------------------------------------- OLS

@dataclass
class OLSResult:
    """Dosage effect per (variant, gene): arrays of shape (n_variants, n_genes), or (n_pairs,)
    when :func:`eqtl_ols` was given ``pairs``."""

    beta: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    df: int
    n: int
    errcode: np.ndarray  # per variant: "" or why no test


def eqtl_ols(expression: np.ndarray, dosage: np.ndarray, covariates: np.ndarray | None = None, *,
             pairs: tuple[np.ndarray, np.ndarray] | None = None) -> OLSResult:
    """OLS of every expression column on every dosage column with the same covariates.

    ``expression``: donors x genes; ``dosage``: donors x variants (no missing values: subset the
    donors first); ``covariates``: donors x k (an intercept is added; none: intercept only).
    For each pair the model is ``expr ~ 1 + covariates + dosage``; returns the dosage's beta, se,
    t and two-sided p (t distribution, ``df = n - rank([1, covariates]) - 1``), all equal to the
    full OLS fit (Frisch-Waugh-Lovell). Variants with no variance left after the covariates
    (monomorphic, or VIF > 50) get NaN and an ``errcode``. With ``pairs`` = (variant indices,
    gene indices), only those pairs are returned (1-D arrays).
    """
    y = np.asarray(expression, dtype=np.float64)
    g = np.asarray(dosage, dtype=np.float64)
    n = y.shape[0]
    design = np.ones((n, 1)) if covariates is None or np.size(covariates) == 0 else \
        np.column_stack([np.ones(n), np.asarray(covariates, dtype=np.float64)])
    # Orthonormal basis of the covariate space (SVD copes with collinear covariates; statsmodels'
    # pinv does the same, and its df counts the rank).
    u, s, _ = np.linalg.svd(design, full_matrices=False)
    rank = int((s > s[0] * max(design.shape) * np.finfo(float).eps).sum())
    basis = u[:, :rank]
    ry = y - basis @ (basis.T @ y)
    rg = g - basis @ (basis.T @ g)
    df = n - rank - 1
    gg = np.einsum("ij,ij->j", rg, rg)
    gc = g - g.mean(axis=0)
    g_var = np.einsum("ij,ij->j", gc, gc)
    errcode = np.full(g.shape[1], "", dtype=object)
    errcode[g_var <= 0] = "monomorphic"
    errcode[(g_var > 0) & (gg <= g_var / _MAX_VIF)] = "rank_deficient"
    if df < 1:
        errcode[:] = "too_few_observations"
    ok = errcode == ""
    gy = rg.T @ ry  # variants x genes, one BLAS product
    yy = np.einsum("ij,ij->j", ry, ry)
    if pairs is None:
        gy, gg_p, yy_p, ok_p = gy, gg[:, None], yy[None, :], np.broadcast_to(ok[:, None], gy.shape)
    else:
        vi, gi = (np.asarray(x, dtype=np.int64) for x in pairs)
        gy, gg_p, yy_p, ok_p = gy[vi, gi], gg[vi], yy[gi], ok[vi]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = gy / gg_p
        rss = np.maximum(yy_p - beta * gy, 0.0)
        se = np.sqrt(rss / max(df, 1) / gg_p)
        t = beta / se
    p = 2.0 * stats.t.sf(np.abs(t), max(df, 1))
    for arr in (beta, se, t, p):
        arr[~ok_p] = np.nan
    return OLSResult(beta=beta, se=se, t=t, p_value=p, df=df, n=n, errcode=errcode)


# ----------------------------------------------------------------------------------------- inputs

def read_variant_list(path: str | Path) -> list[str]:
    """Variant IDs from a file: a table with a ``variant_id`` (or ``SNP``/``ID``) header column
    (e.g. our ``gwas/{trait}.leads.tsv``, plink ``.clumped``), a JSON list or the demo's
    ``singlecell_truth.json`` (its ``eqtl.variant_id``), or plain text with one ID per line
    (first field; ``#`` lines skipped). Order kept, duplicates dropped."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputFormatError(f"not valid JSON ({err.msg})", path=path, record=f"line {err.lineno}") from None
        if isinstance(data, dict) and isinstance(data.get("eqtl"), dict) and "variant_id" in data["eqtl"]:
            ids = [data["eqtl"]["variant_id"]]
        elif isinstance(data, dict) and isinstance(data.get("variants"), list):
            ids = data["variants"]
        elif isinstance(data, list):
            ids = data
        else:
            raise InputFormatError("expected a JSON list of variant IDs, {'variants': [...]} or {'eqtl': "
                                   "{'variant_id': ...}}", path=path)
        if not all(isinstance(i, str) and i for i in ids):
            raise InputFormatError("variant IDs must be non-empty strings", path=path)
        return list(dict.fromkeys(ids))
    lines = [(i + 1, line.split()) for i, line in enumerate(text.splitlines())]
    lines = [(n, f) for n, f in lines if f and not f[0].startswith("#")]
    if not lines:
        return []
    col = 0
    header = lines[0][1]
    for name in ("variant_id", "SNP", "ID"):
        if name in header:
            col = header.index(name)
            lines = lines[1:]
            break
    ids = []
    for n, fields in lines:
        if col >= len(fields):
            raise InputFormatError(f"{len(fields)} fields, the variant ID is field {col + 1}", path=path,
                                   record=f"line {n}")
        ids.append(fields[col])
    return list(dict.fromkeys(ids))


def gene_tss(var: pd.DataFrame | None = None, *, genes_gtf: str | Path | None = None,
             gene_names=None) -> pd.DataFrame:
    """Chromosome and TSS of each gene name: from a GTF (matched on ``gene_name``, then
    ``gene_id``) or from ``var`` columns ``chrom`` and ``start`` (+ ``end``, ``strand``).

    Returns DataFrame indexed by gene name with ``chrom`` (normalised: no ``chr``) and ``tss``;
    genes without a position are absent."""
    if genes_gtf is not None:
        from cohortflow.io.gtf import read_gtf_genes

        table = read_gtf_genes(genes_gtf)
        if table.empty:
            raise InputFormatError("no gene records", path=genes_gtf)
        # An ambiguous name or ID has no position.
        by_name = table.drop_duplicates("gene_name", keep=False).set_index("gene_name")
        by_id = table.drop_duplicates("gene_id", keep=False).set_index("gene_id")
        names = pd.Index(gene_names if gene_names is not None else by_name.index).astype(str)
        rows = by_name.reindex(names)
        miss = rows["chrom"].isna().to_numpy()
        if miss.any():  # var_names that are gene IDs
            rows.loc[miss, by_id.columns] = by_id.reindex(names[miss]).to_numpy()
        rows = rows.dropna(subset=["chrom"])
    elif var is not None and {"chrom", "start"} <= set(var.columns):
        rows = var.copy()
        if "end" not in rows:
            rows["end"] = rows["start"]
        if "strand" not in rows:
            rows["strand"] = "+"
        rows = rows.dropna(subset=["chrom", "start"])
    else:
        raise CohortflowError("gene positions needed: give a GTF (--genes) or var columns 'chrom' and 'start'")
    start = rows["start"].astype(np.int64).to_numpy()
    end = rows["end"].astype(np.int64).to_numpy()
    tss = np.where(rows["strand"].astype(str).to_numpy() == "-", end, start)
    return pd.DataFrame({"chrom": normalise_chrom_names(rows["chrom"].astype(str).to_numpy()), "tss": tss},
                        index=pd.Index(rows.index.astype(str), name="gene"))


def _read_covariates(covariates, covariate_names, pcs, n_pcs) -> tuple[pd.DataFrame, list[str]]:
    """Covariates by IID (numeric), from the covariate file and the first ``n_pcs`` PCs."""
    from cohortflow.io.pheno import read_pheno_table

    frames = []
    if covariates is not None:
        frames.append(read_pheno_table(covariates, columns=list(covariate_names) if covariate_names else None,
                                       require_numeric=True))
    if pcs is not None and n_pcs > 0:
        table = read_pheno_table(pcs, require_numeric=True)
        want = [f"PC{i}" for i in range(1, n_pcs + 1)]
        missing = [c for c in want if c not in table.columns]
        if missing:
            raise InputFormatError(f"{len(table.columns)} PC columns, n_pcs = {n_pcs} asked ({missing[0]} absent)",
                                   path=pcs)
        frames.append(table[want])
    if not frames:
        return pd.DataFrame(index=pd.Index([], name="IID")), []
    merged = frames[0]
    for f in frames[1:]:
        clash = set(merged.columns) & set(f.columns)
        if clash:
            raise InputFormatError(f"column {sorted(clash)[0]!r} is in both the covariates and the PCs", path=pcs)
        merged = merged.join(f, how="inner")
    return merged, list(merged.columns)


# ------------------------------------------------------------------------------------------- driver

def cell_eqtl(adata, bfile: str | Path, variants: list[str], *, genes_gtf: str | Path | None = None,
              covariates: str | Path | None = None, covariate_names: list[str] | None = None,
              pcs: str | Path | None = None, n_pcs: int = 0, cell_type_key: str = "cell_type",
              donor_key: str = "donor", layer: str | None = None, window_kb: float = 1000.0, min_cells: int = 5,
              min_donors: int = 10, min_donor_fraction: float = 0.1, h5ad_path=None) -> dict:
    """Pseudobulk cell-type eQTL of ``variants`` (IDs of the .bim) against the genes near them.

    Donors (``obs[donor_key]``) are matched to .fam IIDs and to the covariate IIDs; a cell type
    is tested when at least ``min_donors`` donors with ``min_cells`` cells remain. See the module
    docstring for the model. Returns a dict: ``results`` (DataFrame with ``RESULT_COLUMNS``,
    sorted by cell type, the variant's .bim row, gene), ``pseudobulk`` (AnnData from
    :func:`pseudobulk`), ``dosage`` (DataFrame variants x matched donors, A1 counts, NaN missing:
    individual-level, never written), ``summary`` (aggregate figures only).
    """
    from cohortflow.io.plink import open_bed

    bed = open_bed(bfile)
    fam_path = f"{bed.prefix}.fam"
    for key in (cell_type_key, donor_key):
        if key not in adata.obs:
            raise InputFormatError(f"no obs column {key!r} (obs columns: {', '.join(map(str, adata.obs.columns))})",
                                   path=h5ad_path)
    if not adata.var_names.is_unique:
        raise InputFormatError("gene names (var_names) repeat: make them unique first", path=h5ad_path)
    donors_h5ad = sorted(set(adata.obs[donor_key].dropna().astype(str)))
    fam_iid = bed.fam["iid"].astype(str).to_numpy()
    if len(set(fam_iid)) != len(fam_iid):
        raise InputFormatError("IIDs repeat across families: donors cannot be matched on IID", path=fam_path)
    fam_index = {iid: i for i, iid in enumerate(fam_iid)}
    in_fam = [d for d in donors_h5ad if d in fam_index]
    if not in_fam:
        source = f"{Path(h5ad_path).name} " if h5ad_path is not None else ""
        raise InputFormatError(f"none of the {len(donors_h5ad)} donors of {source}obs[{donor_key!r}] (e.g. "
                               f"{donors_h5ad[0] if donors_h5ad else 'none'!r}) is an IID of the .fam", path=fam_path)
    cov, cov_names = _read_covariates(covariates, covariate_names, pcs, n_pcs)
    if cov_names:
        cov = cov.dropna()
        matched = [d for d in in_fam if d in cov.index]
        if not matched:
            raise InputFormatError(f"none of the {len(in_fam)} genotyped donors has complete covariates "
                                   f"({', '.join(cov_names)})", path=covariates if covariates is not None else pcs)
    else:
        matched = in_fam

    # Variants: .bim rows in file order.
    bim = bed.bim
    row_of = pd.Series(np.arange(len(bim)), index=bim["id"].astype(str).to_numpy())
    row_of = row_of[~row_of.index.duplicated(keep="first")]
    wanted = list(dict.fromkeys(variants))
    found = [v for v in wanted if v in row_of.index]
    not_found = [v for v in wanted if v not in row_of.index]
    if wanted and not found:
        raise InputFormatError(f"none of the {len(wanted)} variants (e.g. {wanted[0]!r}) is in the .bim",
                               path=f"{bed.prefix}.bim")
    rows = np.sort(row_of[found].to_numpy())
    vinfo = bim.iloc[rows].reset_index(drop=True)
    vinfo["chrom_norm"] = normalise_chrom_names(vinfo["chrom"].astype(str).to_numpy())
    donor_cols = np.array([fam_index[d] for d in matched], dtype=np.int64)
    geno = bed.read_rows(rows, samples=donor_cols) if rows.size else np.empty((0, len(matched)), np.int8)
    dosage = pd.DataFrame(np.where(geno < 0, np.nan, geno.astype(np.float64)), index=vinfo["id"].to_numpy(),
                          columns=matched)

    # Genes whose TSS lies within the window of a variant: only those are pseudobulked.
    var_names = pd.Index(adata.var_names.astype(str))
    tss = gene_tss(adata.var, genes_gtf=genes_gtf, gene_names=var_names) if rows.size else \
        pd.DataFrame({"chrom": [], "tss": []})
    window_bp = window_kb * 1000.0
    near = {}  # variant index -> (gene names, TSS - position) within the window
    for i in range(len(vinfo)):
        same = tss[tss["chrom"].to_numpy() == vinfo.at[i, "chrom_norm"]]
        dist = same["tss"].to_numpy(np.int64) - int(vinfo.at[i, "pos"])
        inside = np.abs(dist) <= window_bp
        near[i] = (same.index[inside].to_numpy(), dist[inside])
    genes_near = sorted({g for names, _ in near.values() for g in names})
    bulk = pseudobulk(adata, cell_type_key=cell_type_key, donor_key=donor_key, layer=layer, min_cells=min_cells,
                      genes=genes_near, path=h5ad_path)

    near_col = {i: bulk.var_names.get_indexer(names) for i, (names, _) in near.items()}
    parts: list[dict] = []  # one block of tests per (cell type, missingness pattern)
    per_type = {}
    for cell_type in sorted(bulk.obs["cell_type"].unique()):
        sub = bulk[(bulk.obs["cell_type"] == cell_type).to_numpy() & bulk.obs["donor"].isin(matched).to_numpy()]
        donors_t = sub.obs["donor"].to_numpy()
        info = {"n_donors": int(len(donors_t)), "n_genes_expressed": 0, "n_tests": 0}
        per_type[cell_type] = info
        if len(donors_t) < min_donors:
            info["skipped"] = f"{len(donors_t)} donors with >= {min_cells} cells (< min_donors = {min_donors})"
            continue
        expr = np.asarray(sub.X)
        expressed = (expr > 0).mean(axis=0) > min_donor_fraction
        info["n_genes_expressed"] = int(expressed.sum())
        cov_t = cov.loc[donors_t, cov_names].to_numpy(np.float64) if cov_names else None
        g_t = dosage[donors_t].to_numpy()
        # Donors with a missing call drop out of that variant's test: variants sharing a missingness
        # pattern are tested together (usually one group: no missing call).
        patterns: dict[bytes, list[int]] = {}
        for i in range(len(vinfo)):
            patterns.setdefault(np.isnan(g_t[i]).tobytes(), []).append(i)
        for key, members in patterns.items():
            keep = ~np.frombuffer(key, dtype=bool)
            cols = {i: near_col[i][expressed[near_col[i]]] for i in members}
            sel = {i: expressed[near_col[i]] for i in members}
            genes_needed = np.unique(np.concatenate([cols[i] for i in members]))
            if not genes_needed.size:
                continue
            pair_v = np.concatenate([np.full(cols[i].size, a, dtype=np.int64) for a, i in enumerate(members)])
            pair_g = np.searchsorted(genes_needed, np.concatenate([cols[i] for i in members]))
            fit = eqtl_ols(expr[keep][:, genes_needed], g_t[members][:, keep].T,
                           None if cov_t is None else cov_t[keep], pairs=(pair_v, pair_g))
            n_called = int(keep.sum())
            start = 0
            for a, i in enumerate(members):
                sl = slice(start, start + cols[i].size)
                start = sl.stop
                dose = g_t[i][keep]
                parts.append({"cell_type": cell_type, "variant": i, "gene_col": cols[i], "dist": near[i][1][sel[i]],
                              "n": n_called, "freq": float(dose.mean() / 2) if dose.size else np.nan,
                              "beta": fit.beta[sl], "se": fit.se[sl], "t": fit.t[sl], "p": fit.p_value[sl],
                              "errcode": fit.errcode[a]})
                info["n_tests"] += int(cols[i].size)

    sizes = np.array([part["gene_col"].size for part in parts], dtype=np.int64)
    variant_of = np.repeat(np.array([part["variant"] for part in parts], dtype=np.int64), sizes)
    gene_col = np.concatenate([part["gene_col"] for part in parts]) if parts else np.empty(0, np.int64)
    results = pd.DataFrame({
        "cell_type": np.repeat(np.array([part["cell_type"] for part in parts], dtype=object), sizes),
        "variant_id": vinfo["id"].to_numpy(dtype=object)[variant_of],
        "chromosome": vinfo["chrom"].to_numpy(dtype=object)[variant_of],
        "base_pair_location": vinfo["pos"].to_numpy(np.int64)[variant_of],
        "effect_allele": vinfo["a1"].to_numpy(dtype=object)[variant_of],
        "other_allele": vinfo["a2"].to_numpy(dtype=object)[variant_of],
        "gene": bulk.var_names.to_numpy(dtype=object)[gene_col],
        "distance_to_tss": np.concatenate([part["dist"] for part in parts]) if parts else np.empty(0, np.int64),
        "n_donors": np.repeat(np.array([part["n"] for part in parts], dtype=np.int64), sizes),
        "effect_allele_frequency": np.repeat(np.array([part["freq"] for part in parts], dtype=float), sizes),
        **{col: np.concatenate([part[key] for part in parts]) if parts else np.empty(0)
           for col, key in (("beta", "beta"), ("se", "se"), ("t", "t"), ("p_value", "p"))},
        "fdr": np.full(gene_col.size, np.nan),
        "errcode": np.repeat(np.array([part["errcode"] for part in parts], dtype=object), sizes),
    }, columns=RESULT_COLUMNS)
    tested = results["p_value"].notna().to_numpy()
    if tested.any():
        results.loc[tested, "fdr"] = stats.false_discovery_control(results.loc[tested, "p_value"].to_numpy(),
                                                                   method="bh")
    results["_v"] = variant_of
    results = results.sort_values(["cell_type", "_v", "gene"], kind="stable").drop(columns="_v").reset_index(drop=True)
    summary = {
        "n_variants_requested": len(wanted), "n_variants_found": len(found), "variants_not_in_bim": not_found[:100],
        "n_donors_h5ad": len(donors_h5ad), "n_donors_genotyped": len(in_fam), "n_donors_used": len(matched),
        "covariates": cov_names, "cell_types": per_type, "n_tests": int(tested.sum()),
        "model": "OLS expr ~ 1 + covariates + A1 dosage per cell type, gene and variant (FWL); "
                 "pseudobulk log1p(mean CP10k); BH FDR over all tests",
    }
    return {"results": results, "pseudobulk": bulk, "dosage": dosage, "summary": summary}


def run_cell_eqtl(h5ad: str | Path, *, bfile: str | Path, variants: list[str | Path] | None = None,
                  variant_ids: list[str] | None = None, out_tsv: str | Path, out_summary: str | Path | None = None,
                  out_png: str | Path | None = None, genes_gtf: str | Path | None = None,
                  covariates: str | Path | None = None, covariate_names: list[str] | None = None,
                  pcs: str | Path | None = None, n_pcs: int = 0, cell_type_key: str = "cell_type",
                  donor_key: str = "donor", layer: str | None = None, window_kb: float = 1000.0,
                  min_cells: int = 5, min_donors: int = 10, min_donor_fraction: float = 0.1, fdr: float = 0.05,
                  max_plots: int = 4) -> dict:
    """File-level :func:`cell_eqtl`: variants from files (:func:`read_variant_list`) and/or IDs.

    Writes ``out_tsv`` (``RESULT_COLUMNS``, numbers with 12 significant digits, ``NA`` where no
    test ran), ``out_summary`` JSON (the summary plus the tests with ``fdr`` < ``fdr``: cell type,
    variant, gene, beta, se, p, fdr; aggregate only) and ``out_png`` (box plots of pseudobulk
    expression by genotype in each cell type for the top eQTL, :func:`eqtl_boxplots`). Nothing is
    written when an input is bad. Returns the summary.
    """
    from cohortflow.io.h5ad import read_h5ad
    from cohortflow.singlecell.eqtl_plots import eqtl_boxplots

    ids: list[str] = []
    sources = {}
    for path in variants or []:
        got = read_variant_list(path)
        sources[Path(path).name] = len(got)
        ids += got
    ids += list(variant_ids or [])
    ids = list(dict.fromkeys(ids))
    if min_cells < 1 or min_donors < 3 or not 0 <= min_donor_fraction < 1 or window_kb < 0:
        raise CohortflowError(f"min_cells={min_cells}, min_donors={min_donors}, min_donor_fraction="
                              f"{min_donor_fraction}, window_kb={window_kb}: need >= 1, >= 3, [0, 1), >= 0")
    adata = read_h5ad(h5ad)
    result = cell_eqtl(adata, bfile, ids, genes_gtf=genes_gtf, covariates=covariates, covariate_names=covariate_names,
                       pcs=pcs, n_pcs=n_pcs, cell_type_key=cell_type_key, donor_key=donor_key, layer=layer,
                       window_kb=window_kb, min_cells=min_cells, min_donors=min_donors,
                       min_donor_fraction=min_donor_fraction, h5ad_path=h5ad)
    res = result["results"]
    sig = res[res["fdr"] < fdr].sort_values(["p_value", "cell_type", "variant_id", "gene"], kind="stable")
    summary = {**result["summary"], "variant_sources": sources, "fdr_threshold": fdr,
               "n_significant": int(len(sig)),
               "significant": [{"cell_type": r.cell_type, "variant_id": r.variant_id, "gene": r.gene,
                                "beta": float(r.beta), "se": float(r.se), "p_value": float(r.p_value),
                                "fdr": float(r.fdr)} for r in sig.head(100).itertuples()],
               "parameters": {"window_kb": window_kb, "min_cells": min_cells, "min_donors": min_donors,
                              "min_donor_fraction": min_donor_fraction, "n_pcs": n_pcs,
                              "cell_type_key": cell_type_key, "donor_key": donor_key,
                              "pseudobulk": "log1p(mean over cells of counts per 10,000)",
                              "window_from": "TSS", "effect_allele": ".bim A1 (ALT)"}}
    if out_png is not None:
        summary["plotted"] = eqtl_boxplots(res, result["pseudobulk"], result["dosage"], out_png=out_png,
                                           fdr=fdr, max_pairs=max_plots)
    write_table_atomic(out_tsv, res, float_format="%.12g", na_rep="NA")
    if out_summary is not None:
        write_json_atomic(out_summary, summary)
    log.info("cell-eqtl: %d tests, %d with FDR < %g", summary["n_tests"], len(sig), fdr)
    return summary
