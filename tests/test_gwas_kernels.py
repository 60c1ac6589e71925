"""GWAS kernels against statsmodels (OLS / Logit) on simulated data with covariates and missing calls."""

from __future__ import annotations

import gzip
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special

from cohortflow.gwas import kernels, linear_kernels, logistic_kernels
from cohortflow.gwas.api import _log10_p, run_gwas
from cohortflow.io.plink import encode_bed_block, write_bed
from cohortflow.io.sumstats import read_sumstats

N, M = 403, 60  # N not a multiple of 4: the last .bed byte is padded


def _simulate(seed: int = 7):
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.05, 0.5, M)
    geno = rng.binomial(2, freqs[:, None], size=(M, N)).astype(np.int8)
    geno[rng.random((M, N)) < 0.05] = -1  # 5% missing calls
    geno[3] = 1  # monomorphic
    geno[4, :] = 0
    geno[4, :3] = 2  # very rare
    x = np.column_stack([np.ones(N), rng.normal(50, 10, N), rng.choice([0.0, 1.0], N), rng.normal(0, 1, N)])
    g0 = np.where(geno[0] < 0, 1, geno[0])
    y_q = np.column_stack([x @ [1.0, 0.02, 0.5, 1.0] + 0.3 * g0 + rng.normal(0, 1, N), rng.normal(0, 1, N)])
    lin = -0.5 + 0.4 * g0 + 0.02 * (x[:, 1] - 50) + 0.5 * x[:, 3]
    y_b = (rng.random(N) < 1 / (1 + np.exp(-lin))).astype(float)
    return geno, x, y_q, y_b


def test_expit_matches_scipy():
    eta = np.linspace(-700, 700, 200001)
    out = np.empty_like(eta)
    kernels.expit_into(eta, out, np.empty(len(eta), dtype=np.int64), len(eta))
    np.testing.assert_allclose(out, special.expit(eta), rtol=2e-15, atol=0)


@pytest.mark.parametrize("subset", [False, True])
def test_linear_matches_statsmodels_with_missing_calls(subset):
    geno, x, y, _ = _simulate()
    analysed = np.ones(N, dtype=bool)
    if subset:
        analysed[[0, 5, 6, 200, 402]] = False  # samples outside the analysis (e.g. phenotype missing)
    idx = np.flatnonzero(analysed)
    raw = encode_bed_block(geno)
    nb = raw.shape[1]
    q = np.linalg.qr(x[idx])[0]
    yc = y[idx] - y[idx].mean(axis=0)
    k, p = q.shape[1], yc.shape[1]
    zt = np.zeros((k + p, 4 * nb))
    zt[:k, idx] = q.T
    zt[k:, idx] = yc.T
    bits = np.zeros(4 * nb, dtype=np.int64)
    bits[idx] = 1
    pattern = (bits.reshape(nb, 4) * [1, 2, 4, 8]).sum(axis=1).astype(np.uint8)
    sums = linear_kernels.cross_products(raw, zt, pattern, chunk=8)
    beta, se, t, df, nobs, gsum, err = linear_kernels.linear_tests(*sums, k, len(idx), q.T @ yc, (yc * yc).sum(0))
    assert (err[3] == kernels.ERR_MONOMORPHIC).all() and np.isnan(beta[3]).all()
    for v in range(M):
        if v == 3:
            continue
        ok = (geno[v] >= 0) & analysed
        assert nobs[v] == ok.sum() and gsum[v] == geno[v, ok].sum()
        for j in range(p):
            fit = sm.OLS(y[ok, j], np.column_stack([x[ok], geno[v, ok]])).fit()
            assert df[v] == fit.df_resid
            np.testing.assert_allclose(beta[v, j], fit.params[-1], rtol=1e-9)
            np.testing.assert_allclose(se[v, j], fit.bse[-1], rtol=1e-9)
            np.testing.assert_allclose(10 ** _log10_p(t[v:v + 1, j], df[v:v + 1])[0], fit.pvalues[-1], rtol=1e-8)


@pytest.mark.parametrize("subset", [False, True])
def test_logistic_matches_statsmodels_with_missing_calls(subset):
    geno, x, _, yb = _simulate()
    idx = np.arange(N) if not subset else np.setdiff1d(np.arange(N), [1, 7, 300])
    xs = np.column_stack([np.ones(len(idx)), (x[idx, 1:] - x[idx, 1:].mean(0)) / x[idx, 1:].std(0)])
    qt = np.ascontiguousarray(xs.T)
    y = yb[idx]
    b_null = logistic_kernels.logistic_null(qt, y)
    beta, se, z, nobs, gsum, err, _ = logistic_kernels.logistic_tests(
        encode_bed_block(geno), idx, not subset, qt, y, b_null, *logistic_kernels.null_quantities(qt, y, b_null),
        logistic_kernels.DECODE_TABLE, logistic_kernels.FIRTH_NEVER)
    assert err[3] == kernels.ERR_MONOMORPHIC
    for v in range(M):
        if v == 3:
            continue
        ok = geno[v, idx] >= 0
        assert nobs[v] == ok.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(y[ok], np.column_stack([x[idx][ok], geno[v, idx][ok]])).fit(disp=0, tol=1e-12,
                                                                                       maxiter=100)
        if not fit.mle_retvals["converged"]:  # the 3 carriers of variant 4 may all be cases
            assert v == 4 and err[v] == kernels.ERR_SEPARATION
            continue
        assert err[v] == 0, v
        # converged to a relative step of 1e-6: estimates to ~1e-12, the information to ~1e-6
        np.testing.assert_allclose(beta[v], fit.params[-1], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(se[v], fit.bse[-1], rtol=1e-5)
        np.testing.assert_allclose(10 ** _log10_p(z[v:v + 1], None)[0], fit.pvalues[-1], rtol=1e-4)


def test_logistic_flags_separation_and_firth_estimates_it():
    rng = np.random.default_rng(1)
    y = (rng.random(N) < 0.4).astype(float)
    g = np.zeros((1, N), dtype=np.int8)
    g[0, np.flatnonzero(y == 1)[:5]] = 1  # only cases carry the allele
    qt = np.ones((1, N))
    b0 = logistic_kernels.logistic_null(qt, y)
    args = (encode_bed_block(g), np.arange(N), True, qt, y, b0, *logistic_kernels.null_quantities(qt, y, b0),
            logistic_kernels.DECODE_TABLE)
    err = logistic_kernels.logistic_tests(*args, logistic_kernels.FIRTH_NEVER)[5]
    assert err[0] == kernels.ERR_SEPARATION
    beta, se, _, _, _, err, used = logistic_kernels.logistic_tests(*args, logistic_kernels.FIRTH_FALLBACK)
    assert err[0] == 0 and used[0]
    # Firth with an intercept and one binary predictor has a closed form: the log odds ratio of the
    # 2x2 table with 1/2 added to every cell
    a, b = 5 + 0.5, (y == 1).sum() - 5 + 0.5
    c, d = 0 + 0.5, (y == 0).sum() + 0.5
    np.testing.assert_allclose(beta[0], math.log(a * d / (b * c)), rtol=1e-6)


def test_log_t_p_value_tail():
    # where doubles still hold p, the log-space continued fraction agrees with scipy
    t = np.array([5.0, 20.0, 40.0, 30.0])
    df = np.array([30.0, 100.0, 500.0, 1000.0])
    expected = np.log(2 * special.stdtr(df, -t))
    np.testing.assert_allclose(kernels.log_t_two_sided_p(t, df), expected, rtol=1e-10)
    # far below the double range, a huge df approaches the normal tail (log_ndtr is exact there)
    t = np.array([60.0])
    got = kernels.log_t_two_sided_p(t, np.array([1e9]))[0]
    assert got < math.log(1e-300)
    # (the t tail is heavier by about t^4 / (4 df) in log space: 0.003 here)
    np.testing.assert_allclose(got, math.log(2) + special.log_ndtr(-60.0), rtol=1e-5)


def test_tiny_p_written_as_text(tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    geno = rng.binomial(2, 0.4, size=(2, n)).astype(np.int8)
    y = 5.0 * geno[0] + rng.normal(0, 0.5, n)
    bim = pd.DataFrame({"chrom": ["1", "1"], "id": ["v1", "v2"], "cm": [0.0, 0.0], "pos": [100, 200],
                        "a1": ["A", "C"], "a2": ["G", "T"]})
    iids = [f"s{i}" for i in range(n)]
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "g", geno, bim, fam)
    pd.DataFrame({"#FID": iids, "IID": iids, "trait": y}).to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    out = run_gwas(bfile=tmp_path / "g", pheno=tmp_path / "p.tsv", out_pattern=str(tmp_path / "{pheno}.x.tsv.gz"))
    assert out == {"trait": tmp_path / "trait.x.tsv.gz"}
    with gzip.open(out["trait"], "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        first = fh.readline().rstrip("\n").split("\t")
    assert header == ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                      "standard_error", "effect_allele_frequency", "p_value", "n", "variant_id",
                      "test_statistic", "errcode"]
    p_text = first[header.index("p_value")]
    exponent = int(p_text.split("e")[1])
    assert exponent < -300
    t = float(first[header.index("test_statistic")])
    expected = kernels.log_t_two_sided_p(np.array([abs(t)]), np.array([n - 2.0]))[0] / math.log(10)
    ss = read_sumstats(out["trait"])
    np.testing.assert_allclose(-ss["neg_log10_p"].iloc[0], expected, rtol=1e-5)
