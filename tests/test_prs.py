"""The cohort's own polygenic scores, step by step: split, discovery GWAS, clumping + thresholding
(index variants identical to plink1.9 --clump, scores identical to plink2 --score), the Bayesian
score wrapper and the `cohortflow prs` commands chained as the workflow chains them."""

from __future__ import annotations

import gzip
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.cli import main
from cohortflow.errors import CohortflowError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.io.sumstats import read_sumstats
from cohortflow.prs.base import align_sumstats
from cohortflow.prs.ct import prs_ct, threshold_column
from cohortflow.prs.split import discovery_gwas, read_split, split_samples
from conftest import require_tool

N, M = 900, 1200
COVARS = ["age"]


def _simulate(tmp_path, seed=11):
    """Blocks of 4 correlated variants (a shared latent haplotype) so clumping has work to do;
    30 causal variants; a quantitative and a binary trait; 2% missing calls."""
    rng = np.random.default_rng(seed)
    freqs = np.repeat(rng.uniform(0.1, 0.5, M // 4), 4)
    latent = rng.random((M // 4, N))
    noise = rng.random((M, N)) < 0.1
    u = np.where(noise, rng.random((M, N)), np.repeat(latent, 4, axis=0))
    geno = ((u < freqs[:, None]).astype(np.int8) + (rng.random((M, N)) < freqs[:, None]).astype(np.int8))
    geno[rng.random((M, N)) < 0.02] = -1
    causal = np.arange(0, M, 40)
    effects = rng.normal(0, 1, len(causal))
    g = np.where(geno[causal] < 0, 0, geno[causal]).T.astype(float)
    age = rng.normal(50, 8, N)
    liability = g @ effects * 0.35 + 0.03 * age + rng.normal(0, 1, N)
    iids = [f"s{i}" for i in range(N)]
    bim = pd.DataFrame({"chrom": np.where(np.arange(M) < M // 2, "1", "2"), "id": [f"rs{i}" for i in range(M)],
                        "cm": 0.0, "pos": 1000 + (np.arange(M) % (M // 2)) * 5000, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "g", geno, bim, fam)
    ph = pd.DataFrame({"#FID": iids, "IID": iids, "q": liability,
                       "b": np.where(liability > np.quantile(liability, 0.6), 2, 1)})
    ph.loc[5, "q"] = np.nan
    ph.to_csv(tmp_path / "p.tsv", sep="\t", index=False, na_rep="NA")
    pd.DataFrame({"#FID": iids, "IID": iids, "age": age}).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    return tmp_path / "g"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("prs")
    prefix = _simulate(d)
    split_samples(bfile=prefix, pheno=d / "p.tsv", trait="q", covar=d / "c.tsv", covar_names=COVARS, seed=3,
                  out=d / "q.split.tsv")
    discovery_gwas(bfile=prefix, pheno=d / "p.tsv", trait="q", split=d / "q.split.tsv", covar=d / "c.tsv",
                   covar_names=COVARS, out=d / "q.discovery.tsv.gz")
    return prefix


# --------------------------------------------------------------------------------------------
# Split and discovery GWAS


def test_split_fractions_strata_and_determinism(sim, tmp_path):
    d = sim.parent
    table = read_split(d / "q.split.tsv")
    assert len(table) == N - 1  # one sample lacks the trait
    counts = table["split"].value_counts()
    assert counts.to_dict() == {"discovery": round(0.6 * (N - 1)), "validation": round(0.8 * (N - 1)) - round(0.6 * (N - 1)),
                                "test": (N - 1) - round(0.8 * (N - 1))}
    again = split_samples(bfile=sim, pheno=d / "p.tsv", trait="q", covar=d / "c.tsv", covar_names=COVARS, seed=3,
                          out=tmp_path / "again.tsv")
    assert (tmp_path / "again.tsv").read_bytes() == (d / "q.split.tsv").read_bytes()
    other = split_samples(bfile=sim, pheno=d / "p.tsv", trait="q", covar=d / "c.tsv", covar_names=COVARS, seed=4)
    assert not (other["split"].to_numpy() == again["split"].to_numpy()).all()
    # binary trait: each set keeps the cohort's case fraction (within rounding of one per stratum)
    binary = split_samples(bfile=sim, pheno=d / "p.tsv", trait="b", covar=d / "c.tsv", covar_names=COVARS, seed=3)
    cases = set(pd.read_csv(d / "p.tsv", sep="\t").query("b == 2")["IID"])
    fraction = len(cases) / N
    for name, part in binary.groupby("split"):
        assert abs(part["IID"].isin(cases).mean() - fraction) < 2 / len(part), name


def test_split_errors(sim, tmp_path):
    d = sim.parent
    with pytest.raises(CohortflowError, match="three positive numbers summing to 1"):
        split_samples(bfile=sim, pheno=d / "p.tsv", trait="q", fractions=(0.5, 0.5, 0.5))
    with pytest.raises(CohortflowError, match="each set needs at least"):
        split_samples(bfile=sim, pheno=d / "p.tsv", trait="q", fractions=(0.98, 0.01, 0.01))
    bad = tmp_path / "bad.tsv"
    bad.write_text("#FID\tIID\tsplit\ns1\ts1\ttraining\n")
    with pytest.raises(CohortflowError, match=r"bad.tsv: sample 's1': split 'training' is not one of"):
        read_split(bad)


def test_discovery_gwas_uses_only_discovery_samples(sim, tmp_path):
    import statsmodels.api as sm

    d = sim.parent
    ss = read_sumstats(d / "q.discovery.tsv.gz")
    split = read_split(d / "q.split.tsv")
    discovery = split.loc[split["split"] == "discovery", "IID"]
    assert f"sample_size: {len(discovery)}" in (d / "q.discovery.tsv.gz-meta.yaml").read_text()
    assert ss["n"].max() <= len(discovery)
    # the first variant's effect = OLS of the trait on genotype + age in the discovery samples called there
    bed = open_bed(sim)
    keep = bed.fam["iid"].isin(discovery).to_numpy()
    g = bed.read(0, 1)[0].astype(float)
    ph = pd.read_csv(d / "p.tsv", sep="\t").set_index("IID").reindex(bed.fam["iid"])
    age = pd.read_csv(d / "c.tsv", sep="\t").set_index("IID").reindex(bed.fam["iid"])["age"].to_numpy()
    use = keep & (g >= 0)
    fit = sm.OLS(ph["q"].to_numpy()[use], sm.add_constant(np.column_stack([g[use], age[use]]))).fit()
    assert ss["n"].iloc[0] == use.sum()
    np.testing.assert_allclose(ss["beta"].iloc[0], fit.params[1], rtol=1e-5)
    np.testing.assert_allclose(ss["standard_error"].iloc[0], fit.bse[1], rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Clumping + thresholding


@pytest.mark.peer
def test_ct_index_variants_match_plink19_clump(sim, tmp_path):
    plink = require_tool("plink1.9")
    d = sim.parent
    summary = prs_ct(bfile=sim, sumstats=d / "q.discovery.tsv.gz", out_prefix=tmp_path / "ct", clump_p1=0.5,
                     clump_r2=0.1, clump_kb=250, p_thresholds=(1e-4, 0.01, 0.5))
    # plink1.9 gets the same GWAS's IDs and p-values as text (its reader splits on whitespace, so the
    # empty errcode column of GWAS-SSF would shift fields)
    plain = tmp_path / "assoc.tsv"
    with gzip.open(d / "q.discovery.tsv.gz", "rt") as fh:
        table = pd.read_csv(fh, sep="\t", dtype=str, keep_default_na=False)
    table[["variant_id", "p_value"]].to_csv(plain, sep="\t", index=False)
    subprocess.run([plink, "--bfile", str(sim), "--clump", str(plain), "--clump-p1", "0.5", "--clump-p2", "0.5",
                    "--clump-r2", "0.1", "--clump-kb", "250", "--clump-snp-field", "variant_id",
                    "--clump-field", "p_value", "--allow-no-sex", "--out", str(tmp_path / "peer")],
                   check=True, capture_output=True)
    peer = pd.read_csv(tmp_path / "peer.clumped", sep=r"\s+")
    weights = pd.read_csv(tmp_path / "ct.weights.tsv", sep="\t")
    assert len(peer) > 50  # a real test: many index variants
    assert set(weights["variant_id"]) == set(peer["SNP"])
    assert summary["clump"]["n_index_variants"] == len(peer)
    # one column per threshold, each the index variants with p <= threshold (plink prints p to 3
    # digits, so the exact p-values of the GWAS file decide)
    for entry in summary["thresholds"]:
        assert entry["n_variants"] == int((weights["p_value"] <= entry["p_threshold"]).sum())
    assert summary["thresholds"][0]["n_variants"] < summary["thresholds"][-1]["n_variants"]


@pytest.mark.peer
def test_ct_scores_match_plink2_score(sim, tmp_path):
    plink2 = require_tool("plink2")
    d = sim.parent
    thresholds = (1e-3, 0.05, 0.5)
    prs_ct(bfile=sim, sumstats=d / "q.discovery.tsv.gz", out_prefix=tmp_path / "ct", p_thresholds=thresholds)
    weights = pd.read_csv(tmp_path / "ct.weights.tsv", sep="\t")
    ours = pd.read_csv(tmp_path / "ct.scores.tsv.gz", sep="\t")
    table = weights[["variant_id", "effect_allele"]].copy()
    for t in thresholds:  # one plink2 score column per threshold: weight where p <= t, else 0
        table[threshold_column(t)] = np.where(weights["p_value"] <= t, weights["weight"], 0.0)
    table.to_csv(tmp_path / "w.tsv", sep="\t", index=False, float_format="%.17g")
    subprocess.run([plink2, "--bfile", str(sim), "--score", str(tmp_path / "w.tsv"), "1", "2", "header",
                    "cols=+scoresums", "--score-col-nums", f"3-{2 + len(thresholds)}", "--threads", "1",
                    "--out", str(tmp_path / "peer")], check=True, capture_output=True)
    peer = pd.read_csv(tmp_path / "peer.sscore", sep="\t")
    assert peer["IID"].tolist() == ours["IID"].tolist()
    for k, t in enumerate(thresholds, start=1):
        # plink2 prints 6 significant digits (its mean imputation: 2 x the fileset's A1 frequency)
        np.testing.assert_allclose(ours[threshold_column(t)], peer[f"SCORE{k}_SUM"], rtol=5e-6, atol=1e-6)


def test_ct_outputs_and_bad_input(sim, tmp_path):
    d = sim.parent
    summary = prs_ct(bfile=sim, sumstats=d / "q.discovery.tsv.gz", out_prefix=tmp_path / "ct",
                     p_thresholds=(5e-8, 1e-4, 1.0))
    assert json.loads((tmp_path / "ct.json").read_text()) == json.loads(json.dumps(summary, default=float))
    scores = pd.read_csv(tmp_path / "ct.scores.tsv.gz", sep="\t")
    assert list(scores.columns) == ["#FID", "IID", "ct_p<5e-08", "ct_p<0.0001", "ct_p<1"]
    assert len(scores) == N
    ns = [e["n_variants"] for e in summary["thresholds"]]
    assert ns == sorted(ns) and ns[-1] == summary["clump"]["n_index_variants"]
    with pytest.raises(CohortflowError, match=r"thresholds must be in \(0, clump_p1"):
        prs_ct(bfile=sim, sumstats=d / "q.discovery.tsv.gz", out_prefix=tmp_path / "x", clump_p1=0.01,
               p_thresholds=(0.5,))
    assert not list(tmp_path.glob("x*"))
    # summary statistics of other variants: nothing matches -> one clear error, nothing written
    other = tmp_path / "other.tsv"
    other.write_text("chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\tp_value\n"
                     "7\t100\tA\tG\t0.1\t0.05\t0.04\n")
    with pytest.raises(CohortflowError, match="other.tsv"):
        prs_ct(bfile=sim, sumstats=other, out_prefix=tmp_path / "y")
    assert not list(tmp_path.glob("y*"))


def test_align_sumstats_turns_swapped_effects_to_a1(sim):
    bim = open_bed(sim).bim
    ss = pd.DataFrame({"chromosome": ["1", "1", "2"], "base_pair_location": [1000, 6000, 1000],
                       "effect_allele": ["A", "G", "C"], "other_allele": ["G", "A", "A"], "beta": [0.5, 0.25, 1.0],
                       "standard_error": [0.1, 0.1, 0.1], "effect_allele_frequency": [0.3, 0.4, 0.5],
                       "p_value": [0.01, 0.02, 0.03], "n": [100, 100, 100], "variant_id": ["a", "b", "c"],
                       "test_statistic": [5, 2.5, 10], "errcode": ["", "", ""]})
    ss["neg_log10_p"] = -np.log10(ss["p_value"])
    aligned = align_sumstats(ss, bim)
    assert aligned["variant_id"].tolist() == ["rs0", "rs1"]  # C/A is no allele pair of rs600 (A/G), nor flipped
    np.testing.assert_allclose(aligned["beta"], [0.5, -0.25])
    np.testing.assert_allclose(aligned["effect_allele_frequency"], [0.3, 0.6])
    assert aligned.attrs["match"]["swapped"] == 1 and aligned.attrs["match"]["other_dropped"] == 1


# --------------------------------------------------------------------------------------------
# The commands, chained as the workflow chains them


def test_prs_commands_chain(sim, tmp_path, capsys):
    d = sim.parent
    base = ["--bfile", str(sim)]
    out = tmp_path / "q"
    assert main(["prs", "split", *base, "--pheno", str(d / "p.tsv"), "--trait", "q", "--covar", str(d / "c.tsv"),
                 "--covar-name", "age", "--seed", "3", "--out", f"{out}.split.tsv"]) == 0
    assert (tmp_path / "q.split.tsv").read_bytes() == (d / "q.split.tsv").read_bytes()
    assert main(["prs", "discovery-gwas", *base, "--pheno", str(d / "p.tsv"), "--trait", "q", "--split",
                 f"{out}.split.tsv", "--covar", str(d / "c.tsv"), "--covar-name", "age",
                 "--out", f"{out}.discovery.tsv.gz"]) == 0
    assert main(["prs", "ct", *base, "--sumstats", f"{out}.discovery.tsv.gz", "--p-thresholds", "1e-4", "0.01,0.5",
                 "--out", f"{out}.ct"]) == 0
    assert main(["prs", "bayes", *base, "--sumstats", f"{out}.discovery.tsv.gz", "--chains", "4", "--burn-in", "50",
                 "--iter", "50", "--out", f"{out}.bayes"]) == 0
    weights = pd.read_csv(f"{out}.bayes.weights.tsv", sep="\t")
    assert np.isfinite(weights["weight"]).all()
    scores = pd.read_csv(f"{out}.bayes.scores.tsv.gz", sep="\t")
    # the score column is the weights applied to the genotypes (mean-imputed missing calls)
    bed = open_bed(sim)
    g = bed.read().astype(float)
    g[g < 0] = np.nan
    g = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g)
    rows = pd.Index(bed.bim["id"]).get_indexer(weights["variant_id"])
    np.testing.assert_allclose(scores["bayes_auto"], weights["weight"].to_numpy() @ g[rows], rtol=1e-8, atol=1e-8)
    assert main(["prs", "evaluate", "--scores", f"{out}.ct.scores.tsv.gz", f"{out}.bayes.scores.tsv.gz",
                 "--pheno", str(d / "p.tsv"), "--trait", "q", "--split", f"{out}.split.tsv", "--covar",
                 str(d / "c.tsv"), "--covar-name", "age", "--n-boot", "100", "--out", f"{out}.eval"]) == 0
    evaluation = json.loads((tmp_path / "q.eval.evaluate.json").read_text())
    methods = {m["method"]: m for m in evaluation["methods"]}
    assert set(methods) == {"ct", "bayes"}
    # 30 causal variants explaining most of the variance: both scores carry it on the test split
    for m in methods.values():
        assert m["metrics"]["r"]["value"] > 0.4
    assert main(["prs", "ct", *base, "--sumstats", f"{out}.discovery.tsv.gz", "--clump-p1", "0.01",
                 "--out", f"{out}.bad"]) == 1
    assert "cohortflow: error: p-value thresholds must be in (0, clump_p1" in capsys.readouterr().err


def test_bayes_uses_the_effective_case_control_n(sim, tmp_path):
    from cohortflow.prs.api import prs_bayes_scores

    d = sim.parent
    split_samples(bfile=sim, pheno=d / "p.tsv", trait="b", covar=d / "c.tsv", covar_names=COVARS, seed=3,
                  out=tmp_path / "b.split.tsv")
    discovery_gwas(bfile=sim, pheno=d / "p.tsv", trait="b", split=tmp_path / "b.split.tsv", covar=d / "c.tsv",
                   covar_names=COVARS, out=tmp_path / "b.discovery.tsv.gz")
    summary = prs_bayes_scores(bfile=sim, sumstats=tmp_path / "b.discovery.tsv.gz", out_prefix=tmp_path / "b.bayes",
                               ld_split=tmp_path / "b.split.tsv", n_chains=2, burn_in=20, n_iter=20)
    split = read_split(tmp_path / "b.split.tsv")
    cases = set(pd.read_csv(d / "p.tsv", sep="\t").query("b == 2")["IID"])
    discovery = split.loc[split["split"] == "discovery", "IID"]
    n_cases = int(discovery.isin(cases).sum())
    n_controls = len(discovery) - n_cases
    assert summary["sample_size"]["n_cases"] == n_cases and summary["sample_size"]["n_controls"] == n_controls
    np.testing.assert_allclose(summary["sample_size"]["factor"],
                               4 / (1 / n_cases + 1 / n_controls) / len(discovery), rtol=1e-6)
    assert json.loads((tmp_path / "b.bayes.json").read_text())["sample_size"] == summary["sample_size"]
