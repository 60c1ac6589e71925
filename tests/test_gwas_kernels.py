"""GWAS kernels against statsmodels (OLS / Logit) on simulated data with covariates and missing calls."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import special

from cohortflow.gwas import kernels
from cohortflow.gwas.api import _log10_p, run_gwas
from cohortflow.io.plink import write_bed
from cohortflow.io.sumstats import read_sumstats

N, M = 400, 60


def _simulate(seed: int = 7):
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.05, 0.5, M)
    geno = rng.binomial(2, freqs[:, None], size=(M, N)).astype(np.int8)
    geno[rng.random((M, N)) < 0.05] = -1  # 5% missing calls
    geno[3] = 1  # monomorphic
    age = rng.normal(50, 10, N)
    batch = rng.choice(["a", "b", "c"], N)
    pc1 = rng.normal(0, 1, N)
    g0 = np.where(geno[0] < 0, 1, geno[0])
    y_q = 0.3 * g0 + 0.02 * age + 0.5 * (batch == "b") + pc1 + rng.normal(0, 1, N)
    lin = -0.5 + 0.4 * g0 + 0.02 * (age - 50) + 0.5 * pc1
    y_b = (rng.random(N) < 1 / (1 + np.exp(-lin))).astype(float)
    return geno, age, batch, pc1, y_q, y_b


def _design(age, batch, pc1):
    return np.column_stack([np.ones(N), age, (batch == "b").astype(float), (batch == "c").astype(float), pc1])


def test_linear_matches_statsmodels_with_missing_calls():
    geno, age, batch, pc1, y, _ = _simulate()
    x = _design(age, batch, pc1)
    q, _ = np.linalg.qr((x - np.r_[0, x[:, 1:].mean(0)]) / np.r_[1, x[:, 1:].std(0)])
    yc = y - y.mean()
    beta, se, t, df, nobs, gsum, err = kernels.linear_block(geno, np.ascontiguousarray(q), yc, q.T @ yc,
                                                             float(yc @ yc))
    p = 10 ** _log10_p(t, df)
    assert err[3] == kernels.ERR_MONOMORPHIC and np.isnan(beta[3])
    for v in range(M):
        if v == 3:
            continue
        ok = geno[v] >= 0
        fit = sm.OLS(y[ok], np.column_stack([x[ok], geno[v, ok]])).fit()
        assert nobs[v] == ok.sum()
        assert df[v] == fit.df_resid
        np.testing.assert_allclose(beta[v], fit.params[-1], rtol=1e-6)
        np.testing.assert_allclose(se[v], fit.bse[-1], rtol=1e-6)
        np.testing.assert_allclose(p[v], fit.pvalues[-1], rtol=1e-6)


def test_logistic_matches_statsmodels_with_missing_calls():
    geno, age, batch, pc1, _, yb = _simulate()
    x = _design(age, batch, pc1)
    xs = np.column_stack([np.ones(N), (x[:, 1:] - x[:, 1:].mean(0)) / x[:, 1:].std(0)])
    qt = np.ascontiguousarray(xs.T)
    b_null = kernels.logistic_null(qt, yb)
    beta, se, z, nobs, gsum, err, _ = kernels.logistic_block(geno, qt, yb, b_null, False)
    p = 10 ** _log10_p(z, None)
    assert err[3] == kernels.ERR_MONOMORPHIC
    for v in range(M):
        if v == 3:
            continue
        ok = geno[v] >= 0
        fit = sm.Logit(yb[ok], np.column_stack([x[ok], geno[v, ok]])).fit(disp=0, tol=1e-12, maxiter=100)
        assert err[v] == 0
        np.testing.assert_allclose(beta[v], fit.params[-1], rtol=1e-4)
        np.testing.assert_allclose(se[v], fit.bse[-1], rtol=1e-4)
        np.testing.assert_allclose(p[v], fit.pvalues[-1], rtol=1e-4)


def test_logistic_flags_separation():
    rng = np.random.default_rng(1)
    y = (rng.random(N) < 0.4).astype(float)
    g = np.zeros((1, N), dtype=np.int8)
    g[0, np.flatnonzero(y == 1)[:5]] = 1  # only cases carry the allele
    qt = np.ones((1, N))
    _, _, _, _, _, err, _ = kernels.logistic_block(g, qt, y, kernels.logistic_null(qt, y), False)
    assert err[0] == kernels.ERR_SEPARATION


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
