"""run_gwas behaviour: several phenotypes in one pass, byte-identical output whatever the threads or
the split into chromosomes, chromosome X, Firth modes and one-line errors for bad input."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from cohortflow.errors import CohortflowError
from cohortflow.gwas.api import read_gwas_meta, run_gwas
from cohortflow.io.plink import write_bed
from cohortflow.io.sumstats import read_sumstats

N = 301


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(21)
    chroms = ["1"] * 80 + ["2"] * 70 + ["X"] * 50
    m = len(chroms)
    geno = rng.binomial(2, rng.uniform(0.02, 0.5, m)[:, None], size=(m, N)).astype(np.int8)
    sex = rng.choice([1, 2], N)
    x_rows = np.flatnonzero(np.array(chroms) == "X")
    geno[np.ix_(x_rows, np.flatnonzero(sex == 1))] = 2 * rng.binomial(1, 0.3, (len(x_rows), (sex == 1).sum()))
    geno[rng.random((m, N)) < 0.02] = -1
    geno[10] = 0  # monomorphic
    iids = [f"s{i}" for i in range(N)]
    age = rng.normal(50, 10, N).round(1)
    age[3] = np.nan
    site = rng.choice(["north", "south", "east"], N)
    g0 = np.maximum(geno[0], 0)
    q1 = 0.5 * g0 + 0.02 * np.nan_to_num(age) + (sex == 2) + rng.normal(0, 1, N)
    lin = -0.3 + 0.6 * g0 + 0.3 * (sex == 2)
    case = rng.random(N) < 1 / (1 + np.exp(-lin))
    for v in (20, 21, 22):  # rare alleles carried by cases only: separation
        geno[v] = 0
        geno[v, np.flatnonzero(case)[v - 18: v - 14]] = 1
    bim = pd.DataFrame({"chrom": chroms, "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.arange(m) * 1000 + 5, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0", "sex": sex, "pheno": "-9"})
    write_bed(tmp / "all", geno, bim, fam)
    for c in ("1", "2", "X"):
        rows = np.flatnonzero(bim["chrom"] == c)
        write_bed(tmp / f"chr{c}", geno[rows], bim.iloc[rows], fam)
    cov = pd.DataFrame({"#FID": iids, "IID": iids, "age": age, "site": site})
    cov.to_csv(tmp / "covar.tsv", sep="\t", index=False, na_rep="NA")
    ph = pd.DataFrame({"#FID": iids, "IID": iids, "q1": q1, "q2": rng.normal(0, 1, N), "case": np.where(case, 2, 1)})
    ph.loc[5:9, "q2"] = np.nan
    ph.to_csv(tmp / "pheno.tsv", sep="\t", index=False, na_rep="NA")
    return tmp, geno, sex, age, site, ph


def _gwas(tmp, bfile, out, **kw):
    return run_gwas(bfile=tmp / bfile, pheno=tmp / "pheno.tsv", covar=tmp / "covar.tsv", out_prefix=tmp / out, **kw)


def _body(path) -> bytes:
    with gzip.open(path, "rb") as fh:
        return fh.read()


def test_one_pass_threads_and_chromosome_split_give_identical_bytes(cohort):
    tmp = cohort[0]
    together = _gwas(tmp, "all", "t1", threads=1)
    assert set(together) == {"q1", "q2", "case"}
    two = _gwas(tmp, "all", "t2", threads=2)
    small_blocks = _gwas(tmp, "all", "tb", threads=2, block_size=7)
    for name in together:
        assert together[name].read_bytes() == two[name].read_bytes() == small_blocks[name].read_bytes()
        single = run_gwas(bfile=tmp / "all", pheno=tmp / "pheno.tsv", pheno_names=[name], covar=tmp / "covar.tsv",
                          out_prefix=tmp / "single")
        assert single[name].read_bytes() == together[name].read_bytes()
        parts = [_gwas(tmp, f"chr{c}", f"c{c}")[name] for c in ("1", "2", "X")]
        bodies = [_body(p).split(b"\n", 1) for p in parts]
        assert b"".join(b[1] for b in bodies) == _body(together[name]).split(b"\n", 1)[1]


def test_chromosome_x_adds_sex_and_counts_males_0_2(cohort):
    tmp, geno, sex, age, site, ph = cohort
    out = _gwas(tmp, "all", "x")
    ss = read_sumstats(out["q1"]).set_index("variant_id")
    design = pd.get_dummies(pd.Series(site), drop_first=True, dtype=float).to_numpy()
    base = np.column_stack([np.ones(N), age, design])
    for v in (0, 160, 170):  # autosome, then X: the .fam sex joins the covariates
        ok = (geno[v] >= 0) & ~np.isnan(age)
        x = base if v < 150 else np.column_stack([base, sex == 2])
        fit = sm.OLS(ph["q1"].to_numpy()[ok], np.column_stack([x[ok], geno[v, ok]])).fit()
        row = ss.loc[f"v{v}"]
        assert row["n"] == ok.sum()
        np.testing.assert_allclose(row["beta"], fit.params[-1], rtol=1e-5)
        np.testing.assert_allclose(row["standard_error"], fit.bse[-1], rtol=1e-5)
    assert ss.loc["v10", "errcode"] == "monomorphic"
    meta = read_gwas_meta(out["case"])
    assert meta["model"] == "logistic" and int(meta["n_cases"]) + int(meta["n_controls"]) == int(meta["sample_size"])


def test_firth_modes(cohort):
    tmp = cohort[0]
    never = read_sumstats(_gwas(tmp, "all", "never", pheno_names=["case"], firth="never")["case"])
    fallback = read_sumstats(_gwas(tmp, "all", "fallback", pheno_names=["case"])["case"])
    always = read_sumstats(_gwas(tmp, "all", "always", pheno_names=["case"], firth="always")["case"])
    failed = never["errcode"].isin(["separation", "no_convergence"])
    assert failed.any()  # rare variants separate cases and controls in 301 samples
    assert (fallback.loc[failed, "errcode"] == "").all()
    np.testing.assert_array_equal(fallback.loc[~failed, "beta"], never.loc[~failed, "beta"])
    # forced Firth: finite where ordinary ML fails; close to ML for common variants (its bias
    # correction is O(1/n)), and on the whole shrunk towards zero
    assert (always.loc[failed, "errcode"] == "").all()
    maf = np.minimum(never["effect_allele_frequency"], 1 - never["effect_allele_frequency"])
    common = (~failed & (maf > 0.1)).to_numpy()
    assert (np.abs(always["beta"] - never["beta"])[common] / never["standard_error"][common]).max() < 0.15
    assert np.abs(always["beta"][common]).sum() < np.abs(never["beta"][common]).sum()


@pytest.mark.parametrize("edit, message", [
    (lambda ph, cv: ph.assign(IID="x" + ph["IID"]), "none of the"),
    (lambda ph, cv: pd.concat([ph, ph.iloc[[4]]]), "duplicate IID 's4'"),
    (lambda ph, cv: ph.assign(q1=ph["q1"].astype(object).where(ph.index != 7, "tall")), "non-numeric value 'tall'"),
    (lambda ph, cv: ph.assign(q1=np.nan), "missing for every sample"),
    (lambda ph, cv: ph.assign(q1=2), "all 300 analysed samples are cases"),
])
def test_bad_phenotype_gives_one_line_error(cohort, tmp_path, edit, message):
    tmp, ph = cohort[0], cohort[5]
    bad = edit(ph[["#FID", "IID", "q1"]].copy(), None)
    bad.to_csv(tmp_path / "bad.tsv", sep="\t", index=False, na_rep="NA")
    with pytest.raises(CohortflowError, match=message):
        run_gwas(bfile=tmp / "all", pheno=tmp_path / "bad.tsv", covar=tmp / "covar.tsv", out_prefix=tmp_path / "o")
    assert not list(tmp_path.glob("o*"))


@pytest.mark.parametrize("column, values, message", [
    ("const", 1.0, "covariate 'const' is constant"),
    ("age2", "age", "collinear"),
])
def test_constant_or_collinear_covariate_is_an_error(cohort, tmp_path, column, values, message):
    tmp = cohort[0]
    cov = pd.read_csv(tmp / "covar.tsv", sep="\t")
    cov[column] = cov["age"] * 2 + 1 if values == "age" else values
    cov.to_csv(tmp_path / "cov.tsv", sep="\t", index=False, na_rep="NA")
    with pytest.raises(CohortflowError, match=message):
        run_gwas(bfile=tmp / "all", pheno=tmp / "pheno.tsv", covar=tmp_path / "cov.tsv", out_prefix=tmp_path / "o")


def test_cli_error_is_one_line_without_output(cohort, tmp_path):
    tmp, ph = cohort[0], cohort[5]
    ph.assign(q1=np.nan).to_csv(tmp_path / "p.tsv", sep="\t", index=False, na_rep="NA")
    proc = subprocess.run([sys.executable, "-m", "cohortflow.cli", "gwas", "--bfile", str(tmp / "all"), "--pheno",
                           str(tmp_path / "p.tsv"), "--pheno-name", "q1", "--covar", str(tmp / "covar.tsv"),
                           "--covar-variance-standardize", "--no-firth", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "p.tsv" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("o*"))
