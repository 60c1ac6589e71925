"""Single-cell chain: planted cell types recovered, outputs as documented, processed input (scanpy's
pbmc68k_reduced) annotated with the shipped PBMC table, Wilcoxon marker ranking equal to scanpy's."""

from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from cohortflow.errors import InputFormatError
from cohortflow.singlecell.pipeline import (
    annotate_by_markers,
    compute_neighbors,
    default_markers_path,
    detect_input_kind,
    read_markers,
    run_singlecell,
    threshold_minimum,
)
from cohortflow.singlecell.rank_genes import rank_genes_groups_wilcoxon
from test_demo_singlecell import simulate_small

REPO_MARKERS = Path(__file__).resolve().parents[1] / "resources" / "markers" / "pbmc_markers.tsv"
PBMC_WARNINGS = ("ignore:.*without encoding metadata", "ignore:.*very old version of AnnData", "ignore:Moving element")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sc_chain")
    sim = simulate_small(tmp, n_cells=2000, n_spots=100)
    out = tmp / "results"
    summary = run_singlecell(sim["dir"] / "singlecell.h5ad", markers=sim["dir"] / "markers.tsv",
                             out_h5ad=out / "sc.h5ad", out_summary=out / "summary.json", out_dir_figures=out,
                             truth=sim["dir"] / "singlecell_truth.tsv",
                             min_genes=100, max_pct_mito=20, n_pcs=20, leiden_resolution=0.5, seed=0)
    return sim, out, summary


def test_recovers_planted_cell_types(chain):
    sim, out, summary = chain
    res = ad.read_h5ad(out / "sc.h5ad")
    truth = pd.read_csv(sim["dir"] / "singlecell_truth.tsv", sep="\t").set_index("barcode").loc[res.obs_names]
    clean = (truth["artefact"] == "none").to_numpy()
    ari = adjusted_rand_score(truth["true_cell_type"][clean], res.obs["cell_type"].astype(str)[clean])
    assert ari >= 0.9
    assert summary["ari"] == pytest.approx(ari)
    # labels are the planted names, not just a partition
    agree = (truth["true_cell_type"][clean].to_numpy() == res.obs["cell_type"].astype(str)[clean].to_numpy()).mean()
    assert agree >= 0.95
    assert summary["n_cell_types"] >= 6


def test_qc_and_doublets(chain):
    sim, out, summary = chain
    res = ad.read_h5ad(out / "sc.h5ad")
    truth = pd.read_csv(sim["dir"] / "singlecell_truth.tsv", sep="\t").set_index("barcode")
    kept = truth.loc[res.obs_names, "artefact"]
    assert (kept == "low_quality").sum() == 0  # all planted low-quality cells fail the % mito filter
    n_doublets = int((truth["artefact"] == "doublet").sum())
    removed = truth.index.difference(res.obs_names)
    removed_doublets = int((truth.loc[removed, "artefact"] == "doublet").sum())
    assert removed_doublets >= 0.5 * n_doublets  # Scrublet catches most heterotypic doublets
    assert summary["n_removed"]["doublets"] <= 2 * n_doublets  # without throwing out many singlets
    assert summary["n_cells_in"] == len(truth) and summary["n_cells_out"] == res.n_obs
    assert summary["n_cells_in"] - summary["n_cells_out"] == sum(summary["n_removed"].values())
    assert summary["doublet_method"].startswith("scanpy.pp.scrublet")


def test_output_layout(chain):
    sim, out, summary = chain
    raw = ad.read_h5ad(sim["dir"] / "singlecell.h5ad")
    res = ad.read_h5ad(out / "sc.h5ad")
    counts = res.layers["counts"]
    assert sp.issparse(counts) and sp.issparse(res.X)
    expected = raw[res.obs_names, res.var_names].X
    assert (counts != expected).nnz == 0  # raw counts kept as they were
    np.testing.assert_allclose(np.expm1(res.X[:20].toarray()).sum(axis=1), 1e4, rtol=1e-3)
    for key in ("donor", "cell_type", "leiden", "doublet_score", "predicted_doublet", "pct_counts_mt",
                "n_genes_by_counts", "total_counts"):
        assert key in res.obs
    assert res.obs["donor"].astype(str).isin(set(raw.obs["donor"].astype(str))).all()
    for key in ("highly_variable", "mt"):
        assert key in res.var
    assert res.var["mt"].sum() == 13  # the demo's MT- genes
    assert res.obsm["X_pca"].shape == (res.n_obs, summary["n_pcs"])
    assert summary["input_kind"] == "counts" and summary["skipped_steps"] == []
    ann = res.uns["cell_type_annotation"]
    assert set(ann["cluster_to_cell_type"]) == set(res.obs["leiden"].astype(str))
    assert res.obsm["X_umap"].shape == (res.n_obs, 2)
    assert "rank_genes_groups" in res.uns and "connectivities" in res.obsp
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("n_cells_in", "n_cells_out", "n_genes", "n_clusters", "cells_per_type", "mean_qc", "ari"):
        assert key in on_disk
    assert sum(on_disk["cells_per_type"].values()) == res.n_obs
    for png in ("umap.png", "markers.png", "qc.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_neighbors_above_4096_cells():
    """The kNN step must work where scanpy's default pynndescent path crashed (> 4,096 cells)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6, size=(5, 20))
    pcs = (centres[rng.integers(0, 5, size=4500)] + rng.normal(size=(4500, 20))).astype(np.float32)
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(4500)]))
    adata.obsm["X_pca"] = pcs
    assert compute_neighbors(adata, n_neighbors=10, seed=0) == "sklearn"
    conn = adata.obsp["connectivities"]
    assert conn.shape == (4500, 4500) and conn.nnz >= 4500 * 10
    assert (np.diff(adata.obsp["distances"].indptr) == 9).all()  # k - 1 neighbours, self excluded


def test_threshold_minimum():
    rng = np.random.default_rng(1)
    bimodal = np.concatenate([rng.normal(0.1, 0.03, 3000), rng.normal(0.6, 0.05, 600)])
    t = threshold_minimum(bimodal)
    assert 0.2 < t < 0.5
    assert threshold_minimum(np.zeros(10)) is None


def test_read_markers_errors(tmp_path):
    bad = tmp_path / "m.tsv"
    bad.write_text("type\tgene\nB\tMS4A1\n")
    with pytest.raises(InputFormatError, match="cell_type"):
        read_markers(bad)
    bad.write_text("cell_type\tgene\nB\t\n")
    with pytest.raises(InputFormatError, match="line 2"):
        read_markers(bad)


def test_rejects_unreadable_input(tmp_path):
    (tmp_path / "x.h5ad").write_bytes(b"not an HDF5 file")
    (tmp_path / "m.tsv").write_text("cell_type\tgene\nA\t0\nA\t1\n")
    with pytest.raises(InputFormatError, match="cannot read AnnData"):
        run_singlecell(tmp_path / "x.h5ad", markers=tmp_path / "m.tsv", out_h5ad=tmp_path / "o.h5ad",
                       out_summary=tmp_path / "o.json", out_umap_png=tmp_path / "u.png",
                       out_markers_png=tmp_path / "k.png", out_qc_png=tmp_path / "q.png")
    assert not (tmp_path / "o.h5ad").exists()


@pytest.mark.filterwarnings("ignore:.*without encoding metadata", "ignore:.*very old version of AnnData",
                            "ignore:Moving element")
def test_pbmc_marker_table_on_real_pbmc():
    """The shipped PBMC marker table labels scanpy's pbmc68k_reduced bulk-label groups sensibly."""
    from conftest import require_shared

    path = require_shared("sc_pbmc68k_reduced", "10x_pbmc68k_reduced.h5ad")
    adata = ad.read_h5ad(path)
    markers = read_markers(REPO_MARKERS)
    assert {"T_CD4", "T_CD8", "NK", "B", "DC", "Platelet"} <= set(markers)
    means = annotate_by_markers(adata, markers, groupby="bulk_labels", seed=0)
    label = means.idxmax(axis=1)
    assert label["CD19+ B"] == "B"
    assert label["CD56+ NK"] == "NK"
    assert label["Dendritic"] == "DC"
    assert label["CD4+/CD45RO+ Memory"] == "T_CD4"
    assert label["CD8+ Cytotoxic T"] == "T_CD8"
    assert label["CD14+ Monocyte"].startswith("Monocyte")


def _sparse_log_groups(seed: int, n: int = 1500, g: int = 300, k: int = 4):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.5, 2.0, size=(k, g))
    grp = rng.integers(0, k, n)
    counts = rng.poisson(lam[grp]).astype(np.float32)
    x = np.log1p(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 1e4).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(x))
    adata.var_names = [f"g{i}" for i in range(g)]
    adata.obs["grp"] = pd.Categorical([f"c{i}" for i in grp])
    return adata


def _assert_same_ranking(ours: dict, theirs: dict, *, rtol: float) -> None:
    for group in theirs["names"].dtype.names:
        names_o, names_t = ours["names"][group], theirs["names"][group]
        for key in ("scores", "pvals", "pvals_adj", "logfoldchanges"):
            o = pd.Series(np.asarray(ours[key][group], dtype=float), index=names_o)
            t = pd.Series(np.asarray(theirs[key][group], dtype=float), index=names_t)
            np.testing.assert_allclose(o.loc[t.index].to_numpy(), t.to_numpy(), rtol=rtol, atol=1e-300,
                                       err_msg=f"{group} {key}")
        # same order wherever scores are distinct (ties may be ordered differently)
        scores = np.asarray(theirs["scores"][group], dtype=float)
        distinct = np.concatenate([[True], np.diff(scores) != 0]) & np.concatenate([np.diff(scores) != 0, [True]])
        assert (np.asarray(names_o)[distinct] == np.asarray(names_t)[distinct]).all()


@pytest.mark.parametrize("tie_correct", [False, True])
def test_wilcoxon_equals_scanpy_sparse(tie_correct):
    """Scores, p-values, BH p-values and log fold changes as scanpy's Wilcoxon (1e-6 relative)."""
    import scanpy as sc

    adata = _sparse_log_groups(3)
    ours, theirs = adata.copy(), adata.copy()
    rank_genes_groups_wilcoxon(ours, "grp", tie_correct=tie_correct)
    sc.tl.rank_genes_groups(theirs, "grp", method="wilcoxon", use_raw=False, tie_correct=tie_correct)
    _assert_same_ranking(ours.uns["rank_genes_groups"], theirs.uns["rank_genes_groups"], rtol=1e-6)
    assert ours.uns["rank_genes_groups"]["params"]["method"] == "wilcoxon"
    df = sc.get.rank_genes_groups_df(ours, group="c0")  # scanpy reads our layout
    assert len(df) == adata.n_vars


def test_wilcoxon_equals_scanpy_dense_negative():
    """Scaled (negative) dense values with explicit zeros: the zero block is placed among the ranks."""
    import scanpy as sc

    adata = _sparse_log_groups(5, n=600, g=80, k=3)
    x = adata.X.toarray()
    x = np.where(x > 0, x - np.float32(1.5), np.float32(0))  # negative, positive and zero values
    adata.X = x
    ours, theirs = adata.copy(), adata.copy()
    rank_genes_groups_wilcoxon(ours, "grp")
    sc.tl.rank_genes_groups(theirs, "grp", method="wilcoxon", use_raw=False)
    for group in theirs.uns["rank_genes_groups"]["names"].dtype.names:
        for key in ("scores", "pvals"):
            o = pd.Series(ours.uns["rank_genes_groups"][key][group], index=ours.uns["rank_genes_groups"]["names"][group])
            t = pd.Series(theirs.uns["rank_genes_groups"][key][group],
                          index=theirs.uns["rank_genes_groups"]["names"][group])
            np.testing.assert_allclose(o.loc[t.index].to_numpy(float), t.to_numpy(float), rtol=1e-6)


def test_detect_input_kind():
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(1.0, size=(50, 20)).astype(np.float32))
    assert detect_input_kind(ad.AnnData(counts)) == ("counts", "X")
    logn = counts.copy()
    logn.data = np.log1p(logn.data * 1.7)
    with_layer = ad.AnnData(logn.copy())
    with_layer.layers["counts"] = counts.copy()
    assert detect_input_kind(with_layer) == ("counts", "layers['counts']")
    assert detect_input_kind(ad.AnnData(logn.copy())) == ("log_normalised", "X")
    scaled = ad.AnnData(np.asarray(logn.toarray() - logn.toarray().mean(axis=0)))
    assert detect_input_kind(scaled) == ("scaled", "X")
    scaled.raw = ad.AnnData(logn.copy())
    assert detect_input_kind(scaled) == ("log_normalised", "raw")


def test_default_markers_shipped_in_package():
    """The default table is package data (works installed), and the workflow's resources/ copy is that file."""
    path = default_markers_path()
    assert path.is_file() and "cohortflow" in path.parts
    assert REPO_MARKERS.resolve() == path.resolve()
    markers = read_markers(path)
    assert {"B", "NK", "DC", "Monocyte_classical", "Monocyte_nonclassical", "Plasma", "HSPC"} <= set(markers)


# Processed input: scanpy's pbmc68k_reduced (X scaled, raw log-normalised, 700 cells x 765 genes), Leiden at
# resolution 1.0 (scanpy's default; the config default 0.5 is for the demo's 2,000+ cells).
PBMC_RESOLUTION = 1.0
# population -> (bulk label, accepted annotations, known markers)
PBMC_POPULATIONS = {
    "B": ("CD19+ B", {"B", "Plasma"}, ("CD79A", "MS4A1")),
    "NK": ("CD56+ NK", {"NK"}, ("NKG7", "GNLY")),
    "Monocyte": ("CD14+ Monocyte", {"Monocyte_classical", "Monocyte_nonclassical"}, ("LYZ", "CST3", "S100A8")),
    "DC": ("Dendritic", {"DC", "pDC"}, ("FCER1A", "CST3")),
}


@pytest.fixture(scope="module")
def pbmc_runs(tmp_path_factory):
    from conftest import require_shared

    path = require_shared("sc_pbmc68k_reduced", "10x_pbmc68k_reduced.h5ad")
    runs = []
    for i in range(2):
        out = tmp_path_factory.mktemp(f"pbmc{i}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # anndata's notes on this old file's layout
            summary = run_singlecell(path, out_h5ad=out / "sc.h5ad", out_summary=out / "summary.json",
                                     out_dir_figures=out, leiden_resolution=PBMC_RESOLUTION, seed=0)
        runs.append((out, summary))
    return runs


@pytest.mark.filterwarnings(*PBMC_WARNINGS)
def test_pbmc_processed_input_annotation(pbmc_runs):
    """pbmc68k_reduced: processed input detected; B, NK, monocytes and DC annotated as the bulk labels say.

    Agreement per population (bulk label L, accepted annotations A): sensitivity = share of the
    L cells annotated in A, >= 0.75; precision = share of the A-annotated cells labelled L, >= 0.6
    (for NK the A cells may also be labelled CD8+ cytotoxic T: that cluster mixes NK and effector
    CD8 T cells, CD3D+ GNLY+ NKG7+, which correlation-based bulk labels do not separate from NK).
    """
    out, summary = pbmc_runs[0]
    assert summary["input_kind"] == "log_normalised" and summary["input_source"] == "raw"
    assert "normalize_total" in summary["skipped_steps"] and "doublets" in summary["skipped_steps"]
    assert "log-normalised raw.X is used" in summary["input_note"]
    assert summary["markers_file"] == "pbmc_markers.tsv"  # the default table
    res = ad.read_h5ad(out / "sc.h5ad")
    assert res.X.min() >= 0 and "counts" not in res.layers  # log-normalised X kept; no counts to keep
    labels, annot = res.obs["bulk_labels"].astype(str), res.obs["cell_type"].astype(str)
    for pop, (label, accepted, _) in PBMC_POPULATIONS.items():
        in_label, in_annot = labels == label, annot.isin(accepted)
        sensitivity = (in_label & in_annot).sum() / in_label.sum()
        ok_labels = {label, "CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic"} if pop == "NK" else {label}
        precision = (labels[in_annot].isin(ok_labels)).mean()
        assert sensitivity >= 0.75, (pop, sensitivity)
        assert precision >= 0.6, (pop, precision)


@pytest.mark.filterwarnings(*PBMC_WARNINGS)
def test_pbmc_known_markers_ranked(pbmc_runs):
    """Known markers in rank_genes_groups of the clusters annotated as each population: B (CD79A, MS4A1)
    and NK (NKG7, GNLY) in a cluster's top 5, DC (FCER1A, CST3) in a DC cluster's top 10; monocytes
    (LYZ, CST3, S100A8) significantly up (BH p < 0.05, log2 fold change > 1) in the monocyte cluster,
    whose top genes are FCGR3A-type monocyte genes (in pbmc68k_reduced LYZ peaks in the DC clusters)."""
    out, summary = pbmc_runs[0]
    res = ad.read_h5ad(out / "sc.h5ad")
    rgg = res.uns["rank_genes_groups"]
    c2t = summary["cluster_to_cell_type"]

    def top(cluster, n):
        return set(rgg["names"][cluster][:n])

    for pop, n in (("B", 5), ("NK", 5), ("DC", 10)):
        _, accepted, genes = PBMC_POPULATIONS[pop]
        clusters = [c for c, t in c2t.items() if t in accepted]
        assert any(set(genes) <= top(c, n) for c in clusters), (pop, {c: list(rgg["names"][c][:n]) for c in clusters})
    _, accepted, genes = PBMC_POPULATIONS["Monocyte"]
    mono = [c for c, t in c2t.items() if t in accepted]
    assert mono
    for c in mono:
        names = list(rgg["names"][c])
        for g in genes:
            i = names.index(g)
            assert rgg["scores"][c][i] > 0 and rgg["pvals_adj"][c][i] < 0.05 and rgg["logfoldchanges"][c][i] > 1, (c, g)
        assert {"FCGR3A", "LST1", "AIF1"} & top(c, 5)


@pytest.mark.filterwarnings(*PBMC_WARNINGS)
def test_pbmc_outputs_byte_identical(pbmc_runs):
    (a, _), (b, _) = pbmc_runs
    for name in ("sc.h5ad", "summary.json", "umap.png", "markers.png", "qc.png"):
        assert hashlib.sha256((a / name).read_bytes()).hexdigest() == hashlib.sha256((b / name).read_bytes()).hexdigest(), name


@pytest.mark.filterwarnings(*PBMC_WARNINGS)
def test_cli_sc_default_markers(tmp_path, capsys):
    from conftest import require_shared

    from cohortflow.cli import main

    path = require_shared("sc_pbmc68k_reduced", "10x_pbmc68k_reduced.h5ad")
    out = tmp_path / "pbmc.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's notes on this old file's layout
        assert main(["sc", "--h5ad", str(path), "--out", str(out), "--leiden-resolution", "1.0"]) == 0
    for name in ("pbmc.h5ad", "pbmc.summary.json", "pbmc.umap.png", "pbmc.markers.png", "pbmc.qc.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "pbmc.summary.json").read_text())["markers_file"] == "pbmc_markers.tsv"
    capsys.readouterr()
    assert main(["sc", "--h5ad", str(tmp_path / "missing.h5ad"), "--out", str(tmp_path / "x.h5ad")]) == 1
    err = capsys.readouterr().err
    assert "missing.h5ad" in err and "file not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5ad").exists()


def test_threshold_minimum_equals_skimage():
    """Scrublet's automatic threshold rule: same value as skimage.filters.threshold_minimum (peer venv),
    including a histogram whose first bin is a maximum (homotypic doublets at score ~0)."""
    from conftest import require_scpeer

    python = require_scpeer("skimage")
    rng = np.random.default_rng(4)
    cases = [np.concatenate([rng.normal(0.1, 0.03, 3000), rng.normal(0.6, 0.05, 600)]),
             np.concatenate([rng.exponential(0.01, 4000), rng.normal(0.45, 0.08, 8000)]),
             np.concatenate([rng.gamma(1.0, 0.02, 5000), rng.normal(0.3, 0.05, 2000), rng.normal(0.6, 0.04, 3000)])]
    script = ("import sys, json, numpy as np\nfrom skimage.filters import threshold_minimum\n"
              "print(json.dumps([float(threshold_minimum(np.asarray(v))) for v in json.load(sys.stdin)]))")
    proc = subprocess.run([python, "-c", script], input=json.dumps([c.tolist() for c in cases]),
                          capture_output=True, text=True, check=True)
    for ours, theirs in zip((threshold_minimum(c) for c in cases), json.loads(proc.stdout)):
        assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.filterwarnings(*PBMC_WARNINGS)
def test_scaled_only_input_runs_from_pca(tmp_path):
    """A scaled X without a log-normalised raw: the chain starts at PCA, says so, and still finds the B cells."""
    from conftest import require_shared

    src = ad.read_h5ad(require_shared("sc_pbmc68k_reduced", "10x_pbmc68k_reduced.h5ad"))
    scaled = ad.AnnData(np.asarray(src.X, dtype=np.float32), obs=src.obs[["bulk_labels"]].copy(),
                        var=pd.DataFrame(index=src.var_names.copy()))
    scaled.write_h5ad(tmp_path / "scaled.h5ad")
    summary = run_singlecell(tmp_path / "scaled.h5ad", out_h5ad=tmp_path / "o.h5ad", out_summary=tmp_path / "o.json",
                             out_dir_figures=tmp_path, leiden_resolution=PBMC_RESOLUTION)
    assert summary["input_kind"] == "scaled" and "scale" in summary["skipped_steps"]
    assert "starts at PCA" in summary["input_note"] and summary["n_hvg"] == 0
    res = ad.read_h5ad(tmp_path / "o.h5ad")
    np.testing.assert_allclose(res.X.toarray(), scaled.X, rtol=0, atol=0)  # X as given
    b_cells = res.obs["cell_type"].astype(str).isin({"B", "Plasma"})
    assert (res.obs["bulk_labels"][b_cells] == "CD19+ B").mean() >= 0.6
    assert (tmp_path / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_counts_chain_byte_identical(chain, tmp_path):
    """Same counts input and seed: identical h5ad, summary and figures (Scrublet, PCA, kNN, Leiden, UMAP seeded)."""
    sim, out, _ = chain
    run_singlecell(sim["dir"] / "singlecell.h5ad", markers=sim["dir"] / "markers.tsv", out_h5ad=tmp_path / "sc.h5ad",
                   out_summary=tmp_path / "summary.json", out_dir_figures=tmp_path,
                   truth=sim["dir"] / "singlecell_truth.tsv",
                   min_genes=100, max_pct_mito=20, n_pcs=20, leiden_resolution=0.5, seed=0)
    for name in ("sc.h5ad", "summary.json", "umap.png", "markers.png", "qc.png"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_doublets_per_batch(chain, monkeypatch):
    """Scrublet per batch: each batch gets its own threshold; the planted doublets are still caught."""
    import cohortflow.singlecell.pipeline as pipeline

    sim, _, _ = chain
    raw = ad.read_h5ad(sim["dir"] / "singlecell.h5ad")
    truth = pd.read_csv(sim["dir"] / "singlecell_truth.tsv", sep="\t").set_index("barcode").loc[raw.obs_names]
    keep = (truth["artefact"] != "low_quality").to_numpy()
    raw, truth = raw[keep].copy(), truth[keep]
    raw.obs["lane"] = np.where(np.arange(raw.n_obs) % 2 == 0, "L1", "L2")
    monkeypatch.setattr(pipeline, "_SCRUBLET_MIN_BATCH", 500)
    score, called, method = pipeline._doublet_scores(raw, seed=0, batch_key="lane")
    assert method.startswith("scanpy.pp.scrublet per 'lane' batch (2)"), method
    planted = (truth["artefact"] == "doublet").to_numpy()
    assert called[planted].mean() >= 0.5 and called.sum() <= 2 * planted.sum()
    monkeypatch.setattr(pipeline, "_SCRUBLET_MIN_BATCH", 10_000)  # batches too small: one run on all cells
    assert "per" not in pipeline._doublet_scores(raw, seed=0, batch_key="lane")[2]
