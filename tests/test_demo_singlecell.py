"""Simulated single-cell and spatial demo data: planted answers present, deterministic.

The demo genome is stood in for by a small GTF, a truth.json and VCFs written here
(``make_standin_genome``, also used by test_singlecell.py and test_spatial.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pysam
import pytest
import scipy.sparse as sp
import statsmodels.api as sm

from cohortflow.demo.singlecell import simulate_expression
from cohortflow.errors import InputFormatError


def make_standin_genome(out: Path, *, n_genes: int = 400, n_samples: int = 40, seed: int = 3,
                        index: bool = True) -> dict:
    """genes.gtf, truth.json and genotypes/chr{1,2}.vcf.gz shaped like the demo genome's."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "genotypes").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    genes = []
    for i in range(n_genes):
        chrom = "1" if i < n_genes // 2 else "2"
        start = 10_000 + (i % (n_genes // 2)) * 30_000
        genes.append((chrom, start, start + 15_000, f"CFG{1001 + i}"))
    (out / "genes.gtf").write_text("".join(
        f'{c}\tsim\tgene\t{s}\t{e}\t.\t+\t.\tgene_id "{g}"; gene_name "{g}"; gene_biotype "protein_coding";\n'
        for c, s, e, g in genes))
    truth = {"traits": {
        "quant_trait": {"type": "quantitative", "causal_genes": [genes[i][3] for i in (5, 40, 90, 150, 230, 300)]},
        "disease": {"type": "binary", "causal_genes": [genes[i][3] for i in (20, 120, 250, 350)]},
    }}
    (out / "truth.json").write_text(json.dumps(truth))
    samples = [f"S{i + 1:05d}" for i in range(n_samples)]
    vcfs = []
    for chrom in ("1", "2"):
        lines = ["##fileformat=VCFv4.2\n", f"##contig=<ID={chrom},length=7000000>\n",
                 '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n',
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n"]
        for c, s, e, g in genes:
            if c != chrom:
                continue
            for pos in (s + 1_000, s + 7_000):
                haps = (rng.random((n_samples, 2)) < rng.uniform(0.05, 0.5)).astype(int)
                gts = [f"{a}|{b}" for a, b in haps]
                if rng.random() < 0.3:
                    gts[int(rng.integers(n_samples))] = ".|."
                lines.append(f"{chrom}\t{pos}\t{chrom}:{pos}:A:G\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(gts) + "\n")
        plain = out / "genotypes" / f"chr{chrom}.vcf"
        plain.write_text("".join(lines))
        if index:
            pysam.tabix_index(str(plain), preset="vcf", force=True)
        else:
            pysam.tabix_compress(str(plain), str(plain) + ".gz", force=True)
            plain.unlink()
        vcfs.append(out / "genotypes" / f"chr{chrom}.vcf.gz")
    return {"genes_gtf": out / "genes.gtf", "truth_json": out / "truth.json", "vcf_paths": vcfs, "samples": samples}


def simulate_small(tmp: Path, *, n_cells: int = 1500, n_spots: int = 400, seed: int = 7, index: bool = True) -> dict:
    genome = make_standin_genome(tmp / "genome", index=index)
    result = simulate_expression(tmp / "expr", genes_gtf=genome["genes_gtf"], truth_json=genome["truth_json"],
                                 vcf_paths=genome["vcf_paths"], n_cells=n_cells, n_donors=24, n_spots=n_spots, seed=seed)
    return {**result, "genome": genome, "dir": tmp / "expr"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_small(tmp_path_factory.mktemp("sc_demo"))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_outputs_and_layout(sim):
    d = sim["dir"]
    for name in ("singlecell.h5ad", "singlecell_truth.tsv", "markers.tsv", "spatial.h5ad", "spatial_truth.tsv",
                 "singlecell_truth.json"):
        assert (d / name).exists(), name
    adata = ad.read_h5ad(d / "singlecell.h5ad")
    gtf_genes = [line.split('gene_name "')[1].split('"')[0] for line in sim["genome"]["genes_gtf"].read_text().splitlines()]
    assert list(adata.var_names[: len(gtf_genes)]) == gtf_genes
    assert adata.var_names[len(gtf_genes):].str.startswith("MT-").all()
    assert list(adata.obs.columns) == ["donor"]  # the true cell type is not given away
    assert set(adata.obs["donor"]) == set(sim["genome"]["samples"][:24])
    assert sp.issparse(adata.X)
    assert np.array_equal(adata.X.data, np.round(adata.X.data)) and adata.X.data.min() >= 0
    truth_tsv = pd.read_csv(d / "singlecell_truth.tsv", sep="\t")
    assert list(truth_tsv.columns) == ["barcode", "true_cell_type", "artefact"]
    assert list(truth_tsv["barcode"]) == list(adata.obs_names)
    assert truth_tsv["true_cell_type"].nunique() >= 6
    truth = json.loads((d / "singlecell_truth.json").read_text())
    assert truth["trait_cell_types"]["quant_trait"] != truth["trait_cell_types"]["disease"]
    assert truth["cell_truth_file"] == "singlecell_truth.tsv" and truth["spot_truth_file"] == "spatial_truth.tsv"
    markers = pd.read_csv(d / "markers.tsv", sep="\t")
    assert list(markers.columns) == ["cell_type", "gene"]
    assert markers.groupby("cell_type").size().between(3, 20).all()
    # Library sizes of ordinary cells in the 1-5k range; planted low-quality cells mostly mitochondrial.
    total = np.asarray(adata.X.sum(axis=1)).ravel()
    normal = (truth_tsv["artefact"] == "none").to_numpy()
    assert 1000 < np.median(total[normal]) < 5000
    mito = np.asarray(adata.X[:, adata.var_names.str.startswith("MT-")].sum(axis=1)).ravel() / total
    assert np.median(mito[normal]) < 0.08
    assert np.median(mito[(truth_tsv["artefact"] == "low_quality").to_numpy()]) > 0.25


def test_deterministic_and_seed_dependent(tmp_path, sim):
    again = simulate_small(tmp_path / "again")
    for name in ("singlecell_truth.tsv", "markers.tsv", "spatial_truth.tsv", "singlecell_truth.json",
                 "singlecell.h5ad", "spatial.h5ad"):
        assert _md5(again["dir"] / name) == _md5(sim["dir"] / name), name
    a = ad.read_h5ad(sim["dir"] / "singlecell.h5ad")
    b = ad.read_h5ad(again["dir"] / "singlecell.h5ad")
    assert (a.X != b.X).nnz == 0 and list(a.obs_names) == list(b.obs_names)
    other = simulate_expression(tmp_path / "other", genes_gtf=sim["genome"]["genes_gtf"],
                                truth_json=sim["genome"]["truth_json"], vcf_paths=sim["genome"]["vcf_paths"],
                                n_cells=1500, n_donors=24, n_spots=400, seed=8)
    assert _md5(tmp_path / "other" / "singlecell_truth.tsv") != _md5(sim["dir"] / "singlecell_truth.tsv")
    assert other["eqtl"]["variant_id"]  # a variant is found for any seed


def test_unindexed_vcfs_choose_the_same_eqtl(tmp_path, sim):
    streamed = simulate_small(tmp_path, index=False)
    assert not Path(str(streamed["genome"]["vcf_paths"][0]) + ".tbi").exists()
    assert streamed["eqtl"] == sim["eqtl"]


def _cpm_by_type(adata, cell_type, labels):
    x = adata.X.tocsr()
    total = np.asarray(x.sum(axis=1)).ravel()
    return (np.asarray(x.multiply(1 / total[:, None]).tocsr()[labels == cell_type].mean(axis=0)).ravel(),
            np.asarray(x.multiply(1 / total[:, None]).tocsr()[labels != cell_type].mean(axis=0)).ravel())


def test_causal_genes_mark_their_trait_cell_type(sim):
    d = sim["dir"]
    adata = ad.read_h5ad(d / "singlecell.h5ad")
    truth_tsv = pd.read_csv(d / "singlecell_truth.tsv", sep="\t")
    clean = (truth_tsv["artefact"] == "none").to_numpy()
    adata, labels = adata[clean], truth_tsv["true_cell_type"].to_numpy()[clean]
    genome_truth = json.loads(sim["genome"]["truth_json"].read_text())
    for trait, cell_type in sim["trait_cell_types"].items():
        inside, outside = _cpm_by_type(adata, cell_type, labels)
        for gene in genome_truth["traits"][trait]["causal_genes"]:
            j = adata.var_names.get_loc(gene)
            assert inside[j] > 5 * outside[j], (trait, gene)
            # mostly in its cell type: highest mean of all types
            means = {t: _cpm_by_type(adata, t, labels)[0][j] for t in sim["cell_types"]}
            assert max(means, key=means.get) == cell_type


def _dosage_from_vcf(vcf_path: Path, variant_id: str, donors: list[str]) -> np.ndarray:
    chrom, pos = variant_id.split(":")[:2]
    with pysam.VariantFile(str(vcf_path)) as vcf:
        for rec in vcf.fetch(chrom, int(pos) - 1, int(pos)):
            if rec.pos == int(pos):
                return np.array([sum(a for a in rec.samples[d]["GT"]) for d in donors], dtype=float)
    raise AssertionError(f"{variant_id} not in {vcf_path}")


def test_eqtl_in_its_cell_type_only(sim):
    """Pseudobulk (per donor, per true type) log-CPM of the eQTL gene regressed on the VCF dosage."""
    d = sim["dir"]
    eqtl = sim["eqtl"]
    assert eqtl["maf_donors"] >= 0.25
    adata = ad.read_h5ad(d / "singlecell.h5ad")
    truth_tsv = pd.read_csv(d / "singlecell_truth.tsv", sep="\t")
    donors = sim["donors"]
    vcf = next(p for p in sim["genome"]["vcf_paths"] if p.name == eqtl["vcf"])
    dosage = _dosage_from_vcf(vcf, eqtl["variant_id"], donors)
    j = adata.var_names.get_loc(eqtl["gene"])
    x = adata.X.tocsc()
    gene_counts = x[:, j].toarray().ravel()
    total = np.asarray(x.sum(axis=1)).ravel()
    clean = (truth_tsv["artefact"] == "none").to_numpy()
    slopes = {}
    for cell_type in ("T_CD4", "T_CD8", "NK", "B", "Monocyte"):
        y, g = [], []
        for donor, dose in zip(donors, dosage):
            sel = clean & (truth_tsv["true_cell_type"].to_numpy() == cell_type) & (adata.obs["donor"].to_numpy() == donor)
            if sel.sum() >= 3:  # a pseudobulk needs a few cells
                y.append(np.log((gene_counts[sel].sum() + 0.5) / total[sel].sum() * 1e6))
                g.append(dose)
        assert len(y) >= 15
        fit = sm.OLS(np.array(y), sm.add_constant(np.array(g))).fit()
        slopes[cell_type] = (fit.params[1], fit.pvalues[1])
    assert eqtl["cell_type"] == "T_CD4"
    slope, p = slopes["T_CD4"]
    assert slope > 0.3 and p < 1e-4, slopes  # log(1 + 0.8 d) rises ~0.48 per allele
    for cell_type in ("T_CD8", "NK", "B", "Monocyte"):
        other_slope, other_p = slopes[cell_type]
        # no effect: not significant, and clearly below the planted one
        assert other_p > 1e-3 and other_slope < slope - 0.3, (cell_type, slopes)


def test_spatial_regions(sim):
    d = sim["dir"]
    spots = ad.read_h5ad(d / "spatial.h5ad")
    truth = pd.read_csv(d / "spatial_truth.tsv", sep="\t")
    assert list(truth["barcode"]) == list(spots.obs_names)
    assert spots.obsm["spatial"].shape == (spots.n_obs, 2)
    assert truth["region"].nunique() >= 3
    trait_type = sim["trait_cell_types"]["quant_trait"]
    region = sim["spatial"]["quant_trait_region"]
    by_region = truth.groupby("region")[f"prop_{trait_type}"].mean()
    assert by_region.idxmax() == region and by_region[region] > 2 * by_region.drop(region).max()
    # its markers' expression follows
    markers = sim["markers"][trait_type]
    x = spots[:, markers].X.toarray().sum(axis=1) / np.asarray(spots.X.sum(axis=1)).ravel()
    inside = (truth["region"] == region).to_numpy()
    assert x[inside].mean() > 2 * x[~inside].mean()


def test_bad_inputs(tmp_path):
    genome = make_standin_genome(tmp_path / "g")
    bad = tmp_path / "bad_truth.json"
    bad.write_text(json.dumps({"traits": {"quant_trait": {"causal_genes": ["NOPE"]}, "disease": {"causal_genes": []}}}))
    with pytest.raises(InputFormatError, match="NOPE"):
        simulate_expression(tmp_path / "o", genes_gtf=genome["genes_gtf"], truth_json=bad,
                            vcf_paths=genome["vcf_paths"], n_cells=600, n_spots=100)
    bad.write_text(json.dumps({"traits": {"quant_trait": {"causal_genes": []}}}))
    with pytest.raises(InputFormatError, match="disease"):
        simulate_expression(tmp_path / "o", genes_gtf=genome["genes_gtf"], truth_json=bad,
                            vcf_paths=genome["vcf_paths"], n_cells=600, n_spots=100)
    with pytest.raises(InputFormatError, match="samples"):
        simulate_expression(tmp_path / "o", genes_gtf=genome["genes_gtf"], truth_json=genome["truth_json"],
                            vcf_paths=genome["vcf_paths"], n_cells=600, n_donors=100, n_spots=100)
