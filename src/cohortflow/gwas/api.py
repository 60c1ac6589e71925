"""Genome-wide association: linear and logistic regression with covariates, as plink2 --glm.

Several phenotypes are tested in one pass over the genotypes, which are streamed in blocks of
packed .bed bytes. A sample with a missing genotype call is left out of that variant's regression
only (``n`` varies per variant, as in plink2). On chromosome X the .fam sex joins the covariates
(when both sexes are analysed; as plink2 does) and male calls count 0/2, as stored in the .bed.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.gwas import kernels, linear_kernels, logistic_kernels
from cohortflow.io.atomic import atomic_open
from cohortflow.io.pheno import is_binary, read_pheno_table, to_binary01
from cohortflow.io.plink import open_bed
from cohortflow.io.sumstats import SumstatsWriter
from cohortflow.threads import thread_limit

MODELS = ("auto", "linear", "logistic")
FIRTH_MODES = {"never": logistic_kernels.FIRTH_NEVER, "fallback": logistic_kernels.FIRTH_FALLBACK,
               "always": logistic_kernels.FIRTH_ALWAYS}
LOG10_E = math.log10(math.e)
X_CHROMOSOMES = frozenset({"X", "23", "CHRX"})
# genotype bytes per streamed block (the block's results are written before the next is read)
BLOCK_BYTES = 8 << 20


@dataclass
class _Context:
    """Covariate basis of one phenotype on one kind of chromosome (autosomes or X)."""

    sample_idx: np.ndarray  # analysed samples, indices into the .fam order, ascending
    q: np.ndarray  # orthonormal basis of [1, covariates] over them (n x k)
    y: np.ndarray  # linear: centred phenotype; logistic: 0/1
    b_null: np.ndarray = field(default_factory=lambda: np.empty(0))
    null: tuple = ()
    qt: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


@dataclass
class _PhenoModel:
    """Everything one phenotype's regressions need."""

    name: str
    model: str
    sample_idx: np.ndarray  # analysed samples on the autosomes
    contexts: dict = field(default_factory=dict)  # "auto" / "x" -> _Context
    n_cases: int = 0
    n_controls: int = 0


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


def _orthonormal_basis(design: np.ndarray, names: list[str], *, source: str, pheno: str) -> np.ndarray:
    """Orthonormal basis of [1, design] over the analysed samples (columns standardised first,
    as --covar-variance-standardize does, for conditioning; the genotype's estimates do not
    depend on it). A constant or collinear covariate is an error, as in plink2."""
    n = design.shape[0]
    cols = [np.ones(n)]
    for j in range(design.shape[1]):
        c = design[:, j]
        sd = c.std()
        if not sd > 1e-12 * max(1.0, float(np.abs(c).max())):
            raise CohortflowError(f"covariate {names[j]!r} is constant over the {n} samples analysed for "
                                  f"{pheno!r}; drop it", path=source)
        cols.append((c - c.mean()) / sd)
    x = np.column_stack(cols)
    q, r = np.linalg.qr(x)
    diag = np.abs(np.diag(r))
    if diag.min() < 1e-8 * diag.max():
        worst = names[int(np.argmin(diag[1:]))] if len(diag) > 1 else "intercept"
        raise CohortflowError(f"covariates are collinear over the samples analysed for {pheno!r} "
                              f"({worst!r} is a combination of the others)", path=source)
    # the intercept column is 1/sqrt(n) up to sign: fix the sign so results do not depend on LAPACK
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return np.ascontiguousarray(q * signs)


def _read_phenotypes(bed, pheno: Path, pheno_names) -> pd.DataFrame:
    ptab = read_pheno_table(pheno, columns=pheno_names, require_numeric=True)
    if not len(ptab.columns):
        raise InputFormatError("no phenotype columns", path=pheno)
    fam_iids = bed.fam["iid"].to_numpy()
    if len(set(fam_iids)) != len(fam_iids):
        dup = pd.Index(fam_iids)[pd.Index(fam_iids).duplicated()][0]
        raise InputFormatError(f"duplicate sample ID {dup!r}", path=f"{bed.prefix}.fam")
    overlap = ptab.index.isin(fam_iids)
    if not overlap.any():
        raise InputFormatError(f"none of the {len(ptab)} sample IDs is in {bed.prefix}.fam (first: "
                               f"{ptab.index[0]!r})", path=pheno)
    return ptab


def _prepare(bed, pheno: Path, pheno_names, covar, covar_names, model: str, samples, *,
             sex_covariate: bool = False, x_sex: bool = True) -> list[_PhenoModel]:
    """Per phenotype: analysed samples, covariate bases (autosomes; chromosome X adds sex) and
    the covariate-only logistic fit."""
    pheno = Path(pheno)
    ptab = _read_phenotypes(bed, pheno, pheno_names)
    fam_iids = bed.fam["iid"].to_numpy()
    keep = np.ones(len(fam_iids), dtype=bool)
    if samples is not None:
        keep &= pd.Index(fam_iids).isin(list(samples))
    design = pd.DataFrame(index=pd.Index(fam_iids))
    source = str(pheno)
    if covar is not None:
        ctab = read_pheno_table(covar, columns=covar_names)
        design = covariate_design(ctab).reindex(fam_iids)
        keep &= design.notna().all(axis=1).to_numpy()
        source = str(covar)
    sex = bed.fam["sex"].to_numpy()
    known_sex = (sex == 1) | (sex == 2)
    female = (sex == 2).astype(float)
    if sex_covariate:
        design = design.assign(SEX=female)
        keep &= known_sex
    names = list(design.columns)
    models = []
    for name in ptab.columns:
        y_all = ptab[name].reindex(fam_iids)
        kind = model
        if kind == "auto":
            kind = "logistic" if is_binary(ptab[name]) else "linear"
        if kind == "logistic":
            if not is_binary(ptab[name]):
                raise InputFormatError(f"phenotype {name!r} is not binary (1/2 or 0/1) but the model is logistic",
                                       path=pheno)
            y_all = to_binary01(y_all)
        present = y_all.notna().to_numpy()
        if not present.any():
            raise InputFormatError(f"phenotype {name!r} is missing for every sample in the .fam", path=pheno)
        idx = np.flatnonzero(keep & present)
        if len(idx) < design.shape[1] + 3:
            raise CohortflowError(f"phenotype {name!r}: only {len(idx)} samples have the phenotype, all "
                                  "covariates and genotypes", path=pheno)
        y = y_all.to_numpy(float)
        pm = _PhenoModel(name, kind, idx)
        if kind == "logistic":
            cases = int(y[idx].sum())
            pm.n_cases, pm.n_controls = cases, len(idx) - cases
            if cases == 0 or cases == len(idx):
                raise InputFormatError(f"phenotype {name!r}: all {len(idx)} analysed samples are "
                                       f"{'cases' if cases else 'controls'}", path=pheno)
        x = design.to_numpy(float)
        pm.contexts["auto"] = _context(kind, idx, x[idx], y[idx], names, source, name)
        # chromosome X: sex joins the covariates when both sexes are analysed (plink2's default)
        if x_sex and not sex_covariate:
            idx_x = np.flatnonzero(keep & present & known_sex)
            fem = female[idx_x]
            if 0 < fem.sum() < len(idx_x) and len(idx_x) >= design.shape[1] + 4:
                xx = np.column_stack([x[idx_x], fem])
                try:
                    pm.contexts["x"] = _context(kind, idx_x, xx, y[idx_x], names + ["SEX"], source, name)
                except CohortflowError:
                    pass  # sex is already among the covariates (collinear): nothing to add
        models.append(pm)
    return models


def _context(kind: str, idx: np.ndarray, x: np.ndarray, y: np.ndarray, names, source, pheno) -> _Context:
    q = _orthonormal_basis(x, names, source=source, pheno=pheno)
    if kind == "linear":
        return _Context(idx, q, y - y.mean())
    qt = np.ascontiguousarray((q * math.sqrt(len(idx))).T)
    b_null = logistic_kernels.logistic_null(qt, y)
    if not np.all(np.isfinite(b_null)):
        raise CohortflowError(f"phenotype {pheno!r}: the covariate-only logistic model does not converge "
                              "(covariates separate cases from controls)", path=source)
    return _Context(idx, q, y, b_null, logistic_kernels.null_quantities(qt, y, b_null), qt)


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


class _LinearGroup:
    """Linear phenotypes sharing analysed samples and covariates: one pass over the genotypes."""

    def __init__(self, ctx_list: list[_Context], nb: int):
        first = ctx_list[0]
        self.k = first.q.shape[1]
        self.n = len(first.sample_idx)
        ys = np.column_stack([c.y for c in ctx_list])
        p = ys.shape[1]
        cz = self.k + p + ((self.k + p) % 2)
        self.zt = np.zeros((cz, 4 * nb))
        self.zt[:self.k, first.sample_idx] = first.q.T
        self.zt[self.k:self.k + p, first.sample_idx] = ys.T
        bits = np.zeros(4 * nb, dtype=np.int64)
        bits[first.sample_idx] = 1
        self.pattern = (bits.reshape(nb, 4) * np.array([1, 2, 4, 8])).sum(axis=1).astype(np.uint8)
        self.qty = np.ascontiguousarray(first.q.T @ ys)
        self.yty = (ys * ys).sum(axis=0)

    def test(self, raw: np.ndarray):
        sums = linear_kernels.cross_products(raw, self.zt, self.pattern)
        return linear_kernels.linear_tests(*sums, self.k, self.n, self.qty, self.yty)


def _chrom_context(chrom: pa.Array) -> np.ndarray:
    """True for chromosome X variants (.bim code X, 23 or chrX)."""
    upper = pc.utf8_upper(chrom)
    return pc.is_in(upper, value_set=pa.array(sorted(X_CHROMOSOMES))).to_numpy(zero_copy_only=False)


def run_gwas(*, bfile: str | Path, pheno: str | Path, pheno_names: list[str] | None = None,
             covar: str | Path | None = None, covar_names: list[str] | None = None, model: str = "auto",
             firth: str = "fallback", sex_covariate: bool = False, x_sex: bool = True,
             samples: list[str] | None = None, out_prefix: str | Path | None = None,
             out_pattern: str | None = None, threads: int = 1, block_bytes: int = BLOCK_BYTES,
             block_size: int | None = None, variant_range: tuple[int, int] | None = None) -> dict[str, Path]:
    """Test every variant of ``bfile`` against each phenotype, adjusting for covariates.

    Samples analysed per phenotype: .fam IIDs with a non-missing phenotype and covariates (and in
    ``samples`` when given); per variant, those with a genotype call. ``model``: "linear"
    (t-test, n - k - 1 df), "logistic" (Wald test from Newton-Raphson; beta = log OR) or "auto"
    (logistic for 1/2 or 0/1 traits). ``firth``: "fallback" (a logistic fit that fails by
    separation or non-convergence is redone with Firth-penalised regression, as plink2's
    firth-fallback), "always" or "never". ``sex_covariate``: the .fam sex is a covariate on every
    chromosome (plink2's ``sex`` modifier); otherwise, with ``x_sex``, on chromosome X only.
    Covariates are always variance-standardised internally (the genotype's estimates do not
    depend on it).

    Writes ``{out_prefix}.{pheno}.tsv.gz`` (or ``out_pattern.format(pheno=...)``), GWAS-SSF:
    chromosome, base_pair_location, effect_allele (= .bim column 5, A1), other_allele, beta,
    standard_error, effect_allele_frequency (of the effect allele among the variant's analysed
    calls), p_value (full precision below 1e-300, as text), n, variant_id, test_statistic (t or
    z), errcode (empty when the test ran, else monomorphic, too_few_observations,
    rank_deficient, no_convergence or separation); and a ``-meta.yaml`` sidecar per phenotype
    (model, sample_size, n_cases, n_controls, n_firth, covariates). Output bytes do not depend on
    ``threads`` or on how the variants are split into blocks or files. ``variant_range``
    (start, stop): test only the .bim's variants start..stop-1 (a shard; the samples, covariates
    and null models are those of the whole file, so :func:`gather_gwas` of the shards gives the
    unsharded file byte for byte).
    Returns {phenotype: sumstats path}.
    """
    if (out_prefix is None) == (out_pattern is None):
        raise CohortflowError("give exactly one of out_prefix and out_pattern")
    if model not in MODELS:
        raise CohortflowError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    if firth not in FIRTH_MODES:
        raise CohortflowError(f"firth must be one of {', '.join(FIRTH_MODES)}, not {firth!r}")
    pheno = Path(pheno)
    bed = open_bed(bfile)
    with thread_limit(threads):
        models = _prepare(bed, pheno, pheno_names, covar, covar_names, model, samples,
                          sex_covariate=sex_covariate, x_sex=x_sex)
        paths = {pm.name: Path(out_pattern.format(pheno=pm.name) if out_pattern else f"{out_prefix}.{pm.name}.tsv.gz")
                 for pm in models}
        n_firth = _stream(bed, models, paths, firth=FIRTH_MODES[firth], block_bytes=block_bytes,
                          block_size=block_size, variant_range=variant_range)
    covariate_list = ", ".join(covar_names) if covar_names else ("all in file" if covar is not None else "none")
    for pm in models:
        path = paths[pm.name]
        with atomic_open(Path(f"{path}-meta.yaml")) as fh:
            fh.write(f"data_file_name: {path.name}\nfile_type: GWAS-SSF v1.0\ntrait_description: {pm.name}\n"
                     f"model: {pm.model}\nsample_size: {len(pm.sample_idx)}\n")
            if pm.model == "logistic":
                fh.write(f"n_cases: {pm.n_cases}\nn_controls: {pm.n_controls}\nn_firth: {n_firth[pm.name]}\n"
                         f"firth: {firth}\n")
            fh.write(f"covariates: {covariate_list}{' + sex' if sex_covariate else ''}\n"
                     "analysis_software: cohortflow\n")
    return paths


def _empty_results(m: int) -> dict[str, np.ndarray]:
    return {"beta": np.full(m, np.nan), "se": np.full(m, np.nan), "stat": np.full(m, np.nan),
            "freq": np.full(m, np.nan), "n": np.zeros(m, dtype=np.int64), "err": np.zeros(m, dtype=np.int64),
            "df": np.full(m, np.nan)}


def _write_block(writer: SumstatsWriter, table: dict, stat: np.ndarray, df: np.ndarray | None) -> None:
    writer.write(table, log10_p=_log10_p(stat, df))


def _stream(bed, models: list[_PhenoModel], paths: dict[str, Path], *, firth: int, block_bytes: int,
            block_size: int | None, variant_range: tuple[int, int] | None = None) -> dict[str, int]:
    """Read the genotypes block by block, test every phenotype, append each block's rows."""
    nb = bed.bytes_per_variant
    # text columns stay Arrow arrays; each block's rows are zero-copy slices
    chrom, a1, a2, ids = (bed.bim_table.column(c).combine_chunks() for c in ("chrom", "a1", "a2", "id"))
    pos = bed.bim_table.column("pos").to_numpy()
    is_x = _chrom_context(chrom)
    errnames = pa.array(kernels.ERRCODE_NAMES, type=pa.string())
    # per kind of chromosome, linear phenotypes sharing a covariate basis share one pass
    plans = {}
    for where in ("auto", "x"):
        groups: dict[tuple, list[tuple[str, _Context]]] = {}
        for pm in models:
            key = where if where in pm.contexts else "auto"
            ctx = pm.contexts[key]
            if pm.model == "linear":
                groups.setdefault((key, ctx.sample_idx.tobytes()), []).append((pm.name, ctx))
        plans[where] = {
            "linear": [([name for name, _ in members], _LinearGroup([c for _, c in members], nb))
                       for members in groups.values()],
            "logistic": [(pm.name, pm.contexts[where if where in pm.contexts else "auto"])
                         for pm in models if pm.model == "logistic"],
        }
    writers = {name: SumstatsWriter(path) for name, path in paths.items()}
    n_firth = {pm.name: 0 for pm in models}
    step = block_size or max(64, block_bytes // max(nb, 1))
    writer_pool = ThreadPoolExecutor(max_workers=1)
    pending = []
    try:
        first, last = variant_range if variant_range is not None else (0, bed.n_variants)
        for start, raw in bed.iter_packed_blocks(step, start=first, stop=last):
            stop = start + raw.shape[0]
            results = {pm.name: _empty_results(raw.shape[0]) for pm in models}
            block_x = is_x[start:stop]
            for where in ("auto", "x"):
                rows = np.flatnonzero(block_x) if where == "x" else np.flatnonzero(~block_x)
                if not len(rows):
                    continue
                sub = raw if len(rows) == raw.shape[0] else np.ascontiguousarray(raw[rows])
                for names, group in plans[where]["linear"]:
                    beta, se, t, df, nobs, gsum, err = group.test(sub)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        freq = np.where(nobs > 0, gsum / (2.0 * nobs), np.nan)
                    for j, name in enumerate(names):
                        res = results[name]
                        res["beta"][rows], res["se"][rows], res["stat"][rows] = beta[:, j], se[:, j], t[:, j]
                        res["n"][rows], res["freq"][rows], res["err"][rows] = nobs, freq, err[:, j]
                        res["df"][rows] = df
                for name, ctx in plans[where]["logistic"]:
                    idx = ctx.sample_idx
                    all_samples = len(idx) == bed.n_samples
                    beta, se, z, nobs, gsum, err, used = logistic_kernels.logistic_tests(
                        sub, idx, all_samples, ctx.qt, ctx.y, ctx.b_null, *ctx.null, logistic_kernels.DECODE_TABLE,
                        firth)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        freq = np.where(nobs > 0, gsum / (2.0 * nobs), np.nan)
                    res = results[name]
                    res["beta"][rows], res["se"][rows], res["stat"][rows] = beta, se, z
                    res["n"][rows], res["freq"][rows], res["err"][rows] = nobs, freq, err
                    n_firth[name] += int(used.sum())
            for pm in models:
                res = results[pm.name]
                m = stop - start
                table = {
                    "chromosome": chrom.slice(start, m), "base_pair_location": pos[start:stop],
                    "effect_allele": a1.slice(start, m), "other_allele": a2.slice(start, m),
                    "beta": res["beta"], "standard_error": res["se"], "effect_allele_frequency": res["freq"],
                    "n": res["n"], "variant_id": ids.slice(start, m), "test_statistic": res["stat"],
                    "errcode": errnames.take(pa.array(res["err"])),
                }
                # p-values, formatting and compression (mostly outside the GIL) overlap the next
                # block's tests; one worker keeps the blocks in order
                df = res["df"] if pm.model == "linear" else None
                pending.append(writer_pool.submit(_write_block, writers[pm.name], table, res["stat"], df))
            while len(pending) > 2 * len(models):
                pending.pop(0).result()
        for job in pending:
            job.result()
    except BaseException as exc:
        writer_pool.shutdown(wait=True, cancel_futures=True)
        for w in writers.values():
            w.abort(exc)
        raise
    writer_pool.shutdown(wait=True)
    for w in writers.values():
        w.close()
    return n_firth


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
                  n_pcs: int, out_with_pcs: str | Path, out_without_pcs: str | Path, firth: str = "fallback",
                  threads: int = 1, variant_range: tuple[int, int] | None = None) -> dict[str, Path]:
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
    common = dict(bfile=bfile, pheno=pheno, pheno_names=[trait], firth=firth, threads=threads,
                  variant_range=variant_range)
    with_pcs = run_gwas(**common, covar=covar if base + pcs else None, covar_names=base + pcs or None,
                        out_pattern=str(out_with_pcs))
    without_pcs = run_gwas(**common, covar=covar if base else None, covar_names=base or None,
                           out_pattern=str(out_without_pcs))
    return {"with_pcs": with_pcs[trait], "without_pcs": without_pcs[trait]}
