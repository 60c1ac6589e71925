"""Spatial transcriptomics: neighbour graph from spot coordinates and spatial autocorrelation.

``run_spatial`` normalises the counts, builds a spatial neighbour graph from ``obsm['spatial']``
(stored like ``squidpy.gr.spatial_neighbors`` does), and tests genes and numeric ``obs`` columns for
spatial autocorrelation with Moran's I and Geary's C (``cohortflow.singlecell.kernels``: squidpy's
conventions, row-standardised weights, normality-assumption and permutation p-values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.errors import ConfigError, InputFormatError
from cohortflow.io.h5ad import read_h5ad
from cohortflow.io.atomic import atomic_path, write_json_atomic, write_table_atomic
from cohortflow.singlecell import kernels

__all__ = ["run_spatial", "spatial_graph", "spatial_autocorrelation"]

GRAPHS = ("knn", "radius", "delaunay")


def spatial_graph(coords: np.ndarray, *, graph: str = "knn", n_neighbors: int = 6,
                  radius: float | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binary, symmetric spatial connectivities and the matching Euclidean distances.

    - ``knn``: ``i ~ j`` when either is among the other's ``n_neighbors`` nearest spots (sklearn,
      ties broken by index order);
    - ``radius``: all spots within ``radius`` (default 1.2 x the median nearest-neighbour distance,
      i.e. the first ring of a square or hexagonal grid);
    - ``delaunay``: edges of the Delaunay triangulation (scipy).

    No self-loops. Returns ``(connectivities, distances)``, CSR float64 with identical sparsity.
    """
    from sklearn.neighbors import NearestNeighbors

    coords = np.asarray(coords, dtype=np.float64)
    n = coords.shape[0]
    if coords.ndim != 2 or coords.shape[1] < 2 or n < 3:
        raise ValueError(f"need >= 3 spots with 2-D coordinates, got shape {coords.shape}")
    coords = coords[:, :2]
    if graph == "knn":
        k = int(min(n_neighbors, n - 1))
        _, idx = NearestNeighbors(n_neighbors=k).fit(coords).kneighbors()
        rows = np.repeat(np.arange(n), k)
        cols = idx.ravel()
    elif graph == "radius":
        if radius is None:
            d1, _ = NearestNeighbors(n_neighbors=1).fit(coords).kneighbors()
            radius = 1.2 * float(np.median(d1))
        adj = NearestNeighbors(radius=radius).fit(coords).radius_neighbors_graph(mode="connectivity")
        adj = adj.tocoo()
        rows, cols = adj.row, adj.col
    elif graph == "delaunay":
        from scipy.spatial import Delaunay

        tri = Delaunay(coords).simplices
        rows = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]])
        cols = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])
    else:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    adj = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64).tocsr()
    adj.sort_indices()
    coo = adj.tocoo()
    dist = np.sqrt(((coords[coo.row] - coords[coo.col]) ** 2).sum(axis=1))
    distances = sp.csr_matrix((dist, (coo.row, coo.col)), shape=(n, n))
    distances.sort_indices()
    return sp.csr_matrix(adj), distances


def spatial_autocorrelation(values: np.ndarray, W, names: list[str], *, n_perms: int = 199, seed: int = 0,
                            two_tailed: bool = False, corr_method: str = "fdr_bh") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Moran's I and Geary's C tables for the columns of ``values`` (n_obs x n_features).

    Returns ``(moran, geary)`` DataFrames indexed by feature name, squidpy-like columns:
    ``I``/``C``, ``expected``, ``var_norm``, ``z_norm``, ``pval_norm``, and with ``n_perms > 0``
    ``var_sim``, ``pval_sim``; plus ``pval_norm_fdr_bh`` (and ``pval_sim_fdr_bh``). Moran sorted by
    I descending, Geary by C ascending (ties by name).
    """
    from statsmodels.stats.multitest import multipletests

    out = []
    for fn, stat_name in ((kernels.morans_i, "I"), (kernels.gearys_c, "C")):
        res = fn(values, W, two_tailed=two_tailed)
        out.append(pd.DataFrame({stat_name: res.statistic, "expected": res.expected, "var_norm": res.var,
                                 "z_norm": res.z, "pval_norm": res.p_analytic}, index=pd.Index(names, name="feature")))
    if n_perms > 0:
        i_null, c_null = kernels.autocorr_permutations(values, W, n_perms=n_perms, seed=seed)
        for df, null, stat_name in ((out[0], i_null, "I"), (out[1], c_null, "C")):
            df["var_sim"] = null.var(axis=0)
            df["pval_sim"] = kernels.permutation_pvalue(df[stat_name].to_numpy(), null, two_tailed=two_tailed)
    for df in out:
        for col in [c for c in df.columns if c.startswith("pval_")]:
            adj = np.full(len(df), np.nan)
            ok = ~np.isnan(df[col].to_numpy())
            if ok.any():
                adj[ok] = multipletests(df[col].to_numpy()[ok], method=corr_method)[1]
            df[f"{col}_{corr_method}"] = adj
    moran = out[0].reset_index().sort_values(["I", "feature"], ascending=[False, True], kind="stable")
    geary = out[1].reset_index().sort_values(["C", "feature"], ascending=[True, True], kind="stable")
    return moran.set_index("feature"), geary.set_index("feature")


def run_spatial(
    h5ad: str | Path,
    *,
    out_h5ad: str | Path,
    out_summary: str | Path,
    out_png: str | Path,
    out_table: str | Path | None = None,
    graph: str = "knn",
    n_neighbors: int = 6,
    radius: float | None = None,
    genes: list[str] | None = None,
    obs_columns: list[str] | None = None,
    max_genes: int = 2000,
    min_spot_fraction: float = 0.05,
    n_perms: int = 199,
    seed: int = 0,
    fdr: float = 0.05,
    threads: int = 1,
) -> dict:
    """Spatial neighbour graph and Moran's I / Geary's C of genes and numeric obs columns.

    Counts (``X``, raw) are kept in ``layers['counts']``; ``X`` becomes ``normalize_total`` (1e4)
    + ``log1p``. The graph (``spatial_graph``: ``knn`` | ``radius`` | ``delaunay``) is stored as
    ``obsp['spatial_connectivities']`` (binary, symmetric, unweighted like squidpy's) and
    ``obsp['spatial_distances']``, with ``uns['spatial_neighbors']`` = {connectivities_key,
    distances_key, params}. The statistics use squidpy's default convention: **weights
    row-standardised** (``transformation=True``), analytic p-values under normality, one-tailed in
    the direction of the observed deviation; permutation p-values from ``n_perms`` permutations of
    the values over spots (seeded). Genes tested: ``genes`` if given, else genes detected in
    >= ``min_spot_fraction`` of spots, the ``max_genes`` most variable (log scale) of them.
    ``obs_columns``: extra numeric obs columns (e.g. a per-spot disease score).

    Writes:

    - ``out_h5ad``: the AnnData above with ``uns['moranI']`` and ``uns['gearyC']`` (DataFrames
      indexed by feature; columns ``I``/``C``, ``expected``, ``var_norm``, ``z_norm``,
      ``pval_norm``, ``var_sim``, ``pval_sim``, ``pval_norm_fdr_bh``, ``pval_sim_fdr_bh``).
    - ``out_table`` (optional) TSV: ``feature kind I moran_pval_norm moran_pval_sim
      moran_fdr_norm C geary_pval_norm geary_pval_sim``, sorted by I descending.
    - ``out_summary`` JSON: ``n_spots``, ``n_genes``, ``graph`` {type, n_neighbors, radius,
      n_edges, mean_degree}, ``convention``, ``n_features_tested``, ``n_perms``, ``seed``,
      ``n_significant`` {moran_norm, moran_sim, geary_norm} at FDR ``fdr``, ``top_moran`` (10 rows:
      feature, I, pval_norm, pval_sim), ``obs_columns`` (their rows).
    - ``out_png``: maps of total counts, the three genes with the highest I, and each obs column.

    ``threads`` caps BLAS and numba threads (the permutations run in parallel; results do not
    depend on the thread count). Returns the summary dictionary.
    """
    import scanpy as sc
    from threadpoolctl import threadpool_limits

    from cohortflow.singlecell import plots

    h5ad = Path(h5ad)
    if graph not in GRAPHS:
        raise ConfigError(f"spatial.graph = {graph!r}; expected one of {', '.join(GRAPHS)}")
    if n_neighbors < 1 or n_perms < 0:
        raise ConfigError(f"spatial.n_neighbors = {n_neighbors}, spatial.n_perms = {n_perms}: out of range")
    if not h5ad.exists():
        raise InputFormatError("file not found", path=h5ad)
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    with threadpool_limits(limits=max(1, int(threads))):
        adata = read_h5ad(h5ad)
        if "spatial" not in adata.obsm:
            raise InputFormatError("no obsm['spatial'] (spot coordinates)", path=h5ad)
        coords = np.asarray(adata.obsm["spatial"], dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] < 2 or not np.isfinite(coords[:, :2]).all():
            raise InputFormatError(f"obsm['spatial'] must be finite n x 2 coordinates, got shape {coords.shape}",
                                   path=h5ad)
        x = adata.X
        data = x.data if sp.issparse(x) else np.asarray(x).ravel()
        if data.size and ((data < 0).any() or not np.allclose(data[:1_000_000], np.round(data[:1_000_000]))):
            raise InputFormatError("X does not hold raw counts (negative or non-integer values)", path=h5ad)
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        adata.var_names_make_unique()
        adata.layers["counts"] = adata.X.copy()
        adata.obs["total_counts"] = np.asarray(adata.X.sum(axis=1)).ravel()
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)

        conn, dist = spatial_graph(coords, graph=graph, n_neighbors=n_neighbors, radius=radius)
        adata.obsp["spatial_connectivities"] = conn
        adata.obsp["spatial_distances"] = dist
        params = {"graph": graph, "n_neighbors": int(n_neighbors), "radius": radius}
        adata.uns["spatial_neighbors"] = {"connectivities_key": "spatial_connectivities",
                                          "distances_key": "spatial_distances",
                                          "params": {k: v for k, v in params.items() if v is not None}}

        gene_list = _select_genes(adata, genes, max_genes=max_genes, min_spot_fraction=min_spot_fraction, path=h5ad)
        obs_columns = list(obs_columns or [])
        for c in obs_columns:
            if c not in adata.obs or not pd.api.types.is_numeric_dtype(adata.obs[c]):
                raise InputFormatError(f"obs column {c!r} missing or not numeric", path=h5ad)
        values = adata[:, gene_list].X
        values = values.toarray() if sp.issparse(values) else np.asarray(values)
        if obs_columns:
            values = np.hstack([values, adata.obs[obs_columns].to_numpy(dtype=np.float64)])
        names = gene_list + obs_columns
        moran, geary = spatial_autocorrelation(values.astype(np.float64), conn, names, n_perms=n_perms, seed=seed)
        adata.uns["moranI"] = moran
        adata.uns["gearyC"] = geary

        kind = pd.Series("gene", index=pd.Index(names))
        kind[obs_columns] = "obs"
        table = pd.DataFrame({
            "feature": moran.index, "kind": kind[moran.index].to_numpy(), "I": moran["I"].to_numpy(),
            "moran_pval_norm": moran["pval_norm"].to_numpy(),
            "moran_pval_sim": moran["pval_sim"].to_numpy() if n_perms > 0 else np.nan,
            "moran_fdr_norm": moran["pval_norm_fdr_bh"].to_numpy(),
            "C": geary.loc[moran.index, "C"].to_numpy(),
            "geary_pval_norm": geary.loc[moran.index, "pval_norm"].to_numpy(),
            "geary_pval_sim": geary.loc[moran.index, "pval_sim"].to_numpy() if n_perms > 0 else np.nan,
        })
        if out_table is not None:
            write_table_atomic(out_table, table, float_format="%.6g")

        top_genes = [g for g in moran.index if g in set(gene_list)][:3]
        panels = [("total counts", adata.obs["total_counts"].to_numpy())]
        panels += [(f"{g} (Moran's I = {moran.loc[g, 'I']:.2f})", _column(adata, g)) for g in top_genes]
        panels += [(f"{c} (Moran's I = {moran.loc[c, 'I']:.2f})", adata.obs[c].to_numpy(dtype=float))
                   for c in obs_columns]
        plots.spatial_maps_png(coords, panels, out_png)

        with atomic_path(out_h5ad) as tmp:
            adata.write_h5ad(tmp)

    def rows(index):
        return [{"feature": f, "I": float(moran.loc[f, "I"]), "pval_norm": float(moran.loc[f, "pval_norm"]),
                 **({"pval_sim": float(moran.loc[f, "pval_sim"])} if n_perms > 0 else {}),
                 "C": float(geary.loc[f, "C"])} for f in index]

    degree = np.diff(conn.indptr)
    summary = {
        "n_spots": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "graph": {"type": graph, "n_neighbors": int(n_neighbors) if graph == "knn" else None, "radius": radius,
                  "n_edges": int(conn.nnz // 2), "mean_degree": float(degree.mean())},
        "convention": "squidpy spatial_autocorr defaults: row-standardised weights, normality-assumption "
                      "variance, one-tailed p-values in the observed direction, permutation p = (min tail "
                      "count + 1)/(n_perms + 1), BH FDR",
        "n_features_tested": len(names),
        "n_perms": int(n_perms),
        "seed": int(seed),
        "fdr": fdr,
        "n_significant": {
            "moran_norm": int((moran["pval_norm_fdr_bh"] < fdr).sum()),
            "moran_sim": int((moran["pval_sim_fdr_bh"] < fdr).sum()) if n_perms > 0 else None,
            "geary_norm": int((geary["pval_norm_fdr_bh"] < fdr).sum()),
        },
        "top_moran": rows(list(moran.index[:10])),
        "obs_columns": rows(obs_columns),
    }
    write_json_atomic(out_summary, summary)
    return summary


def _column(adata, gene: str) -> np.ndarray:
    col = adata[:, gene].X
    return (col.toarray() if sp.issparse(col) else np.asarray(col)).ravel()


def _select_genes(adata, genes, *, max_genes: int, min_spot_fraction: float, path: Path) -> list[str]:
    if genes is not None:
        missing = [g for g in genes if g not in adata.var_names]
        if missing:
            raise InputFormatError(f"gene {missing[0]!r} not in var_names", path=path)
        return list(dict.fromkeys(genes))
    x = adata.X
    detected = np.asarray((x > 0).sum(axis=0)).ravel() / adata.n_obs
    mean = np.asarray(x.mean(axis=0)).ravel()
    sq = np.asarray(x.multiply(x).mean(axis=0)).ravel() if sp.issparse(x) else (np.asarray(x) ** 2).mean(axis=0)
    var = sq - mean ** 2
    ok = np.flatnonzero((detected >= min_spot_fraction) & (var > 0))
    order = ok[np.lexsort((ok, -var[ok]))][:max_genes]  # most variable first, ties by position
    return [adata.var_names[i] for i in sorted(order)]
