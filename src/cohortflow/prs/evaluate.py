"""Polygenic score evaluation: choice on a validation split, performance on a separate test split.

Score columns and methods
    Score files are tab/whitespace-separated, with an ``IID`` column (``#FID``/``FID`` optional)
    and one or more numeric score columns; several files are joined on IID. A column's *method*
    is its name up to the first ``_`` or ``:``; the rest is the *candidate* label:
    ``ct_p<5e-08`` and ``ct_p<0.0001`` are two candidates (p-value thresholds) of method ``ct``,
    ``bayes_auto`` is method ``bayes``, ``PGS000001_SUM`` and ``PGS000001_AVG`` are two candidates
    of ``PGS000001`` (equally good: a constant factor apart, so the first wins the tie), a plain
    ``score`` is its own method. Bookkeeping columns (``#FID FID IID split ALLELE_CT
    NAMED_ALLELE_DOSAGE_SUM``) are not scores.

Selection (never on test)
    Among a method's candidates, the one with the best validation metric is chosen (partial R^2
    of the score over the covariates for quantitative traits, AUC of the score for binary ones;
    ties go to the first column; a constant or missing score is not a candidate). Only the
    chosen column is reported on the test split. Each candidate's test value is shown in
    ``OUT.candidates.tsv`` as ``test_value_not_used_for_selection``.

Samples
    Only ``validation`` and ``test`` samples of the split file are evaluated (``discovery``
    samples shaped the scores). A sample without the trait or a covariate is excluded and
    counted; a method is evaluated on the samples with all of its columns present.

Metrics on the test split
    Quantitative (OLS with an intercept and the covariates): ``incremental_r2`` = R^2(covariates +
    score) - R^2(covariates) (the main metric), ``partial_r2`` (the share of the covariate
    residual variance the score explains: incremental / (1 - R^2(covariates))), ``r`` (Pearson
    correlation of score and trait), ``beta_per_sd`` (trait units per SD of the score, covariates
    in the model).
    Binary: ``auc`` of the score alone (the main metric), ``or_per_sd`` (logistic regression of the
    trait on the covariates and the score standardised to SD 1), ``auc_covariates`` and
    ``auc_full`` (linear predictors of the logistic fits without / with the score, fitted and
    judged on the test split), ``delta_auc``, ``nagelkerke_r2_incremental`` (full minus covariates).
    SDs are sample SDs (ddof 1). Liability-scale R^2 needs the population prevalence and is not
    computed.

Confidence intervals
    Percentile 95% intervals of ``n_boot`` bootstrap resamples (test individuals drawn with
    replacement, from ``seed``: same seed, same intervals). Each resample is a vector of counts,
    so every statistic is a weighted one computed for all resamples at once (cross-products for
    OLS, batched Newton for logistic fits, weighted rank sums for AUC). Resamples in which a
    statistic is undefined (e.g. a logistic fit that separates) are left out of its interval;
    ``n_boot_valid`` says how many remain.

Deciles
    Test samples are ranked by the chosen score (ties in sample order) and cut into ten groups of
    equal size. Quantitative: mean trait per decile. Binary: prevalence and the odds ratio of each
    decile against the reference decile (``reference_decile``, default 5, the middle: 40-50%),
    unadjusted, i.e. the logistic regression of the trait on decile indicators. Bootstrap CIs with
    the decile of each individual fixed.

Ancestry groups
    From a label (``groups`` = a table with ``IID`` and ``group_column``, e.g. the demo's
    ``samples.tsv`` / ``population``) or from principal components (``groups`` = a
    ``#FID IID PC1 ..`` table, ``n_pcs_groups`` = how many leading PCs): a Gaussian mixture
    (full covariances, sklearn, ``random_state=seed``) fitted to the PCs of every split sample
    (no trait used), with the number of clusters chosen by BIC among 1..6, clusters named
    ``cluster1``.. by increasing mean PC1. Per group: n and the main metric with its CI
    (resampled within the group).

Small counts
    Counts between 1 and ``min_cell_count - 1`` are written as ``<min_cell_count`` (the text
    ``"<5"`` in the JSON, where shown counts are integers); a case count that would reveal such a
    control count is written ``suppressed``. A group or decile (or the whole test split) with
    fewer than ``min_cell_count`` individuals (binary: cases or controls) has no metrics. All
    outputs are aggregate; plots draw no individual points.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.gwas.api import covariate_design
from cohortflow.io.atomic import write_json_atomic, write_table_atomic
from cohortflow.io.pheno import is_binary, read_pheno_table, to_binary01
from cohortflow.prs.split import SPLITS, read_split
from cohortflow.threads import thread_limit

NOT_SCORE_COLUMNS = frozenset({"#FID", "FID", "IID", "#IID", "split", "ALLELE_CT", "NAMED_ALLELE_DOSAGE_SUM"})
MAIN_METRIC = {"quantitative": "incremental_r2", "binary": "auc"}
SELECTION_METRIC = {"quantitative": "partial_r2", "binary": "auc"}
METRICS = {"quantitative": ("incremental_r2", "partial_r2", "r", "beta_per_sd"),
           "binary": ("auc", "or_per_sd", "auc_covariates", "auc_full", "delta_auc", "nagelkerke_r2_incremental")}
N_DECILES = 10
MAX_PC_CLUSTERS = 6
MIN_EVALUATED = 10
# resample count matrices are built in chunks of about this many cells (memory stays small)
BOOT_CHUNK_CELLS = 2_000_000
PERFORMANCE_COLUMNS = ["method", "column", "split", "n", "n_cases", "metric", "value", "ci_low", "ci_high"]
CANDIDATE_COLUMNS = ["method", "column", "label", "n_validation", "metric", "validation_value", "selected", "note",
                     "test_value_not_used_for_selection"]
DECILE_COLUMNS = ["method", "column", "decile", "n", "n_cases", "metric", "value", "ci_low", "ci_high"]
GROUP_COLUMNS = ["method", "column", "group", "n", "n_cases", "metric", "value", "ci_low", "ci_high"]


# ----------------------------------------------------------------------------------------------
# weighted statistics for many resamples at once: ``w`` is (B, n), one row of counts per resample
# (a row of ones is the sample itself)


def bootstrap_counts(n: int, n_boot: int, seed: int, key: tuple[int, ...] = ()):
    """Yield (b, n) float arrays of resample counts (rows sum to n), ``n_boot`` rows in all, drawn
    from ``np.random.default_rng([seed, *key])``: the same arguments give the same resamples."""
    rng = np.random.default_rng([int(seed), *key])
    chunk = max(1, min(n_boot, BOOT_CHUNK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b, dtype=np.int64) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        done += b


def _standardised(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to SD 1 over the rows; constant columns dropped (they add
    nothing beside the intercept)."""
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    sd = x.std(axis=0)
    keep = sd > 1e-12 * np.maximum(1.0, np.abs(x).max(axis=0, initial=0.0))
    return (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]


def _crossprod(w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(B, q, q) weighted cross-products z' diag(w_b) z."""
    q = z.shape[1]
    iu, ju = np.triu_indices(q)
    v = w @ (z[:, iu] * z[:, ju])
    m = np.empty((w.shape[0], q, q))
    m[:, iu, ju] = v
    m[:, ju, iu] = v
    return m


def _psd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a_k x_k = b_k for a stack of symmetric positive semi-definite matrices, as a
    minimum-norm solution when a_k is singular (a covariate constant in a resample): unit
    diagonal scaling, then eigenvalues below 1e-10 of the largest are dropped."""
    d = np.diagonal(a, axis1=1, axis2=2)
    scale = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    a_s = a * scale[:, :, None] * scale[:, None, :]
    vals, vecs = np.linalg.eigh(a_s)
    cut = 1e-10 * np.max(np.abs(vals), axis=1, keepdims=True)
    inv = np.where(vals > cut, 1.0 / np.where(vals > cut, vals, 1.0), 0.0)
    rhs = np.einsum("kji,kj->ki", vecs, b * scale)
    return np.einsum("kij,kj->ki", vecs, inv * rhs) * scale


def linear_metrics(w: np.ndarray, y: np.ndarray, score: np.ndarray, cov: np.ndarray | None) -> dict:
    """Quantitative-trait metrics (see the module docstring) for each row of weights ``w`` (B, n),
    from weighted cross-products of [1, covariates, score, trait]. Returns (B,) arrays, plus
    ``r2_covariates``."""
    n = len(y)
    parts = [np.ones((n, 1))]
    if cov is not None and cov.shape[1]:
        parts.append(_standardised(cov))
    p0 = sum(p.shape[1] for p in parts)
    s = (score - score.mean()) / score.std()
    z = np.column_stack(parts + [s, y - y.mean()])
    m = _crossprod(w, z)
    total = m[:, 0, 0]
    yy = m[:, -1, -1]

    def rss(k):
        b = m[:, :k, -1]
        coef = _psd_solve(m[:, :k, :k], b)
        return yy - np.einsum("ki,ki->k", coef, b), coef

    with np.errstate(divide="ignore", invalid="ignore"):
        rss_cov, _ = rss(p0)
        rss_full, coef = rss(p0 + 1)
        tss = yy - m[:, 0, -1] ** 2 / total
        ss_s = m[:, -2, -2] - m[:, 0, -2] ** 2 / total
        sp_sy = m[:, -2, -1] - m[:, 0, -2] * m[:, 0, -1] / total
        out = {
            "incremental_r2": (rss_cov - rss_full) / tss,
            "partial_r2": (rss_cov - rss_full) / rss_cov,
            "r": sp_sy / np.sqrt(ss_s * tss),
            "beta_per_sd": coef[:, -1] * np.sqrt(ss_s / (total - 1)),
            "r2_covariates": 1.0 - rss_cov / tss,
        }
    bad = ~(ss_s > 1e-12 * total) | ~(tss > 0)
    for v in out.values():
        v[bad] = np.nan
    return out


def _linpred(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """(B, n) x @ beta_k, summed column by column so equal rows of x give equal values exactly
    (ties in a fitted covariate model stay ties for the AUC)."""
    eta = x[:, 0][None, :] * beta[:, [0]]
    for j in range(1, x.shape[1]):
        eta = eta + x[:, j][None, :] * beta[:, [j]]
    return eta


def logistic_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, *, start: np.ndarray | None = None,
                 max_iter: int = 50, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic regression of ``y`` (0/1) on ``x`` (with its intercept column) for each
    row of ``w``, by Newton-Raphson from ``start`` (default: intercept at the weighted logit of
    the mean). Returns (beta (B, p), log-likelihood (B,)); a fit that does not converge
    (separation) is NaN."""
    b_rows, p = w.shape[0], x.shape[1]
    iu, ju = np.triu_indices(p)
    xx = x[:, iu] * x[:, ju]
    if start is None:
        beta = np.zeros((b_rows, p))
        ybar = np.clip((w @ y) / w.sum(axis=1), 1e-12, 1 - 1e-12)
        beta[:, 0] = np.log(ybar / (1 - ybar))
    else:
        beta = np.tile(np.asarray(start, dtype=float), (b_rows, 1))
    converged = np.zeros(b_rows, dtype=bool)
    active = np.arange(b_rows)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(max_iter):
            wa, ba = w[active], beta[active]
            mu = 1.0 / (1.0 + np.exp(-(ba @ x.T)))
            grad = (wa * (y - mu)) @ x
            v = (wa * (mu * (1.0 - mu))) @ xx
            hess = np.empty((len(active), p, p))
            hess[:, iu, ju] = v
            hess[:, ju, iu] = v
            step = _psd_solve(hess, grad)
            new = ba + step
            beta[active] = new
            finite = np.isfinite(new).all(axis=1)
            done = finite & (np.abs(step).max(axis=1) <= tol * (1.0 + np.abs(new).max(axis=1)))
            converged[active[done]] = True
            active = active[finite & ~done]
            if not active.size:
                break
        beta[~converged] = np.nan
        eta = beta @ x.T
        loglik = (w * (y * eta - np.logaddexp(0.0, eta))).sum(axis=1)
    return beta, loglik


def auc_weighted(score: np.ndarray, case: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC (Mann-Whitney, ties counted half) of one score for each row of weights ``w`` (B, n)."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wo = w[:, order]
    c = np.add.reduceat(wo * case[order], starts, axis=1)
    d = np.add.reduceat(wo * (1.0 - case[order]), starts, axis=1)
    return _auc_from_tie_groups(c, d)


def auc_rows(scores: np.ndarray, case: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of row k of ``scores`` (B, n) with weights row k of ``w``."""
    b_rows, n = scores.shape
    order = np.argsort(scores, axis=1)  # tie groups are summed: their inner order does not matter
    s = np.take_along_axis(scores, order, axis=1)
    wo = np.take_along_axis(w, order, axis=1)
    co = case[order]
    group = np.cumsum(np.concatenate([np.ones((b_rows, 1), bool), s[:, 1:] != s[:, :-1]], axis=1), axis=1) - 1
    flat = (group + (np.arange(b_rows) * n)[:, None]).ravel()
    c = np.bincount(flat, weights=(wo * co).ravel(), minlength=b_rows * n).reshape(b_rows, n)
    d = np.bincount(flat, weights=(wo * (1.0 - co)).ravel(), minlength=b_rows * n).reshape(b_rows, n)
    return _auc_from_tie_groups(c, d)


def _auc_from_tie_groups(c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """c, d: (B, groups) case and control weight per tie group in increasing score order."""
    below = np.cumsum(d, axis=1) - d
    with np.errstate(divide="ignore", invalid="ignore"):
        return (c * (below + 0.5 * d)).sum(axis=1) / (c.sum(axis=1) * d.sum(axis=1))


def binary_metrics(w: np.ndarray, y: np.ndarray, score: np.ndarray, cov: np.ndarray | None, *,
                   start: dict | None = None, cache: dict | None = None, chunk=None) -> dict:
    """Binary-trait metrics (see the module docstring) for each row of weights ``w`` (B, n).
    ``start``: the fits of the unweighted sample (``_fits`` of a previous call), where Newton
    begins. ``cache``/``chunk``: the covariates-only model depends on the samples and weights but
    not on the score; scores judged on the same samples with the same resamples share it through
    ``cache[chunk]``. Returns (B,) arrays and ``_fits`` (the coefficients of the first row)."""
    n = len(y)
    parts = [np.ones((n, 1))]
    if cov is not None and cov.shape[1]:
        parts.append(_standardised(cov))
    x_cov = np.column_stack(parts)
    s = (score - score.mean()) / score.std(ddof=1)
    x_full = np.column_stack([x_cov, s])
    start = start or {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if cache is not None and chunk in cache:
            beta_cov, ll_cov, auc_cov = cache[chunk]
        else:
            beta_cov, ll_cov = logistic_fit(x_cov, y, w, start=start.get("cov"))
            auc_cov = auc_rows(_linpred(x_cov, np.nan_to_num(beta_cov)), y, w)
            auc_cov[np.isnan(beta_cov).any(axis=1)] = np.nan
            if cache is not None:
                cache[chunk] = (beta_cov, ll_cov, auc_cov)
        beta_full, ll_full = logistic_fit(x_full, y, w, start=start.get("full"))
        total = w.sum(axis=1)
        cases = w @ y
        p = cases / total
        ll0 = cases * np.log(p) + (total - cases) * np.log1p(-p)
        sd_s = np.sqrt(np.maximum(w @ (s * s) - (w @ s) ** 2 / total, 0.0) / (total - 1))
        max_cs = 1.0 - np.exp(2.0 * ll0 / total)
        nagelkerke = ((1.0 - np.exp(2.0 * (ll0 - ll_full) / total)) -
                      (1.0 - np.exp(2.0 * (ll0 - ll_cov) / total))) / max_cs
        auc_full = auc_rows(_linpred(x_full, np.nan_to_num(beta_full)), y, w)
        auc_full[np.isnan(beta_full).any(axis=1)] = np.nan
        out = {
            "auc": auc_weighted(score, y, w),
            "or_per_sd": np.exp(beta_full[:, -1] * sd_s),
            "auc_covariates": auc_cov,
            "auc_full": auc_full,
            "delta_auc": auc_full - auc_cov,
            "nagelkerke_r2_incremental": nagelkerke,
        }
    out["_fits"] = {"cov": beta_cov[0], "full": beta_full[0]}
    return out


def decile_of(score: np.ndarray) -> np.ndarray:
    """0-based decile of each value: rank (ties in input order) x 10 // n."""
    rank = np.empty(len(score), dtype=np.int64)
    rank[np.argsort(score, kind="stable")] = np.arange(len(score))
    return rank * N_DECILES // len(score)


def decile_stats(w: np.ndarray, y: np.ndarray, decile: np.ndarray, *, binary: bool, reference: int) -> dict:
    """(B, 10) per-decile statistics: ``mean`` (quantitative) or ``prevalence`` and
    ``odds_ratio`` against decile ``reference`` (1-based; binary)."""
    onehot = (decile[:, None] == np.arange(N_DECILES)[None, :]).astype(float)
    counts = w @ onehot
    sums = (w * y) @ onehot
    with np.errstate(divide="ignore", invalid="ignore"):
        if not binary:
            return {"mean": sums / counts}
        odds = sums / (counts - sums)
        return {"prevalence": sums / counts, "odds_ratio": odds / odds[:, [reference - 1]]}


def percentile_ci(values: np.ndarray) -> tuple[float, float, int]:
    """2.5 and 97.5 percentiles of the finite values, and how many there are."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return float("nan"), float("nan"), 0
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high), int(finite.size)


def _bootstrap(func, n: int, n_boot: int, seed: int, key: tuple[int, ...]) -> dict:
    """Point values (unweighted sample) and percentile CIs of ``func(w, fits=, chunk=) -> {name:
    (B,) or (B, k) array}`` (``fits``: what the point call returned under ``_fits``; ``chunk``:
    "point" or the number of the resample chunk)."""
    point = func(np.ones((1, n)), fits=None, chunk="point")
    fits = point.pop("_fits", None)
    draws: dict[str, list] = {k: [] for k in point}
    for i, w in enumerate(bootstrap_counts(n, n_boot, seed, key)):
        res = func(w, fits=fits, chunk=i)
        res.pop("_fits", None)
        for k in draws:
            draws[k].append(res[k])
    out = {}
    for k, v in point.items():
        stacked = np.concatenate(draws[k], axis=0) if draws[k] else np.empty((0,) + v.shape[1:])
        if v.ndim == 1:
            low, high, valid = percentile_ci(stacked)
            out[k] = {"value": float(v[0]), "ci_low": low, "ci_high": high, "n_boot_valid": valid}
        else:
            out[k] = [dict(zip(("value", "ci_low", "ci_high", "n_boot_valid"),
                               (float(v[0, j]), *percentile_ci(stacked[:, j])))) for j in range(v.shape[1])]
    return out


def selection_value(score: np.ndarray, y: np.ndarray, cov: np.ndarray | None, *, binary: bool) -> float:
    """The validation metric a candidate is chosen by (partial R^2 / AUC); NaN for a constant score."""
    if not np.isfinite(score).all() or not score.std() > 0:
        return float("nan")
    w = np.ones((1, len(y)))
    if binary:
        return float(auc_weighted(score, y, w)[0])
    return float(linear_metrics(w, y, score, cov)["partial_r2"][0])


def choose_candidate(values: list[float]) -> int | None:
    """Index of the largest finite value, the first on ties (within a relative 1e-9); None if none
    is finite."""
    best = None
    for i, v in enumerate(values):
        # equal up to rounding (e.g. one score a constant multiple of another) is a tie
        if math.isfinite(v) and (best is None or v - values[best] > 1e-9 * max(abs(v), abs(values[best]))):
            best = i
    return best


# ----------------------------------------------------------------------------------------------
# inputs


def method_of(column: str) -> tuple[str, str]:
    """(method, candidate label) of a score column: split at the first ``_`` or ``:``."""
    m = re.match(r"([^_:]*)[_:](.*)\Z", column, flags=re.S)
    if m is None or not m.group(1):
        return column, ""
    return m.group(1), m.group(2)


def read_scores(paths) -> tuple[pd.DataFrame, dict[str, str]]:
    """Score files joined on IID (outer join): a DataFrame indexed by IID with one float column per
    score (NaN where absent), and each column's source file."""
    frames, source = [], {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputFormatError("score file not found", path=path)
        try:
            table = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False, comment=None)
        except (OSError, ValueError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputFormatError(f"cannot read the score file ({str(exc).splitlines()[0]})", path=path) from None
        if "IID" not in table.columns:
            raise InputFormatError(f"no IID column (columns: {', '.join(map(str, table.columns))})", path=path)
        dup = table["IID"].duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup.to_numpy())[0])
            raise InputFormatError(f"duplicate IID {table['IID'].iloc[row]!r}", path=path, record=f"line {row + 2}")
        cols = [c for c in table.columns if c not in NOT_SCORE_COLUMNS]
        if not cols:
            raise InputFormatError("no score column besides the ID columns", path=path)
        data = {}
        for c in cols:
            if c in source:
                raise InputFormatError(f"score column {c!r} is also in {source[c]}", path=path)
            text = table[c]
            missing = text.str.lower().isin(["na", "nan", ""]).to_numpy()
            vals = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero((np.isnan(vals) & ~missing) | np.isinf(vals))
            if bad.size:
                r = int(bad[0])
                raise InputFormatError(f"column {c!r}: {text.iloc[r]!r} is not a finite number", path=path,
                                       record=f"line {r + 2}")
            data[c] = vals
            source[c] = str(path)
        frames.append(pd.DataFrame(data, index=pd.Index(table["IID"].to_numpy(), name="IID")))
    if not frames:
        raise CohortflowError("no score file given")
    scores = frames[0]
    for f in frames[1:]:
        scores = scores.join(f, how="outer", sort=False)
    return scores, source


def read_split_table(path: str | Path) -> pd.Series:
    """The split file (:func:`cohortflow.prs.split.read_split`) as a Series IID -> split name, with
    validation and test samples present."""
    table = read_split(path)
    split = pd.Series(table["split"].to_numpy(), index=pd.Index(table["IID"], name="IID"))
    if not (split == "test").any():
        raise InputFormatError("no test samples: performance is reported on the test split only", path=path)
    if not (split == "validation").any():
        raise InputFormatError("no validation samples: candidates are chosen on the validation split", path=path)
    return split


def _pc_groups(path: Path, n_pcs: int, iids: pd.Index, seed: int) -> tuple[pd.Series, dict]:
    from sklearn.mixture import GaussianMixture

    names = [f"PC{i}" for i in range(1, n_pcs + 1)]
    pcs = read_pheno_table(path, columns=names, require_numeric=True)
    pcs = pcs[pcs.index.isin(iids)].dropna()
    if len(pcs) < 2 * MAX_PC_CLUSTERS:
        raise InputFormatError(f"only {len(pcs)} split samples have {', '.join(names)}: too few to cluster",
                               path=path)
    x = pcs.to_numpy(float)
    x = x / x.std()  # one common scale (PC values are tiny): the shape of the layout is kept
    fits, bic = [], []
    for k in range(1, MAX_PC_CLUSTERS + 1):
        gm = GaussianMixture(n_components=k, covariance_type="full", random_state=seed, n_init=3)
        gm.fit(x)
        fits.append(gm)
        bic.append(float(gm.bic(x)))
    k_best = int(np.argmin(bic)) + 1
    gm = fits[k_best - 1]
    raw = gm.predict(x)
    # name clusters by increasing mean PC1 (mixture component order is arbitrary)
    rank = np.argsort(np.argsort(gm.means_[:, 0], kind="stable"), kind="stable")
    labels = pd.Series([f"cluster{rank[c] + 1}" for c in raw], index=pcs.index)
    info = {"source": "pcs", "file": path.name, "pcs": names, "k": k_best,
            "bic": {str(k): b for k, b in zip(range(1, MAX_PC_CLUSTERS + 1), bic)},
            "rule": f"Gaussian mixture (full covariances, random_state={seed}, 3 starts) on {', '.join(names)} of "
                    f"the split samples, k in 1..{MAX_PC_CLUSTERS} by lowest BIC"}
    return labels, info


# ----------------------------------------------------------------------------------------------
# the evaluation


def _count(value: int, min_cell: int) -> int | str:
    """A count as it may be shown: the number, or "<min_cell" for 1..min_cell-1."""
    return int(value) if value == 0 or value >= min_cell else f"<{min_cell}"


def _num(x) -> str:
    """A table number: 6 significant digits, empty when missing."""
    return "" if x is None or not math.isfinite(float(x)) else f"{float(x):.6g}"


def _round(x):
    """6 significant digits (the JSON does not depend on last-bit differences)."""
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v) for v in x]
    if isinstance(x, float) and math.isfinite(x):
        return float(f"{x:.6g}")
    return x


def _cell_ok(n: int, n_cases: int | None, min_cell: int) -> bool:
    if n < min_cell:
        return False
    return n_cases is None or (n_cases >= min_cell and n - n_cases >= min_cell)


def _cases_text(n: int, n_cases: int | None, min_cell: int) -> int | str:
    """A case count as it may be shown (also hidden when it would reveal a small control count)."""
    if n_cases is None:
        return ""
    if 0 < n - n_cases < min_cell:  # the case count would reveal a small control count
        return "suppressed"
    return _count(n_cases, min_cell)


def ancestry_group_options(*, sample_info: str | Path | None, group_column: str, pcs: str | Path,
                           n_pcs_groups: int) -> dict:
    """The ``groups`` options of :func:`evaluate_scores` for a cohort: the sample sheet's
    ``group_column`` when the sheet exists and has that column, else clusters of the leading
    ``n_pcs_groups`` principal components of ``pcs``."""
    if sample_info:
        with open(sample_info, encoding="utf-8") as fh:
            header = fh.readline().split()
        if group_column in header:
            return {"groups": sample_info, "group_column": group_column, "n_pcs_groups": None}
    return {"groups": pcs, "group_column": None, "n_pcs_groups": n_pcs_groups}


def evaluate_scores(*, scores, pheno: str | Path, trait: str, split: str | Path, covar: str | Path | None = None,
                    covar_names: list[str] | None = None, groups: str | Path | None = None,
                    group_column: str | None = None, n_pcs_groups: int | None = None, n_boot: int = 1000,
                    seed: int = 1, min_cell_count: int = 5, reference_decile: int = 5, trait_type: str = "auto",
                    out_prefix: str | Path, threads: int = 1) -> dict:
    """Evaluate polygenic scores of ``trait`` (see the module docstring for every rule).

    ``scores``: one path or a list of score files. ``split``: ``#FID IID split`` with
    discovery/validation/test. ``covar``/``covar_names``: covariates (all columns by default;
    categorical ones as dummies). ``groups`` with ``group_column`` (labels) or ``n_pcs_groups``
    (PCs to cluster). ``trait_type``: auto (binary when coded 1/2 or 0/1), quantitative or binary.

    Writes (aggregate only, same inputs -> same bytes):
    - ``OUT.performance.tsv``: method, column, split, n, n_cases, metric, value, ci_low, ci_high
      (the selection metric on validation, every metric with its CI on test);
    - ``OUT.candidates.tsv``: method, column, label, n_validation, metric, validation_value,
      selected (yes/no), note, test_value_not_used_for_selection;
    - ``OUT.deciles.tsv``: method, column, decile (1-10), n, n_cases, metric (mean | prevalence,
      odds_ratio), value, ci_low, ci_high;
    - ``OUT.groups.tsv``: method, column, group, n, n_cases, metric, value, ci_low, ci_high
      (written with the header only when no groups are given);
    - ``OUT.evaluate.json``: all of the above and the settings, sample counts and exclusions;
    - ``OUT.distribution.png``, ``OUT.deciles.png`` and ``OUT.thresholds.png`` (a panel per
      method with several candidates; a note when there is none, so the file always exists).
    Returns the JSON content.
    """
    # every BLAS call (sklearn, numpy) at the granted thread count: oversubscribed OpenBLAS
    # threads are many times slower on a busy machine
    with thread_limit(threads):
        return _evaluate(scores=scores, pheno=pheno, trait=trait, split=split, covar=covar, covar_names=covar_names,
                         groups=groups, group_column=group_column, n_pcs_groups=n_pcs_groups, n_boot=n_boot,
                         seed=seed, min_cell_count=min_cell_count, reference_decile=reference_decile,
                         trait_type=trait_type, out_prefix=out_prefix)


def _evaluate(*, scores, pheno, trait, split, covar, covar_names, groups, group_column, n_pcs_groups, n_boot, seed,
              min_cell_count, reference_decile, trait_type, out_prefix) -> dict:
    from cohortflow.prs import plots

    if isinstance(scores, (str, Path)):
        scores = [scores]
    if n_boot < 1:
        raise CohortflowError(f"n_boot must be at least 1, not {n_boot}")
    if seed < 0:
        raise CohortflowError(f"seed must be a non-negative integer, not {seed}")
    if min_cell_count < 1:
        raise CohortflowError(f"min_cell_count must be at least 1, not {min_cell_count}")
    if not 1 <= reference_decile <= N_DECILES:
        raise CohortflowError(f"reference_decile must be between 1 and {N_DECILES}, not {reference_decile}")
    if trait_type not in ("auto", "quantitative", "binary"):
        raise CohortflowError(f"trait_type must be auto, quantitative or binary, not {trait_type!r}")
    if groups is not None and (group_column is None) == (n_pcs_groups is None):
        raise CohortflowError("groups needs exactly one of group_column (labels) or n_pcs_groups (PCs)",
                              path=groups)
    if groups is None and (group_column is not None or n_pcs_groups is not None):
        raise CohortflowError("group_column / n_pcs_groups need a groups file")
    if n_pcs_groups is not None and n_pcs_groups < 1:
        raise CohortflowError(f"n_pcs_groups must be at least 1, not {n_pcs_groups}")

    split_path = Path(split)
    split_of = read_split_table(split_path)
    score_table, score_source = read_scores(scores)
    for path in dict.fromkeys(score_source.values()):
        cols = [c for c, p in score_source.items() if p == path]
        present = score_table[cols].notna().any(axis=1)
        if not score_table.index[present].isin(split_of.index).any():
            raise InputFormatError(f"none of its samples is in the split file {split_path}", path=path)

    trait_values = read_pheno_table(pheno, columns=[trait], require_numeric=True)[trait]
    if trait_type == "auto":
        trait_type = "binary" if is_binary(trait_values) else "quantitative"
    binary = trait_type == "binary"
    if binary:
        try:
            trait_values = to_binary01(trait_values)
        except ValueError:
            raise InputFormatError(f"trait {trait!r} is not coded 1/2 or 0/1", path=pheno) from None
    design = None
    covariate_names: list[str] = []
    if covar is not None:
        design = covariate_design(read_pheno_table(covar, columns=covar_names))
        covariate_names = [str(c) for c in design.columns]

    # evaluated samples: validation and test, trait and every covariate present
    n_in_split = {s: int((split_of == s).sum()) for s in SPLITS}
    excluded = {"missing_trait": {}, "missing_covariates": {}}
    sample_sets = {}
    for s in ("validation", "test"):
        iids = split_of.index[split_of.to_numpy() == s]
        y = trait_values.reindex(iids).to_numpy(float)
        has_y = np.isfinite(y)
        has_cov = np.ones(len(iids), bool) if design is None else \
            np.isfinite(design.reindex(iids).to_numpy(float)).all(axis=1)
        excluded["missing_trait"][s] = int((~has_y).sum())
        excluded["missing_covariates"][s] = int((has_y & ~has_cov).sum())
        keep = has_y & has_cov
        sample_sets[s] = iids[keep]
        if keep.sum() < MIN_EVALUATED:
            raise InputFormatError(f"only {int(keep.sum())} {s} samples have {trait!r} and the covariates "
                                   f"(at least {MIN_EVALUATED} needed)", path=split_path)
        if binary:
            n_cases = int(np.nansum(y[keep]))
            if n_cases == 0 or n_cases == keep.sum():
                raise InputFormatError(f"the {s} samples with {trait!r} are all "
                                       f"{'controls' if n_cases == 0 else 'cases'}", path=split_path)

    def arrays(s, columns):
        """(iids, y, covariates, scores) of split ``s`` restricted to samples with every column."""
        iids = sample_sets[s]
        sc = score_table.reindex(iids)[columns].to_numpy(float)
        ok = np.isfinite(sc).all(axis=1)
        iids = iids[ok]
        y = trait_values.reindex(iids).to_numpy(float)
        cov = None if design is None else design.reindex(iids).to_numpy(float)
        return iids, y, cov, sc[ok], int((~ok).sum())

    group_labels, group_info = None, None
    if groups is not None:
        gpath = Path(groups)
        if group_column is not None:
            labels = read_pheno_table(gpath, columns=[group_column])[group_column]
            group_labels = labels.dropna().astype(str)
            group_info = {"source": "label", "file": gpath.name, "column": group_column}
        else:
            group_labels, group_info = _pc_groups(gpath, int(n_pcs_groups), split_of.index, seed)

    # a group's resamples do not depend on the method (key = the group's place among all groups)
    group_names = [] if group_labels is None else sorted(set(group_labels))
    methods: dict[str, list[str]] = {}
    for c in score_table.columns:
        methods.setdefault(method_of(c)[0], []).append(c)

    sel_metric = SELECTION_METRIC[trait_type]
    main = MAIN_METRIC[trait_type]
    perf_rows, cand_rows, decile_rows, group_rows, method_info = [], [], [], [], []
    dist_panels, decile_panels, threshold_panels = [], [], []
    covariate_cache: dict[tuple, dict] = {}
    for method, columns in methods.items():
        v_iids, v_y, v_cov, v_sc, v_missing = arrays("validation", columns)
        t_iids, t_y, t_cov, t_sc, t_missing = arrays("test", columns)
        info = {"method": method, "columns": columns, "n_validation": len(v_iids), "n_test": len(t_iids),
                "excluded_missing_score": {"validation": v_missing, "test": t_missing},
                "selected_column": None, "metrics": {}}
        if binary:
            info["n_cases_test"] = int(t_y.sum())
        if len(v_iids) < MIN_EVALUATED or len(t_iids) < MIN_EVALUATED:
            info["note"] = "too few validation or test samples with this method's scores"
            method_info.append(info)
            continue
        val_values = [selection_value(v_sc[:, j], v_y, v_cov, binary=binary) for j in range(len(columns))]
        best = choose_candidate(val_values)
        for j, c in enumerate(columns):
            test_v = selection_value(t_sc[:, j], t_y, t_cov, binary=binary)
            cand_rows.append({"method": method, "column": c, "label": method_of(c)[1],
                              "n_validation": len(v_iids), "metric": sel_metric,
                              "validation_value": val_values[j], "selected": "yes" if j == best else "no",
                              "note": "" if math.isfinite(val_values[j]) else "constant score",
                              "test_value_not_used_for_selection": test_v})
        if len(columns) > 1:
            threshold_panels.append({"method": method, "labels": [method_of(c)[1] for c in columns],
                                     "values": val_values, "selected": best, "metric": sel_metric})
        if best is None:
            info["note"] = "no usable candidate (constant score on the validation split)"
            method_info.append(info)
            continue
        col = columns[best]
        score = t_sc[:, best]
        info.update(selected_column=col, selected_label=method_of(col)[1], selection_value=val_values[best])
        n_t = len(t_iids)
        n_cases = int(t_y.sum()) if binary else None
        perf_rows.append({"method": method, "column": col, "split": "validation", "n": len(v_iids),
                          "n_cases": int(v_y.sum()) if binary else None, "metric": sel_metric,
                          "value": val_values[best], "ci_low": np.nan, "ci_high": np.nan})
        if not score.std() > 0:
            info["note"] = "the chosen score is constant on the test split"
            method_info.append(info)
            continue
        if not _cell_ok(n_t, n_cases, min_cell_count):
            info["note"] = f"fewer than {min_cell_count} test samples{', cases or controls' if binary else ''}"
            method_info.append(info)
            continue

        # methods judged on the same samples (same resamples) share the covariates-only fits
        shared = covariate_cache.setdefault(tuple(t_iids), {})

        def metrics_of(w, fits=None, chunk=None, y=t_y, score=score, cov=t_cov, shared=shared):
            if binary:
                return binary_metrics(w, y, score, cov, start=fits, cache=shared, chunk=chunk)
            res = linear_metrics(w, y, score, cov)
            res.pop("r2_covariates")
            return res

        boot = _bootstrap(metrics_of, n_t, n_boot, seed, (0,))
        info["metrics"] = boot
        for name in METRICS[trait_type]:
            r = boot[name]
            perf_rows.append({"method": method, "column": col, "split": "test", "n": n_t, "n_cases": n_cases,
                              "metric": name, "value": r["value"], "ci_low": r["ci_low"],
                              "ci_high": r["ci_high"]})

        # deciles (each individual's decile fixed; resampled with the same seed as the metrics)
        dec = decile_of(score)
        dboot = _bootstrap(lambda w, **_: decile_stats(w, t_y, dec, binary=binary, reference=reference_decile),
                           n_t, n_boot, seed, (0,))
        dec_n = np.bincount(dec, minlength=N_DECILES)
        dec_cases = np.bincount(dec, weights=t_y, minlength=N_DECILES).round().astype(int) if binary else None
        shown = []
        for d in range(N_DECILES):
            nd = int(dec_n[d])
            cd = int(dec_cases[d]) if binary else None
            ok = _cell_ok(nd, cd, min_cell_count) and \
                (not binary or _cell_ok(int(dec_n[reference_decile - 1]),
                                        int(dec_cases[reference_decile - 1]), min_cell_count))
            shown.append(ok)
            for name, per in dboot.items():
                r = per[d] if ok else {"value": np.nan, "ci_low": np.nan, "ci_high": np.nan}
                decile_rows.append({"method": method, "column": col, "decile": d + 1, "n": nd,
                                    "n_cases": cd, "metric": name, "value": r["value"],
                                    "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
        decile_panels.append({"method": method, "column": col, "shown": shown,
                              "stats": {k: v for k, v in dboot.items()}})
        dist_panels.append({"method": method, "column": col, "score": score, "y": t_y})

        if group_labels is not None:
            lab = group_labels.reindex(t_iids).to_numpy(object)
            has = pd.notna(lab)
            info["excluded_no_group"] = int((~has).sum())
            for g in sorted(set(lab[has])):
                sel = lab == g
                ng = int(sel.sum())
                cg = int(t_y[sel].sum()) if binary else None
                r = {"value": np.nan, "ci_low": np.nan, "ci_high": np.nan}
                if _cell_ok(ng, cg, min_cell_count) and score[sel].std() > 0:
                    gb = _bootstrap(lambda w, sel=sel, **_: (
                        {"auc": auc_weighted(score[sel], t_y[sel], w)} if binary else
                        {"incremental_r2": linear_metrics(w, t_y[sel], score[sel],
                                                          None if t_cov is None else t_cov[sel])[
                            "incremental_r2"]}), ng, n_boot, seed, (1, group_names.index(g)))
                    r = gb[main]
                group_rows.append({"method": method, "column": col, "group": g, "n": ng, "n_cases": cg,
                                   "metric": main, "value": r["value"], "ci_low": r["ci_low"],
                                   "ci_high": r["ci_high"]})
        method_info.append(info)

    if not perf_rows:
        raise CohortflowError("no score could be evaluated: " +
                              "; ".join(f"{i['method']}: {i.get('note', '')}" for i in method_info),
                              path=split_path)

    def present(rows, columns, count_col="n"):
        """Rows with small counts masked (floats kept, NaN -> None) for the JSON; the TSV formats them."""
        out = []
        for r in rows:
            row = {c: r.get(c) for c in columns}
            for c in columns:
                if isinstance(row[c], float) and not math.isfinite(row[c]):
                    row[c] = None
            if "n_cases" in row:
                row["n_cases"] = None if r["n_cases"] is None else _cases_text(r["n"], r["n_cases"], min_cell_count)
            row[count_col] = _count(r[count_col], min_cell_count)
            out.append(row)
        return out

    def tsv(rows, columns):
        frame = pd.DataFrame(rows, columns=columns).astype(object)
        for c in ("value", "ci_low", "ci_high", "validation_value", "test_value_not_used_for_selection"):
            if c in frame:
                frame[c] = [_num(v) for v in frame[c]]
        return frame

    perf = present(perf_rows, PERFORMANCE_COLUMNS)
    cands = present(cand_rows, CANDIDATE_COLUMNS, count_col="n_validation")
    deciles = present(decile_rows, DECILE_COLUMNS)
    group_table = present(group_rows, GROUP_COLUMNS)

    out_prefix = Path(str(out_prefix))
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    files = {"performance": f"{out_prefix.name}.performance.tsv", "candidates": f"{out_prefix.name}.candidates.tsv",
             "deciles": f"{out_prefix.name}.deciles.tsv", "groups": f"{out_prefix.name}.groups.tsv",
             "distribution_plot": f"{out_prefix.name}.distribution.png",
             "deciles_plot": f"{out_prefix.name}.deciles.png",
             "thresholds_plot": f"{out_prefix.name}.thresholds.png"}
    for key, frame, cols in (("performance", perf, PERFORMANCE_COLUMNS), ("candidates", cands, CANDIDATE_COLUMNS),
                             ("deciles", deciles, DECILE_COLUMNS), ("groups", group_table, GROUP_COLUMNS)):
        write_table_atomic(out_prefix.parent / files[key], tsv(frame, cols), float_format=None)

    plots.distribution_plot(out_prefix.parent / files["distribution_plot"], dist_panels, binary=binary, trait=trait,
                            min_cell_count=min_cell_count)
    plots.decile_plot(out_prefix.parent / files["deciles_plot"], decile_panels, binary=binary, trait=trait,
                      reference_decile=reference_decile)
    plots.threshold_plot(out_prefix.parent / files["thresholds_plot"], threshold_panels, trait=trait)

    for info in method_info:
        if "n_cases_test" in info:
            info["n_cases_test"] = _cases_text(info["n_test"], info["n_cases_test"], min_cell_count)
        for key in ("n_validation", "n_test"):
            info[key] = _count(info[key], min_cell_count)
        info["excluded_missing_score"] = {k: _count(v, min_cell_count)
                                          for k, v in info["excluded_missing_score"].items()}
        if "excluded_no_group" in info:
            info["excluded_no_group"] = _count(info["excluded_no_group"], min_cell_count)
    summary = {
        "trait": trait, "trait_type": trait_type, "main_metric": main, "selection_metric": sel_metric,
        "selection_rule": f"per method, the candidate column with the highest {sel_metric} on the validation "
                          f"split (ties: first column); reported on the test split only",
        "ci": f"percentile 95% intervals of {n_boot} bootstrap resamples of the test samples (seed {seed})",
        "n_boot": n_boot, "seed": seed, "min_cell_count": min_cell_count, "reference_decile": reference_decile,
        "covariates": covariate_names,
        "inputs": {"scores": [Path(p).name for p in scores], "pheno": Path(pheno).name, "split": split_path.name,
                   "covar": None if covar is None else Path(covar).name},
        "samples": {"in_split": {k: _count(v, min_cell_count) for k, v in n_in_split.items()},
                    "evaluated": {s: _count(len(v), min_cell_count) for s, v in sample_sets.items()},
                    "excluded": {k: {s: _count(v, min_cell_count) for s, v in d.items()}
                                 for k, d in excluded.items()}},
        "methods": method_info,
        "performance": perf, "candidates": cands, "deciles": deciles,
        "groups": {**(group_info or {"source": None}), "rows": group_table},
        "files": files,
    }
    summary = _round(summary)
    write_json_atomic(out_prefix.parent / f"{out_prefix.name}.evaluate.json", summary)
    return summary
