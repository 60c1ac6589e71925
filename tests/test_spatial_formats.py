"""Spatial vendor readers (cohortflow.io.spatial_formats) on the real example outputs, and `spatial-import`.

Known answers come from the vendors' own files: per-cell totals Xenium writes in cells.csv.gz,
the raw MTX / CSV values, the tissue flags and pixel positions Space Ranger writes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from conftest import require_shared

from cohortflow.errors import InputFormatError
from cohortflow.io import spatial_formats as sf

DATA = ("spatial_multitech_spatialexperiment",)


def _x(adata):
    return adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)


def _check_common(adata, fmt):
    assert adata.uns["spatial_import"]["format"] == fmt
    assert adata.obsm["spatial"].shape == (adata.n_obs, 2) and np.isfinite(adata.obsm["spatial"]).all()
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert adata.obs_names.is_unique and adata.var_names.is_unique


def test_xenium_36k():
    folder = require_shared(*DATA, "10xXenium")
    adata = sf.read_xenium(folder)
    _check_common(adata, "xenium")
    assert adata.shape == (36602, 248)  # 541 features, 248 genes (README)
    assert adata.uns["spatial_import"]["dropped_features"] == 541 - 248
    assert (adata.var["feature_types"] == "Gene Expression").all()
    cells = pd.read_csv(folder / "cells.csv.gz")
    gene_totals = np.asarray(adata.X.sum(axis=1)).ravel()
    # Xenium's own per-cell figures: transcript_counts = gene features only, total = all features
    np.testing.assert_array_equal(gene_totals, cells["transcript_counts"].to_numpy())
    np.testing.assert_array_equal(gene_totals + adata.obs["control_counts"].to_numpy(), cells["total_counts"].to_numpy())
    np.testing.assert_array_equal(adata.obsm["spatial"], cells[["x_centroid", "y_centroid"]].to_numpy())
    assert list(adata.obs_names[:2]) == ["1", "2"]


@pytest.mark.parametrize("section", ["section1", "section2"])
def test_visium_space_ranger_outs(section):
    outs = require_shared(*DATA, "10xVisium_mouse_brain_tiny", section, "outs")
    pos = pd.read_csv(outs / "spatial" / "tissue_positions_list.csv", header=None,
                      names=["barcode", "in_tissue", "row", "col", "pxl_row", "pxl_col"]).set_index("barcode")
    raw = scipy.io.mmread(outs / "raw_feature_bc_matrix" / "matrix.mtx").T.tocsr()
    barcodes = pd.read_csv(outs / "raw_feature_bc_matrix" / "barcodes.tsv", header=None)[0].tolist()
    genes = pd.read_csv(outs / "raw_feature_bc_matrix" / "features.tsv", sep="\t", header=None)[1].tolist()
    placed = [b for b in barcodes if b in pos.index]
    in_tissue = [b for b in placed if pos.loc[b, "in_tissue"] == 1]
    adata = sf.read_visium(outs)
    _check_common(adata, "visium")
    assert list(adata.obs_names) == in_tissue and len(in_tissue) > 5
    assert list(adata.var_names) == genes
    rows = [barcodes.index(b) for b in in_tissue]
    np.testing.assert_array_equal(_x(adata), raw[rows].toarray())
    np.testing.assert_array_equal(adata.obsm["spatial"], pos.loc[in_tissue, ["pxl_col", "pxl_row"]].to_numpy())
    lib = adata.uns["spatial"][section]
    assert lib["scalefactors"]["tissue_lowres_scalef"] > 0 and lib["images"]["lowres"].ndim == 3
    everything = sf.read_visium(outs, in_tissue_only=False)
    assert everything.n_obs == len(placed)
    assert everything.uns["spatial_import"]["barcodes_without_position"] == len(barcodes) - len(placed)


def test_cosmx_small():
    folder = require_shared(*DATA, "NanostringCosMx")
    expr = pd.read_csv(folder / "small_Lung9_Rep1_exprMat_file.csv")
    meta = pd.read_csv(folder / "small_Lung9_Rep1_metadata_file.csv")
    adata = sf.read_cosmx(folder)
    _check_common(adata, "cosmx")
    expr = expr[expr["cell_ID"] != 0]
    assert adata.shape == (len(expr), 20) == (453, 20)
    np.testing.assert_array_equal(_x(adata), expr.drop(columns=["fov", "cell_ID"]).to_numpy())
    meta.index = meta["fov"].astype(str) + "_" + meta["cell_ID"].astype(str)
    np.testing.assert_allclose(adata.obsm["spatial"],
                               meta.loc[adata.obs_names, ["CenterX_global_px", "CenterY_global_px"]].to_numpy())


def test_merscope_small_drops_blank_codewords():
    folder = require_shared(*DATA, "VizgenMERSCOPE")
    expr = pd.read_csv(folder / "small_cell_by_gene.csv", index_col=0)
    meta = pd.read_csv(folder / "small_cell_metadata.csv", index_col=0)
    adata = sf.read_merscope(folder)
    _check_common(adata, "merscope")
    blanks = [c for c in expr.columns if c.startswith("Blank")]
    assert len(blanks) == 2 and adata.shape == (450, 18)
    assert not set(blanks) & set(adata.var_names)
    np.testing.assert_array_equal(_x(adata), expr.drop(columns=blanks).to_numpy())
    np.testing.assert_array_equal(adata.obs["control_counts"], expr[blanks].sum(axis=1).to_numpy())
    np.testing.assert_allclose(adata.obsm["spatial"], meta.loc[expr.index, ["center_x", "center_y"]].to_numpy())


def test_seqfish_with_labels():
    folder = require_shared(*DATA, "seqFISH")
    adata = sf.read_seqfish(folder / "seqfish_normalized_cortex_b2_testing.txt", folder / "fcortex.coordinates.txt",
                            labels=folder / "seqfish_cell_labels.tsv")
    _check_common(adata, "seqfish")
    assert adata.shape == (1597, 113)
    assert adata.obs["cell_type"].value_counts()["Glutamatergic Neuron"] == 859
    assert adata.uns["spatial_import"]["x_values"].startswith("normalised")
    first = pd.read_csv(folder / "seqfish_normalized_cortex_b2_testing.txt", sep="\t", header=None, nrows=1)
    assert adata.var_names[0] == first.iloc[0, 0]
    np.testing.assert_array_equal(_x(adata)[:, 0], first.iloc[0, 1:].to_numpy(dtype=float))


def test_reader_errors(tmp_path):
    with pytest.raises(InputFormatError, match="cell_feature_matrix.h5: file not found"):
        sf.read_xenium(tmp_path)
    (tmp_path / "a_cell_by_gene.csv").write_text("cell,GENE1,Blank-1\nc1,1,0\nc2,2,1\n")
    (tmp_path / "a_cell_metadata.csv").write_text("cell,fov,center_x,center_y\nc1,0,1.0,2.0\n")
    with pytest.raises(InputFormatError, match="c2: cell has no metadata row"):
        sf.read_merscope(tmp_path)
    (tmp_path / "a_cell_metadata.csv").write_text("cell,fov,center_x\nc1,0,1.0\nc2,0,3.0\n")
    with pytest.raises(InputFormatError, match="missing column.*center_y"):
        sf.read_merscope(tmp_path)
    (tmp_path / "a_cell_metadata.csv").write_text("cell,fov,center_x,center_y\nc1,0,1.0,2.0\nc2,0,3.0,4.0\n")
    (tmp_path / "a_cell_by_gene.csv").write_text("cell,GENE1,Blank-1\nc1,1,0\nc2,x,1\n")
    with pytest.raises(InputFormatError, match="c2: non-numeric"):
        sf.read_merscope(tmp_path)
    (tmp_path / "a_cell_by_gene.csv").write_text("cell,GENE1,Blank-1\nc1,1,0\nc2,2,1\n")
    ok = sf.read_merscope(tmp_path)
    assert list(ok.var_names) == ["GENE1"] and ok.obs["control_counts"].tolist() == [0.0, 1.0]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cohortflow.cli", *args], capture_output=True, text=True)


def test_cli_spatial_import_then_spatial(tmp_path):
    """Import is byte-identical on a re-run; the imported seqFISH runs through `spatial`; a bad
    input is one error line, non-zero exit, no output."""
    folder = require_shared(*DATA, "seqFISH")
    args = ["spatial-import", "--format", "seqfish", "--path", str(folder / "seqfish_normalized_cortex_b2_testing.txt"),
            "--coordinates", str(folder / "fcortex.coordinates.txt"), "--labels", str(folder / "seqfish_cell_labels.tsv")]
    digests = []
    for name in ("a.h5ad", "b.h5ad"):
        proc = _cli(*args, "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    proc = _cli("spatial", "--h5ad", str(tmp_path / "a.h5ad"), "--out", str(tmp_path / "sp" / "out.h5ad"),
                "--n-perms", "19", "--nhood-perms", "100", "--max-genes", "20")
    assert proc.returncode == 0, proc.stderr
    for suffix in (".h5ad", ".summary.json", ".png", ".autocorr.tsv", ".nhood.png"):
        assert (tmp_path / "sp" / f"out{suffix}").exists()
    bad = _cli("spatial-import", "--format", "cosmx", "--path", str(folder), "--out", str(tmp_path / "bad.h5ad"))
    assert bad.returncode != 0 and "exprMat_file.csv" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.h5ad").exists()


@pytest.mark.parametrize("fmt,parts", [("cosmx", ("NanostringCosMx",)), ("merscope", ("VizgenMERSCOPE",)),
                                       ("visium", ("10xVisium_mouse_brain_tiny", "section1", "outs"))])
def test_small_sets_run_through_spatial(tmp_path, fmt, parts):
    """Each imported set runs through run_spatial; the stored Moran's I equals the kernel on the stored graph."""
    from cohortflow.singlecell import kernels
    from cohortflow.singlecell.spatial import run_spatial

    adata = sf.read_spatial(fmt, require_shared(*DATA, *parts))
    adata.write_h5ad(tmp_path / "in.h5ad")
    summary = run_spatial(tmp_path / "in.h5ad", out_h5ad=tmp_path / "o.h5ad", out_summary=tmp_path / "o.json",
                          out_png=tmp_path / "o.png", n_perms=19, min_spot_fraction=0.05,
                          n_neighbors=min(6, adata.n_obs - 1))
    import anndata as ad

    res = ad.read_h5ad(tmp_path / "o.h5ad")
    assert summary["n_spots"] == adata.n_obs and summary["n_features_tested"] >= 3
    assert summary["nhood_enrichment"] == {"skipped": "no obs['cell_type']"}
    moran = res.uns["moranI"]
    g = moran.index[0]
    x = res[:, g].X.toarray().ravel()
    assert moran.loc[g, "I"] == pytest.approx(kernels.morans_i(x, res.obsp["spatial_connectivities"]).statistic,
                                              rel=1e-9)
