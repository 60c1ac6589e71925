"""scDRS (Zhang et al. 2022, Nat Genet) per-cell disease scores, as scDRS 1.0.2 computes them.

The method, step by step (what :func:`preprocess`, :func:`score_cells` and
:func:`group_analysis` do; names as in scDRS):

1. Expression on scDRS's scale: counts normalised to 1e4 per cell, log1p (:func:`log_normalize`;
   data already on that scale are used as they are).
2. Covariates (optional, e.g. a constant and the number of genes per cell): regressed out of
   every gene *implicitly*: corrected = X + C @ B + m with B = -(C'C)^-1 C'X and m the gene means
   (categorical covariates become dummies, missing values the column mean, a constant is added
   unless the covariates already span one). X stays sparse; the correction enters as rank-k terms.
3. Gene statistics of the corrected data: mean and variance on the log scale, and on the count
   scale (expm1); technical variance = a loess fit (degree 2, span 0.3) of log10 count-scale
   variance on log10 count-scale mean, carried to the log scale as var * ct_var_tech / ct_var.
   Genes are put into n_mean_bin x n_var_bin bins (quantiles of mean, then of variance within
   each mean bin; 20 x 20, fewer when there are few genes: floor(sqrt(n_genes / 10))).
4. Control gene sets: for each of n_ctrl sets and each mean-variance bin holding k disease
   genes, k genes drawn without replacement from the bin (disease genes included), with the
   disease genes' GWAS weights. The draws use numpy's legacy seeded generator in scDRS's order,
   so the control sets are scDRS's own for the same seed and bins.
5. Raw score of a set: weighted mean of corrected expression, weights GWAS weight /
   sqrt(var_tech + 0.01) normalised to sum 1 (scDRS "vs"). All 1 + n_ctrl raw scores are
   X @ W + C @ (B @ W) + m @ W with W sparse (genes x sets), in numba over cell blocks.
6. Normalisation: centre each set over cells, scale controls by sqrt of the independent
   variance ratio (sum var w^2), standardise each cell by its control scores' mean and sd,
   centre again; cells whose raw score is exactly 0 go to the bottom. mc_pval: the cell's own
   control scores; pval: the pooled control scores of all cells, (1 + #null >= s) / (1 + N);
   zscore = -Phi^-1(pval) clipped to +-10.
7. Group analysis per cell type: association (95 % quantile of the group's normalised scores
   vs the same of each control set: assoc_mcp, assoc_mcz), heterogeneity (Geary's C of the
   group's scores on the cell kNN graph vs control scores mapped onto the group's score
   distribution: hetero_mcp, hetero_mcz), and cells at FDR (BH over all cells) < 0.05/0.1/0.2.

What differs from scDRS 1.0.2: no cell/gene filtering (scDRS's CLI filters cells with
< 250 genes and genes in < 50 cells by default; our single-cell stage has already filtered).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.singlecell.scdrs_kernels import (col_sums_in_order, corrected_gene_moments, gearys_c_sub,
                                                 legacy_permutation_heads, score_pass_cellwise, score_pass_final,
                                                 xt_dense)

SCORE_COLUMNS = ["raw_score", "norm_score", "mc_pval", "pval", "nlog10_pval", "zscore"]
GENE_STATS_COLUMNS = ["mean", "var", "var_tech", "ct_mean", "ct_var", "ct_var_tech", "mean_var"]
FDR_THRESHOLDS = (0.05, 0.1, 0.2)
MAX_GWAS_WEIGHT = 10.0        # munge-gs --weight zscore clips weights here
MIN_GENE_SET_SIZE = 10        # scDRS compute-score skips smaller gene sets


# ---------------------------------------------------------------------------------------------
# gene sets
# ---------------------------------------------------------------------------------------------

def load_gs(path: str | Path) -> dict[str, pd.Series]:
    """Read a scDRS ``.gs`` file: header ``TRAIT<TAB>GENESET``, one trait a line, genes separated
    by commas, each ``gene`` (weight 1) or ``gene:weight`` (all of a line alike).

    Returns {trait: Series gene -> weight} in file order (a gene listed twice keeps its last
    weight, as scDRS). A malformed line is one InputFormatError naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read gene-set file ({exc})", path=path) from None
    if not lines or lines[0].split("\t")[:2] != ["TRAIT", "GENESET"]:
        raise InputFormatError("header must be 'TRAIT<TAB>GENESET'", path=path, record="line 1")
    out: dict[str, pd.Series] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise InputFormatError("expected two tab-separated fields TRAIT and GENESET", path=path,
                                   record=f"line {lineno}")
        trait, geneset = fields
        items = [g.split(":") for g in geneset.split(",")]
        if all(len(g) == 1 for g in items):
            weights = {g[0]: 1.0 for g in items}
        elif all(len(g) == 2 for g in items):
            try:
                weights = {g[0]: float(g[1]) for g in items}
            except ValueError:
                raise InputFormatError(f"gene set {trait!r} has a weight that is not a number", path=path,
                                       record=f"line {lineno}") from None
        else:
            raise InputFormatError(f"gene set {trait!r} mixes 'gene' and 'gene:weight' entries", path=path,
                                   record=f"line {lineno}")
        if trait in out:
            raise InputFormatError(f"trait {trait!r} appears twice", path=path, record=f"line {lineno}")
        out[trait] = pd.Series(weights, dtype=float, name=trait)
    if not out:
        raise InputFormatError("no gene set", path=path)
    return out


def n_gene_set_genes(p_values: np.ndarray, *, n_max: int = 1000, fdr: float | None = None,
                     fwer: float | None = None, n_min: int = 100) -> int:
    """How many genes ``scdrs munge-gs`` puts in a gene set: with ``fdr``, the genes rejected by
    Benjamini-Hochberg at that level; with ``fwer``, by Bonferroni (n x p <= fwer); then bounded to
    [min(n_min, n_max), n_max]. Without either, ``n_max``. ``p_values``: every gene's one-sided p."""
    if fdr is not None and fwer is not None:
        raise CohortflowError("give at most one of fdr and fwer")
    if n_max < 1:
        raise CohortflowError(f"n_max={n_max}: need at least 1 gene")
    p = np.sort(np.asarray(p_values, dtype=np.float64))
    n = p.size
    if fdr is not None:
        passed = np.flatnonzero(p <= fdr * np.arange(1, n + 1) / n)
        n_gene = int(passed[-1] + 1) if passed.size else 0
    elif fwer is not None:
        n_gene = int(np.sum(p * n <= fwer))
    else:
        n_gene = n_max
    return max(min(n_gene, n_max), min(n_min, n_max))


def gene_set_from_gene_scores(gene_table: pd.DataFrame, *, n_genes: int = 1000, fdr: float | None = None,
                              fwer: float | None = None, n_min: int = 100, universe=None) -> pd.Series:
    """The gene set ``scdrs munge-gs --zscore-file ... --weight zscore --n-max n_genes [--fdr F |
    --fwer F --n-min n_min]`` makes from gene z-scores (columns gene, z): one-sided p = 1 - Phi(z);
    the number of genes from :func:`n_gene_set_genes` over every gene with a finite z (the
    family the multiple-testing rule counts), taken as the smallest p (ties by gene name), weight
    = Phi^-1(1 - max(p, 1e-100)) clipped at 10, rounded to 5 significant digits as munge-gs
    writes them. ``universe`` (e.g. the expression matrix's genes): pick the genes among these
    only, as the set is then used on that matrix. Returns Series gene -> weight, best first.
    """
    table = gene_table.loc[np.isfinite(pd.to_numeric(gene_table["z"], errors="coerce").to_numpy(dtype=float))]
    table = table.drop_duplicates("gene", keep="first")
    if table.empty:
        raise CohortflowError("no gene with a finite z-score")
    n_use = n_gene_set_genes(np.exp(stats.norm.logsf(table["z"].to_numpy(dtype=float))), n_max=n_genes,
                             fdr=fdr, fwer=fwer, n_min=n_min)
    if universe is not None:
        table = table.loc[table["gene"].astype(str).isin(pd.Index(universe).astype(str))]
        if table.empty:
            raise CohortflowError("no gene with a gene score is among the expression matrix's genes")
    z = table["z"].to_numpy(dtype=float)
    logp = stats.norm.logsf(z)
    order = np.lexsort((table["gene"].astype(str).to_numpy(), -z))[:n_use]
    p = np.exp(logp[order]).clip(min=1e-100)
    weights = np.minimum(stats.norm.isf(p), MAX_GWAS_WEIGHT)
    weights = np.array([float(f"{w:.5g}") for w in weights])
    return pd.Series(weights, index=table["gene"].astype(str).to_numpy()[order], name="weight")


# ---------------------------------------------------------------------------------------------
# expression and covariates
# ---------------------------------------------------------------------------------------------

def _looks_like_counts(x) -> bool:
    data = x.data if sp.issparse(x) else np.asarray(x)
    sample = np.asarray(data).ravel()[:200000]
    return bool(sample.size) and bool(np.all(sample >= 0)) and bool(np.all(np.equal(np.mod(sample, 1), 0)))


def log_normalize(adata) -> sp.csr_matrix:
    """Expression on scDRS's scale as CSR (float32 kept when the input is float32).

    Counts (``layers['counts']``, else X when it holds non-negative integers) are normalised to
    1e4 per cell and log1p-transformed (scanpy's normalize_per_cell + log1p, as
    ``scdrs compute-score --flag-raw-count True``); otherwise X is taken as already on that scale.
    Negative or NaN values are an error (scDRS's loess needs non-negative expression).
    """
    counts = adata.layers["counts"] if "counts" in adata.layers else (adata.X if _looks_like_counts(adata.X) else None)
    src = adata.X if counts is None else counts
    mat = sp.csr_matrix(src)          # shares the data of an already-CSR input
    if mat.dtype not in (np.float32, np.float64):
        mat = mat.astype(np.float32)
    elif counts is not None:
        mat = mat.copy()                  # normalised in place below: leave the input's counts alone
    if mat.nnz and not (np.isfinite(mat.data.sum()) and mat.data.min() >= 0):   # (no nnz-sized temporaries)
        first = int(np.flatnonzero(~np.isfinite(mat.data) | (mat.data < 0))[0])
        row = int(np.searchsorted(mat.indptr, first, side="right")) - 1
        where = "layers['counts']" if "counts" in adata.layers else "X"
        raise CohortflowError(f"expression has negative or non-finite values (first: {where}[cell "
                              f"{adata.obs_names[row]!r}, gene {adata.var_names[mat.indices[first]]!r}] = "
                              f"{mat.data[first]:g}); scDRS needs non-negative expression")
    if counts is not None:
        totals = np.asarray(mat.sum(axis=1), dtype=np.float64).ravel()
        scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0).astype(mat.dtype)
        mat.data *= np.repeat(scale, np.diff(mat.indptr))
        np.log1p(mat.data, out=mat.data)
    mat.sort_indices()
    return mat


def read_covariates(path: str | Path) -> pd.DataFrame:
    """A scDRS ``.cov`` file: tab-separated, first column the cell names, one column per covariate."""
    try:
        df = pd.read_csv(path, sep="\t", index_col=0)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot read covariates ({exc})", path=path) from None
    if df.shape[1] == 0:
        raise InputFormatError("no covariate column (expected: cell name, then covariates)", path=path)
    if not df.index.is_unique:
        dup = df.index[df.index.duplicated()][0]
        raise InputFormatError("cell listed twice", path=path, record=str(dup))
    return df


def covariate_matrix(cov: pd.DataFrame, obs_names, *, path=None) -> pd.DataFrame:
    """Covariates aligned to the cells as scDRS uses them: categorical columns as dummies (first
    level dropped), missing values filled with the column mean, a constant column SCDRS_CONST
    added unless the covariates span one already. At least 75 % of cells must be covered."""
    obs_names = pd.Index(obs_names)
    if len(obs_names.intersection(cov.index)) <= 0.75 * len(obs_names):
        raise CohortflowError(f"covariates cover {len(obs_names.intersection(cov.index))} of {len(obs_names)} "
                              "cells (scDRS needs more than 75 %)", path=path)
    df = pd.DataFrame(index=obs_names).join(cov)
    categorical = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    for col in categorical:
        dummies = pd.get_dummies(df[col], drop_first=True).astype(float)
        dummies.columns = [f"{col}_{s}" for s in dummies.columns]
        dummies.loc[df[col].isna(), :] = np.nan
        df = pd.concat([df.drop(columns=col), dummies], axis=1)
    df = df.astype(float)
    df = df.fillna(df.mean())
    mat = df.to_numpy()
    ones = np.ones(len(df))
    coef, *_ = np.linalg.lstsq(mat, ones, rcond=None)
    if np.mean((ones - mat @ coef) ** 2) > 0.01:
        df["SCDRS_CONST"] = 1.0
    return df


# ---------------------------------------------------------------------------------------------
# preprocessing: gene statistics
# ---------------------------------------------------------------------------------------------

@dataclass
class ScdrsData:
    """Expression plus what scoring needs (scDRS's ``adata.uns['SCDRS_PARAM']``).

    ``X``: CSR cells x genes on the log scale; ``gene_stats``: DataFrame indexed by gene with
    :data:`GENE_STATS_COLUMNS`; with covariates, ``cov`` (cells x k), ``cov_beta`` (k x genes,
    the *negated* regression coefficients) and ``gene_mean`` (genes): corrected = X + cov @
    cov_beta + gene_mean.
    """
    X: sp.csr_matrix
    obs_names: pd.Index
    var_names: pd.Index
    gene_stats: pd.DataFrame
    cov: np.ndarray | None = None
    cov_beta: np.ndarray | None = None
    gene_mean: np.ndarray | None = None
    cov_names: list = field(default_factory=list)


def _sparse_col_moments(mat: sp.csr_matrix, transform=None, *, chunk: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and E[x^2] - mean^2 of a CSR matrix (of ``transform`` of its non-zeros, which
    must map 0 to 0), as scipy computes ``mean(axis=0)`` in the matrix's own dtype (float32 stays
    float32, as in scDRS). Returns arrays of the matrix's dtype."""
    dtype = mat.dtype if mat.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    scale = dtype.type(1.0 / mat.shape[0])
    s1 = np.zeros(mat.shape[1], dtype=dtype)
    s2 = np.zeros(mat.shape[1], dtype=dtype)
    for start in range(0, mat.nnz, chunk):
        vals = mat.data[start:start + chunk].astype(dtype, copy=False)
        if transform is not None:
            vals = transform(vals)
        col_sums_in_order(mat.indices[start:start + chunk], vals, scale, s1, s2)
    return s1, s2 - s1 ** 2


def loess_fit(x: np.ndarray, y: np.ndarray, *, span: float = 0.3) -> np.ndarray:
    """Fitted values of loess (degree 2, tricube weights, gaussian family) at every x, with
    the default surface of Cleveland's loess (what ``skmisc.loess.loess(x, y, span, degree=2)``
    computes, the fit scDRS uses): the local fit is evaluated only at the vertices of a k-d
    partition of x (cells split at the median point until they hold at most
    floor(n * span * 0.2) points, ties kept on one side) and blended between vertices by cubic
    Hermite interpolation of the vertex values and slopes. Agrees with skmisc to ~1e-13.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    q = max(3, min(n, int(math.floor(n * span))))
    cell_max = int(math.floor(n * span * 0.2))
    lo, hi = xs[0], xs[-1]
    margin = 0.005 * max(hi - lo, 1e-10 * max(abs(lo), abs(hi)) + 1e-30)
    vertices = {lo - margin, hi + margin}
    stack = [(0, n - 1, lo - margin, hi + margin)]
    while stack:
        left, right, v_lo, v_hi = stack.pop()
        if right - left + 1 <= cell_max:
            continue
        m = (left + right + 2) // 2 - 1            # the median point (1-based (l+u)/2)
        off = 0                                    # nearest split between distinct values: m, m+1, m-1, ...
        while left <= m + off < right:
            if xs[m + off] == xs[m + off + 1]:
                off = -off + (1 if -off >= 0 else 0)
            else:
                m += off
                break
        split = xs[m]
        if split == v_lo or split == v_hi:
            continue
        vertices.add(split)
        stack.append((left, m, v_lo, split))
        stack.append((m + 1, right, split, v_hi))
    verts = np.array(sorted(vertices))
    value = np.empty(verts.size)
    slope = np.empty(verts.size)
    for k, x0 in enumerate(verts):
        dist = np.abs(xs - x0)
        h = np.partition(dist, q - 1)[q - 1]
        h = h if h > 0 else 1.0
        u = (xs - x0) / h
        w = np.where(np.abs(u) < 1, (1 - np.abs(u) ** 3) ** 3, 0.0)
        sw = np.sqrt(w)
        design = np.column_stack([np.ones(n), u, u * u]) * sw[:, None]
        coef = np.linalg.lstsq(design, ys * sw, rcond=None)[0]
        value[k], slope[k] = coef[0], coef[1] / h
    cell = np.clip(np.searchsorted(verts, x, side="right") - 1, 0, verts.size - 2)
    v0, v1 = verts[cell], verts[cell + 1]
    t = (x - v0) / (v1 - v0)
    phi0, phi1 = (1 - t) ** 2 * (1 + 2 * t), t ** 2 * (3 - 2 * t)
    psi0, psi1 = t * (1 - t) ** 2, -t ** 2 * (1 - t)
    return phi0 * value[cell] + phi1 * value[cell + 1] + (psi0 * slope[cell] + psi1 * slope[cell + 1]) * (v1 - v0)


def _mean_var_bins(mean: pd.Series, var: pd.Series, n_mean_bin: int, n_var_bin: int) -> pd.Series:
    """scDRS's 'mean_var' labels: quantile bins of mean, then of variance within each ("i.j")."""
    mean_bin = pd.qcut(mean, n_mean_bin, labels=False, duplicates="drop")
    out = pd.Series("", index=mean.index, dtype=object)
    for b in sorted(set(mean_bin)):
        sel = mean_bin == b
        var_bin = pd.qcut(var[sel], n_var_bin, labels=False, duplicates="drop")
        out[sel] = [f"{b}.{v}" for v in var_bin]
    return out


def preprocess(X: sp.csr_matrix, *, obs_names, var_names, cov: pd.DataFrame | None = None,
               n_mean_bin: int = 20, n_var_bin: int = 20) -> ScdrsData:
    """Covariate correction (implicit) and gene statistics, as ``scdrs.pp.preprocess``.

    ``X``: CSR on the log scale (:func:`log_normalize`); ``cov``: covariate table indexed by cell
    name (:func:`read_covariates`) or None. Returns :class:`ScdrsData`.
    """
    X = sp.csr_matrix(X)
    obs_names = pd.Index(obs_names).astype(str)
    var_names = pd.Index(var_names).astype(str)
    n_cell, n_gene = X.shape
    if n_gene < 10:
        raise CohortflowError(f"{n_gene} genes: too few for scDRS's mean-variance bins")
    res = ScdrsData(X=X, obs_names=obs_names, var_names=var_names, gene_stats=pd.DataFrame())
    if cov is not None:
        cdf = covariate_matrix(cov, obs_names)
        cmat = np.ascontiguousarray(cdf.to_numpy(dtype=np.float64))
        # scipy's mean in X's dtype, as scDRS's COV_GENE_MEAN
        gene_mean = _sparse_col_moments(X)[0].astype(np.float64)
        xtc = xt_dense(X.indptr, X.indices, X.data, cmat, n_gene)            # genes x k, X' C
        beta = np.linalg.solve(cmat.T @ cmat / n_cell, xtc.T / n_cell)      # k x genes
        res.cov, res.cov_beta, res.gene_mean, res.cov_names = cmat, np.ascontiguousarray(-beta), gene_mean, list(cdf.columns)
        mean, var, ct_mean, ct_var = corrected_gene_moments(X.indptr, X.indices, X.data, cmat, res.cov_beta,
                                                            gene_mean, _threads())
    else:
        mean, var = _sparse_col_moments(X)
        ct_mean, ct_var = _sparse_col_moments(X, np.expm1)

    not_const = ct_var > 0
    log_fit = np.zeros(n_gene)
    if not_const.sum() >= 3:
        x = np.log10(ct_mean[not_const])
        y = np.log10(ct_var[not_const])      # in the statistics' dtype, as scDRS passes them
        log_fit[not_const] = loess_fit(x, y, span=0.3)
    ct_var_tech = 10.0 ** log_fit
    with np.errstate(divide="ignore", invalid="ignore"):
        var_tech = var * ct_var_tech / ct_var
    var_tech = np.where(np.isnan(var_tech), 0.0, var_tech)
    gs = pd.DataFrame({"mean": mean, "var": var, "var_tech": var_tech, "ct_mean": ct_mean, "ct_var": ct_var,
                       "ct_var_tech": ct_var_tech}, index=var_names)
    n_bin_max = int(math.floor(math.sqrt(n_gene / 10)))
    if n_mean_bin > n_bin_max or n_var_bin > n_bin_max:
        n_mean_bin = n_var_bin = n_bin_max
    gs["mean_var"] = _mean_var_bins(gs["mean"], gs["var"], n_mean_bin, n_var_bin)
    res.gene_stats = gs
    return res


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------

def select_ctrl_genes(gene_stats: pd.DataFrame, genes: list[str], weights: np.ndarray, *, n_ctrl: int,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scDRS's control gene sets (``_select_ctrl_geneset`` with ctrl_match_key='mean_var').

    ``genes`` sorted disease genes (all in gene_stats), ``weights`` their GWAS weights. Bins are
    visited in scDRS's order (bin labels sorted as strings); for each bin holding disease genes
    and for each control set, as many genes as the bin has disease genes are drawn without
    replacement from the bin's genes sorted by name: the head of ``RandomState(seed).permutation``,
    what legacy ``np.random.choice(replace=False)`` does (reproduced in numba from the
    generator's raw outputs: ~100x faster than 400,000 calls, same draws). Returns (ctrl_genes (n_ctrl x n_dis) row
    positions in gene_stats, ctrl_weights (n_dis,) the GWAS weight of each column).
    """
    rng = np.random.RandomState(seed)
    stream = np.empty(0, dtype=np.uint32)     # the generator's raw 32-bit outputs, in order
    cursor = 0
    names = gene_stats.index.to_numpy().astype(str)
    pos_of = pd.Series(np.arange(len(names)), index=names)
    labels = gene_stats["mean_var"].astype(str).to_numpy()
    gene_weight = dict(zip(genes, weights))
    dis_set = set(genes)
    by_bin: dict[str, list[str]] = {}
    for g, b in zip(names, labels):
        by_bin.setdefault(b, []).append(g)
    cols_genes: list[np.ndarray] = []
    cols_weights: list[float] = []
    for b in sorted(by_bin):
        bin_genes = sorted(by_bin[b])
        bin_dis = sorted(dis_set.intersection(bin_genes))
        if not bin_dis:
            continue
        k = len(bin_dis)
        n = len(bin_genes)
        heads = np.empty((n_ctrl, k), dtype=np.int64)
        while True:   # a buffer of the generator's raw outputs, topped up when a bin needs more
            used = legacy_permutation_heads(stream, cursor, n, k, n_ctrl, heads)
            if used >= 0:
                cursor = used
                break
            stream = np.concatenate([stream[cursor:], rng.randint(0, 2**32, size=2 * n * n_ctrl + 1024, dtype=np.uint32)])
            cursor = 0
        cols_genes.append(pos_of.loc[bin_genes].to_numpy()[heads])
        cols_weights.extend(gene_weight[g] for g in bin_dis)
    if not cols_genes:
        return np.empty((n_ctrl, 0), dtype=np.int64), np.empty(0)
    return np.hstack(cols_genes), np.asarray(cols_weights, dtype=np.float64)


def _set_weights(var_tech: np.ndarray, gwas_weight: np.ndarray) -> np.ndarray:
    w = gwas_weight / np.sqrt(var_tech + 1e-2)
    return w / w.sum(axis=-1, keepdims=True)


def score_cells(data: ScdrsData, gene_weights: pd.Series, *, n_ctrl: int = 1000, seed: int = 0,
                return_ctrl_norm_score: bool = False) -> tuple[pd.DataFrame, np.ndarray | None]:
    """scDRS scores of every cell for one gene set (``scdrs.score_cell``, weight_opt 'vs',
    ctrl_match_key 'mean_var').

    ``gene_weights``: Series gene -> GWAS weight; genes absent from the data are dropped.
    Returns (scores, ctrl_norm): scores is a float32 DataFrame indexed by cell with
    :data:`SCORE_COLUMNS`; ctrl_norm (cells x n_ctrl float32, the control sets' normalised
    scores) only with ``return_ctrl_norm_score``, else None. ``scores.attrs``: n_genes (genes
    scored), genes, n_ctrl.
    """
    gs = data.gene_stats
    names = gs.index
    if not names.is_unique:
        raise CohortflowError("gene names of the expression matrix are not unique")
    weights = gene_weights[~gene_weights.index.duplicated(keep="last")]
    genes = sorted(set(weights.index.astype(str)) & set(names))
    if not genes:
        raise CohortflowError("no gene of the gene set is in the expression matrix")
    gw = weights.loc[genes].to_numpy(dtype=np.float64)
    pos_of = pd.Series(np.arange(len(names)), index=names)
    dis_pos = pos_of.loc[genes].to_numpy()
    ctrl_pos, ctrl_gw = select_ctrl_genes(gs, genes, gw, n_ctrl=n_ctrl, seed=seed)

    var_tech = gs["var_tech"].to_numpy(dtype=np.float64)
    var = gs["var"].to_numpy(dtype=np.float64)
    w_dis = _set_weights(var_tech[dis_pos], gw)
    w_ctrl = _set_weights(var_tech[ctrl_pos], ctrl_gw[None, :])                    # n_ctrl x n_dis
    var_ratio = (var[ctrl_pos] * w_ctrl ** 2).sum(axis=1) / (var[dis_pos] * w_dis ** 2).sum()
    ctrl_scale = np.concatenate([[1.0], 1.0 / np.sqrt(var_ratio)])

    n_sets = 1 + n_ctrl
    rows = np.concatenate([dis_pos, ctrl_pos.ravel()])
    cols = np.concatenate([np.zeros(dis_pos.size, dtype=np.int64), np.repeat(np.arange(1, n_sets), ctrl_pos.shape[1])])
    vals = np.concatenate([w_dis, w_ctrl.ravel()])
    W = sp.csr_matrix((vals, (rows, cols)), shape=(len(names), n_sets))
    W.sum_duplicates()
    w_indptr, w_sets, w_vals = W.indptr.astype(np.int64), W.indices.astype(np.int32), W.data.astype(np.float64)
    if data.cov is not None:
        cov = data.cov
        cov_proj = np.ascontiguousarray((W.T @ data.cov_beta.T).T)                  # k x sets
        const = np.asarray(W.T @ data.gene_mean).ravel()
    else:
        cov = np.zeros((data.X.shape[0], 0))
        cov_proj = np.zeros((0, n_sets))
        const = np.zeros(n_sets)
    X = data.X
    args = (X.indptr, X.indices, X.data, w_indptr, w_sets, w_vals, cov, cov_proj, const, n_sets, _threads())
    n_cell = X.shape[0]

    # the raw scores' column means are linear in X: W' xbar + cbar P + const (no pass needed)
    xbar = np.zeros(X.shape[1])
    step = 1 << 22
    for start in range(0, X.nnz, step):
        xbar += np.bincount(X.indices[start:start + step], weights=X.data[start:start + step].astype(np.float64),
                            minlength=X.shape[1])
    xbar /= n_cell
    col_mean = np.asarray(W.T @ xbar).ravel() + cov.mean(axis=0) @ cov_proj + const if n_cell else const
    raw0, norm_pre, cell_mean, cell_sd, colsum2 = score_pass_cellwise(*args, col_mean, ctrl_scale)
    norm = norm_pre - norm_pre.mean()
    ctrl_col_mean2 = colsum2 / n_cell
    zero = raw0 == 0
    t_sorted = np.sort(norm[~zero])
    ctrl_out = np.empty((n_cell, n_ctrl), dtype=np.float32) if return_ctrl_norm_score else np.empty((0, 0), np.float32)
    hist, cell_ge, cell_zero, ctrl_min, n_zero = score_pass_final(
        *args, col_mean, ctrl_scale, cell_mean, cell_sd, ctrl_col_mean2, norm, t_sorted,
        return_ctrl_norm_score, ctrl_out)
    global_min = min(float(norm.min()), float(ctrl_min))
    n_null = n_cell * n_ctrl
    # count of null values >= t: positions (#t' <= v) above #{t' < t}
    suffix = np.concatenate([np.cumsum(hist[::-1])[::-1], [0]])
    left = np.searchsorted(t_sorted, norm, side="left")
    at_min = norm <= global_min
    n_ge = suffix[np.minimum(left + 1, hist.size)] + np.where(at_min, n_zero, 0)
    mc_ge = cell_ge + np.where(at_min, cell_zero, 0)
    norm = norm.copy()
    norm[zero] = global_min - 1e-3
    n_ge[zero] = n_null
    mc_ge[zero] = n_ctrl
    pval = (n_ge + 1.0) / (n_null + 1.0)
    scores = pd.DataFrame({
        "raw_score": raw0, "norm_score": norm, "mc_pval": (mc_ge + 1.0) / (n_ctrl + 1.0), "pval": pval,
        "nlog10_pval": -np.log10(pval), "zscore": np.clip(-stats.norm.ppf(pval), -10, 10)},
        index=data.obs_names, dtype=np.float32)
    scores.index.name = "index"
    scores.attrs.update(n_genes=len(genes), genes=genes, n_ctrl=int(n_ctrl))
    if return_ctrl_norm_score:
        np.nan_to_num(ctrl_out, copy=False, nan=np.float32(global_min))
        return scores, ctrl_out
    return scores, None


# ---------------------------------------------------------------------------------------------
# group analysis
# ---------------------------------------------------------------------------------------------

def knn_connectivities(adata, X: sp.csr_matrix, *, n_neighbors: int = 15, n_pcs: int = 20) -> sp.csr_matrix:
    """The cell graph scDRS's group analysis uses: ``obsp['connectivities']`` when present, else
    scanpy PCA (``n_pcs``, at most min(shape) - 1) and ``sc.pp.neighbors`` on the log expression."""
    if "connectivities" in adata.obsp:
        return sp.csr_matrix(adata.obsp["connectivities"])
    import anndata
    import scanpy as sc

    tmp = anndata.AnnData(X=X.copy())
    n_pcs = min(n_pcs, min(X.shape) - 1)
    sc.pp.pca(tmp, n_comps=n_pcs)
    sc.pp.neighbors(tmp, n_neighbors=n_neighbors, n_pcs=n_pcs)
    return sp.csr_matrix(tmp.obsp["connectivities"])


def group_analysis(scores: pd.DataFrame, ctrl_norm: np.ndarray, groups, graph: sp.csr_matrix, *,
                   fdr_thresholds=FDR_THRESHOLDS) -> pd.DataFrame:
    """scDRS group-level analysis (``downstream_group_analysis``) for one annotation.

    ``scores``: :func:`score_cells` output (norm_score, pval; index = cells); ``ctrl_norm``
    cells x n_ctrl; ``groups`` one label per cell; ``graph`` the cells' kNN connectivities.
    Returns a DataFrame indexed by group (sorted) with n_cell, n_ctrl, assoc_mcp, assoc_mcz,
    hetero_mcp, hetero_mcz, n_fdr_<t> (float32, as scDRS writes it).
    """
    from statsmodels.stats.multitest import multipletests

    groups = pd.Series(np.asarray(groups, dtype=object), index=scores.index).astype(str)
    names = scores.index.to_numpy().astype(str)
    norm = scores["norm_score"].to_numpy(dtype=np.float64)
    ctrl = np.asarray(ctrl_norm, dtype=np.float64)
    n_ctrl = ctrl.shape[1]
    fdr = multipletests(scores["pval"].to_numpy(dtype=np.float64), method="fdr_bh")[1]
    graph = sp.csr_matrix(graph)
    rows = []
    group_list = sorted(set(groups))
    for g in group_list:
        idx = np.flatnonzero(groups.to_numpy() == g)
        idx = idx[np.argsort(names[idx], kind="stable")]      # scDRS works on cells sorted by name
        q = np.quantile(norm[idx], 0.95)
        q_ctrl = np.quantile(ctrl[idx], 0.95, axis=0)
        assoc_mcp = ((q_ctrl >= q).sum() + 1) / (n_ctrl + 1)
        assoc_mcz = (q - q_ctrl.mean()) / q_ctrl.std()
        sub = graph[idx][:, idx].tocsr()
        ip, ix, wd = sub.indptr.astype(np.int64), sub.indices.astype(np.int64), sub.data.astype(np.float64)
        g_norm = norm[idx]
        trait_c = gearys_c_sub(ip, ix, wd, g_norm)
        ref_sorted = np.sort(g_norm)
        null_c = np.empty(n_ctrl)
        for k in range(n_ctrl):
            ranks = stats.rankdata(ctrl[idx, k], method="ordinal") - 1
            null_c[k] = gearys_c_sub(ip, ix, wd, ref_sorted[ranks])
        hetero_mcp = ((trait_c > null_c).sum() + 1) / (n_ctrl + 1) if np.isfinite(trait_c) else np.nan
        hetero_mcz = -(trait_c - null_c.mean()) / null_c.std(ddof=1) if n_ctrl > 1 else np.nan
        row = {"n_cell": idx.size, "n_ctrl": n_ctrl, "assoc_mcp": assoc_mcp, "assoc_mcz": assoc_mcz,
               "hetero_mcp": hetero_mcp, "hetero_mcz": hetero_mcz}
        for t in fdr_thresholds:
            row[f"n_fdr_{t}"] = int((fdr[idx] < t).sum())
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index(group_list, name="group"), dtype=np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _safe_name(trait: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", trait)


def spot_regions(adata, X, *, region_key: str | None = None, n_clusters: int = 6,
                 seed: int = 0) -> tuple[str, np.ndarray, str]:
    """The regions of a slide's spots: obs[``region_key``], else the first of
    ``integration.REGION_KEYS`` in obs, else k-means clusters (``n_clusters``, seeded) of the log
    expression ``X``. Returns (key, one label per spot, a sentence saying where they come from)."""
    from cohortflow.singlecell.integration import REGION_KEYS, _kmeans_clusters

    key = region_key if region_key is not None else next((k for k in REGION_KEYS if k in adata.obs), None)
    if key is not None:
        if key not in adata.obs:
            raise CohortflowError(f"spatial obs has no {key!r} column")
        return key, adata.obs[key].astype(str).to_numpy(), f"obs['{key}']"
    k = min(n_clusters, adata.n_obs)
    labels = np.asarray(_kmeans_clusters(sp.csr_matrix(X), n_clusters=k, seed=seed)).astype(str)
    return "spatial_cluster", labels, f"k-means (k={k}) of log expression (no region annotation in obs)"


def region_order(table: pd.DataFrame) -> list[str]:
    """Regions of a :func:`spatial_score_analysis` table, most significant first (association
    Monte-Carlo p; ties, frequent as the p floors at 1 / (n_ctrl + 1), by higher mean score)."""
    key = pd.DataFrame({"p": table["assoc_mcp"].astype(float), "mean": table["mean_norm_score"].astype(float)})
    return [str(r) for r in key.sort_values(["p", "mean"], ascending=[True, False], kind="stable").index]


def spatial_score_analysis(adata, X, scores: pd.DataFrame, ctrl_norm: np.ndarray, *, n_perms: int = 999,
                           seed: int = 0, region_key: str | None = None, n_clusters: int = 6,
                           regions: tuple[str, np.ndarray, str] | None = None) -> tuple[dict, pd.DataFrame | None]:
    """Where on a slide a disease score concentrates.

    Graph: ``obsp['spatial_connectivities']`` when present (e.g. from ``cohortflow spatial``),
    else squidpy's 6-nearest-neighbour graph of ``obsm['spatial']``; weights row-standardised
    (squidpy's convention). Moran's I and Geary's C of ``norm_score`` with analytic (normality)
    and permutation p-values, one-sided for positive autocorrelation. Regions: ``regions`` as
    :func:`spot_regions` returns them, else :func:`spot_regions` of ``region_key``/``n_clusters``;
    each is tested like a cell type (scDRS group analysis: association against the control
    scores, heterogeneity as Geary's C on the spatial graph). Returns (JSON-ready info, region
    table or None when there is a single region).
    """
    from cohortflow.singlecell.spatial import spatial_autocorrelation, spatial_graph

    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    if "spatial_connectivities" in adata.obsp:
        graph = sp.csr_matrix(adata.obsp["spatial_connectivities"], dtype=np.float64)
        source = "obsp['spatial_connectivities']"
    else:
        graph, _ = spatial_graph(xy, graph="knn", n_neighbors=6)
        source = "6-nearest-neighbour graph of obsm['spatial'] (squidpy's)"
    values = scores["norm_score"].to_numpy(dtype=np.float64)[:, None]
    moran, geary = spatial_autocorrelation(values, graph, ["norm_score"], n_perms=n_perms, seed=seed)
    m, g = moran.iloc[0], geary.iloc[0]
    key, labels, region_source = regions if regions is not None else spot_regions(
        adata, X, region_key=region_key, n_clusters=n_clusters, seed=seed)
    info = {"n_spots": int(adata.n_obs), "graph": source, "weights": "row-standardised (squidpy)",
            "morans_i": float(m["I"]), "morans_expected": float(m["expected"]), "morans_z": float(m["z_norm"]),
            "morans_p_analytic": float(m["pval_norm"]),
            "morans_p_permutation": float(m["pval_sim"]) if n_perms > 0 else None,
            "gearys_c": float(g["C"]), "gearys_p_analytic": float(g["pval_norm"]),
            "gearys_p_permutation": float(g["pval_sim"]) if n_perms > 0 else None, "n_perms": int(n_perms),
            "region_key": key, "region_source": region_source}
    if len(np.unique(labels)) < 2:
        return info, None
    table = group_analysis(scores, ctrl_norm, labels, graph)
    means = pd.Series(values[:, 0]).groupby(labels).mean()
    table["mean_norm_score"] = means.reindex(table.index).to_numpy()
    # the most significant region; among equally significant ones (Monte-Carlo p floors at
    # 1 / (n_ctrl + 1)) the one with the highest mean score
    order = region_order(table)
    info["top_region"] = str(order[0])
    info["top_region_assoc_mcp"] = float(table.loc[order[0], "assoc_mcp"])
    info["mean_norm_score_by_region"] = {str(r): round(float(v), 6) for r, v in means.sort_index().items()}
    return info, table


def disease_score_files(*, h5ad: str | Path, out: str | Path, gene_scores: str | Path | None = None,
                        gene_set: str | Path | None = None, trait: str | None = None, n_genes: int = 1000,
                        fdr: float | None = None, fwer: float | None = None, n_min: int = 100, n_ctrl: int = 1000, covariates: str | Path | None = None, seed: int = 0,
                        group_key: str | None = "cell_type", write_h5ad: bool = True, n_perms: int = 999) -> dict:
    """``cohortflow disease-score``: scDRS scores from files.

    Exactly one of ``gene_scores`` (our gene-score TSV, columns gene and z: turned into a gene set
    as ``scdrs munge-gs --weight zscore --n-max n_genes [--fdr | --fwer, --n-min n_min]``; trait named ``trait`` or the file's
    stem) and ``gene_set`` (a scDRS ``.gs`` file, every trait in it; gene sets under 10 genes in
    the data are skipped, as scDRS does). Writes, atomically, for each trait T:

    - ``{out}.T.score.tsv.gz``: index, raw_score, norm_score, mc_pval, pval, nlog10_pval, zscore
      (scDRS's ``.score.gz`` columns and float32 values);
    - ``{out}.T.scdrs_group.{group_key}.tsv``: the group table (when ``group_key`` is in obs);

    - on a spatial slide (``obsm['spatial']``), ``{out}.T.spatial.json``: Moran's I and Geary's C
      of the normalised score on the slide's graph with analytic and ``n_perms`` permutation
      p-values, and the region where the score concentrates (:func:`spatial_score_analysis`),
      with the region table ``{out}.T.scdrs_group.{region_key}.tsv`` (scDRS group analysis of the
      regions, heterogeneity on the spatial graph);

    and ``{out}.gene_stats.tsv`` (scDRS's gene statistics) and ``{out}.h5ad`` (the input cells
    with the scores in obs as ``T.norm_score`` etc.; not with ``write_h5ad=False``). Returns
    {trait: {"n_genes": ..., "score": path, "group": path or None}}.
    """
    from cohortflow.io.atomic import atomic_path, write_json_atomic, write_table_atomic
    from cohortflow.io.h5ad import read_h5ad
    from cohortflow.singlecell.integration import read_gene_scores

    if (gene_scores is None) == (gene_set is None):
        raise CohortflowError("give exactly one of --gene-scores and --gene-set")
    adata = read_h5ad(h5ad)
    if group_key is not None and group_key not in adata.obs:
        group_key = None
    if gene_set is not None:
        sets = load_gs(gene_set)
    else:
        name = trait or re.sub(r"(\.gene_scores)?\.tsv(\.gz)?$", "", Path(gene_scores).name)
        sets = {name: gene_set_from_gene_scores(read_gene_scores(gene_scores), n_genes=n_genes, fdr=fdr,
                                                fwer=fwer, n_min=n_min)}
    cov = read_covariates(covariates) if covariates is not None else None
    try:
        X = log_normalize(adata)
    except CohortflowError as exc:
        if exc.path is None:
            raise CohortflowError(exc.problem, path=h5ad) from None
        raise
    try:
        data = preprocess(X, obs_names=adata.obs_names, var_names=adata.var_names, cov=cov)
    except CohortflowError as exc:
        if covariates is not None and exc.path is None and "covariates" in exc.problem:
            raise CohortflowError(exc.problem, path=covariates) from None
        raise
    graph = None
    results = {}
    obs_cols = {}
    tables = []
    jsons = []
    for name, weights in sets.items():
        n_in = int(weights.index.isin(data.var_names).sum())
        if n_in < MIN_GENE_SET_SIZE:
            results[name] = {"n_genes": n_in, "skipped": f"fewer than {MIN_GENE_SET_SIZE} genes in the data"}
            continue
        on_slide = "spatial" in adata.obsm
        scores, ctrl = score_cells(data, weights, n_ctrl=n_ctrl, seed=seed,
                                   return_ctrl_norm_score=group_key is not None or on_slide)
        prefix = f"{out}.{_safe_name(name)}"
        tables.append((f"{prefix}.score.tsv.gz", scores.reset_index()))
        entry = {"n_genes": scores.attrs["n_genes"], "score": f"{prefix}.score.tsv.gz", "group": None}
        if group_key is not None:
            if graph is None:
                graph = knn_connectivities(adata, X)
            grp = group_analysis(scores, ctrl, adata.obs[group_key].astype(str).to_numpy(), graph)
            path = f"{prefix}.scdrs_group.{_safe_name(group_key)}.tsv"
            tables.append((path, grp.reset_index()))
            entry["group"] = path
        if on_slide:
            info, regions = spatial_score_analysis(adata, X, scores, ctrl, n_perms=n_perms, seed=seed)
            if regions is not None:
                path = f"{prefix}.scdrs_group.{_safe_name(info['region_key'])}.tsv"
                tables.append((path, regions.reset_index()))
                info["region_table"] = Path(path).name
            jsons.append((f"{prefix}.spatial.json", info))
            entry["spatial"] = f"{prefix}.spatial.json"
        for col in SCORE_COLUMNS:
            obs_cols[f"{name}.{col}"] = scores[col].to_numpy()
        results[name] = entry
    if not tables:
        raise CohortflowError(f"no gene set has {MIN_GENE_SET_SIZE} or more genes in the expression matrix",
                              path=gene_set or gene_scores)
    gstats = data.gene_stats.copy()
    gstats.index.name = "index"
    tables.append((f"{out}.gene_stats.tsv", gstats.reset_index()))
    for path, df in tables:
        write_table_atomic(path, df, float_format=None)
    for path, obj in jsons:
        write_json_atomic(path, obj)
    if write_h5ad:
        for col, v in obs_cols.items():     # the input object itself (no copy of X): it is not used again
            adata.obs[col] = v
        with atomic_path(f"{out}.h5ad") as tmp:
            adata.write_h5ad(tmp)
    return results
