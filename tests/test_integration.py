"""Genetics integration: gene scores (calibration, power, tail accuracy), scDRS-style disease
scores (planted cell type), determinism, and the stage end to end on synthetic data."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import special, stats

from cohortflow.io.plink import write_bed
from cohortflow.singlecell import integration as integ

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SSF_COLUMNS = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
               "effect_allele_frequency", "p_value", "n", "variant_id", "test_statistic", "errcode"]

N_PEOPLE = 800
SNP_STEP = 2000          # bp between SNPs
N_SNPS = 2000            # one chromosome, 4 Mb
N_GTF_GENES = 40         # 20 kb genes every 100 kb
LD_RHO = 0.9             # AR(1) latent correlation between neighbouring SNPs (strong LD)


# --------------------------------------------------------------------------- synthetic cohort

def _simulate_genotypes(rng) -> np.ndarray:
    """(SNPs x people) A1 counts with strong local LD: haplotypes thresholded from AR(1) latents."""
    freq = rng.uniform(0.1, 0.5, N_SNPS)
    cut = stats.norm.ppf(freq)
    latent = np.empty((N_SNPS, 2 * N_PEOPLE))
    latent[0] = rng.standard_normal(2 * N_PEOPLE)
    noise = np.sqrt(1 - LD_RHO ** 2)
    for j in range(1, N_SNPS):
        latent[j] = LD_RHO * latent[j - 1] + noise * rng.standard_normal(2 * N_PEOPLE)
    haps = (latent < cut[:, None]).astype(np.int8)
    geno = haps[:, :N_PEOPLE] + haps[:, N_PEOPLE:]
    geno[rng.random(geno.shape) < 0.01] = -1
    return geno


def _gtf_genes() -> pd.DataFrame:
    starts = 50_000 + 100_000 * np.arange(N_GTF_GENES)
    return pd.DataFrame({"chrom": "1", "start": starts, "end": starts + 20_000,
                         "gene_name": [f"G{i}" for i in range(N_GTF_GENES)]})


def _write_gtf(path: Path, genes: pd.DataFrame) -> None:
    with open(path, "w") as fh:
        fh.write("#synthetic\n")
        for g in genes.itertuples(index=False):
            attrs = f'gene_id "ID{g.gene_name}"; gene_name "{g.gene_name}";'
            fh.write(f"{g.chrom}\tsim\tgene\t{g.start}\t{g.end}\t.\t+\t.\t{attrs}\n")
            fh.write(f"{g.chrom}\tsim\texon\t{g.start}\t{g.start + 100}\t.\t+\t.\t{attrs}\n")


def _gwas(geno: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per-SNP OLS of y on the (mean-imputed) genotype: beta, se, t (our own reference GWAS)."""
    g = geno.astype(float)
    miss = geno < 0
    g[miss] = 0
    means = g.sum(1) / (~miss).sum(1)
    g[miss] = np.broadcast_to(means[:, None], g.shape)[miss]
    gc = g - g.mean(1, keepdims=True)
    yc = y - y.mean()
    sxx = (gc ** 2).sum(1)
    beta = gc @ yc / sxx
    resid_var = ((yc ** 2).sum() - beta ** 2 * sxx) / (y.size - 2)
    se = np.sqrt(resid_var / sxx)
    return pd.DataFrame({"beta": beta, "se": se, "freq": means / 2})


def _write_sumstats(path: Path, gw: pd.DataFrame, bim: pd.DataFrame) -> None:
    t = gw["beta"] / gw["se"]
    df = pd.DataFrame({"chromosome": bim["chrom"], "base_pair_location": bim["pos"], "effect_allele": bim["a1"],
                       "other_allele": bim["a2"], "beta": gw["beta"], "standard_error": gw["se"],
                       "effect_allele_frequency": gw["freq"], "p_value": 2 * stats.norm.sf(np.abs(t)),
                       "n": N_PEOPLE, "variant_id": bim["id"], "test_statistic": t, "errcode": ""})
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(df[SSF_COLUMNS].to_csv(sep="\t", index=False).encode())


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    rng = np.random.default_rng(20261123)
    root = tmp_path_factory.mktemp("cohort")
    geno = _simulate_genotypes(rng)
    pos = SNP_STEP * (np.arange(N_SNPS) + 1)
    bim = pd.DataFrame({"chrom": "1", "id": [f"1:{p}:A:G" for p in pos], "cm": 0.0, "pos": pos,
                        "a1": "G", "a2": "A"})
    fam = pd.DataFrame({"fid": [f"F{i}" for i in range(N_PEOPLE)], "iid": [f"I{i}" for i in range(N_PEOPLE)],
                        "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(root / "geno", geno, bim, fam)
    genes = _gtf_genes()
    _write_gtf(root / "genes.gtf", genes)
    return {"root": root, "geno": geno, "bim": bim, "genes": genes, "bfile": root / "geno",
            "gtf": root / "genes.gtf", "rng": rng}


def _gene_snps(cohort, gene: str, window: int = 10_000) -> np.ndarray:
    g = cohort["genes"].set_index("gene_name").loc[gene]
    pos = cohort["bim"]["pos"].to_numpy()
    return np.flatnonzero((pos >= g.start - window) & (pos <= g.end + window))


# --------------------------------------------------------------------------- gene scores

def test_gene_scores_null_calibrated(cohort, tmp_path):
    """Null phenotypes: gene p-values uniform (KS p > 0.01 over 15 traits x 40 genes), while the
    same statistic with LD ignored (independent chi2) is badly anti-conservative -> the LD null
    is what makes the test calibrated."""
    rng = np.random.default_rng(7)
    ps, naive = [], []
    for k in range(15):
        gw = _gwas(cohort["geno"], rng.standard_normal(N_PEOPLE))
        path = tmp_path / f"null{k}.tsv.gz"
        _write_sumstats(path, gw, cohort["bim"])
        table = integ.gene_scores(bfile=cohort["bfile"], sumstats=path, genes_gtf=cohort["gtf"])
        assert len(table) == N_GTF_GENES
        ps.append(table["p_value"].to_numpy())
        naive.append(stats.chi2.sf(table["stat"], table["n_snps"]))
    ps = np.concatenate(ps)
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert 0.02 <= np.mean(ps < 0.05) <= 0.09
    assert stats.kstest(np.concatenate(naive), "uniform").pvalue < 1e-6


def test_gene_scores_power_and_output(cohort, tmp_path):
    """A planted causal SNP in G17 gives G17 the smallest p; output columns/order as documented;
    n_snps equals the SNPs in gene +/- window; z = Phi^-1(1 - p)."""
    rng = np.random.default_rng(11)
    causal = _gene_snps(cohort, "G17")[7]
    g = cohort["geno"][causal].astype(float)
    g[g < 0] = np.mean(g[g >= 0])
    y = 0.3 * (g - g.mean()) / g.std() + rng.standard_normal(N_PEOPLE)
    path = tmp_path / "alt.tsv.gz"
    _write_sumstats(path, _gwas(cohort["geno"], y), cohort["bim"])
    out = tmp_path / "genes.tsv"
    table = integ.gene_scores(bfile=cohort["bfile"], sumstats=path, genes_gtf=cohort["gtf"], out=out)
    assert list(table.columns) == integ.GENE_SCORE_COLUMNS
    assert table.sort_values("p_value")["gene"].iloc[0] == "G17"
    assert table.set_index("gene").loc["G17", "p_value"] < 1e-6
    assert table["start"].is_monotonic_increasing
    for gene in ("G0", "G17", "G39"):
        assert table.set_index("gene").loc[gene, "n_snps"] == _gene_snps(cohort, gene).size
    np.testing.assert_allclose(table["z"], stats.norm.isf(table["p_value"]), rtol=1e-6, atol=1e-6)
    written = pd.read_csv(out, sep="\t", dtype={"chromosome": str})
    assert list(written.columns) == integ.GENE_SCORE_COLUMNS
    assert written["gene"].tolist() == table["gene"].tolist()


@pytest.mark.parametrize("which", ["ld", "skewed"])
def test_quadform_tail_vs_monte_carlo(cohort, which):
    """Saddlepoint P(sum lambda chi2_1 > q) vs 10^6 Monte-Carlo draws at the 90, 99 and 99.9 %
    quantiles: relative error < 20 % and normal-deviate error < 0.05 (a spectrum dominated by one
    eigenvalue is the saddlepoint's worst case, ~10 % conservative; MC standard error at 1e-3 is
    ~3 %). In the tail it beats Satterthwaite, which is why Satterthwaite is only the fallback."""
    rng = np.random.default_rng(3)
    if which == "ld":
        snps = _gene_snps(cohort, "G5")
        g = cohort["geno"][snps].astype(float)
        g[g < 0] = np.nan
        lam = np.linalg.eigvalsh(pd.DataFrame(g.T).corr().to_numpy())
    else:
        lam = np.array([6.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05])
    lam = lam[lam > 1e-8]
    draws = np.zeros(1_000_000)
    for chunk in np.array_split(np.arange(draws.size), 10):
        draws[chunk] = (rng.standard_normal((chunk.size, lam.size)) ** 2) @ lam
    for level in (0.9, 0.99, 0.999):
        q = np.quantile(draws, level)
        p_mc = np.mean(draws > q)
        p_sp, z_sp = integ.quadform_pvalue(q, lam, method="saddlepoint")
        assert abs(p_sp / p_mc - 1) < 0.20, (level, p_sp, p_mc)
        assert abs(z_sp - stats.norm.isf(p_mc)) < 0.05
    p_sat, _ = integ.quadform_pvalue(q, lam, method="satterthwaite")
    assert abs(np.log(p_sp / p_mc)) < abs(np.log(p_sat / p_mc))


def test_quadform_far_tail_exact_chi2():
    """Equal eigenvalues: Q = chi2_k exactly; saddlepoint relative error < 10 % for k = 2 and
    < 2 % for k >= 10 (r* error shrinks like 1/k) down to p = 1e-250, z within 0.05."""
    for k in (2, 10, 50):
        for p_true in (0.3, 1e-4, 1e-12, 1e-250):
            q = stats.chi2.isf(p_true, k)
            p, z = integ.quadform_pvalue(q, np.ones(k))
            assert abs(p / p_true - 1) < (0.10 if k == 2 else 0.02), (k, p_true, p)
            assert abs(z - stats.norm.isf(p_true)) < 0.05


def test_sumstats_z_from_p_when_se_missing():
    df = pd.DataFrame({"beta": [0.5, -0.5, 0.2, np.nan], "standard_error": [0.1, np.nan, 0.1, 0.1],
                       "neg_log10_p": [np.nan, 400.0, np.nan, 1.0]})
    z = integ.sumstats_z(df)
    assert z[0] == pytest.approx(5.0)
    # p = 1e-400 (below the double range) -> two-sided |z| from log space
    assert z[1] < 0 and -z[1] == pytest.approx(-special.ndtri_exp(-400 * np.log(10) - np.log(2)))
    assert z[2] == pytest.approx(2.0) and np.isnan(z[3])


# --------------------------------------------------------------------------- disease scores

CELL_TYPES = ["Tcell", "Bcell", "Mono", "NK", "Endo", "Fibro"]


def _synthetic_adata(rng, *, n_per_type=100, n_genes=300, marker_genes=None, target="Mono", fold=3.0):
    """Raw counts (negative binomial); ``marker_genes`` are `fold`x up in ``target`` cells; each
    other type also gets its own 15 markers so that every type has structure."""
    import anndata

    genes = [f"G{i}" for i in range(n_genes)]
    base = np.exp(rng.normal(-0.5, 1.2, n_genes))
    labels = np.repeat(CELL_TYPES, n_per_type)
    mu = np.tile(base, (labels.size, 1))
    for t_i, t in enumerate(CELL_TYPES):
        own = np.arange(100 + 15 * t_i, 115 + 15 * t_i)
        mu[np.ix_(labels == t, own)] *= 3.0
    if marker_genes is not None:
        idx = [genes.index(g) for g in marker_genes]
        mu[np.ix_(labels == target, idx)] *= fold
    size = rng.lognormal(0, 0.3, labels.size)[:, None]
    counts = rng.poisson(rng.gamma(2.0, mu * size / 2.0)).astype(np.float32)
    ad = anndata.AnnData(X=sp.csr_matrix(counts), obs=pd.DataFrame({"cell_type": labels},
                         index=[f"cell{i}" for i in range(labels.size)]), var=pd.DataFrame(index=genes))
    ad.layers["counts"] = ad.X.copy()
    return ad


def _gene_table(rng, genes, disease):
    z = rng.standard_normal(len(genes))
    z[[genes.index(g) for g in disease]] = rng.uniform(4, 8, len(disease))
    return pd.DataFrame({"gene": genes, "z": z})


def test_disease_scores_planted_cell_type():
    """Disease genes = markers of Mono: Mono ranks 1st with the smallest possible MC p, the other
    types are not significant (MC p > 0.05), and Mono cells' per-cell p are mostly < 0.05."""
    rng = np.random.default_rng(5)
    disease = [f"G{i}" for i in range(20)]
    ad = _synthetic_adata(rng, marker_genes=disease)
    table = _gene_table(rng, list(ad.var_names), disease)
    cells, ranking = integ.disease_scores(ad, gene_scores=table, n_genes=20, n_ctrl=100, seed=1)
    assert list(cells.columns) == integ.CELL_SCORE_COLUMNS
    assert list(ranking.columns) == integ.RANKING_COLUMNS
    assert cells["cell"].tolist() == list(ad.obs_names)
    assert sorted(cells.attrs["disease_genes"].index) == sorted(disease)
    assert ranking["cell_type"].iloc[0] == "Mono"
    assert ranking["mc_p"].iloc[0] == pytest.approx(1 / 101)
    assert (ranking["mc_p"].iloc[1:] > 0.05).all()
    assert ranking["rank"].tolist() == list(range(1, 7))
    assert (cells.loc[cells["cell_type"] == "Mono", "mc_p"] < 0.05).mean() > 0.5
    assert (cells.loc[cells["cell_type"] != "Mono", "mc_p"] < 0.05).mean() < 0.1


def test_disease_scores_null_gene_set_not_enriched():
    """A gene set with no cell-type structure: no type reaches MC p < 0.01 and per-cell p are
    roughly uniform (fraction below 0.05 within [0.01, 0.12])."""
    rng = np.random.default_rng(9)
    ad = _synthetic_adata(rng)
    disease = [f"G{i}" for i in range(20)]     # genes 0-99 have no type-specific expression
    cells, ranking = integ.disease_scores(ad, gene_scores=_gene_table(rng, list(ad.var_names), disease),
                                          n_genes=20, n_ctrl=100, seed=2)
    assert (ranking["mc_p"] >= 0.01).all()
    assert 0.01 <= (cells["mc_p"] < 0.05).mean() <= 0.12


def test_disease_scores_deterministic():
    rng = np.random.default_rng(5)
    disease = [f"G{i}" for i in range(20)]
    ad = _synthetic_adata(rng, marker_genes=disease, n_per_type=40)
    table = _gene_table(rng, list(ad.var_names), disease)
    a = integ.disease_scores(ad, gene_scores=table, n_genes=20, n_ctrl=50, seed=4)
    b = integ.disease_scores(ad, gene_scores=table, n_genes=20, n_ctrl=50, seed=4)
    c = integ.disease_scores(ad, gene_scores=table, n_genes=20, n_ctrl=50, seed=5)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not np.array_equal(a[0]["norm_score"], c[0]["norm_score"])
    np.testing.assert_array_equal(a[0]["raw_score"], c[0]["raw_score"])   # raw depends on genes only


def test_default_n_genes():
    assert integ.default_n_genes(400) == 40
    assert integ.default_n_genes(20000) == 1000
    assert integ.default_n_genes(30) == 10


# --------------------------------------------------------------------------- scDRS golden raw scores



# --------------------------------------------------------------------------- the stage end to end

CAUSAL_GENES = ["G3", "G11", "G25"]


def _grid_graph(side: int) -> sp.csr_matrix:
    idx = np.arange(side * side).reshape(side, side)
    pairs = np.vstack([np.c_[idx[:, :-1].ravel(), idx[:, 1:].ravel()], np.c_[idx[:-1].ravel(), idx[1:].ravel()]])
    g = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(side * side,) * 2)
    return sp.csr_matrix(g + g.T)


@pytest.fixture(scope="module")
def stage_inputs(cohort, tmp_path_factory):
    """GWAS with causal SNPs in G3/G11/G25; single-cell data where those genes mark Mono; a 30x30
    spot slide where they are up in a central disk (region labels kept out of the file)."""
    import anndata

    root = tmp_path_factory.mktemp("stage")
    rng = np.random.default_rng(31)
    y = rng.standard_normal(N_PEOPLE)
    for gene in CAUSAL_GENES:
        g = cohort["geno"][_gene_snps(cohort, gene)[10]].astype(float)
        g[g < 0] = np.mean(g[g >= 0])
        y += 0.35 * (g - g.mean()) / g.std()
    _write_sumstats(root / "trait.tsv.gz", _gwas(cohort["geno"], y), cohort["bim"])

    sc_genes = [f"G{i}" for i in range(N_GTF_GENES)] + [f"H{i}" for i in range(260)]
    ad = _synthetic_adata(rng, n_per_type=80, n_genes=300, marker_genes=None)
    ad.var_names = sc_genes
    counts = ad.layers["counts"].toarray()
    mono = (ad.obs["cell_type"] == "Mono").to_numpy()
    for gene in CAUSAL_GENES:
        j = sc_genes.index(gene)
        counts[mono, j] = rng.poisson(4 * counts[mono, j].mean() + 2, mono.sum())
    ad.X = sp.csr_matrix(counts)
    ad.layers["counts"] = ad.X.copy()
    ad.write_h5ad(root / "sc.h5ad")

    side = 30
    xx, yy = np.meshgrid(np.arange(side), np.arange(side))
    disk = ((xx - 15) ** 2 + (yy - 15) ** 2 <= 36).ravel()
    base = np.exp(rng.normal(0, 1, len(sc_genes)))
    mu = np.tile(base, (side * side, 1))
    for gene in CAUSAL_GENES:
        mu[disk, sc_genes.index(gene)] *= 4
    spots = anndata.AnnData(X=sp.csr_matrix(rng.poisson(mu).astype(np.float32)),
                            obs=pd.DataFrame(index=[f"spot{i}" for i in range(side * side)]),
                            var=pd.DataFrame(index=sc_genes))
    spots.obsm["spatial"] = np.c_[xx.ravel(), yy.ravel()].astype(float)
    spots.obsp["spatial_connectivities"] = _grid_graph(side)
    spots.write_h5ad(root / "spatial.h5ad")
    return {"root": root, "disk": disk, "sumstats": root / "trait.tsv.gz", "sc": root / "sc.h5ad",
            "spatial": root / "spatial.h5ad"}


def _run_stage(cohort, inputs, out: Path) -> dict:
    return integ.integrate(
        sumstats=inputs["sumstats"], bfile=cohort["bfile"], genes_gtf=cohort["gtf"], sc_h5ad=inputs["sc"],
        spatial_h5ad=inputs["spatial"], trait="trait", n_genes=None, n_ctrl=100, window_kb=10, seed=0,
        out_gene_scores=out / "trait.gene_scores.tsv", out_cell_scores=out / "trait.cell_scores.tsv.gz",
        out_ranking=out / "trait.celltype_ranking.tsv", out_spatial_scores=out / "trait.spatial_scores.tsv.gz",
        out_summary=out / "trait.summary.json", out_png=out / "trait.png", out_spatial_png=out / "trait.spatial.png",
        n_perms=199)


def test_integrate_end_to_end(cohort, stage_inputs, tmp_path):
    """Causal genes -> top gene z; Mono ranks first; the spot score is spatially autocorrelated
    (Moran's I analytic and permutation p small) and higher in the planted disk; files as
    documented; a second run gives byte-identical files."""
    summary = _run_stage(cohort, stage_inputs, tmp_path / "a")
    assert {g["gene"] for g in summary["top_genes"][:3]} == set(CAUSAL_GENES)
    assert summary["n_genes_used"] == 10            # default: 10 % of the 40 scored genes
    assert summary["top_cell_type"] == "Mono"
    assert summary["ranking"][0]["mc_p"] < 0.02
    assert json.loads((tmp_path / "a" / "trait.summary.json").read_text()) == summary

    cells = pd.read_csv(tmp_path / "a" / "trait.cell_scores.tsv.gz", sep="\t")
    assert list(cells.columns) == integ.CELL_SCORE_COLUMNS
    ranking = pd.read_csv(tmp_path / "a" / "trait.celltype_ranking.tsv", sep="\t")
    assert list(ranking.columns) == integ.RANKING_COLUMNS and ranking["cell_type"].iloc[0] == "Mono"

    sp_info = summary["spatial"]
    assert sp_info["morans_i"] > 0.1
    assert sp_info["morans_p_analytic"] < 1e-6 and sp_info["morans_p_permutation"] <= 0.01
    assert sp_info["region_source"].startswith("k-means")
    spots = pd.read_csv(tmp_path / "a" / "trait.spatial_scores.tsv.gz", sep="\t")
    assert list(spots.columns) == integ.SPATIAL_SCORE_COLUMNS
    disk = stage_inputs["disk"]
    assert spots["score"][disk].mean() > spots["score"][~disk].mean() + 1.0
    assert stats.mannwhitneyu(spots["score"][disk], spots["score"][~disk]).pvalue < 1e-10
    assert sp_info["top_region"] in set(spots["cluster"])

    _run_stage(cohort, stage_inputs, tmp_path / "b")
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        a = hashlib.sha256((tmp_path / "a" / name).read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / "b" / name).read_bytes()).hexdigest()
        assert a == b, name


def test_spatial_region_annotation_used(stage_inputs):
    """With obs['region'] present the regions are tested as groups: the planted disk ranks first."""
    import anndata

    spots = anndata.read_h5ad(stage_inputs["spatial"])
    spots.obs["region"] = np.where(stage_inputs["disk"], "disk", "outside")
    weights = pd.Series(10.0, index=CAUSAL_GENES + ["G0", "G1"])
    table, info = integ.spatial_disease_scores(spots, disease_genes=weights, n_ctrl=50, seed=0, n_perms=99)
    assert info["region_source"] == "obs['region']"
    assert info["top_region"] == "disk" and info["regions"][0]["mc_p"] < 0.05
    assert table["cluster"].tolist() == spots.obs["region"].tolist()


def test_bad_inputs_give_one_line_errors(cohort, tmp_path):
    from cohortflow.errors import CohortflowError

    bim = cohort["bim"].assign(id=[f"other{i}" for i in range(N_SNPS)])
    gw = pd.DataFrame({"beta": np.ones(N_SNPS), "se": np.ones(N_SNPS), "freq": 0.5})
    _write_sumstats(tmp_path / "nomatch.tsv.gz", gw, bim)
    with pytest.raises(CohortflowError, match="nomatch.tsv.gz.*variant_id"):
        integ.gene_scores(bfile=cohort["bfile"], sumstats=tmp_path / "nomatch.tsv.gz", genes_gtf=cohort["gtf"])
    ad = _synthetic_adata(np.random.default_rng(0), n_per_type=5)
    with pytest.raises(CohortflowError, match="celltype"):
        integ.disease_scores(ad, gene_scores=pd.DataFrame({"gene": ["G1"], "z": [3.0]}), cell_type_key="celltype")
    with pytest.raises(CohortflowError, match="no gene with a gene score"):
        integ.disease_scores(ad, gene_scores=pd.DataFrame({"gene": ["nope"], "z": [3.0]}))


def test_ranking_plot_with_umap_panel(tmp_path):
    """The association bars alone, and with the UMAP-by-score panel: valid PNGs, the second wider,
    each byte-identical when drawn twice."""
    import struct

    import pandas as pd

    from cohortflow.singlecell.integration_plots import plot_celltype_ranking

    ranking = pd.DataFrame({"rank": [1, 2], "cell_type": ["B", "T"], "n_cells": [50, 70],
                            "mean_norm_score": [1.0, -0.5], "assoc_stat": [2.5, 0.3], "mc_p": [0.01, 0.6],
                            "mc_z": [2.4, -0.2]})
    rng = np.random.default_rng(0)
    umap, score = rng.normal(size=(120, 2)), rng.normal(size=120)
    widths = []
    for name, kwargs in (("bars", {}), ("umap", {"umap": umap, "norm_score": score})):
        first, second = tmp_path / f"{name}1.png", tmp_path / f"{name}2.png"
        plot_celltype_ranking(ranking, first, title="t", **kwargs)
        plot_celltype_ranking(ranking, second, title="t", **kwargs)
        data = first.read_bytes()
        assert data.startswith(b"\x89PNG") and data == second.read_bytes()
        widths.append(struct.unpack(">I", data[16:20])[0])
    assert widths[1] > 1.5 * widths[0]
