"""Genotype QC against plink2 (--missing, --freq, --hardy, --het and the kept sets of
--geno --mind --maf --hwe --make-bed) and HWE exact p-values against an independent enumeration."""
import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.variants.kernels import hwe_exact_p
from cohortflow.variants.qc import genotype_qc
from conftest import require_shared, require_tool


def _synthetic(tmp_path, seed=0):
    """300 samples (sexed, 5 with 12% missing calls, 20 non-founders) x 1,200 variants on 1-3, X, Y, MT, with
    high-missing, HWE-violating and rare variants."""
    rng = np.random.default_rng(seed)
    n = 300
    sex = rng.choice([1, 2], size=n)
    sex[:6] = 0
    chroms = ["1"] * 500 + ["2"] * 350 + ["3"] * 200 + ["X"] * 120 + ["Y"] * 15 + ["MT"] * 15
    m = len(chroms)
    p = rng.uniform(0.001, 0.5, size=m)
    geno = rng.binomial(2, p[:, None], size=(m, n)).astype(np.int8)
    hap = np.array([c in ("Y", "MT") for c in chroms])[:, None] | ((np.array(chroms) == "X")[:, None] & (sex == 1)[None])
    geno = np.where(hap, 2 * (geno > 0), geno).astype(np.int8)
    geno[rng.random((m, n)) < 0.005] = -1
    geno[:, 10:15][rng.random((m, 5)) < 0.12] = -1           # samples failing --mind
    high_missing = rng.choice(1050, 40, replace=False)                            # --geno
    geno[high_missing] = np.where(rng.random((40, n)) < 0.08, -1, geno[high_missing])
    het_excess = rng.choice(np.arange(100, 1050), 30, replace=False)
    geno[het_excess] = np.where(rng.random((30, n)) < 0.8, 1, geno[het_excess])    # --hwe
    bim = pd.DataFrame({"chrom": chroms, "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.arange(m) * 1000 + 1, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": sex, "pheno": "-9"})
    # s21..s40 are children of s20 (non-founders: left out of frequencies and HWE, as in plink2)
    fam.loc[20:40, "fid"] = "f20"
    fam.loc[21:40, "father"] = "s20"
    write_bed(tmp_path / "syn", geno, bim, fam)
    return tmp_path / "syn"


def _plink2(*args):
    subprocess.run([require_tool("plink2"), "--threads", "1", *map(str, args)], check=True, capture_output=True)


def _kept_sets_match(tmp_path, bfile, **thresholds):
    genotype_qc(bfile, out_prefix=tmp_path / "ours", **thresholds)
    _plink2("--bfile", bfile, "--geno", thresholds["geno"], "--mind", thresholds["mind"], "--maf", thresholds["maf"],
            "--hwe", thresholds["hwe"], "--make-bed", "--out", tmp_path / "theirs")
    ours, theirs = open_bed(tmp_path / "ours"), open_bed(tmp_path / "theirs")
    assert ours.fam["iid"].tolist() == theirs.fam["iid"].tolist()
    assert ours.bim["id"].tolist() == theirs.bim["id"].tolist()
    assert np.array_equal(ours.read(), theirs.read())
    return json.loads((tmp_path / "ours.summary.json").read_text())


@pytest.mark.peer
def test_synthetic_kept_sets_equal_plink2(tmp_path):
    bfile = _synthetic(tmp_path)
    summary = _kept_sets_match(tmp_path, bfile, geno=0.05, mind=0.05, maf=0.01, hwe=1e-6)
    # every filter bites on this data, so the comparison is not vacuous
    assert summary["samples_removed"]["mind"] >= 5
    assert all(summary["variants_removed"][k] > 0 for k in ("geno", "hwe", "maf"))
    assert summary["n_variants_out"] == summary["n_variants_in"] - sum(summary["variants_removed"].values())


@pytest.mark.peer
def test_hapmap3_tight_thresholds_kept_sets_equal_plink2(tmp_path):
    bfile = require_shared("hapmap3_founders_957", "hapmap3_957.bed").with_suffix("")
    summary = _kept_sets_match(tmp_path, bfile, geno=0.003, mind=0.0015, maf=0.1, hwe=1e-3)
    assert summary["samples_removed"]["mind"] > 0 and summary["variants_removed"]["hwe"] > 0


@pytest.mark.peer
def test_1kg_default_thresholds_kept_sets_equal_plink2(tmp_path):
    bfile = require_shared("gwas_1kg_phase3_subset", "plink", "1kg_phase3_subset.bed").with_suffix("")
    summary = _kept_sets_match(tmp_path, bfile, geno=0.05, mind=0.05, maf=0.01, hwe=1e-6)
    assert summary["variants_removed"]["hwe"] > 0


@pytest.mark.peer
def test_statistics_match_plink2_missing_freq_hardy_het(tmp_path):
    bfile = _synthetic(tmp_path, seed=1)
    genotype_qc(bfile, out_prefix=tmp_path / "ours", geno=1.0, mind=1.0, maf=0.01, hwe=0.0)
    _plink2("--bfile", bfile, "--missing", "--freq", "counts", "--hardy", "--out", tmp_path / "p")
    _plink2("--bfile", bfile, "--maf", "0.01", "--het", "--out", tmp_path / "h")
    vq = pd.read_csv(tmp_path / "ours.variant_qc.tsv", sep="\t", keep_default_na=False, na_values=[""])
    sq = pd.read_csv(tmp_path / "ours.sample_qc.tsv", sep="\t", keep_default_na=False, na_values=[""])
    vmiss = pd.read_csv(tmp_path / "p.vmiss", sep="\t")
    smiss = pd.read_csv(tmp_path / "p.smiss", sep="\t")
    acount = pd.read_csv(tmp_path / "p.acount", sep="\t")
    assert vq["variant_id"].tolist() == vmiss["ID"].tolist() == acount["ID"].tolist()
    np.testing.assert_allclose(1 - vq["call_rate"], vmiss["F_MISS"], atol=1e-6)
    np.testing.assert_allclose(1 - sq["call_rate"], smiss["F_MISS"], atol=1e-6)
    np.testing.assert_allclose(vq["a1_freq"], acount["ALT_CTS"] / acount["OBS_CT"], rtol=1e-7)
    hardy = pd.concat([pd.read_csv(tmp_path / "p.hardy", sep="\t")[["ID", "P"]],
                       pd.read_csv(tmp_path / "p.hardy.x", sep="\t")[["ID", "P"]]])
    merged = vq.merge(hardy, left_on="variant_id", right_on="ID")
    assert len(merged) == (~vq["chromosome"].isin(["Y", "MT"])).sum()
    assert vq.loc[vq["chromosome"].isin(["Y", "MT"]), "hwe_p"].isna().all()
    # plink2 prints 6 significant digits, hence 1e-5 relative (plus an absolute floor for tiny p)
    np.testing.assert_allclose(merged["hwe_p"], merged["P"], rtol=1e-5, atol=1e-300)
    het = pd.read_csv(tmp_path / "h.het", sep="\t")
    np.testing.assert_allclose(sq["het_f"], het["F"], atol=1e-6)


def _hwe_by_enumeration(n_het, n_hom1, n_hom2):
    """Exact HWE p from the Levene/Haldane formula, summing over every het count (log space)."""
    n = n_het + n_hom1 + n_hom2
    n_a = 2 * n_hom1 + n_het

    def logp(h):
        hom1 = (n_a - h) // 2
        hom2 = n - h - hom1
        return (math.lgamma(n + 1) - math.lgamma(hom1 + 1) - math.lgamma(h + 1) - math.lgamma(hom2 + 1)
                + h * math.log(2) + math.lgamma(n_a + 1) + math.lgamma(2 * n - n_a + 1) - math.lgamma(2 * n + 1))

    hets = [h for h in range(n_a % 2, min(n_a, 2 * n - n_a) + 1, 2)]
    probs = np.exp([logp(h) for h in hets])
    obs = math.exp(logp(n_het))
    return min(1.0, probs[probs <= obs * (1 + 1e-8)].sum() / probs.sum())


@pytest.mark.parametrize("counts", [(0, 50, 50), (100, 0, 0), (10, 80, 10), (57, 21, 22), (3, 0, 997), (1, 0, 0)])
def test_hwe_exact_against_enumeration(counts):
    assert hwe_exact_p(*counts) == pytest.approx(_hwe_by_enumeration(*counts), rel=1e-9)


def test_outputs_and_bad_threshold(tmp_path):
    bfile = _synthetic(tmp_path, seed=2)
    summary = genotype_qc(bfile, out_prefix=tmp_path / "q")
    vq = pd.read_csv(tmp_path / "q.variant_qc.tsv", sep="\t", keep_default_na=False)
    sq = pd.read_csv(tmp_path / "q.sample_qc.tsv", sep="\t", keep_default_na=False)
    assert list(vq.columns) == ["variant_id", "chromosome", "position", "a1", "a2", "call_rate", "n_called",
                                "a1_freq", "maf", "hwe_p", "pass", "reason"]
    assert list(sq.columns) == ["FID", "IID", "call_rate", "n_called", "n_missing", "het_f", "pass", "reason"]
    assert vq["pass"].sum() == summary["n_variants_out"] == open_bed(tmp_path / "q").n_variants
    assert sq["pass"].sum() == summary["n_samples_out"]
    assert set(summary) >= {"n_samples_in", "n_samples_out", "n_variants_in", "n_variants_out",
                            "samples_removed", "variants_removed", "thresholds"}
    with pytest.raises(CohortflowError, match="geno"):
        genotype_qc(bfile, out_prefix=tmp_path / "bad", geno=1.5)
