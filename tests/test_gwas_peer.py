"""run_gwas against plink2 --glm on real 1000 Genomes genotypes (with missing calls added)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortflow.gwas.api import run_gwas
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.io.sumstats import read_sumstats

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KG = SHARED / "gwas_1kg_phase3_subset"

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(not (KG / "plink" / "1kg_phase3_subset.bed").exists(),
                       reason=f"shared test data not found under {KG}"),
    pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not installed"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("peer")
    bed = open_bed(KG / "plink" / "1kg_phase3_subset")
    # chromosomes 1-3 (~3,300 variants); plink2 adds sex on chrX by itself, so autosomes only
    rows = np.flatnonzero(bed.bim["chrom"].isin(["1", "2", "3"]).to_numpy())
    geno = bed.read(int(rows[0]), int(rows[-1]) + 1)
    rng = np.random.default_rng(2024)
    geno[rng.random(geno.shape) < 0.02] = -1  # 2% missing calls: n must vary per variant as in plink2
    write_bed(tmp / "g", geno, bed.bim.iloc[rows[0]:rows[-1] + 1], bed.fam)

    ph = pd.read_csv(KG / "pheno" / "pheno_harmonized.tsv", sep="\t")
    cv = pd.read_csv(KG / "pheno" / "covar_age_study_pc10.tsv", sep="\t").merge(ph[["IID", "SEX"]], on="IID")
    cv.to_csv(tmp / "covar.tsv", sep="\t", index=False)
    ph["tall"] = np.where(ph["height_cm"] > ph["height_cm"].median(), 2, 1)
    ph.loc[:9, "height_cm"] = np.nan  # some missing phenotypes
    ph[["#FID", "IID", "height_cm", "tall"]].to_csv(tmp / "pheno.tsv", sep="\t", index=False, na_rep="NA")

    subprocess.run(["plink2", "--bfile", str(tmp / "g"), "--pheno", str(tmp / "pheno.tsv"), "--covar",
                    str(tmp / "covar.tsv"), "--glm", "hide-covar", "--covar-variance-standardize",
                    "--threads", "1", "--out", str(tmp / "ref")], check=True, capture_output=True)
    ours = run_gwas(bfile=tmp / "g", pheno=tmp / "pheno.tsv", covar=tmp / "covar.tsv", out_prefix=tmp / "ours")
    return tmp, ours


def _merge(ours_path, ref_path):
    ours = read_sumstats(ours_path)
    ref = pd.read_csv(ref_path, sep="\t")
    merged = ours.merge(ref, left_on="variant_id", right_on="ID", validate="1:1")
    assert len(merged) == len(ours) == len(ref)
    # plink2 (2.00a3+) reports the minor allele as A1; ours is always the .bim column-5 allele
    flip = merged["effect_allele"] != merged["A1"]
    assert (merged.loc[flip, "other_allele"] == merged.loc[flip, "A1"]).all()
    assert flip.mean() < 0.05
    for col in ("BETA", "T_STAT", "Z_STAT"):
        if col in merged:
            merged[col] = np.where(flip, -merged[col], merged[col])
    if "OR" in merged:
        merged["OR"] = np.where(flip, 1.0 / merged["OR"], merged["OR"])
    return merged


def test_linear_matches_plink2(runs):
    tmp, ours = runs
    m = _merge(ours["height_cm"], tmp / "ref.height_cm.glm.linear")
    both = (m["errcode"] == "") & (m["ERRCODE"] == ".")
    # the same variants are tested (the rest: monomorphic in this subset)
    assert ((m["errcode"] == "") == (m["ERRCODE"] == ".")).all()
    assert both.sum() > 3000
    t = m[both]
    np.testing.assert_array_equal(t["n"], t["OBS_CT"])
    assert t["n"].nunique() > 10  # missing calls really vary n
    # plink2 prints 6 significant digits
    np.testing.assert_allclose(t["beta"], t["BETA"], rtol=1e-5)
    np.testing.assert_allclose(t["standard_error"], t["SE"], rtol=1e-5)
    np.testing.assert_allclose(t["test_statistic"], t["T_STAT"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t["p_value"], t["P"], rtol=1e-4)


def _genotype_separated(tmp) -> pd.Series:
    """Variants whose genotype alone (quasi-)separates cases from controls (no finite MLE)."""
    bed = open_bed(tmp / "g")
    ph = pd.read_csv(tmp / "pheno.tsv", sep="\t").set_index("IID").reindex(bed.fam["iid"])
    case = (ph["tall"] == 2).to_numpy()
    g = bed.read().astype(float)
    g[g < 0] = np.nan
    with np.errstate(all="ignore"):
        lo_case, hi_case = np.nanmin(g[:, case], 1), np.nanmax(g[:, case], 1)
        lo_ctrl, hi_ctrl = np.nanmin(g[:, ~case], 1), np.nanmax(g[:, ~case], 1)
    return pd.Series((hi_case <= lo_ctrl) | (hi_ctrl <= lo_case), index=bed.bim["id"].to_numpy())


def test_logistic_matches_plink2(runs):
    tmp, ours = runs
    ref = next(tmp.glob("ref.tall.glm.logistic*"))
    m = _merge(ours["tall"], ref)
    separated = _genotype_separated(tmp).reindex(m["variant_id"]).to_numpy()
    ok = (m["errcode"] == "") & (m["ERRCODE"] == ".")
    # ordinary logistic regression (plink2 did not fall back to Firth; where the genotype alone
    # separates cases from controls plink2 stops at a finite value, we switch to Firth)
    # (very rare variants, minor allele count <= 3, sit next to separation: the solvers' stopping
    # rules decide there, and we may fall back to Firth where plink2 stops a slow Newton run)
    mac = np.minimum(m["effect_allele_frequency"], 1 - m["effect_allele_frequency"]) * 2 * m["n"]
    t = m[ok & (m["FIRTH?"] == "N") & ~separated & (mac > 3.5)]
    assert len(t) > 1500
    np.testing.assert_array_equal(t["n"], t["OBS_CT"])
    # OR printed with 6 digits: log(OR) known to ~5e-6 absolute
    np.testing.assert_allclose(t["beta"], np.log(t["OR"]), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(t["standard_error"], t["LOG(OR)_SE"], rtol=1e-4)
    np.testing.assert_allclose(t["p_value"], t["P"], rtol=1e-3)
    # Firth fallback: same variants estimated; plink2's Firth solver stops earlier than ours, so
    # the agreement is looser (measured: beta within 1e-3, SE within 4e-4 relative)
    firth = m[m["FIRTH?"] == "Y"]
    assert len(firth) > 300
    assert (firth["errcode"] == "").mean() > 0.99
    f = firth[(firth["errcode"] == "") & (firth["ERRCODE"] == ".")]
    np.testing.assert_allclose(f["beta"], np.log(f["OR"]), atol=2e-3)
    np.testing.assert_allclose(f["standard_error"], f["LOG(OR)_SE"], rtol=1e-3)
    np.testing.assert_allclose(f["p_value"], f["P"], rtol=1e-2, atol=1e-3)
