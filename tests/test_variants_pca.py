"""LD pruning, ancestry PCA and PC projection against plink2 (--indep-pairwise, --pca, --pca approx,
--score variance-standardize) on HapMap3 and 1000 Genomes, planted LD, a synthetic
three-population cohort and byte-stable outputs."""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.plink import open_bed, write_bed
from cohortflow.variants.pca import genotype_pca, indep_pairwise, project_pcs
from conftest import require_shared, require_tool

CONTINENTAL = ["CEU", "YRI", "CHB", "MKK"]
PCS5 = [f"PC{i}" for i in range(1, 6)]


def _plink2(*args):
    subprocess.run([require_tool("plink2"), *map(str, args), "--threads", "1"], check=True,
                   capture_output=True)


def _corr(a, b):
    return abs(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def hapmap_subset(tmp_path_factory):
    """HapMap3 founders of four populations (~440 people), chromosomes 1-11, made with plink2."""
    folder = require_shared("hapmap3_founders_957")
    tmp = tmp_path_factory.mktemp("hapmap")
    pops = pd.read_csv(folder / "relationships_w_pops_121708.txt", sep="\t", dtype=str)
    fam = open_bed(folder / "hapmap3_957").fam
    keep = pops[pops["population"].isin(CONTINENTAL) & pops["IID"].isin(fam["iid"])]
    keep[["FID", "IID"]].to_csv(tmp / "keep.txt", sep="\t", index=False, header=False)
    _plink2("--bfile", folder / "hapmap3_957", "--keep", tmp / "keep.txt", "--chr", "1-11",
            "--make-bed", "--out", tmp / "sub")
    keep[["IID", "population"]].to_csv(tmp / "info.tsv", sep="\t", index=False)
    return tmp


PRUNE_CASES = [
    # HapMap3 is already thinned at r2 0.02: prune harder so that plenty of pairs are removed
    ("hapmap3_founders_957/hapmap3_957", ["--autosome", "--maf", "0.05"], ["50", "5", "0.01"]),
    # all chromosomes: chrX (males haploid, weight 1), XY, MT (haploid)
    ("hapmap3_founders_957/hapmap3_957", ["--maf", "0.01"], ["2000kb", "0.01"]),
    ("gwas_1kg_phase3_subset/plink/1kg_phase3_subset", ["--autosome", "--maf", "0.05"], ["200", "50", "0.2"]),
    ("gwas_1kg_phase3_subset/plink/1kg_phase3_subset", [], ["10", "3", "0.1"]),
]


@pytest.mark.peer
@pytest.mark.parametrize("data,filters,args", PRUNE_CASES)
def test_indep_pairwise_matches_plink2(data, filters, args, tmp_path):
    bfile = str(require_shared(*f"{data}.bed".split("/")))[:-len(".bed")]
    _plink2("--bfile", bfile, *filters, "--write-snplist", "--out", tmp_path / "cand")
    _plink2("--bfile", bfile, *filters, "--indep-pairwise", *args, "--out", tmp_path / "p")
    bed = open_bed(bfile)
    cand = bed.bim["id"].isin(set((tmp_path / "cand.snplist").read_text().split())).to_numpy()
    if args[0].endswith("kb"):
        keep = indep_pairwise(bed, window=float(args[0][:-2]), window_unit="kb", r2=float(args[1]),
                              candidates=cand)
    else:
        keep = indep_pairwise(bed, window=int(args[0]), step=int(args[1]), r2=float(args[2]),
                              candidates=cand)
    theirs = (tmp_path / "p.prune.in").read_text().split()
    ours = bed.bim["id"].to_numpy()[keep].tolist()
    assert len(theirs) < cand.sum()  # the case removes variants
    assert ours == theirs  # same variants, same (file) order


@pytest.mark.peer
def test_genotype_pca_matches_plink2_on_1000_genomes(tmp_path):
    """Whole chain: --autosome --maf 0.05 --indep-pairwise 500kb 0.2, then --pca allele-wts."""
    folder = require_shared("gwas_1kg_phase3_subset", "plink")
    bfile = folder / "1kg_phase3_subset"
    res = genotype_pca(bfile, out_prefix=tmp_path / "ours", n_pcs=5, maf=0.05, prune_window_kb=500,
                       prune_r2=0.2, method="exact")
    _plink2("--bfile", bfile, "--autosome", "--maf", "0.05", "--indep-pairwise", "500kb", "0.2",
            "--out", tmp_path / "p")
    assert (tmp_path / "ours.prune.in").read_text() == (tmp_path / "p.prune.in").read_text()
    _plink2("--bfile", bfile, "--extract", tmp_path / "p.prune.in", "--pca", "5", "allele-wts",
            "--out", tmp_path / "p")
    ours = pd.read_csv(tmp_path / "ours.pcs.tsv", sep="\t")
    theirs = pd.read_csv(tmp_path / "p.eigenvec", sep="\t")
    assert ours["IID"].tolist() == theirs["IID"].tolist()
    for pc in PCS5:
        assert _corr(ours[pc], theirs[pc]) >= 0.999
    np.testing.assert_allclose(res["eigenvalues"], np.loadtxt(tmp_path / "p.eigenval"), rtol=1e-4)
    # allele weights: plink2's A1 (= ALT) weight is -w * M * sqrt(lambda) / 2, up to the PC sign
    load = pd.read_csv(tmp_path / "ours.pca.loadings.tsv", sep="\t")
    assert list(load.columns) == ["#CHROM", "ID", "A1", "A2", "A1_FREQ", *PCS5]
    wts = pd.read_csv(tmp_path / "p.eigenvec.allele", sep="\t")
    wts = wts[wts["A1"] == wts["ALT"]].set_index("ID").loc[load["ID"]]
    for k, pc in enumerate(PCS5):
        ours_w = -load[pc].to_numpy() * len(load) * np.sqrt(res["eigenvalues"][k]) / 2
        sign = np.sign(np.dot(ours_w, wts[pc].to_numpy()))
        np.testing.assert_allclose(sign * ours_w, wts[pc].to_numpy(), atol=2e-5 * np.abs(wts[pc]).max())


@pytest.mark.peer
def test_pcs_match_plink2_and_separate_populations(hapmap_subset, tmp_path):
    """HapMap3 has missing calls: plink2's relationship matrix divides each pair by the variants
    called in both, which the exact path reproduces (eigenvalues to 1e-4)."""
    res = genotype_pca(hapmap_subset / "sub", out_prefix=tmp_path / "ours", n_pcs=5,
                       sample_info=hapmap_subset / "info.tsv")
    assert res["method"] == "exact"
    _plink2("--bfile", hapmap_subset / "sub", "--extract", tmp_path / "ours.prune.in", "--pca", "5",
            "--out", tmp_path / "p")
    ours = pd.read_csv(tmp_path / "ours.pcs.tsv", sep="\t")
    theirs = pd.read_csv(tmp_path / "p.eigenvec", sep="\t")
    assert list(ours.columns) == ["#FID", "IID", *PCS5]
    assert ours["IID"].tolist() == theirs["IID"].tolist()
    for pc in PCS5:
        assert _corr(ours[pc], theirs[pc]) >= 0.999
    eig = pd.read_csv(tmp_path / "ours.eigenvalues.tsv", sep="\t")
    assert list(eig.columns) == ["pc", "eigenvalue", "variance_explained"]
    np.testing.assert_allclose(eig["eigenvalue"], np.loadtxt(tmp_path / "p.eigenval"), rtol=1e-4)
    # four continental groups separate cleanly on PC1-PC2
    sep = res["separation"]
    assert sep["n_populations"] == 4
    assert sep["nearest_centroid_accuracy_pc1_pc2"] > 0.95
    assert sep["silhouette_pc1_pc2"] > 0.5
    assert json.loads((tmp_path / "ours.pca.json").read_text())["n_variants_used"] == res["n_variants_used"]
    assert (tmp_path / "ours.pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.peer
def test_randomized_pca_matches_plink2_approx(hapmap_subset, tmp_path):
    res = genotype_pca(hapmap_subset / "sub", out_prefix=tmp_path / "ours", n_pcs=5, method="randomized",
                       seed=7)
    assert res["method"] == "randomized" and res["residual"] < 1e-4
    _plink2("--bfile", hapmap_subset / "sub", "--extract", tmp_path / "ours.prune.in", "--pca", "5",
            "approx", "--out", tmp_path / "p")
    ours = pd.read_csv(tmp_path / "ours.pcs.tsv", sep="\t")
    theirs = pd.read_csv(tmp_path / "p.eigenvec", sep="\t")
    for pc in PCS5:
        assert _corr(ours[pc], theirs[pc]) >= 0.999
    # both mean-impute missing calls
    np.testing.assert_allclose(res["eigenvalues"], np.loadtxt(tmp_path / "p.eigenval"), rtol=1e-3)


def _flip_alleles(src, dst, swap):
    """Copy a fileset with the .bim alleles of the ``swap`` rows exchanged (and the genotypes
    recoded to match), i.e. the same data described the other way round."""
    bed = open_bed(src)
    geno = bed.read()
    geno[swap] = np.where(geno[swap] < 0, -1, 2 - geno[swap])
    bim = bed.bim.copy()
    bim.loc[swap, ["a1", "a2"]] = bim.loc[swap, ["a2", "a1"]].to_numpy()
    write_bed(dst, geno, bim, bed.fam)


@pytest.mark.peer
def test_projection_matches_plink2_score_and_recovers_pcs(hapmap_subset, tmp_path):
    sub = hapmap_subset / "sub"
    genotype_pca(sub, out_prefix=tmp_path / "ref", n_pcs=5)
    loadings = tmp_path / "ref.pca.loadings.tsv"
    # the reference samples projected onto their own PCs
    project_pcs(sub, loadings=loadings, out=tmp_path / "self")
    pcs = pd.read_csv(tmp_path / "ref.pcs.tsv", sep="\t")
    proj = pd.read_csv(tmp_path / "self.pcs.tsv", sep="\t")
    for pc in PCS5:
        assert _corr(pcs[pc], proj[pc]) >= 0.999
        np.testing.assert_allclose(proj[pc], pcs[pc], atol=0.02 * np.abs(pcs[pc]).max())

    # a target missing 10% of the variants, with a third of the rest described the other way round
    load = pd.read_csv(loadings, sep="\t")
    rng = np.random.default_rng(3)
    dropped = set(load["ID"].sample(frac=0.1, random_state=1))
    bed = open_bed(sub)
    (tmp_path / "drop.txt").write_text("".join(f"{v}\n" for v in sorted(dropped)))
    _plink2("--bfile", sub, "--exclude", tmp_path / "drop.txt", "--make-bed", "--out", tmp_path / "target")
    target = open_bed(tmp_path / "target")
    swap = rng.random(target.n_variants) < 0.33
    _flip_alleles(tmp_path / "target", tmp_path / "swapped", swap)
    res = project_pcs(tmp_path / "swapped", loadings=loadings, out=tmp_path / "proj")
    assert res["n_variants_absent"] == len(dropped)
    assert res["n_variants_used"] == len(load) - len(dropped)
    assert res["n_variants_swapped"] == int(swap[target.bim["id"].isin(load["ID"]).to_numpy()].sum()) > 0
    ours = pd.read_csv(tmp_path / "proj.pcs.tsv", sep="\t")
    # plink2's documented projection on the unswapped target: --read-freq with the loadings' A1 as
    # ALT, --score ... no-mean-imputation variance-standardize, SUM of the scores
    freq = pd.DataFrame({"#CHROM": load["#CHROM"], "ID": load["ID"], "REF": load["A2"], "ALT": load["A1"],
                         "ALT_FREQS": load["A1_FREQ"], "OBS_CT": 2 * bed.n_samples})
    freq.to_csv(tmp_path / "ref.afreq", sep="\t", index=False)
    _plink2("--bfile", tmp_path / "target", "--read-freq", tmp_path / "ref.afreq", "--score", loadings,
            "2", "3", "header-read", "no-mean-imputation", "variance-standardize", "cols=+scoresums",
            "--score-col-nums", "6-10", "--out", tmp_path / "score")
    score = pd.read_csv(tmp_path / "score.sscore", sep="\t")
    assert score["IID"].tolist() == ours["IID"].tolist()
    for pc in PCS5:
        np.testing.assert_allclose(ours[pc], score[f"{pc}_SUM"], rtol=1e-5, atol=1e-7)


def _fileset(tmp_path, geno, pos, chrom=None, name="x"):
    m, n = geno.shape
    bim = pd.DataFrame({"chrom": chrom if chrom is not None else ["1"] * m, "id": [f"v{i}" for i in range(m)],
                        "cm": 0.0, "pos": pos, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp_path / name, geno, bim, fam)
    return open_bed(tmp_path / name)


def test_indep_pairwise_planted(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.binomial(2, 0.3, size=(3, 400)).astype(np.int8)
    flipped = (2 - base[0]).astype(np.int8)
    rarer = base[0].copy()
    rarer[base[0] == 1] = 0  # tracks v0 closely but with a lower MAF
    # v0; v1 = copy of v0 (r^2 = 1, 10 kb away) -> pruned (MAF tie: the later goes);
    # v2 independent -> kept; v3 = v0 flipped (r = -1) -> pruned; v4 = copy of v0 600 kb away ->
    # kept (outside the 500 kb window); v5 = copy of v0 on chromosome 2 -> kept;
    # v6 independent but not a candidate; v7 on chromosome 2, rarer version of v5 -> pruned
    geno = np.stack([base[0], base[0], base[1], flipped, base[0], base[0], base[2], rarer])
    bed = _fileset(tmp_path, geno, pos=[1000, 11000, 21000, 31000, 631000, 1000, 2000, 3000],
                   chrom=["1", "1", "1", "1", "1", "2", "2", "2"])
    candidates = np.array([True] * 6 + [False, True])
    keep = indep_pairwise(bed, window=500, window_unit="kb", r2=0.2, candidates=candidates)
    assert keep.tolist() == [True, False, True, False, True, True, False, False]
    # the lower-MAF member of a pair goes even when it comes first
    geno2 = np.stack([rarer, base[0], base[1]])
    bed2 = _fileset(tmp_path, geno2, pos=[1, 2, 3], name="y")
    assert indep_pairwise(bed2, window=3, step=1, r2=0.5).tolist() == [False, True, True]
    with pytest.raises(CohortflowError):
        indep_pairwise(bed, window=500, window_unit="kb", step=5, r2=0.2)
    with pytest.raises(CohortflowError):
        indep_pairwise(bed, window=50, window_unit="cM", r2=0.2)


def _three_populations(n_per=200, m=3000, seed=5):
    """Genotypes of three populations drifted from a common ancestor (Balding-Nichols, Fst 0.05)."""
    rng = np.random.default_rng(seed)
    anc = rng.uniform(0.1, 0.9, m)
    fst = 0.05
    a = anc * (1 - fst) / fst
    b = (1 - anc) * (1 - fst) / fst
    pop_p = rng.beta(a, b, size=(3, m))
    pop = np.repeat([0, 1, 2], n_per)
    geno = rng.binomial(2, pop_p[pop].T).astype(np.int8)
    geno[rng.random(geno.shape) < 0.005] = -1
    return geno, pop


def test_randomized_pca_recovers_three_populations(tmp_path):
    geno, pop = _three_populations()
    _fileset(tmp_path, geno, pos=np.arange(geno.shape[0]) * 1_000_000 + 1)
    info = tmp_path / "info.tsv"
    labels = np.array(["A", "B", "C"])[pop]
    pd.DataFrame({"IID": [f"s{i}" for i in range(len(pop))], "population": labels}).to_csv(info, sep="\t",
                                                                                        index=False)
    rand = genotype_pca(tmp_path / "x", out_prefix=tmp_path / "r", n_pcs=4, method="randomized",
                        sample_info=info, oversampling=8)
    exact = genotype_pca(tmp_path / "x", out_prefix=tmp_path / "e", n_pcs=4, method="exact", sample_info=info)
    assert rand["separation"]["nearest_centroid_accuracy_pc1_pc2"] == 1.0
    assert rand["separation"]["silhouette_pc1_pc2"] > 0.8
    r = pd.read_csv(tmp_path / "r.pcs.tsv", sep="\t")
    e = pd.read_csv(tmp_path / "e.pcs.tsv", sep="\t")
    for pc in ("PC1", "PC2"):
        assert _corr(r[pc], e[pc]) >= 0.999
    # two population axes stand out of the noise bulk (Marchenko-Pastur edge)
    n, m = len(pop), rand["n_variants_used"]
    edge = (1 + np.sqrt(n / m)) ** 2
    assert rand["eigenvalues"][1] > 3 * edge > rand["eigenvalues"][2] * 2
    # randomized = exact for mean-imputed data up to the pairwise-missing correction
    np.testing.assert_allclose(rand["eigenvalues"][:2], exact["eigenvalues"][:2], rtol=0.01)


@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_outputs_are_byte_stable(tmp_path, method):
    rng = np.random.default_rng(1)
    pop = np.repeat([0, 1], 60)
    p = np.stack([rng.uniform(0.1, 0.9, 300), rng.uniform(0.1, 0.9, 300)])
    geno = rng.binomial(2, p[pop].T).astype(np.int8)
    _fileset(tmp_path, geno, pos=np.arange(300) * 1_000_000 + 1)
    info = tmp_path / "info.tsv"
    pd.DataFrame({"IID": [f"s{i}" for i in range(120)], "population": np.where(pop == 0, "A", "B")}).to_csv(
        info, sep="\t", index=False)
    for run in ("a", "b"):
        genotype_pca(tmp_path / "x", out_prefix=tmp_path / run, n_pcs=3, sample_info=info, method=method)
    for ext in (".pcs.tsv", ".eigenvalues.tsv", ".pca.json", ".pca.png", ".prune.in", ".pca.loadings.tsv"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes(), ext
    res = json.loads((tmp_path / "a.pca.json").read_text())
    assert res["separation"]["nearest_centroid_accuracy_pc1_pc2"] == 1.0
    pcs = pd.read_csv(tmp_path / "a.pcs.tsv", sep="\t")
    # PC1 is the population split; unit-norm eigenvectors, largest entry positive
    assert abs(np.corrcoef(pcs["PC1"], pop)[0, 1]) > 0.95
    assert np.isclose((pcs["PC1"] ** 2).sum(), 1.0, atol=1e-6)
    assert pcs["PC1"].abs().idxmax() == pcs["PC1"].idxmax()


def test_project_pcs_rejects_bad_loadings(tmp_path):
    geno, _ = _three_populations(n_per=10, m=50)
    _fileset(tmp_path, geno, pos=np.arange(50) + 1)
    (tmp_path / "bad.tsv").write_text("ID\tA1\tA2\tA1_FREQ\nv0\tA\tG\t0.3\n")
    with pytest.raises(InputFormatError, match="PC columns"):
        project_pcs(tmp_path / "x", loadings=tmp_path / "bad.tsv", out=tmp_path / "o")
    (tmp_path / "bad2.tsv").write_text("ID\tA1\tA2\tA1_FREQ\tPC1\nv0\tA\tG\t1.5\t0.1\n")
    with pytest.raises(InputFormatError, match="line 2"):
        project_pcs(tmp_path / "x", loadings=tmp_path / "bad2.tsv", out=tmp_path / "o")
