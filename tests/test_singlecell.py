"""Single-cell chain: planted cell types recovered, outputs as documented, marker table on real PBMC."""

from __future__ import annotations

import json

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
    read_markers,
    run_singlecell,
    threshold_minimum,
)
from test_demo_singlecell import simulate_small

REPO_MARKERS = __import__("pathlib").Path(__file__).resolve().parents[1] / "resources" / "markers" / "pbmc_markers.tsv"


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
    for key in ("donor", "cell_type", "leiden", "doublet_score", "pct_counts_mt", "n_genes_by_counts"):
        assert key in res.obs
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


def test_rejects_non_counts(tmp_path):
    adata = ad.AnnData(sp.csr_matrix(np.full((60, 5), 0.5, dtype=np.float32)))
    adata.write_h5ad(tmp_path / "x.h5ad")
    (tmp_path / "m.tsv").write_text("cell_type\tgene\nA\t0\nA\t1\n")
    with pytest.raises(InputFormatError, match="raw counts"):
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
