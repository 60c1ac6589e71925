"""Pseudobulk cell-type eQTL: the demo's planted eQTL found in its cell type only; every test equal
to statsmodels' full OLS ``expr ~ 1 + covariates + dosage``; BH FDR; bad inputs; CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests

from cohortflow.cli import main
from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.singlecell.eqtl import (
    RESULT_COLUMNS,
    eqtl_ols,
    gene_tss,
    pseudobulk,
    read_variant_list,
    run_cell_eqtl,
)
from cohortflow.variants.ingest import ingest_vcf
from test_demo_singlecell import simulate_small

PARAMS = dict(window_kb=1000, min_cells=5, min_donors=10, min_donor_fraction=0.1)


def _sc_h5ad(sim: dict, path: Path) -> Path:
    """The single-cell stage's layout from the simulated counts: planted artefacts removed,
    ``obs['cell_type']`` = the true type, raw counts in ``layers['counts']``, log-normalised X."""
    adata = ad.read_h5ad(sim["dir"] / "singlecell.h5ad")
    truth = pd.read_csv(sim["dir"] / "singlecell_truth.tsv", sep="\t").set_index("barcode")
    clean = (truth.loc[adata.obs_names, "artefact"] == "none").to_numpy()
    adata = adata[clean].copy()
    adata.obs["cell_type"] = pd.Categorical(truth.loc[adata.obs_names, "true_cell_type"])
    adata.layers["counts"] = adata.X.copy()
    total = np.asarray(adata.X.sum(axis=1)).ravel()
    adata.X = sp.csr_matrix(sp.diags(1e4 / total) @ adata.X).log1p().astype(np.float32)
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cell_eqtl")
    sim = simulate_small(tmp, n_cells=2400, n_spots=100)
    genome = sim["genome"]
    ingest_vcf(genome["vcf_paths"], out_prefix=tmp / "geno")
    h5ad = _sc_h5ad(sim, tmp / "sc.h5ad")
    rng = np.random.default_rng(11)
    samples = genome["samples"]
    pd.DataFrame({"#FID": samples, "IID": samples, "sex": rng.integers(1, 3, len(samples)),
                  "age": rng.integers(20, 80, len(samples))}).to_csv(tmp / "covariates.tsv", sep="\t", index=False)
    pcs = pd.DataFrame(rng.normal(size=(len(samples), 3)), columns=["PC1", "PC2", "PC3"])
    pcs.insert(0, "IID", samples)
    pcs.insert(0, "#FID", samples)
    pcs.to_csv(tmp / "pcs.tsv", sep="\t", index=False)
    # Variants: the planted one (in a "leads" table) and others in a plain list, a few of them with
    # a missing call among the donors.
    from cohortflow.io.plink import open_bed

    bed = open_bed(tmp / "geno")
    donor_missing = (bed.read()[:, :24] < 0).any(axis=1)
    ids = bed.bim["id"].to_numpy()
    others = list(ids[rng.choice(np.flatnonzero(~donor_missing), 9, replace=False)]) + \
        list(ids[rng.choice(np.flatnonzero(donor_missing), 3, replace=False)])
    pd.DataFrame({"variant_id": [sim["eqtl"]["variant_id"]], "p_value": [1e-9]}).to_csv(
        tmp / "leads.tsv", sep="\t", index=False)
    (tmp / "more.txt").write_text("# other variants\n" + "\n".join(others) + "\n")
    out = tmp / "out"
    summary = run_cell_eqtl(h5ad, bfile=tmp / "geno", variants=[tmp / "leads.tsv", tmp / "more.txt"],
                            out_tsv=out / "eqtl.tsv", out_summary=out / "eqtl.summary.json", out_png=out / "eqtl.png",
                            genes_gtf=genome["genes_gtf"], covariates=tmp / "covariates.tsv", pcs=tmp / "pcs.tsv",
                            n_pcs=3, **PARAMS)
    results = pd.read_csv(out / "eqtl.tsv", sep="\t", dtype={"chromosome": str})
    return {"sim": sim, "tmp": tmp, "h5ad": h5ad, "out": out, "summary": summary, "results": results,
            "variants": [sim["eqtl"]["variant_id"], *others]}


def test_planted_eqtl_in_its_cell_type_only(demo):
    eqtl, res = demo["sim"]["eqtl"], demo["results"]
    assert eqtl["cell_type"] == "T_CD4"
    planted = res[(res["variant_id"] == eqtl["variant_id"]) & (res["gene"] == eqtl["gene"])].set_index("cell_type")
    # The gene is expressed in five types; those with enough donors are tested.
    assert {"T_CD4", "T_CD8", "B", "Monocyte"} <= set(planted.index[planted["p_value"].notna()])
    hit = planted.loc["T_CD4"]
    assert hit["fdr"] < 0.05 and hit["beta"] > 0.2, planted
    assert hit["effect_allele"] == eqtl["alt"] and hit["other_allele"] == eqtl["ref"]
    for cell_type, row in planted.drop(index="T_CD4").iterrows():
        assert row["fdr"] >= 0.05, (cell_type, planted)
    # And nothing else in any type reaches FDR 0.05 (the other variants and genes are null).
    sig = res[res["fdr"] < 0.05]
    assert set(zip(sig["cell_type"], sig["variant_id"], sig["gene"])) == {("T_CD4", eqtl["variant_id"], eqtl["gene"])}
    assert demo["summary"]["n_significant"] == 1
    assert demo["summary"]["significant"][0]["gene"] == eqtl["gene"]


def _pseudobulk_by_hand(h5ad: Path, min_cells: int) -> dict[tuple[str, str], pd.Series]:
    """log1p(mean over cells of counts / cell total * 1e4), one Series per (type, donor), by loops."""
    adata = ad.read_h5ad(h5ad)
    counts = adata.layers["counts"].toarray().astype(np.float64)
    cp10k = counts / counts.sum(axis=1, keepdims=True) * 1e4
    out = {}
    for (cell_type, donor), idx in adata.obs.groupby(["cell_type", "donor"], observed=True).indices.items():
        if len(idx) >= min_cells:
            out[(str(cell_type), str(donor))] = pd.Series(np.log1p(cp10k[idx].mean(axis=0)), index=adata.var_names)
    return out


def test_every_test_equals_statsmodels_full_ols(demo):
    """Each row's beta, se, t and p equal statsmodels OLS of the pseudobulk (computed here by
    loops) on [1, sex, age, PC1..PC3, dosage] over the donors with a called genotype (1e-8)."""
    res = demo["results"]
    tmp = demo["tmp"]
    by_hand = _pseudobulk_by_hand(demo["h5ad"], PARAMS["min_cells"])
    cov = pd.read_csv(tmp / "covariates.tsv", sep="\t").set_index("IID")[["sex", "age"]]
    cov = cov.join(pd.read_csv(tmp / "pcs.tsv", sep="\t").set_index("IID")[["PC1", "PC2", "PC3"]])
    fam = pd.read_csv(tmp / "geno.fam", sep=r"\s+", header=None)[1].astype(str).tolist()
    bim = pd.read_csv(tmp / "geno.bim", sep="\t", header=None)[1].tolist()
    from cohortflow.io.plink import open_bed

    geno = open_bed(tmp / "geno").read()
    tested = res[res["p_value"].notna()]
    assert len(tested) > 300
    n_missing_cases = 0
    for row in tested.itertuples():
        donors = [d for (t, d) in by_hand if t == row.cell_type]
        dose = geno[bim.index(row.variant_id), [fam.index(d) for d in donors]].astype(float)
        called = dose >= 0
        n_missing_cases += int((~called).any())
        y = np.array([by_hand[(row.cell_type, d)][row.gene] for d in donors])[called]
        x = sm.add_constant(np.column_stack([cov.loc[np.array(donors)[called]].to_numpy(), dose[called]]))
        fit = sm.OLS(y, x).fit()
        assert row.n_donors == called.sum() == fit.nobs
        np.testing.assert_allclose([row.beta, row.se, row.t, row.p_value],
                                   [fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1]],
                                   rtol=1e-8, atol=0, err_msg=str(row))
        assert row.effect_allele_frequency == pytest.approx(dose[called].mean() / 2, abs=1e-12)
    assert n_missing_cases > 0  # donors with a missing call were dropped from some tests


def test_fdr_is_benjamini_hochberg_over_all_tests(demo):
    res = demo["results"]
    tested = res["p_value"].notna()
    assert res["cell_type"][tested].nunique() >= 4
    expected = multipletests(res.loc[tested, "p_value"], method="fdr_bh")[1]
    np.testing.assert_allclose(res.loc[tested, "fdr"], expected, rtol=1e-9)


def test_window_and_expression_filter(demo):
    """Genes are those with TSS within 1 Mb (GTF, + strand: start) and expressed in > 10% of donors."""
    res = demo["results"]
    genes = gene_tss(genes_gtf=demo["sim"]["genome"]["genes_gtf"])
    bim = pd.read_csv(demo["tmp"] / "geno.bim", sep="\t", header=None, names=["chrom", "id", "cm", "pos", "a1", "a2"],
                      dtype={"chrom": str}).set_index("id")
    by_hand = _pseudobulk_by_hand(demo["h5ad"], PARAMS["min_cells"])
    variant = demo["sim"]["eqtl"]["variant_id"]
    chrom, pos = bim.at[variant, "chrom"], bim.at[variant, "pos"]
    in_window = set(genes.index[(genes["chrom"] == chrom) & ((genes["tss"] - pos).abs() <= 1_000_000)])
    frame = pd.DataFrame({k: v for k, v in by_hand.items() if k[0] == "T_CD4"})
    expressed = set(frame.index[(frame > 0).mean(axis=1) > 0.1])
    got = set(res.loc[(res["variant_id"] == variant) & (res["cell_type"] == "T_CD4"), "gene"])
    assert got == in_window & expressed and len(got) > 10
    row = res[(res["variant_id"] == variant) & (res["cell_type"] == "T_CD4")].iloc[0]
    assert row["distance_to_tss"] == genes.at[row["gene"], "tss"] - pos
    # minus-strand genes measure from their end
    var = pd.DataFrame({"chrom": ["chr1", "1"], "start": [100, 500], "end": [200, 900], "strand": ["+", "-"]},
                       index=["A", "B"])
    tss = gene_tss(var)
    assert tss["tss"].tolist() == [100, 900] and tss["chrom"].tolist() == ["1", "1"]


def test_outputs_deterministic_and_aggregate_only(demo, tmp_path):
    out = demo["out"]
    assert (out / "eqtl.png").stat().st_size > 5000
    summary = json.loads((out / "eqtl.summary.json").read_text())
    assert summary["plotted"] == [{"variant_id": demo["sim"]["eqtl"]["variant_id"], "gene": demo["sim"]["eqtl"]["gene"]}]
    assert summary["cell_types"]["T_CD4"]["n_donors"] >= 20
    table = (out / "eqtl.tsv").read_text().splitlines()
    assert table[0].split("\t") == RESULT_COLUMNS
    # numbers written with 12 significant digits (fdr included)
    assert all(len(f.lstrip("-").replace(".", "").lstrip("0").split("e")[0]) <= 12
               for line in table[1:] for f in line.split("\t")[9:15])
    text = (out / "eqtl.summary.json").read_text() + (out / "eqtl.tsv").read_text()
    assert not any(d in text for d in demo["sim"]["donors"])  # no donor IDs, hence no genotypes by donor
    # The CLI gives the same bytes.
    tmp = demo["tmp"]
    rc = main(["cell-eqtl", "--h5ad", str(demo["h5ad"]), "--bfile", str(tmp / "geno"), "--variants",
               str(tmp / "leads.tsv"), str(tmp / "more.txt"), "--genes", str(demo["sim"]["genome"]["genes_gtf"]),
               "--covariates", str(tmp / "covariates.tsv"), "--pcs", str(tmp / "pcs.tsv"), "--n-pcs", "3",
               "--out", str(tmp_path / "eqtl.tsv")])
    assert rc == 0
    for name in ("eqtl.tsv", "eqtl.summary.json", "eqtl.png"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).digest() == \
            hashlib.sha256((out / name).read_bytes()).digest(), name


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.SingularMatrixWarning")
def test_ols_kernel_edge_cases():
    rng = np.random.default_rng(0)
    n = 30
    cov = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, 3))
    g = np.column_stack([rng.integers(0, 3, n), np.full(n, 1.0), cov[:, 0] * 2 + 1, rng.integers(0, 3, n)])
    # a covariate repeated: rank counts once, as statsmodels' pinv does
    fit = eqtl_ols(y, g, np.column_stack([cov, cov[:, 1]]))
    assert list(fit.errcode) == ["", "monomorphic", "rank_deficient", ""]
    assert np.isnan(fit.beta[1:3]).all() and fit.df == n - 3 - 1
    ref = sm.OLS(y[:, 2], np.column_stack([np.ones(n), cov, cov[:, 1], g[:, 3]])).fit()
    np.testing.assert_allclose([fit.beta[3, 2], fit.p_value[3, 2]], [ref.params[-1], ref.pvalues[-1]], rtol=1e-8)
    assert ref.df_resid == fit.df
    # no covariates: simple regression
    ref = sm.OLS(y[:, 0], sm.add_constant(g[:, 0])).fit()
    fit = eqtl_ols(y, g[:, :1], None)
    np.testing.assert_allclose([fit.beta[0, 0], fit.se[0, 0], fit.p_value[0, 0]],
                               [ref.params[1], ref.bse[1], ref.pvalues[1]], rtol=1e-8)


def test_pseudobulk_min_cells_and_counts_check():
    counts = sp.csr_matrix(np.array([[1, 3, 0], [2, 2, 4], [0, 5, 5], [4, 0, 0]], dtype=np.float32))
    adata = ad.AnnData(X=counts, obs=pd.DataFrame({"cell_type": ["a", "a", "a", "b"], "donor": ["d1", "d1", "d2", "d1"]},
                                                  index=[f"c{i}" for i in range(4)]))
    bulk = pseudobulk(adata, min_cells=1)
    assert bulk.obs[["cell_type", "donor", "n_cells"]].values.tolist() == [["a", "d1", 2], ["a", "d2", 1], ["b", "d1", 1]]
    expected = np.log1p((np.array([1, 3, 0]) / 4 + np.array([2, 2, 4]) / 8) / 2 * 1e4)
    np.testing.assert_allclose(bulk.X[0], expected, rtol=1e-12)
    assert pseudobulk(adata, min_cells=2).n_obs == 1
    adata.X = adata.X * 0.5
    with pytest.raises(InputFormatError, match="raw counts"):
        pseudobulk(adata)


def test_variant_lists(tmp_path):
    (tmp_path / "leads.tsv").write_text("variant_id\tchromosome\n1:5:A:G\t1\n2:9:C:T\t2\n1:5:A:G\t1\n")
    assert read_variant_list(tmp_path / "leads.tsv") == ["1:5:A:G", "2:9:C:T"]
    (tmp_path / "clumped").write_text(" CHR F SNP BP\n 1 1 rs1 5\n")
    assert read_variant_list(tmp_path / "clumped") == ["rs1"]
    (tmp_path / "truth.json").write_text(json.dumps({"eqtl": {"variant_id": "3:7:G:A", "gene": "X"}}))
    assert read_variant_list(tmp_path / "truth.json") == ["3:7:G:A"]
    (tmp_path / "empty.tsv").write_text("variant_id\tp_value\n")
    assert read_variant_list(tmp_path / "empty.tsv") == []
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputFormatError, match="bad.json"):
        read_variant_list(tmp_path / "bad.json")


def test_bad_inputs_one_error_no_output(demo, tmp_path, capsys):
    tmp = demo["tmp"]
    base = ["cell-eqtl", "--bfile", str(tmp / "geno"), "--variants", str(tmp / "leads.tsv"),
            "--genes", str(demo["sim"]["genome"]["genes_gtf"]), "--out", str(tmp_path / "o.tsv")]
    # donors that are not .fam IIDs
    adata = ad.read_h5ad(demo["h5ad"])
    adata.obs["donor"] = "X" + adata.obs["donor"].astype(str)
    adata.write_h5ad(tmp_path / "renamed.h5ad")
    assert main(base + ["--h5ad", str(tmp_path / "renamed.h5ad")]) == 1
    err = capsys.readouterr().err
    assert "geno.fam" in err and "none of the 24 donors" in err and err.count("\n") == 1
    # a donor key that is not in obs
    assert main(base + ["--h5ad", str(demo["h5ad"]), "--donor-key", "individual"]) == 1
    assert "no obs column 'individual'" in capsys.readouterr().err
    # variants absent from the .bim
    (tmp_path / "nope.txt").write_text("9:1:A:C\n")
    assert main(["cell-eqtl", "--h5ad", str(demo["h5ad"]), "--bfile", str(tmp / "geno"), "--variants",
                 str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o.tsv")]) == 1
    assert "geno.bim" in capsys.readouterr().err
    # non-numeric covariate
    (tmp_path / "cov.tsv").write_text("IID sex\nS00001 male\n")
    assert main(base + ["--h5ad", str(demo["h5ad"]), "--covariates", str(tmp_path / "cov.tsv")]) == 1
    err = capsys.readouterr().err
    assert "cov.tsv" in err and "line 2" in err
    assert not any(tmp_path.glob("o.*"))
    with pytest.raises(CohortflowError, match="min_donors"):
        run_cell_eqtl(demo["h5ad"], bfile=tmp / "geno", variant_ids=["x"], out_tsv=tmp_path / "o.tsv", min_donors=1)


def test_pseudobulk_equals_scanpy_aggregate(demo):
    """Peer: scanpy normalize_total(1e4) per cell, sc.get.aggregate(mean) per (cell type, donor),
    log1p; same values (1e-10) and the same groups above min_cells."""
    import scanpy as sc

    adata = ad.read_h5ad(demo["h5ad"])
    ours = pseudobulk(adata, min_cells=5)
    peer = ad.AnnData(X=adata.layers["counts"].astype(np.float64), obs=adata.obs[["cell_type", "donor"]].copy())
    sc.pp.normalize_total(peer, target_sum=1e4)
    agg = sc.get.aggregate(peer, by=["cell_type", "donor"], func=["mean", "count_nonzero"])
    n_cells = peer.obs.groupby(["cell_type", "donor"], observed=True).size()
    agg.obs["n"] = [n_cells.get((t, d), 0) for t, d in zip(agg.obs["cell_type"], agg.obs["donor"])]
    agg = agg[agg.obs["n"].to_numpy() >= 5]
    key = agg.obs["cell_type"].astype(str) + "|" + agg.obs["donor"].astype(str)
    assert sorted(key) == sorted(ours.obs_names)
    expected = np.log1p(np.asarray(agg.layers["mean"]))
    order = pd.Index(key).get_indexer(ours.obs_names)
    np.testing.assert_allclose(ours.X, expected[order], rtol=1e-10, atol=1e-12)
    assert ours.obs["n_cells"].tolist() == agg.obs["n"].to_numpy()[order].tolist()


def test_no_variants_gives_empty_table(demo, tmp_path):
    """A trait without lead variants (the workflow's case): header-only table, summary, a PNG."""
    (tmp_path / "leads.tsv").write_text("variant_id\tp_value\n")
    summary = run_cell_eqtl(demo["h5ad"], bfile=demo["tmp"] / "geno", variants=[tmp_path / "leads.tsv"],
                            out_tsv=tmp_path / "e.tsv", out_summary=tmp_path / "e.json", out_png=tmp_path / "e.png",
                            genes_gtf=demo["sim"]["genome"]["genes_gtf"])
    assert (tmp_path / "e.tsv").read_text() == "\t".join(RESULT_COLUMNS) + "\n"
    assert summary["n_tests"] == 0 and summary["n_variants_requested"] == 0 and summary["plotted"] == []
    assert (tmp_path / "e.png").exists() and json.loads((tmp_path / "e.json").read_text())["n_significant"] == 0
