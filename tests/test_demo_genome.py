"""Demo cohort genetics (cohortflow.demo.genome / .reads) on a small configuration.

Known answers: the planted effects are checked with statsmodels, the files with bcftools, plink2 and
samtools when they are installed, and the simulated reads against the individual's true alleles by
calling variants with bcftools.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from cohortflow.demo.genome import load_true_haplotypes, simulate_genotypes
from cohortflow.demo.reads import simulate_reads

SMALL = dict(
    n_individuals=300,
    n_populations=3,
    n_chromosomes=2,
    chrom_length=1_000_000,
    n_quant_causal=2,
    n_disease_causal=2,
    disease_odds_ratio=4.0,  # easy setting: each locus clear at n=300
    seed=11,
)
READ_REGION = ("1", 200_001, 300_000)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not on PATH")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    simulate_genotypes(out, **SMALL)
    return out


@pytest.fixture(scope="module")
def truth(demo) -> dict:
    return json.loads((demo / "truth.json").read_text())


def _true_dosage(demo: Path, chrom: str, position: int) -> np.ndarray:
    _, positions, _, _, hap = load_true_haplotypes(demo / "genotypes" / "true_haplotypes.npz", chrom)
    j = int(np.searchsorted(positions, position))
    assert positions[j] == position
    return (hap[j, 0::2] + hap[j, 1::2]).astype(float)


def test_tables(demo, truth):
    samples = pd.read_csv(demo / "samples.tsv", sep="\t", dtype={"IID": str})
    assert list(samples.columns) == ["IID", "population", "sex"]
    assert samples["IID"].tolist()[:3] == ["S00001", "S00002", "S00003"]
    assert len(samples) == SMALL["n_individuals"]
    names = truth["populations"]["names"]
    assert samples["population"].tolist() == [names[i % 3] for i in range(len(samples))]
    assert set(samples["sex"]) == {1, 2}
    pheno = pd.read_csv(demo / "phenotypes.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(pheno.columns) == ["#FID", "IID", "quant_trait", "disease"]
    assert (pheno["#FID"] == pheno["IID"]).all() and (pheno["IID"] == samples["IID"]).all()
    assert set(pheno["disease"]) <= {"1", "2", "NA"}
    prevalence = (pheno["disease"] == "2").sum() / (pheno["disease"] != "NA").sum()
    assert 0.25 < prevalence < 0.55
    cov = pd.read_csv(demo / "covariates.tsv", sep="\t")
    assert list(cov.columns) == ["#FID", "IID", "sex", "age"]
    assert cov["age"].between(40, 70).all()
    assert (cov["sex"].values == samples["sex"].values).all()


def test_vcf_ref_matches_fasta_and_truth(demo, truth):
    fasta = pysam.FastaFile(str(demo / "reference.fa"))
    assert list(fasta.references) == ["1", "2", "X", "Y"]
    assert list(fasta.lengths) == [1_000_000, 1_000_000, 400_000, 200_000]
    n_total, n_missing, n_calls = 0, 0, 0
    for chrom in ("1", "2"):
        _, positions, _, _, hap = load_true_haplotypes(demo / "genotypes" / "true_haplotypes.npz", chrom)
        with pysam.VariantFile(str(demo / "genotypes" / f"chr{chrom}.vcf.gz")) as vcf:
            assert vcf.header.contigs[chrom].length == 1_000_000
            seq = fasta.fetch(chrom)
            for j, rec in enumerate(vcf):
                assert rec.pos == positions[j]
                assert rec.ref == seq[rec.pos - 1]
                assert len(rec.alts) == 1 and rec.alts[0] != rec.ref and rec.alts[0] in "ACGT"
                assert rec.id == f"{chrom}:{rec.pos}:{rec.ref}:{rec.alts[0]}"
                if j % 50 == 0:  # genotype spot checks against the true haplotypes
                    for i, sample in enumerate(rec.samples.values()):
                        gt = sample["GT"]
                        n_calls += 1
                        if gt[0] is None:
                            n_missing += 1
                            continue
                        assert sample.phased
                        assert gt == (hap[j, 2 * i], hap[j, 2 * i + 1])
            n_total += j + 1
    assert n_total == truth["sizes"]["n_variants_total"]
    assert 0 < n_missing / n_calls < 0.01  # missing_rate 0.002


def test_genes_and_causal_variants(demo, truth):
    gtf = pd.read_csv(demo / "genes.gtf", sep="\t", header=None)
    assert (gtf[2] == "gene").all()
    names = gtf[8].str.extract(r'gene_name "([^"]+)"')[0]
    assert names.is_unique and gtf[8].str.contains('gene_id "').all()
    for chrom, genes in gtf.groupby(0):
        assert (genes[3].values[1:] > genes[4].values[:-1]).all()  # sorted, non-overlapping
    by_name = dict(zip(names, gtf.itertuples()))
    quant, disease = truth["traits"]["quant_trait"], truth["traits"]["disease"]
    assert not set(quant["causal_genes"]) & set(disease["causal_genes"])
    for trait in (quant, disease):
        for cv in trait["causal_variants"]:
            gene = by_name[cv["gene"]]
            assert str(gene[1]) == cv["chromosome"] and gene[4] <= cv["position"] <= gene[5]
            assert cv["variant_id"].split(":")[3] == cv["effect_allele"]
            assert cv["maf"] >= 0.15


def test_planted_effects_recovered(demo, truth):
    import statsmodels.api as sm

    pheno = pd.read_csv(demo / "phenotypes.tsv", sep="\t", na_values="NA")
    cov = pd.read_csv(demo / "covariates.tsv", sep="\t")
    pop = np.arange(len(cov)) % 3
    base = np.column_stack([cov["sex"], cov["age"], pop == 1, pop == 2]).astype(float)
    for trait, model in (("quant_trait", sm.OLS), ("disease", sm.Logit)):
        y = pheno[trait].to_numpy()
        ok = ~np.isnan(y)
        y = y[ok] - (1 if trait == "disease" else 0)
        for cv in truth["traits"][trait]["causal_variants"]:
            x = _true_dosage(demo, cv["chromosome"], cv["position"])
            fit = model(y, sm.add_constant(np.column_stack([x, base])[ok])).fit(disp=0)
            planted = cv["beta"] if trait == "quant_trait" else cv["log_odds_ratio"]
            assert np.sign(fit.params[1]) == np.sign(planted)
            assert fit.pvalues[1] < (1e-5 if trait == "quant_trait" else 1e-4)


def test_same_seed_same_bytes(demo, tmp_path):
    simulate_genotypes(tmp_path, **SMALL)
    for name in (
        "reference.fa",
        "genes.gtf",
        "genotypes/chr1.vcf.gz",
        "genotypes/chr1.vcf.gz.tbi",
        "genotypes/true_haplotypes.npz",
        "phenotypes.tsv",
        "covariates.tsv",
        "truth.json",
    ):
        assert (tmp_path / name).read_bytes() == (demo / name).read_bytes(), name


def test_peer_tools_read_vcf(demo, truth, tmp_path):
    _need("bcftools")
    _need("plink2")
    vcf = demo / "genotypes" / "chr1.vcf.gz"
    out = subprocess.run(["bcftools", "view", "-H", str(vcf)], check=True, capture_output=True, text=True)
    assert len(out.stdout.splitlines()) == truth["sizes"]["n_variants"]["1"]
    subprocess.run(
        ["plink2", "--vcf", str(vcf), "--double-id", "--make-bed", "--out", str(tmp_path / "g"), "--threads", "1"],
        check=True,
        capture_output=True,
    )
    bim = pd.read_csv(tmp_path / "g.bim", sep="\t", header=None)
    assert len(bim) == truth["sizes"]["n_variants"]["1"]
    with gzip.open(vcf, "rt") as fh:  # plink2 A1 (.bim col 5) is the VCF ALT
        first = next(line for line in fh if not line.startswith("#")).split("\t")
    assert (bim.iloc[0, 4], bim.iloc[0, 5]) == (first[4], first[3])


@pytest.fixture(scope="module")
def bams(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reads")
    simulate_reads(
        out,
        reference=demo / "reference.fa",
        haplotypes=demo / "genotypes" / "true_haplotypes.npz",
        samples=["S00001", "S00002"],
        region=READ_REGION,
        coverage=20,
        seed=5,
    )
    return out


def test_bam_structure(bams):
    path = bams / "bam" / "S00001.bam"
    assert (bams / "bam" / "S00001.bam.bai").exists()
    with pysam.AlignmentFile(str(path)) as bam:
        header = bam.header.to_dict()
        assert header["HD"]["SO"] == "coordinate"
        assert [sq["SN"] for sq in header["SQ"]] == ["1", "2", "X", "Y"]
        assert header["RG"][0]["SM"] == "S00001"
        reads = list(bam.fetch(until_eof=True))
    starts = [r.reference_start for r in reads]
    assert starts == sorted(starts)
    mapped = [r for r in reads if not r.is_unmapped]
    assert all(r.mapping_quality == 60 and r.cigarstring == "100M" for r in mapped)
    assert any(r.is_duplicate for r in reads) and any(r.is_unmapped for r in reads)
    proper = [r for r in mapped if r.is_proper_pair]
    assert all(abs(r.template_length) >= 100 for r in proper)
    assert sum(r.template_length for r in proper) == 0  # +TLEN and -TLEN per pair


def test_bam_tags_match_samtools(bams, demo):
    _need("samtools")
    path = str(bams / "bam" / "S00001.bam")
    subprocess.run(["samtools", "quickcheck", path], check=True)
    stats = subprocess.run(["samtools", "stats", path], check=True, capture_output=True, text=True).stdout
    assert "SN\tis sorted:\t1" in stats
    # calmd recomputes NM/MD from the reference and reports every read where ours differ.
    calmd = subprocess.run(
        ["samtools", "calmd", path, str(demo / "reference.fa")], check=True, capture_output=True, text=True
    )
    assert "different" not in calmd.stderr


def test_bam_recovers_true_heterozygous_sites(bams, demo):
    _need("bcftools")
    chrom, start, end = READ_REGION
    pileup = subprocess.run(
        ["bcftools", "mpileup", "-f", str(demo / "reference.fa"), "-r", f"{chrom}:{start}-{end}",
         "-a", "FORMAT/DP", str(bams / "bam" / "S00001.bam")],
        check=True, capture_output=True,
    )
    called = subprocess.run(["bcftools", "call", "-m"], input=pileup.stdout, check=True, capture_output=True)
    calls = {}
    for line in called.stdout.decode().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        fmt = dict(zip(f[8].split(":"), f[9].split(":")))
        calls[int(f[1])] = (fmt["GT"].replace("|", "/"), int(fmt.get("DP", "0")))
    samples, positions, _, _, hap = load_true_haplotypes(demo / "genotypes" / "true_haplotypes.npz", chrom)
    i = samples.index("S00001")
    in_region = (positions >= start) & (positions <= end)
    truth_het = set(positions[in_region & (hap[:, 2 * i] != hap[:, 2 * i + 1])].tolist())
    covered = [p for p in truth_het if p in calls and calls[p][1] >= 8]
    assert len(covered) >= 20
    concordance = np.mean([calls[p][0] == "0/1" for p in covered])
    assert concordance >= 0.95
    false_het = [p for p, (gt, dp) in calls.items() if gt == "0/1" and dp >= 8 and p not in truth_het]
    assert len(false_het) <= 0.05 * len(covered)


def test_reads_deterministic_per_sample(bams, demo, tmp_path):
    simulate_reads(
        tmp_path,
        reference=demo / "reference.fa",
        haplotypes=demo / "genotypes" / "true_haplotypes.npz",
        samples=["S00002"],  # alone this time: its BAM must not depend on the other samples
        region=READ_REGION,
        coverage=20,
        seed=5,
    )
    for suffix in ("bam", "bam.bai"):
        assert (tmp_path / "bam" / f"S00002.{suffix}").read_bytes() == (bams / "bam" / f"S00002.{suffix}").read_bytes()
