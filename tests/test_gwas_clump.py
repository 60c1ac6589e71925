"""LD clumping against plink1.9 --clump (the peer): identical index variants, clump sizes and
significant-member counts, on real 1000 Genomes genotypes (with missing calls added) and on a
dense msprime region, at several r2/kb/p1 settings; plus the r2 kernel on known tables."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cohortflow.errors import CohortflowError
from cohortflow.gwas.clump import clump_loci, ld_with_lead
from cohortflow.gwas.clump_kernels import genotype_pair_counts, haplotype_r2
from cohortflow.io.plink import open_bed, write_bed
from conftest import require_shared, require_tool

P2 = 0.05


def _marginal_p(geno: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided p of the simple regression of y on each variant's genotype (mean-imputed)."""
    g = geno.astype(float)
    g[g < 0] = np.nan
    g = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g)
    x = g - g.mean(1, keepdims=True)
    yc = y - y.mean()
    sxx = (x * x).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = (x @ yc) / sxx
        sigma2 = ((yc[None] - beta[:, None] * x) ** 2).sum(1) / (len(y) - 2)
        t = beta / np.sqrt(sigma2 / sxx)
    return 2 * stats.t.sf(np.abs(t), len(y) - 2)


def _trait_sumstats(geno: np.ndarray, bim: pd.DataFrame, rng: np.random.Generator, n_causal: int,
                    effect_sd: float) -> pd.DataFrame:
    """Sumstats of a simulated trait: LD spreads the causal signals to their neighbours. p-values
    are rounded to 6 significant digits, as written in the peer's input file."""
    g = geno.astype(float)
    g[g < 0] = np.nan
    g = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g)
    causal = rng.choice(len(g), n_causal, replace=False)
    y = rng.normal(0, effect_sd, n_causal) @ (g[causal] - g[causal].mean(1, keepdims=True))
    y = y + rng.normal(size=g.shape[1])
    p = _marginal_p(geno, y)
    ok = np.isfinite(p)
    text = np.array([f"{v:.6g}" for v in p[ok]])
    return pd.DataFrame({"variant_id": bim["id"].to_numpy()[ok], "p_text": text,
                         "p_value": text.astype(float), "errcode": ""})


def _plink_clump(tmp_path, prefix, ss: pd.DataFrame, *, p1, r2, kb) -> pd.DataFrame:
    plink = require_tool("plink1.9")
    assoc = tmp_path / "assoc.tsv"
    # non-default field names, so --clump-snp-field/--clump-field are exercised
    ss[["variant_id", "p_text"]].rename(columns={"variant_id": "ID", "p_text": "PVAL"}).to_csv(
        assoc, sep="\t", index=False)
    out = tmp_path / "peer"
    subprocess.run([plink, "--bfile", str(prefix), "--clump", str(assoc), "--clump-p1", str(p1),
                    "--clump-p2", str(P2), "--clump-r2", str(r2), "--clump-kb", str(kb),
                    "--clump-snp-field", "ID", "--clump-field", "PVAL", "--allow-no-sex",
                    "--out", str(out)], check=True, capture_output=True)
    table = pd.read_csv(f"{out}.clumped", sep=r"\s+")
    table["n_p2"] = [0 if s == "NONE" else len(s.split(",")) for s in table["SP2"]]
    return table


def _compare(tmp_path, prefix, ss, settings) -> int:
    compared = 0
    for p1, r2, kb in settings:
        peer = _plink_clump(tmp_path, prefix, ss, p1=p1, r2=r2, kb=kb)
        ours = clump_loci(ss, prefix, p1=p1, p2=P2, r2=r2, kb=kb)
        assert set(ours["variant_id"]) == set(peer["SNP"]), (p1, r2, kb)
        # same order (p, then .bim order), same clump sizes and significant-member counts
        assert ours["variant_id"].tolist() == peer["SNP"].tolist(), (p1, r2, kb)
        assert ours["n_clumped"].tolist() == peer["TOTAL"].tolist(), (p1, r2, kb)
        assert ours["n_clumped_p2"].tolist() == peer["n_p2"].tolist(), (p1, r2, kb)
        compared += len(peer)
    return compared


def test_clump_matches_plink19_on_1000_genomes(tmp_path):
    src = open_bed(require_shared("gwas_1kg_phase3_subset", "plink", "1kg_phase3_subset.bed"))
    auto = src.bim["chrom"].isin([str(c) for c in range(1, 23)]).to_numpy()
    rng = np.random.default_rng(20261123)
    geno = src.read()[auto]
    bim = src.bim[auto].reset_index(drop=True)
    geno = np.where(rng.random(geno.shape) < 0.02, -1, geno).astype(np.int8)  # missing calls
    prefix = tmp_path / "kg"
    write_bed(prefix, geno, bim, src.fam)
    ss = _trait_sumstats(geno, bim, rng, n_causal=150, effect_sd=0.4)
    # a variant absent from the .bim must be ignored, as plink does (it warns)
    ss = pd.concat([ss, pd.DataFrame({"variant_id": ["not:in:bim"], "p_text": ["1e-30"],
                                      "p_value": [1e-30], "errcode": [""]})], ignore_index=True)
    n = _compare(tmp_path, prefix, ss, [(1e-4, 0.1, 250), (1e-4, 0.5, 50), (1e-2, 0.5, 250), (1e-2, 0.1, 50)])
    assert n > 3000
    leads = clump_loci(ss, prefix, p1=1e-4, p2=P2, r2=0.1, kb=250)
    assert leads.attrs["n_not_in_bim"] == 1 and leads.attrs["n_ld_samples"] == len(src.fam)


def test_clump_matches_plink19_on_dense_ld(tmp_path):
    msprime = pytest.importorskip("msprime")
    ts = msprime.sim_ancestry(samples=400, population_size=10_000, sequence_length=3_000_000,
                              recombination_rate=1e-8, random_seed=11)
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=12)
    hap = ts.genotype_matrix()
    keep = np.flatnonzero((hap.max(1) == 1) & (hap.sum(1) >= 8))  # biallelic, MAC >= 8
    hap = hap[keep]
    positions = np.floor(ts.tables.sites.position[keep]).astype(np.int64) + 1
    uniq = np.concatenate([[True], np.diff(positions) > 0])
    hap, positions = hap[uniq], positions[uniq]
    geno = (hap[:, 0::2] + hap[:, 1::2]).astype(np.int8)
    rng = np.random.default_rng(5)
    geno = np.where(rng.random(geno.shape) < 0.01, -1, geno).astype(np.int8)
    n_samples = geno.shape[1]
    bim = pd.DataFrame({"chrom": "1", "id": [f"1:{p}" for p in positions], "cm": 0.0, "pos": positions,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n_samples)], "iid": [f"s{i}" for i in range(n_samples)],
                        "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    prefix = tmp_path / "dense"
    write_bed(prefix, geno, bim, fam)
    ss = _trait_sumstats(geno, bim, rng, n_causal=20, effect_sd=0.3)
    assert len(geno) > 3000
    n = _compare(tmp_path, prefix, ss, [(1e-5, 0.1, 250), (1e-5, 0.5, 50), (1e-3, 0.5, 250), (1e-3, 0.1, 50)])
    assert n > 40


def test_window_is_less_than_kb_and_ties_go_in_bim_order(tmp_path):
    """Known answers checked with plink1.9: a perfect proxy exactly kb * 1000 bp away is not
    clumped, one 1 bp closer is; equal p-values are taken in .bim order."""
    rng = np.random.default_rng(1)
    g = rng.integers(0, 3, size=200).astype(np.int8)
    positions = [750_000, 750_001, 1_000_000, 1_249_999, 1_250_000]
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(5)], "cm": 0.0, "pos": positions,
                        "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(200)], "iid": [f"s{i}" for i in range(200)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "t", np.vstack([g] * 5), bim, fam)
    ss = pd.DataFrame({"variant_id": ["v0", "v1", "v2", "v3", "v4"],
                       "p_value": [1e-6, 1e-6, 1e-10, 1e-5, 1e-6], "errcode": ""})
    leads = clump_loci(ss, tmp_path / "t", p1=1e-4, p2=0.01, r2=0.5, kb=250)
    # v2 claims v1 (249,999 bp) and v3 (249,999 bp) but not v0 or v4 (250,000 bp); v0 and v4
    # tie at 1e-6 and v0 comes first in the .bim; v0 claims nothing left (v1 taken)
    assert leads["variant_id"].tolist() == ["v2", "v0", "v4"]
    assert leads["n_clumped"].tolist() == [2, 0, 0]
    assert leads["clump_start"].tolist() == [750_001, 750_000, 1_250_000]
    assert leads["clump_end"].tolist() == [1_249_999, 750_000, 1_250_000]


def test_haplotype_r2_known_tables():
    # all called pairs are hom/hom or double heterozygotes: the ML phase is coupling, r2 = 1
    assert haplotype_r2(np.array([1068, 0, 0, 0, 21, 0, 0, 0, 0])) == pytest.approx(1.0)
    # no double heterozygotes: haplotypes are known; identical genotypes give r2 = 1
    assert haplotype_r2(np.array([30, 0, 0, 0, 0, 0, 0, 0, 10])) == pytest.approx(1.0)
    # independent (product) table of genotype frequencies: D = 0
    pa = np.array([0.25, 0.5, 0.25])
    assert haplotype_r2(np.round(np.outer(pa, pa).ravel() * 1600).astype(np.int64)) == pytest.approx(0.0, abs=1e-12)
    # no data / monomorphic
    assert np.isnan(haplotype_r2(np.zeros(9, dtype=np.int64)))
    assert haplotype_r2(np.array([50, 10, 0, 0, 0, 0, 0, 0, 0])) == 0.0
    # missing calls drop out pairwise
    g1 = np.array([0, 1, 2, -1, 2], dtype=np.int8)
    g2 = np.array([0, 1, 2, 2, -1], dtype=np.int8)
    assert genotype_pair_counts(g1, g2).tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]


def test_ld_with_lead_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    g = rng.integers(0, 3, size=(3, 100)).astype(np.int8)
    g[1] = g[0]
    bim = pd.DataFrame({"chrom": "1", "id": ["a", "b", "c"], "cm": 0.0, "pos": [10, 20, 30], "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(100)], "iid": [f"s{i}" for i in range(100)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "x", g, bim, fam)
    r2 = ld_with_lead(tmp_path / "x", "a", ["b", "c", "zz", "a"])
    assert r2[0] == pytest.approx(1.0) and r2[3] == pytest.approx(1.0) and np.isnan(r2[2]) and r2[1] < 0.2
    ss = pd.DataFrame({"variant_id": ["a", "a"], "p_value": [1e-9, 1e-8], "errcode": ""})
    with pytest.raises(CohortflowError, match="more than once"):
        clump_loci(ss, tmp_path / "x")


def test_no_index_candidates_and_sample_subset(tmp_path):
    rng = np.random.default_rng(4)
    g = rng.integers(0, 3, size=(2, 60)).astype(np.int8)
    g[1, :30] = g[0, :30]  # identical in the first 30 samples only
    bim = pd.DataFrame({"chrom": "1", "id": ["a", "b"], "cm": 0.0, "pos": [10, 20], "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(60)], "iid": [f"s{i}" for i in range(60)],
                        "father": "0", "mother": "0", "sex": 1, "pheno": "-9"})
    write_bed(tmp_path / "x", g, bim, fam)
    ss = pd.DataFrame({"variant_id": ["a", "b"], "p_value": [1e-3, 1e-2], "errcode": ""})
    none = clump_loci(ss, tmp_path / "x", p1=5e-8)
    assert len(none) == 0 and list(none.columns[-4:]) == ["n_clumped", "n_clumped_p2", "clump_start", "clump_end"]
    # LD from the first 30 samples only: b is a perfect proxy of a there
    subset = clump_loci(ss, tmp_path / "x", p1=0.05, r2=0.9, samples=[f"s{i}" for i in range(30)])
    assert subset["variant_id"].tolist() == ["a"] and subset.attrs["n_ld_samples"] == 30
    assert clump_loci(ss, tmp_path / "x", p1=0.05, r2=0.9)["variant_id"].tolist() == ["a", "b"]
