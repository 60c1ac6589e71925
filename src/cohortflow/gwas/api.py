"""Genome-wide association: linear and logistic regression with covariates, as plink2 --glm.

Several phenotypes are tested in one pass over the genotypes. A sample with a missing genotype
call is left out of that variant's regression only (``n`` varies per variant, as in plink2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd
from scipy import special

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.gwas import kernels
from cohortflow.io.atomic import atomic_open
from cohortflow.io.pheno import is_binary, read_pheno_table, to_binary01
from cohortflow.io.plink import open_bed
from cohortflow.io.sumstats import write_sumstats

MODELS = ("auto", "linear", "logistic")
LOG10_E = math.log10(math.e)


@dataclass
class _PhenoModel:
    """Everything one phenotype's regressions need (sample subset, response, covariate basis)."""

    name: str
    model: str
    sample_idx: np.ndarray  # indices into the .fam order, ascending
    y: np.ndarray
    q: np.ndarray  # orthonormal covariate basis incl. intercept (linear), n x k
    qt: np.ndarray  # scaled basis as rows (logistic), k x n
    qty: np.ndarray
    yty: float
    b_null: np.ndarray
    all_samples: bool  # every .fam sample analysed (no column gather needed)


def covariate_design(covars: pd.DataFrame) -> pd.DataFrame:
    """Numeric design from a covariate table: numeric columns as they are, each categorical
    (non-numeric) column as 0/1 dummies for every category but the first in sorted order (the
    plink2 treatment). Rows with a missing value stay NaN in every column derived from it."""
    parts = []
    for name in covars.columns:
        col = covars[name]
        if col.dtype == object:
            present = col.notna()
            cats = sorted(col[present].unique())
            for cat in cats[1:]:
                dummy = (col == cat).astype(float)
                dummy[~present] = np.nan
                parts.append(dummy.rename(f"{name}={cat}"))
        else:
            parts.append(col.astype(float))
    if not parts:
        return pd.DataFrame(index=covars.index)
    return pd.concat(parts, axis=1)


def _orthonormal_basis(design: np.ndarray, source: str) -> np.ndarray:
    """Orthonormal basis of [1, design] (standardised first for conditioning)."""
    n = design.shape[0]
    cols = [np.ones(n)]
    for j in range(design.shape[1]):
        c = design[:, j]
        sd = c.std()
        if sd > 0:  # constant columns (e.g. a category absent after subsetting) add nothing
            cols.append((c - c.mean()) / sd)
    x = np.column_stack(cols)
    q, r = np.linalg.qr(x)
    diag = np.abs(np.diag(r))
    if diag.min() < 1e-8 * diag.max():
        raise CohortflowError("covariates are collinear (a covariate is a combination of others)", path=source)
    return np.ascontiguousarray(q)


def _prepare(bed, pheno: Path, pheno_names, covar, covar_names, model: str, samples) -> list[_PhenoModel]:
    ptab = read_pheno_table(pheno, columns=pheno_names, require_numeric=True)
    names = list(ptab.columns)
    if not names:
        raise CohortflowError("no phenotype columns", path=pheno)
    fam_iids = bed.fam["iid"].to_numpy()
    keep = pd.Series(True, index=pd.Index(fam_iids))
    if samples is not None:
        keep &= keep.index.isin(list(samples))
    design = None
    if covar is not None:
        ctab = read_pheno_table(covar, columns=covar_names)
        design = covariate_design(ctab).reindex(fam_iids)
        keep &= design.notna().all(axis=1).to_numpy()
    models = []
    for name in names:
        y_all = ptab[name].reindex(fam_iids)
        kind = model
        if kind == "auto":
            kind = "logistic" if is_binary(ptab[name]) else "linear"
        if kind == "logistic":
            if not is_binary(ptab[name]):
                raise InputFormatError(f"phenotype {name!r} is not binary (1/2 or 0/1) but model is logistic",
                                       path=pheno)
            y_all = to_binary01(y_all)
        ok = keep.to_numpy() & y_all.notna().to_numpy()
        idx = np.flatnonzero(ok)
        n_design = 0 if design is None else design.shape[1]
        if len(idx) < n_design + 3:
            raise CohortflowError(f"phenotype {name!r}: only {len(idx)} samples with phenotype, covariates "
                                  "and genotypes", path=pheno)
        y = y_all.to_numpy(float)[idx]
        x = np.zeros((len(idx), 0)) if design is None else design.to_numpy(float)[idx]
        q = _orthonormal_basis(x, str(covar if covar is not None else pheno))
        if kind == "linear":
            yc = y - y.mean()
            qty = q.T @ yc
            models.append(_PhenoModel(name, kind, idx, yc, q, np.empty((0, 0)), qty, float(yc @ yc), np.empty(0),
                                      len(idx) == len(fam_iids)))
        else:
            if y.min() == y.max():
                raise CohortflowError(f"phenotype {name!r}: all analysed samples are cases or all controls",
                                      path=pheno)
            qt = np.ascontiguousarray((q * math.sqrt(len(idx))).T)
            b_null = kernels.logistic_null(qt, y)
            if not np.all(np.isfinite(b_null)):
                raise CohortflowError(f"phenotype {name!r}: covariate-only logistic model does not converge "
                                      "(covariates separate cases from controls)", path=pheno)
            models.append(_PhenoModel(name, kind, idx, y, np.empty((0, 0)), qt, np.empty(0), 0.0, b_null,
                                      len(idx) == len(fam_iids)))
    return models


def _log10_p(stat: np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """log10 of two-sided p-values (t with df, or normal when df is None); NaN stays NaN."""
    out = np.full(stat.shape, np.nan)
    ok = np.isfinite(stat)
    a = np.abs(stat[ok])
    if df is None:
        out[ok] = (math.log(2.0) + special.log_ndtr(-a)) * LOG10_E
    else:
        d = df[ok]
        with np.errstate(divide="ignore"):
            p = 2.0 * special.stdtr(d, -a)
            lp = np.log10(np.minimum(p, 1.0))
        tiny = p < 1e-290
        if tiny.any():
            lp[tiny] = kernels.log_t_two_sided_p(a[tiny].astype(float), d[tiny].astype(float)) * LOG10_E
        out[ok] = lp
    inf = np.isinf(stat)
    if inf.any():
        out[inf] = -np.inf
    return out


def _test_block(pm: _PhenoModel, geno: np.ndarray, firth: bool = True):
    g = geno if pm.all_samples else kernels.gather_samples(geno, pm.sample_idx)
    if pm.model == "linear":
        beta, se, stat, df, nobs, gsum, err = kernels.linear_block(g, pm.q, pm.y, pm.qty, pm.yty)
        log10p = _log10_p(stat, df)
        n_firth = 0
    else:
        beta, se, stat, nobs, gsum, err, used_firth = kernels.logistic_block(g, pm.qt, pm.y, pm.b_null, firth)
        log10p = _log10_p(stat, None)
        n_firth = int(used_firth.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(nobs > 0, gsum / (2.0 * nobs), np.nan)
    return beta, se, stat, nobs, freq, err, log10p, n_firth


def run_gwas(*, bfile: str | Path, pheno: str | Path, pheno_names: list[str] | None = None,
             covar: str | Path | None = None, covar_names: list[str] | None = None, model: str = "auto",
             samples: list[str] | None = None, out_prefix: str | Path | None = None,
             out_pattern: str | None = None, block_size: int = 2048, threads: int = 1,
             firth: bool = True) -> dict[str, Path]:
    """Test every variant of ``bfile`` against each phenotype, adjusting for covariates.

    Samples analysed per phenotype: .fam IIDs with a non-missing phenotype and covariates (and in
    ``samples`` when given). ``model``: "linear" (t-test, n - k - 1 df), "logistic" (Wald test
    from Newton-Raphson; beta = log OR) or "auto" (logistic for 1/2 or 0/1 traits). With
    ``firth`` (default, as plink2's firth-fallback) a logistic fit that fails (separation, no
    convergence) is redone with Firth-penalised regression; the sidecar counts them (n_firth).

    Writes ``{out_prefix}.{pheno}.tsv.gz`` (or ``out_pattern.format(pheno=...)``, e.g.
    ``"results/c/gwas/{pheno}.nopcs.tsv.gz"``) (GWAS-SSF: chromosome, base_pair_location,
    effect_allele (= .bim A1), other_allele, beta, standard_error, effect_allele_frequency,
    p_value, n, variant_id, test_statistic, errcode) and a ``{...}.tsv.gz-meta.yaml`` sidecar
    (model, sample_size, n_firth) per phenotype. errcode is empty when the test ran, else one of
    monomorphic, too_few_observations, collinear, no_convergence, separation.
    Returns {phenotype: sumstats path}.
    """
    if (out_prefix is None) == (out_pattern is None):
        raise CohortflowError("give exactly one of out_prefix and out_pattern")
    if model not in MODELS:
        raise CohortflowError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    pheno = Path(pheno)
    bed = open_bed(bfile)
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=max(1, int(threads)))
    except ImportError:  # BLAS threads then follow the environment
        limiter = None
    try:
        models = _prepare(bed, pheno, pheno_names, covar, covar_names, model, samples)
        results = {pm.name: [] for pm in models}
        for _, geno in bed.iter_blocks(block_size):
            for pm in models:
                results[pm.name].append(_test_block(pm, geno, firth))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()

    bim = bed.bim
    paths = {}
    for pm in models:
        parts = results[pm.name]
        cols = [np.concatenate([p[i] for p in parts]) if parts else np.empty(0) for i in range(7)]
        n_firth = sum(p[7] for p in parts)
        beta, se, stat, nobs, freq, err, log10p = cols
        table = pd.DataFrame({
            "chromosome": bim["chrom"].to_numpy(), "base_pair_location": bim["pos"].to_numpy(),
            "effect_allele": bim["a1"].to_numpy(), "other_allele": bim["a2"].to_numpy(),
            "beta": beta, "standard_error": se, "effect_allele_frequency": freq,
            "n": nobs.astype(np.int64), "variant_id": bim["id"].to_numpy(), "test_statistic": stat,
            "errcode": np.array(kernels.ERRCODE_NAMES, dtype=object)[err.astype(np.int64)],
        })
        path = Path(out_pattern.format(pheno=pm.name) if out_pattern else f"{out_prefix}.{pm.name}.tsv.gz")
        write_sumstats(path, table, log10_p=log10p)
        with atomic_open(Path(f"{path}-meta.yaml")) as fh:
            fh.write(f"data_file_name: {path.name}\nfile_type: GWAS-SSF v1.0\ntrait_description: {pm.name}\n"
                     f"model: {pm.model}\nsample_size: {len(pm.sample_idx)}\nn_firth: {n_firth}\n"
                     "analysis_software: cohortflow\n")
        paths[pm.name] = path
    return paths


def read_gwas_meta(sumstats: str | Path) -> dict[str, str]:
    """The ``key: value`` lines of a sumstats' ``-meta.yaml`` sidecar ({} when absent)."""
    meta = Path(f"{sumstats}-meta.yaml")
    if not meta.exists():
        return {}
    out = {}
    for line in meta.read_text(encoding="utf-8").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def make_gwas_covariates(*, covar: str | Path | None, pcs: str | Path, n_pcs: int, out: str | Path) -> None:
    """Join a covariate file and a ``#FID IID PC1 ..`` file into ``#FID IID <covars> PC1..PCn``.

    Samples: those in the PC file (in its order); covariates missing for a sample are written NA.
    Categorical covariates are written as their text (the GWAS makes dummies).
    """
    pc_tab = read_pheno_table(pcs, require_numeric=True)
    pc_cols = [f"PC{i}" for i in range(1, n_pcs + 1)]
    absent = [c for c in pc_cols if c not in pc_tab.columns]
    if absent:
        raise InputFormatError(f"{n_pcs} PCs requested, missing columns {', '.join(absent)}", path=pcs)
    joined = pc_tab[pc_cols]
    if covar is not None:
        ctab = read_pheno_table(covar)
        clash = [c for c in ctab.columns if c in pc_cols]
        if clash:
            raise InputFormatError(f"covariate columns clash with PC names: {', '.join(clash)}", path=covar)
        joined = ctab.reindex(pc_tab.index).join(joined)
    fids = _fids(pcs, pc_tab.index)
    out_df = joined.copy()
    out_df.insert(0, "IID", pc_tab.index.to_numpy())
    out_df.insert(0, "#FID", fids)
    with atomic_open(out) as fh:
        out_df.to_csv(fh, sep="\t", index=False, na_rep="NA", lineterminator="\n", float_format="%.8g")


def _fids(path, iids) -> list[str]:
    """FID column of a #FID IID file (IID when the file has no FID column)."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().split()
        if header[0].lstrip("#") != "FID":
            return list(iids)
        fid_of = {}
        for line in fh:
            f = line.split()
            if len(f) >= 2:
                fid_of[f[1]] = f[0]
    return [fid_of[i] for i in iids]


def run_gwas_pair(*, bfile: str | Path, pheno: str | Path, trait: str, covar: str | Path, covariates: list[str],
                  n_pcs: int, out_with_pcs: str | Path, out_without_pcs: str | Path, block_size: int = 2048,
                  threads: int = 1) -> dict[str, Path]:
    """The trait's GWAS twice: adjusted for ``covariates`` plus PC1..PC``n_pcs`` (the result), and
    for ``covariates`` alone (to show the stratification the PCs remove: its lambda GC).

    ``covar`` is the workflow's joined covariate file (:func:`make_gwas_covariates`). A configured
    covariate that the file lacks is an error, unless the cohort has no covariates at all (the file
    then holds only PCs), in which case the models use the PCs alone.
    """
    header = read_pheno_table(covar).columns
    pcs = [f"PC{i + 1}" for i in range(n_pcs)]
    missing_pcs = [pc for pc in pcs if pc not in header]
    if missing_pcs:
        raise CohortflowError(f"covariate file lacks {', '.join(missing_pcs)}", path=covar)
    cohort_covariates = [c for c in header if c not in pcs and not c.startswith("PC")]
    if cohort_covariates:
        missing = [c for c in covariates if c not in header]
        if missing:
            raise CohortflowError(f"configured covariates {', '.join(missing)} not in the covariate file "
                                  f"(it has {', '.join(cohort_covariates)})", path=covar)
        base = list(covariates)
    else:
        base = []
    common = dict(bfile=bfile, pheno=pheno, pheno_names=[trait], block_size=block_size, threads=threads)
    with_pcs = run_gwas(**common, covar=covar if base + pcs else None, covar_names=base + pcs or None,
                        out_pattern=str(out_with_pcs))
    without_pcs = run_gwas(**common, covar=covar if base else None, covar_names=base or None,
                           out_pattern=str(out_without_pcs))
    return {"with_pcs": with_pcs[trait], "without_pcs": without_pcs[trait]}
