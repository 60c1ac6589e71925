"""Spatial transcriptomics: neighbour graph, spatial autocorrelation, neighbourhood enrichment, label transfer.

``run_spatial`` normalises the counts, builds a spatial neighbour graph from ``obsm['spatial']``
(edge for edge squidpy's ``spatial_neighbors(coord_type="generic")``: directed kNN, radius or
Delaunay), tests genes and numeric ``obs`` columns for spatial autocorrelation with Moran's I and
Geary's C (``cohortflow.singlecell.kernels``), and, with a cell-type column, computes squidpy's
neighbourhood enrichment (``cohortflow.singlecell.spatial_kernels``).

Weighting convention: squidpy's ``spatial_autocorr`` default, ``transformation=True``: the binary
graph is **row-standardised** (each cell's neighbours weigh 1/degree) before Moran's I / Geary's C
and their variances. ``scanpy.metrics.morans_i`` / ``gearys_c`` use the weights as given (squidpy
row-normalises and then calls them), so scanpy on the raw binary graph gives different numbers on
a graph whose degrees vary. ``transfer_labels`` labels spatial cells from an annotated reference.
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

__all__ = ["run_spatial", "spatial_graph", "spatial_autocorrelation", "nhood_enrichment", "transfer_labels"]

GRAPHS = ("knn", "radius", "delaunay")


def spatial_graph(coords: np.ndarray, *, graph: str = "knn", n_neighbors: int = 6,
                  radius: float | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Spatial connectivities and Euclidean distances, edge for edge those of squidpy 1.8's
    ``spatial_neighbors(coord_type="generic", ...)`` on the same coordinates.

    - ``knn``: row ``i`` holds its ``n_neighbors`` nearest other spots (sklearn ``kneighbors``,
      ties by sklearn's order). **Directed**, as squidpy's: ``j`` may be among ``i``'s neighbours
      without ``i`` being among ``j``'s;
    - ``radius``: all other spots at distance ``<= radius`` (symmetric). Default when ``None``
      (ours; squidpy requires a value): 1.2 x the median nearest-neighbour distance, the first
      ring of a square or hexagonal grid;
    - ``delaunay``: edges of the Delaunay triangulation (scipy; symmetric).

    Only the first two coordinate columns are used. No self-loops, no stored zeros. Returns
    ``(connectivities, distances)``: CSR float64 with identical sparsity and sorted indices
    (connectivities 1.0; squidpy stores float32 1.0, the same values).
    """
    from sklearn.neighbors import NearestNeighbors

    coords = np.asarray(coords)
    if coords.dtype.kind not in "fiu":
        raise ValueError(f"coordinates must be numeric, got dtype {coords.dtype}")
    if coords.dtype.kind != "f":
        coords = coords.astype(np.float64)
    n = coords.shape[0]
    if coords.ndim != 2 or coords.shape[1] < 2 or n < 3:
        raise ValueError(f"need >= 3 spots with 2-D coordinates, got shape {coords.shape}")
    coords = np.ascontiguousarray(coords[:, :2])
    if graph == "knn":
        k = int(min(n_neighbors, n - 1))
        dists, cols = NearestNeighbors(n_neighbors=k).fit(coords).kneighbors()
        rows = np.repeat(np.arange(n), k)
        cols, dists = cols.ravel(), dists.ravel()
    elif graph == "radius":
        if radius is None:
            d1, _ = NearestNeighbors(n_neighbors=1).fit(coords).kneighbors()
            radius = 1.2 * float(np.median(d1))
        dist_lists, col_lists = NearestNeighbors(radius=radius).fit(coords).radius_neighbors()
        rows = np.repeat(np.arange(n), [len(c) for c in col_lists])
        cols = np.concatenate(col_lists).astype(np.int64)
        dists = np.concatenate(dist_lists).astype(np.float64)
    elif graph == "delaunay":
        from scipy.spatial import Delaunay

        indptr, cols = Delaunay(coords).vertex_neighbor_vertices
        rows = np.repeat(np.arange(n), np.diff(indptr))
        dists = np.linalg.norm(coords[rows] - coords[cols], axis=1)
    else:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    keep = rows != cols
    rows, cols, dists = rows[keep], cols[keep], np.asarray(dists, dtype=np.float64)[keep]
    conn = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    distances = sp.csr_matrix((dists, (rows, cols)), shape=(n, n))
    conn.sum_duplicates()
    distances.sum_duplicates()
    conn.sort_indices()
    distances.sort_indices()
    return conn, distances


def nhood_enrichment(labels, connectivities, *, n_perms: int = 1000, seed: int = 0) -> dict:
    """Neighbourhood enrichment of cell-type pairs (``squidpy.gr.nhood_enrichment``'s statistic).

    ``labels``: categorical-like, one per cell (a pandas Categorical keeps its category order,
    else categories are the sorted unique values); ``connectivities``: the neighbour graph (its
    stored entries count, whatever their values, as in squidpy). ``count[a, b]`` = graph entries
    from a cell of type ``a`` to one of type ``b``; the null permutes labels over cells
    (``n_perms`` permutations, seeded, ``cohortflow.singlecell.spatial_kernels``);
    ``zscore = (count - mean_null) / sd_null`` (population sd, as squidpy; NaN where the null
    does not vary).

    Returns ``{"categories": list, "count": int64 (k, k), "zscore": float64 (k, k),
    "null_mean": ..., "null_sd": ..., "n_perms": int, "seed": int}``.
    """
    from cohortflow.singlecell import spatial_kernels

    cat = pd.Categorical(labels)
    if (cat.codes < 0).any():
        raise ValueError("cell-type labels contain missing values")
    n_types = len(cat.categories)
    if n_types < 2:
        raise ValueError(f"need >= 2 cell types for neighbourhood enrichment, got {n_types}")
    if n_perms < 1:
        raise ValueError("n_perms must be >= 1")
    W = sp.csr_matrix(connectivities)
    if W.shape != (len(cat), len(cat)):
        raise ValueError(f"graph shape {W.shape} does not match {len(cat)} labels")
    indptr, indices = W.indptr.astype(np.int64), W.indices.astype(np.int64)
    codes = cat.codes.astype(np.int64)
    count = spatial_kernels.pair_counts(indptr, indices, codes, n_types)
    null = spatial_kernels.pair_counts_permuted(indptr, indices, codes, n_types, int(n_perms), int(seed))
    null_mean = null.mean(axis=0)
    null_sd = null.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(null_sd > 0, (count - null_mean) / null_sd, np.nan)
    return {"categories": [str(c) for c in cat.categories], "count": count, "zscore": zscore,
            "null_mean": null_mean, "null_sd": null_sd, "n_perms": int(n_perms), "seed": int(seed)}


def transfer_labels(query, reference, reference_labels, *, method: str = "logistic", genes: list[str] | None = None,
                    C: float = 0.1) -> pd.DataFrame:
    """Cell-type labels for ``query`` cells learnt from an annotated ``reference`` (e.g. scRNA-seq).

    ``query`` and ``reference``: AnnData, cells x genes. Over the shared genes (or ``genes``) each
    gene is standardised within its own dataset (mean 0, sd 1), so only within-dataset patterns are
    compared and the two technologies' scales need not match. ``reference_labels``: one per
    reference cell.

    - ``method="logistic"`` (default): multinomial logistic regression (sklearn, L2 penalty ``C``,
      classes weighted inversely to their frequency so rare types are not absorbed by common
      ones), fitted on the reference and applied to the query; ``score`` = the winning class
      probability.
    - ``method="centroid"``: Pearson correlation with each type's mean standardised reference
      profile; ``score`` = the best correlation.

    Returns a DataFrame indexed like ``query.obs_names``: ``label`` (categorical, the reference's
    category order), ``score``, ``margin`` (best - second best score). Deterministic.
    """
    ref_labels = pd.Categorical(reference_labels)
    if len(ref_labels) != reference.n_obs:
        raise ValueError(f"{len(ref_labels)} reference labels for {reference.n_obs} reference cells")
    if genes is None:
        ref_genes = set(reference.var_names)
        genes = [g for g in query.var_names if g in ref_genes]
    if len(genes) < 2:
        raise ValueError("query and reference share fewer than 2 genes")

    def standardised(adata):
        x = adata[:, genes].X
        x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
        sd = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    q, r = standardised(query), standardised(reference)
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
        model.fit(r, ref_labels.codes)
        score = model.predict_proba(q)
        classes = model.classes_
    elif method == "centroid":
        centroids = np.vstack([r[ref_labels.codes == k].mean(axis=0) for k in range(len(ref_labels.categories))])

        def rowcentre(m):
            m = m - m.mean(axis=1, keepdims=True)
            norm = np.linalg.norm(m, axis=1, keepdims=True)
            return m / np.where(norm > 0, norm, 1.0)

        score = rowcentre(q) @ rowcentre(centroids).T
        classes = np.arange(len(ref_labels.categories))
    else:
        raise ValueError(f"method must be 'logistic' or 'centroid', got {method!r}")
    order = np.argsort(-score, axis=1, kind="stable")
    rows = np.arange(len(q))
    best = score[rows, order[:, 0]]
    second = score[rows, order[:, 1]] if score.shape[1] > 1 else np.full(len(q), np.nan)
    label = pd.Categorical.from_codes(classes[order[:, 0]], categories=ref_labels.categories)
    return pd.DataFrame({"label": label, "score": best, "margin": best - second}, index=query.obs_names)


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
    out_nhood_png: str | Path | None = None,
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
    cell_type_key: str = "cell_type",
    nhood_perms: int = 1000,
    label_reference: str | Path | None = None,
    label_reference_key: str = "cell_type",
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

    Neighbourhood enrichment (``nhood_enrichment``, squidpy's statistic) runs between the
    categories of ``obs[cell_type_key]`` with ``nhood_perms`` label permutations (seeded by
    ``seed``) when that column exists and has >= 2 categories; otherwise it is skipped and the
    summary says why.

    ``label_reference``: an annotated reference .h5ad (e.g. scRNA-seq; raw counts are normalised +
    log1p like the slide, other values used as given) whose ``obs[label_reference_key]`` is
    transferred to the slide by ``transfer_labels`` (logistic) into ``obs['transferred_label']``
    and ``obs['transferred_score']``. If the slide has no ``obs[cell_type_key]`` the transferred
    labels are used for the enrichment; if it has, the summary reports their agreement with it.

    Writes:

    - ``out_h5ad``: the AnnData above with ``uns['moranI']`` and ``uns['gearyC']`` (DataFrames
      indexed by feature; columns ``I``/``C``, ``expected``, ``var_norm``, ``z_norm``,
      ``pval_norm``, ``var_sim``, ``pval_sim``, ``pval_norm_fdr_bh``, ``pval_sim_fdr_bh``), and
      with cell types ``uns['{cell_type_key}_nhood_enrichment']`` = {``zscore``, ``count``,
      ``categories``, ``n_perms``, ``seed``} (squidpy's keys; rows/columns in category order).
    - ``out_table`` (optional) TSV: ``feature kind I moran_pval_norm moran_pval_sim
      moran_fdr_norm C geary_pval_norm geary_pval_sim``, sorted by I descending.
    - ``out_summary`` JSON: ``n_spots``, ``n_genes``, ``graph`` {type, n_neighbors, radius,
      n_edges (distinct neighbour pairs), n_entries (stored graph entries), directed, mean_degree
      (stored entries per row)}, ``convention``, ``n_features_tested``, ``n_perms``, ``seed``,
      ``n_significant`` {moran_norm, moran_sim, geary_norm} at FDR ``fdr``, ``top_moran`` (10 rows:
      feature, I, pval_norm, pval_sim), ``obs_columns`` (their rows), ``nhood_enrichment``
      {``cell_type_key``, ``categories``, ``n_perms``, ``seed``, ``count``, ``zscore`` (k x k
      lists), ``top_pairs`` (the 10 largest |z| pairs a <= b)} or {``skipped``: reason}.
    - ``out_nhood_png`` (optional): heatmap of the enrichment (a note figure when it did not run)
      z-scores between cell types, observed counts in the cells.
    - ``out_png``: maps of total counts, the three genes with the highest I, each obs column,
      and the cell types on the slide (when present).

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

        transfer_info = None
        if label_reference is not None:
            transfer_info = _transfer_from_reference(adata, Path(label_reference), label_reference_key,
                                                     cell_type_key=cell_type_key)
            if cell_type_key not in adata.obs:
                cell_type_key = "transferred_label"
        nhood, nhood_note = None, None
        if cell_type_key in adata.obs:
            labels = adata.obs[cell_type_key]
            if labels.isna().any():
                raise InputFormatError(f"obs[{cell_type_key!r}] has missing values", path=h5ad,
                                       record=str(adata.obs_names[int(np.flatnonzero(labels.isna().to_numpy())[0])]))
            labels = labels.astype("category") if not isinstance(labels.dtype, pd.CategoricalDtype) else labels
            if len(labels.cat.categories) >= 2 and nhood_perms > 0:
                nhood = nhood_enrichment(labels.cat.remove_unused_categories().to_numpy(), conn,
                                         n_perms=nhood_perms, seed=seed)
                adata.uns[f"{cell_type_key}_nhood_enrichment"] = {
                    "zscore": nhood["zscore"], "count": nhood["count"], "categories": np.array(nhood["categories"]),
                    "n_perms": nhood["n_perms"], "seed": nhood["seed"]}
            else:
                nhood_note = f"obs[{cell_type_key!r}] has < 2 categories or nhood_perms = 0"
        else:
            nhood_note = f"no obs[{cell_type_key!r}]"

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
        categorical = {cell_type_key: adata.obs[cell_type_key]} if nhood is not None else None
        plots.spatial_maps_png(coords, panels, out_png, categorical=categorical)
        if out_nhood_png is not None:
            if nhood is not None:
                nhood_heatmap_png(nhood, out_nhood_png, title=f"Neighbourhood enrichment ({cell_type_key})")
            else:  # the workflow declares the file: say why there is no heatmap
                plots.note_png(f"No neighbourhood enrichment: {nhood_note or 'no cell types'}.", out_nhood_png)

        with atomic_path(out_h5ad) as tmp:
            adata.write_h5ad(tmp)

    def rows(index):
        return [{"feature": f, "I": float(moran.loc[f, "I"]), "pval_norm": float(moran.loc[f, "pval_norm"]),
                 **({"pval_sim": float(moran.loc[f, "pval_sim"])} if n_perms > 0 else {}),
                 "C": float(geary.loc[f, "C"])} for f in index]

    degree = np.diff(conn.indptr)
    undirected = ((conn + conn.T) > 0).nnz // 2  # distinct neighbour pairs (kNN is directed)
    summary = {
        "n_spots": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "graph": {"type": graph, "n_neighbors": int(n_neighbors) if graph == "knn" else None, "radius": radius,
                  "n_edges": int(undirected), "n_entries": int(conn.nnz), "directed": bool((conn != conn.T).nnz > 0),
                  "mean_degree": float(degree.mean())},
        "convention": "squidpy spatial_autocorr defaults: row-standardised weights (transformation=True; "
                      "scanpy.metrics.morans_i/gearys_c use the weights as given), graph as squidpy "
                      "spatial_neighbors (generic coordinates; kNN directed), normality-assumption "
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
        "nhood_enrichment": _nhood_summary(nhood, cell_type_key) if nhood is not None else {"skipped": nhood_note},
    }
    if transfer_info is not None:
        summary["label_transfer"] = transfer_info
    write_json_atomic(out_summary, summary)
    return summary


def _transfer_from_reference(adata, path: Path, key: str, *, cell_type_key: str) -> dict:
    """Labels from the reference .h5ad at ``path`` onto ``adata`` (log-normalised X) in place."""
    import scanpy as sc

    ref = read_h5ad(path)
    if key not in ref.obs:
        raise InputFormatError(f"reference has no obs[{key!r}]", path=path)
    if ref.obs[key].isna().any():
        raise InputFormatError(f"obs[{key!r}] has missing values", path=path,
                               record=str(ref.obs_names[int(np.flatnonzero(ref.obs[key].isna().to_numpy())[0])]))
    ref.var_names_make_unique()
    x = ref.X
    data = x.data if sp.issparse(x) else np.asarray(x).ravel()
    raw_counts = data.size > 0 and (data >= 0).all() and np.allclose(data[:1_000_000], np.round(data[:1_000_000]))
    if raw_counts:
        ref.X = sp.csr_matrix(ref.X, dtype=np.float32)
        sc.pp.normalize_total(ref, target_sum=1e4)
        sc.pp.log1p(ref)
    shared = [g for g in adata.var_names if g in set(ref.var_names)]
    if len(shared) < 10:
        raise InputFormatError(f"reference shares {len(shared)} genes with the slide (need >= 10)", path=path)
    res = transfer_labels(adata, ref, ref.obs[key].to_numpy(), genes=shared)
    adata.obs["transferred_label"] = pd.Categorical(res["label"].to_numpy(), categories=res["label"].cat.categories)
    adata.obs["transferred_score"] = res["score"].to_numpy()
    info = {"reference": path.name, "reference_key": key, "method": "logistic (transfer_labels)",
            "reference_normalised": bool(raw_counts), "n_genes_shared": len(shared),
            "n_cells_per_label": {str(k): int(v) for k, v in
                                  adata.obs["transferred_label"].value_counts(sort=False).items()}}
    if cell_type_key in adata.obs:
        given = adata.obs[cell_type_key].astype(str).to_numpy()
        info["agreement_with_obs"] = {"column": cell_type_key,
                                      "fraction": float((given == res["label"].astype(str).to_numpy()).mean())}
    return info


def nhood_heatmap_png(nhood: dict, path: str | Path, *, title: str = "Neighbourhood enrichment") -> None:
    """Heatmap of ``nhood["zscore"]`` (diverging, symmetric colour scale), counts written in the cells."""
    from cohortflow.singlecell.plots import _pyplot, save_png

    plt = _pyplot()
    cats, z, count = nhood["categories"], np.asarray(nhood["zscore"], dtype=float), np.asarray(nhood["count"])
    k = len(cats)
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * k, 0.9 + 0.5 * k))
    im = ax.imshow(np.nan_to_num(z), cmap="RdBu_r", vmin=-lim, vmax=lim)
    if k <= 20:
        for a in range(k):
            for b in range(k):
                dark = np.isfinite(z[a, b]) and abs(z[a, b]) > 0.6 * lim
                ax.text(b, a, str(count[a, b]), ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
    ax.set_xticks(range(k), cats, rotation=90, fontsize=7)
    ax.set_yticks(range(k), cats, fontsize=7)
    ax.set_title(f"{title}\nz-score; numbers: neighbour counts", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    save_png(fig, path)


def _nhood_summary(nhood: dict, cell_type_key: str) -> dict:
    cats, z = nhood["categories"], nhood["zscore"]
    pairs = [(a, b) for a in range(len(cats)) for b in range(a, len(cats)) if np.isfinite(z[a, b])]
    pairs.sort(key=lambda ab: (-abs(z[ab]), ab))
    return {"cell_type_key": cell_type_key, "categories": cats, "n_perms": nhood["n_perms"], "seed": nhood["seed"],
            "count": nhood["count"].tolist(), "zscore": [[float(v) for v in row] for row in z],
            "top_pairs": [{"a": cats[a], "b": cats[b], "zscore": float(z[a, b]), "count": int(nhood["count"][a, b])}
                          for a, b in pairs[:10]]}


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
