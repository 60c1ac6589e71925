"""Ancestry PCA against plink2 --pca on the same pruned variants, LD pruning on planted LD,
population separation on HapMap3 and byte-stable outputs."""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.io.plink import open_bed, write_bed
from cohortflow.variants.pca import genotype_pca, ld_prune
from cohortflow.variants.qc import allele_frequencies, count_variants
from conftest import require_shared, require_tool

CONTINENTAL = ["CEU", "YRI", "CHB", "MKK"]


@pytest.fixture(scope="module")
def hapmap_subset(tmp_path_factory):
    """HapMap3 founders of four populations (~440 people), chromosomes 1-11, made with plink2."""
    plink2 = require_tool("plink2")
    folder = require_shared("hapmap3_founders_957")
    tmp = tmp_path_factory.mktemp("hapmap")
    pops = pd.read_csv(folder / "relationships_w_pops_121708.txt", sep="\t", dtype=str)
    fam = open_bed(folder / "hapmap3_957").fam
    keep = pops[pops["population"].isin(CONTINENTAL) & pops["IID"].isin(fam["iid"])]
    keep[["FID", "IID"]].to_csv(tmp / "keep.txt", sep="\t", index=False, header=False)
    subprocess.run([plink2, "--bfile", str(folder / "hapmap3_957"), "--keep", str(tmp / "keep.txt"),
                    "--chr", "1-11", "--make-bed", "--threads", "1", "--out", str(tmp / "sub")], check=True, capture_output=True)
    keep[["IID", "population"]].to_csv(tmp / "info.tsv", sep="\t", index=False)
    return tmp


@pytest.mark.peer
def test_pcs_match_plink2_and_separate_populations(hapmap_subset, tmp_path):
    res = genotype_pca(hapmap_subset / "sub", out_prefix=tmp_path / "ours", n_pcs=5,
                       sample_info=hapmap_subset / "info.tsv")
    subprocess.run([require_tool("plink2"), "--bfile", str(hapmap_subset / "sub"), "--extract",
                    str(tmp_path / "ours.prune.in"), "--pca", "5", "--threads", "1", "--out", str(tmp_path / "p")],
                   check=True, capture_output=True)
    ours = pd.read_csv(tmp_path / "ours.pcs.tsv", sep="\t")
    theirs = pd.read_csv(tmp_path / "p.eigenvec", sep="\t")
    assert list(ours.columns) == ["#FID", "IID"] + [f"PC{i}" for i in range(1, 6)]
    assert ours["IID"].tolist() == theirs["IID"].tolist()
    for k in (1, 2, 3):
        assert abs(np.corrcoef(ours[f"PC{k}"], theirs[f"PC{k}"])[0, 1]) > 0.99
    eig = pd.read_csv(tmp_path / "ours.eigenvalues.tsv", sep="\t")
    assert list(eig.columns) == ["pc", "eigenvalue", "variance_explained"]
    plink_eig = np.loadtxt(tmp_path / "p.eigenval")
    np.testing.assert_allclose(eig["eigenvalue"][:3], plink_eig[:3], rtol=0.02)
    # four continental groups separate cleanly on PC1-PC2
    sep = res["separation"]
    assert sep["n_populations"] == 4
    assert sep["nearest_centroid_accuracy_pc1_pc2"] > 0.95
    assert sep["silhouette_pc1_pc2"] > 0.5
    assert json.loads((tmp_path / "ours.pca.json").read_text())["n_variants_used"] == res["n_variants_used"]
    assert (tmp_path / "ours.pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fileset(tmp_path, geno, pos, chrom=None):
    m, n = geno.shape
    bim = pd.DataFrame({"chrom": chrom if chrom is not None else ["1"] * m, "id": [f"v{i}" for i in range(m)],
                        "cm": 0.0, "pos": pos, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / "x", geno, bim, fam)
    return open_bed(tmp_path / "x")


def test_ld_prune_planted(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.binomial(2, 0.3, size=(3, 400)).astype(np.int8)
    flipped = (2 - base[0]).astype(np.int8)
    # v0; v1 = copy of v0 (r^2 = 1, 10 kb away) -> pruned; v2 independent -> kept;
    # v3 = v0 flipped (r = -1) -> pruned; v4 = copy of v0 600 kb away -> kept (outside window);
    # v5 = copy of v0 on chromosome 2 -> kept; v6 independent but rare -> not a candidate
    geno = np.stack([base[0], base[0], base[1], flipped, base[0], base[0], base[2]])
    bed = _fileset(tmp_path, geno, pos=[1000, 11000, 21000, 31000, 631000, 1000, 2000],
                   chrom=["1", "1", "1", "1", "1", "2", "2"])
    freq = allele_frequencies(count_variants(bed, sample_mask=np.ones(400, dtype=bool)))
    candidates = np.array([True] * 6 + [False])
    keep = ld_prune(bed, candidates=candidates, a1_freq=freq, window_kb=500, r2=0.2, block_size=2)
    assert keep.tolist() == [True, False, True, False, True, True, False]


def test_outputs_are_byte_stable(tmp_path):
    rng = np.random.default_rng(1)
    pop = np.repeat([0, 1], 60)
    p = np.stack([rng.uniform(0.1, 0.9, 300), rng.uniform(0.1, 0.9, 300)])
    geno = rng.binomial(2, p[pop].T).astype(np.int8)
    _fileset(tmp_path, geno, pos=np.arange(300) * 1_000_000 + 1)
    info = tmp_path / "info.tsv"
    pd.DataFrame({"IID": [f"s{i}" for i in range(120)], "population": np.where(pop == 0, "A", "B")}).to_csv(
        info, sep="\t", index=False)
    for run in ("a", "b"):
        genotype_pca(tmp_path / "x", out_prefix=tmp_path / run, n_pcs=3, sample_info=info)
    for ext in (".pcs.tsv", ".eigenvalues.tsv", ".pca.json", ".pca.png", ".prune.in"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes(), ext
    res = json.loads((tmp_path / "a.pca.json").read_text())
    assert res["separation"]["nearest_centroid_accuracy_pc1_pc2"] == 1.0
    pcs = pd.read_csv(tmp_path / "a.pcs.tsv", sep="\t")
    # PC1 is the population split; unit-norm eigenvectors, largest entry positive
    assert abs(np.corrcoef(pcs["PC1"], pop)[0, 1]) > 0.95
    assert np.isclose((pcs["PC1"] ** 2).sum(), 1.0, atol=1e-6)
    assert pcs["PC1"].abs().idxmax() == pcs["PC1"].idxmax()
