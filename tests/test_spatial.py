"""Spatial autocorrelation kernels (vs dense formulas, scanpy, known patterns) and run_spatial."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy.spatial import Delaunay

from cohortflow.errors import ConfigError, InputFormatError
from cohortflow.singlecell import kernels
from cohortflow.singlecell.spatial import run_spatial, spatial_graph
from test_demo_singlecell import simulate_small


def square_grid(side: int) -> np.ndarray:
    r, c = np.divmod(np.arange(side * side), side)
    return np.column_stack([c, r]).astype(float)


def rook_graph(side: int) -> sp.csr_matrix:
    conn, _ = spatial_graph(square_grid(side), graph="radius", radius=1.01)
    return conn


def dense_moran(x, W):
    n = len(x)
    z = x - x.mean()
    return n / W.sum() * (z @ W @ z) / (z @ z)


def dense_geary(x, W):
    n = len(x)
    z = x - x.mean()
    diff2 = (x[:, None] - x[None, :]) ** 2
    return (n - 1) * (W * diff2).sum() / (2 * W.sum() * (z @ z))


@pytest.fixture(scope="module")
def random_graph():
    rng = np.random.default_rng(0)
    W = sp.random(60, 60, density=0.1, random_state=1, format="csr")
    W.setdiag(0)
    W.eliminate_zeros()
    return W, rng.normal(size=(60, 3))


@pytest.mark.parametrize("row_std", [True, False])
def test_moran_and_geary_match_dense_formulas(random_graph, row_std):
    W, X = random_graph
    Wd = W.toarray()
    if row_std:
        Wd = Wd / np.where(Wd.sum(1, keepdims=True) == 0, 1, Wd.sum(1, keepdims=True))
    moran = kernels.morans_i(X, W, row_standardise=row_std)
    geary = kernels.gearys_c(X, W, row_standardise=row_std)
    for k in range(X.shape[1]):
        assert moran.statistic[k] == pytest.approx(dense_moran(X[:, k], Wd), rel=1e-10)
        assert geary.statistic[k] == pytest.approx(dense_geary(X[:, k], Wd), rel=1e-10)
    one = kernels.morans_i(X[:, 0], W, row_standardise=row_std)
    assert isinstance(one.statistic, float) and one.statistic == pytest.approx(moran.statistic[0])
    assert one.expected == pytest.approx(-1 / 59)


def test_peer_scanpy_metrics(random_graph):
    """squidpy row-normalises the graph and calls scanpy.metrics; ours must give the same numbers."""
    W, X = random_graph
    W_rs = kernels.row_standardise(W)
    ours_i = kernels.morans_i(X, W).statistic
    ours_c = kernels.gearys_c(X, W).statistic
    np.testing.assert_allclose(ours_i, sc.metrics.morans_i(W_rs, X.T), rtol=1e-6)
    np.testing.assert_allclose(ours_c, sc.metrics.gearys_c(W_rs, X.T), rtol=1e-6)


def test_known_patterns():
    side = 12
    W = rook_graph(side)
    xy = square_grid(side)
    checker = ((xy[:, 0] + xy[:, 1]) % 2) * 2 - 1.0
    res = kernels.morans_i(checker, W)
    assert res.statistic == pytest.approx(-1.0, abs=1e-12)  # every neighbour pair has opposite signs
    assert res.z < -8 and res.p_analytic < 1e-12
    assert kernels.gearys_c(checker, W).statistic > 1.5
    gradient = xy[:, 0] + 0.01 * xy[:, 1]
    res = kernels.morans_i(gradient, W)
    assert res.statistic > 0.9 and res.p_analytic < 1e-20
    assert kernels.gearys_c(gradient, W).statistic < 0.1
    p_perm = kernels.morans_i_permutation(gradient, W, n_perms=99, seed=1)
    assert p_perm == pytest.approx(1 / 100)
    constant = kernels.morans_i(np.ones(side * side), W)
    assert np.isnan(constant.statistic) and np.isnan(constant.p_analytic)


def test_permutation_kernel_matches_dense_formula(random_graph):
    W, X = random_graph
    Wd = kernels.row_standardise(W).toarray()
    rng = np.random.default_rng(5)
    perms = np.vstack([rng.permutation(60) for _ in range(4)]).astype(np.int64)
    Z = np.ascontiguousarray(X - X.mean(0))
    Wc = kernels.row_standardise(W)
    m, g = kernels.autocorr_numerators_perm(Wc.indptr.astype(np.int64), Wc.indices.astype(np.int64), Wc.data, Z, perms)
    for p in range(4):
        Zp = Z[perms[p]]
        for k in range(3):
            assert m[p, k] == pytest.approx(Zp[:, k] @ Wd @ Zp[:, k], rel=1e-10, abs=1e-12)
            d2 = (Zp[:, k][:, None] - Zp[:, k][None, :]) ** 2
            assert g[p, k] == pytest.approx((Wd * d2).sum(), rel=1e-10)


def test_analytic_variance_agrees_with_permutations():
    """Normal data: the normality variance and the permutation variance estimate the same thing.

    With 2,000 permutations the variance estimate has a relative SE of about sqrt(2/2000) = 3%;
    the tolerance is 12% (4 SE). The null mean must sit within 4 SE of E[I] = -1/(n-1).
    """
    side = 25
    coords = square_grid(side)
    W, _ = spatial_graph(coords, graph="knn", n_neighbors=6)
    x = np.random.default_rng(11).normal(size=(side * side, 2))
    moran = kernels.morans_i(x, W)
    geary = kernels.gearys_c(x, W)
    i_null, c_null = kernels.autocorr_permutations(x, W, n_perms=2000, seed=3)
    for k in range(2):
        assert i_null[:, k].var() / moran.var == pytest.approx(1.0, abs=0.12)
        assert c_null[:, k].var() / geary.var == pytest.approx(1.0, abs=0.12)
        assert abs(i_null[:, k].mean() - moran.expected) < 4 * np.sqrt(moran.var / 2000)
        assert abs(c_null[:, k].mean() - 1.0) < 4 * np.sqrt(geary.var / 2000)
    # permutation p-values of unstructured data are not small
    p = kernels.permutation_pvalue(moran.statistic, i_null)
    assert (p > 0.01).all()


def test_graphs():
    xy = square_grid(10)
    knn, dist = spatial_graph(xy, graph="knn", n_neighbors=4)
    deg = np.diff(knn.indptr).reshape(10, 10)
    # away from the border, the 4 nearest are the rook neighbours (border spots reach inwards
    # diagonally, and symmetrising adds those edges to the first inner ring)
    assert (deg[2:-2, 2:-2] == 4).all() and (deg[1:-1, 1:-1] >= 4).all()
    assert (knn != knn.T).nnz == 0 and knn.diagonal().sum() == 0
    coo = dist.tocoo()
    np.testing.assert_allclose(coo.data, np.linalg.norm(xy[coo.row] - xy[coo.col], axis=1))
    assert (dist != 0).nnz == knn.nnz
    rad, _ = spatial_graph(xy, graph="radius")  # 1.2 x nearest distance: the 4 rook neighbours
    assert (np.diff(rad.indptr).reshape(10, 10)[1:-1, 1:-1] == 4).all()
    pts = np.random.default_rng(2).random((50, 2))
    tri, _ = spatial_graph(pts, graph="delaunay")
    indptr, indices = Delaunay(pts).vertex_neighbor_vertices
    for i in range(50):
        assert set(tri[i].indices) == set(indices[indptr[i]:indptr[i + 1]])
    with pytest.raises(ValueError):
        spatial_graph(xy, graph="nope")


@pytest.fixture(scope="module")
def spatial_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spatial")
    sim = simulate_small(tmp, n_cells=600, n_spots=900)
    adata = ad.read_h5ad(sim["dir"] / "spatial.h5ad")
    # a numeric obs column, as the integration stage adds a per-spot score
    truth = pd.read_csv(sim["dir"] / "spatial_truth.tsv", sep="\t")
    adata.obs["trait_type_share"] = truth[f"prop_{sim['trait_cell_types']['quant_trait']}"].to_numpy()
    adata.write_h5ad(tmp / "in.h5ad")
    out = tmp / "out"
    summary = run_spatial(tmp / "in.h5ad", out_h5ad=out / "spatial.h5ad", out_summary=out / "summary.json",
                          out_png=out / "spatial.png", out_table=out / "moran.tsv", obs_columns=["trait_type_share"],
                          n_perms=99, seed=0)
    return sim, out, summary


def test_run_spatial_outputs(spatial_run):
    sim, out, summary = spatial_run
    for name in ("spatial.h5ad", "summary.json", "spatial.png", "moran.tsv"):
        assert (out / name).exists()
    res = ad.read_h5ad(out / "spatial.h5ad")
    conn = res.obsp["spatial_connectivities"]
    assert (conn != conn.T).nnz == 0 and set(np.unique(conn.data)) == {1.0}
    assert res.uns["spatial_neighbors"]["connectivities_key"] == "spatial_connectivities"
    assert "counts" in res.layers
    np.testing.assert_allclose(np.expm1(res.X[:5].toarray()).sum(1), 1e4, rtol=1e-3)
    moran = res.uns["moranI"]
    assert {"I", "pval_norm", "var_norm", "pval_sim", "pval_norm_fdr_bh"} <= set(moran.columns)
    # the stored I equals the kernel on the stored graph
    g = next(f for f in moran.index if f in res.var_names)
    x = res[:, g].X.toarray().ravel()
    assert moran.loc[g, "I"] == pytest.approx(kernels.morans_i(x, conn).statistic, rel=1e-9)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["graph"]["type"] == "knn" and on_disk["n_perms"] == 99
    assert summary["n_significant"]["moran_norm"] > 0


def test_run_spatial_finds_the_planted_region(spatial_run):
    sim, out, summary = spatial_run
    res = ad.read_h5ad(out / "spatial.h5ad")
    moran = res.uns["moranI"]
    trait_type = sim["trait_cell_types"]["quant_trait"]
    markers = [g for g in sim["markers"][trait_type] if g in moran.index]
    assert len(markers) >= 3
    assert (moran.loc[markers, "I"] > 0.1).all()
    assert (moran.loc[markers, "pval_norm_fdr_bh"] < 0.01).all()
    assert moran.loc["trait_type_share", "I"] > 0.3
    # genes without planted structure (background, not markers of region-enriched types) sit near 0
    planted = {g for genes in sim["markers"].values() for g in genes} | {
        g for genes in sim["causal_genes"].values() for g in genes}
    background = [g for g in moran.index if g not in planted and not g.startswith("MT-")]
    assert np.median(moran.loc[background, "I"]) < np.median(moran.loc[markers, "I"]) / 2


def test_run_spatial_errors(tmp_path, spatial_run):
    sim, out, _ = spatial_run
    adata = ad.read_h5ad(sim["dir"] / "spatial.h5ad")
    del adata.obsm["spatial"]
    adata.write_h5ad(tmp_path / "nocoords.h5ad")
    kwargs = dict(out_h5ad=tmp_path / "o.h5ad", out_summary=tmp_path / "o.json", out_png=tmp_path / "o.png")
    with pytest.raises(InputFormatError, match="obsm"):
        run_spatial(tmp_path / "nocoords.h5ad", **kwargs)
    with pytest.raises(ConfigError, match="graph"):
        run_spatial(sim["dir"] / "spatial.h5ad", graph="grid", **kwargs)
    assert not (tmp_path / "o.h5ad").exists()
