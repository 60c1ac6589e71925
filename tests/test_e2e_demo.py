"""End to end: the whole workflow on a reduced demo cohort, asserting the planted answers.

Runs `snakemake --cores 2` once (the session fixture ``demo_run`` of conftest.py) in a temporary
working directory with a reduced demo configuration, then checks the known answers from the result files themselves (not only from
the workflow's own truth_check), that a second run has nothing to do, and that touching one input
re-runs only what depends on it. Two runs from scratch giving the same bytes is checked by
tests/test_e2e_faults.py (an interrupted run from scratch against this one, every result file).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SNAKEMAKE, snakemake_in as _snakemake

pytestmark = pytest.mark.e2e


def _results(workdir: Path) -> Path:
    return workdir / "results" / "demo"


def _truth(workdir: Path) -> dict:
    return json.loads((workdir / "data" / "demo" / "truth.json").read_text())


def test_report_is_self_contained(demo_run):
    html = (_results(demo_run) / "report.html").read_text()
    assert len(html) > 50_000
    # No resource fetched from a network address (links in citations are text, not resources).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, flags=re.I)
    for section in ("GWAS", "Polygenic", "Single-cell", "Spatial", "Provenance"):
        assert section in html


def test_truth_check_all_passed(demo_run):
    check = json.loads((_results(demo_run) / "truth_check.json").read_text())
    failed = [c for c in check["checks"] if not c["passed"]]
    assert check["all_passed"] and not failed, failed


def test_each_causal_locus_has_significant_lead(demo_run):
    truth = _truth(demo_run)
    for trait, spec in truth["traits"].items():
        leads = pd.read_csv(_results(demo_run) / "gwas" / f"{trait}.leads.tsv", sep="\t", dtype={"chromosome": str})
        for causal in spec["causal_variants"]:
            near = leads[(leads.chromosome == str(causal["chromosome"]))
                         & ((leads.base_pair_location - causal["position"]).abs() <= 250_000)
                         & (leads.p_value.astype(float) < 5e-8)]
            assert len(near) >= 1, f"{trait}: no genome-wide significant lead within 250 kb of {causal}"


def test_lambda_gc_with_and_without_pcs(demo_run):
    for trait in _truth(demo_run)["traits"]:
        summary = json.loads((_results(demo_run) / "gwas" / f"{trait}.summary.json").read_text())
        assert 0.95 <= summary["lambda_gc"] <= 1.10, summary
        assert summary["lambda_gc_nopcs"] >= 1.15, summary


def test_pca_separates_populations(demo_run):
    pcs = pd.read_csv(_results(demo_run) / "qc" / "qc.pcs.tsv", sep="\t").rename(columns={"#FID": "FID"})
    info = pd.read_csv(demo_run / "data" / "demo" / "samples.tsv", sep="\t")
    df = pcs.merge(info, on="IID")
    x = df[["PC1", "PC2"]].to_numpy()
    labels = df["population"].to_numpy()
    centroids = {p: x[labels == p].mean(axis=0) for p in np.unique(labels)}
    names = list(centroids)
    dist = np.stack([np.linalg.norm(x - centroids[p], axis=1) for p in names], axis=1)
    accuracy = np.mean(np.array(names)[dist.argmin(axis=1)] == labels)
    assert accuracy >= 0.95, accuracy


def test_prs_predicts_quantitative_trait_in_held_out(demo_run):
    """The Bayesian and the chosen C+T score correlate with the trait in the test split (recomputed
    here from the per-sample scores, the split and the phenotype file), and the Bayesian one
    explains more of it."""
    results = _results(demo_run) / "prs"
    evaluation = json.loads((results / "quant_trait.evaluate.json").read_text())
    methods = {m["method"]: m for m in evaluation["methods"]}
    split = pd.read_csv(results / "quant_trait.split.tsv", sep="\t")
    pheno = pd.read_csv(demo_run / "data" / "demo" / "phenotypes.tsv", sep=r"\s+", na_values=["NA", "-9"])
    for name, path in (("ct", "quant_trait.ct.scores.tsv.gz"), ("bayes", "quant_trait.bayes.scores.tsv.gz")):
        m = methods[name]
        assert m["n_test"] >= 100
        scores = pd.read_csv(results / path, sep="\t").drop(columns="#FID")
        df = scores.merge(split[split["split"] == "test"], on="IID").merge(pheno, on="IID")
        df = df.dropna(subset=["quant_trait"])
        r = np.corrcoef(df[m["selected_column"]], df["quant_trait"])[0, 1]
        assert r > 0.3 and abs(r - m["metrics"]["r"]["value"]) < 1e-3, (name, r, m["metrics"]["r"])
    bayes, ct = (methods[k]["metrics"]["incremental_r2"]["value"] for k in ("bayes", "ct"))
    assert bayes > ct, (bayes, ct)


def test_clustering_recovers_cell_types(demo_run):
    import anndata
    from sklearn.metrics import adjusted_rand_score

    adata = anndata.read_h5ad(_results(demo_run) / "singlecell" / "sc.h5ad", backed="r")
    truth = pd.read_csv(demo_run / "data" / "demo" / "singlecell_truth.tsv", sep="\t", index_col=0)
    obs = adata.obs.join(truth, how="inner")
    assert len(obs) >= 0.8 * len(truth)
    assert adjusted_rand_score(obs["true_cell_type"].astype(str), obs["cell_type"].astype(str)) >= 0.9


def test_integration_ranks_trait_cell_type_first(demo_run):
    sc_truth = json.loads((demo_run / "data" / "demo" / "singlecell_truth.json").read_text())
    ranking = pd.read_csv(_results(demo_run) / "integration" / "quant_trait.celltype_ranking.tsv", sep="\t")
    assert ranking.sort_values("rank").iloc[0]["cell_type"] == sc_truth["trait_cell_types"]["quant_trait"]


def test_spatial_disease_score_autocorrelated_and_highest_in_planted_region(demo_run):
    sc_truth = json.loads((demo_run / "data" / "demo" / "singlecell_truth.json").read_text())
    summary = json.loads((_results(demo_run) / "integration" / "quant_trait.spatial.json").read_text())
    assert summary["morans_i"] > 0 and summary["morans_p_analytic"] < 0.01, summary
    assert summary["morans_p_permutation"] < 0.01, summary
    scores = pd.read_csv(_results(demo_run) / "integration" / "quant_trait.spatial_scores.tsv.gz", sep="\t")
    regions = pd.read_csv(demo_run / "data" / "demo" / "spatial_truth.tsv", sep="\t")
    df = scores.merge(regions, left_on="spot", right_on=regions.columns[0])
    by_region = df.groupby("region")["score"].mean()
    assert by_region.idxmax() == sc_truth["trait_region"], by_region


def test_cli_stages_on_demo_results(demo_run, tmp_path):
    """The console script runs the same library functions on the workflow's files."""
    results = _results(demo_run)
    cli = [sys.executable, "-m", "cohortflow.cli"]

    def run(*args):
        proc = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc

    run("gwas", "--bfile", str(results / "qc" / "qc"), "--pheno", str(demo_run / "data" / "demo" / "phenotypes.tsv"),
        "--pheno-name", "quant_trait", "--covar", str(results / "gwas" / "covariates.tsv"),
        "--covar-name", "sex", "age", "PC1", "PC2", "PC3", "PC4", "--out", str(tmp_path / "cli"))
    assert (tmp_path / "cli.quant_trait.tsv.gz").read_bytes() == (results / "gwas" / "quant_trait.tsv.gz").read_bytes()
    run("disease-score", "--h5ad", str(results / "singlecell" / "sc.h5ad"),
        "--gene-scores", str(results / "integration" / "quant_trait.gene_scores.tsv"), "--n-genes", "30",
        "--fwer", "0.05", "--n-min", "10", "--n-ctrl", "200", "--no-h5ad", "--out", str(tmp_path / "ds"))
    # scDRS outputs (the workflow's gene-set rule, config integration: munge-gs's; the same genes and weights)
    ours = pd.read_csv(tmp_path / "ds.quant_trait.score.tsv.gz", sep="\t", index_col="index")
    theirs = pd.read_csv(results / "integration" / "quant_trait.cell_scores.tsv.gz", sep="\t", index_col="cell")
    assert np.corrcoef(ours["norm_score"], theirs.loc[ours.index, "norm_score"])[0, 1] > 0.99
    groups = pd.read_csv(tmp_path / "ds.quant_trait.scdrs_group.cell_type.tsv", sep="\t", index_col="group")
    ranking = pd.read_csv(results / "integration" / "quant_trait.celltype_ranking.tsv", sep="\t")
    assert groups["assoc_mcp"].idxmin() == ranking["cell_type"].iloc[0]
    proc = run("check-truth", "--truth", str(demo_run / "data" / "demo" / "truth.json"),
               "--results-dir", str(results), "--out", str(tmp_path / "truth.json"))
    assert "FAIL" not in proc.stdout and proc.stdout.count("PASS") >= 20


def test_snakemake_report_collects_the_figures(demo_run):
    import zipfile

    _snakemake(demo_run, "--report", "smk_report.zip")
    names = zipfile.ZipFile(demo_run / "smk_report.zip").namelist()
    # the zip stores each file as data/raw/<hash>/<file name>
    for key_output in ("quant_trait.manhattan.png", "umap.png", "summary.tsv", "quant_trait.leads.tsv",
                       "quant_trait.performance.tsv", "quant_trait.celltype_ranking.tsv", "eqtl.tsv",
                       "nhood.png", "spatial.png", "markers.png", "qc.sample_qc.png"):
        assert any(n.rsplit("/", 1)[-1] == key_output for n in names), (key_output, names[:20])
    # nothing individual-level: per-sample sites, scores, splits, expression matrices, genotypes
    for private in (".sites.tsv.gz", "scores.tsv.gz", ".split.tsv", ".h5ad", "qc.sample_qc.tsv", ".bed"):
        assert not any(n.endswith(private) for n in names), private


def test_second_run_does_nothing(demo_run):
    proc = _snakemake(demo_run, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = subprocess.run([*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO), "--lint"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_touching_phenotypes_reruns_only_dependents(demo_run):
    pheno = demo_run / "data" / "demo" / "phenotypes.tsv"
    os.utime(pheno)
    proc = _snakemake(demo_run, "-n", "--quiet", "rules")
    text = proc.stdout + proc.stderr
    rerun = set(re.findall(r"^(\w+)\s+\d+\s*$", text, flags=re.M)) - {"total", "all"}
    assert {"gwas", "prs_split", "prs_discovery_gwas", "prs_ct", "prs_bayes", "prs_evaluate", "report"} <= rerun, text
    assert not rerun & {"demo_genotypes", "ingest_shard", "merge_shards", "genotype_qc", "genotype_pca",
                        "singlecell", "spatial", "alignment_qc", "demo_reads", "demo_expression"}, text
