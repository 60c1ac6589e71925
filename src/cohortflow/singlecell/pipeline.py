"""Single-cell analysis chain (scanpy): QC, doublets, normalisation, clustering, UMAP, annotation.

``run_singlecell`` reads raw counts from an ``.h5ad`` and writes an annotated ``.h5ad`` that the
genetics integration reads (log-normalised ``X``, raw counts in ``layers['counts']``,
``obs['cell_type']``), a JSON summary of aggregate figures and three PNGs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.errors import ConfigError, InputFormatError
from cohortflow.io.h5ad import read_h5ad
from cohortflow.io.atomic import atomic_path, write_json_atomic

__all__ = ["run_singlecell", "read_markers", "annotate_by_markers", "compute_neighbors", "threshold_minimum",
           "MITO_PREFIXES"]

MITO_PREFIXES = ("MT-", "mt-")
# Above this many cells, exact kNN (sklearn) gives way to approximate kNN (pynndescent).
_EXACT_KNN_MAX_CELLS = 50_000


def read_markers(path: str | Path) -> dict[str, list[str]]:
    """Marker table ``cell_type<TAB>gene`` (header line required) -> {cell_type: [genes]} in file order."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, comment="#")
    except pd.errors.ParserError as err:
        raise InputFormatError(f"not a tab-separated table ({err})", path=path) from None
    missing = {"cell_type", "gene"} - set(table.columns)
    if missing:
        raise InputFormatError(f"missing column(s) {sorted(missing)}; need 'cell_type' and 'gene'", path=path,
                               record="line 1")
    bad = table[["cell_type", "gene"]].isna().any(axis=1)
    if bad.any():
        raise InputFormatError("empty cell_type or gene", path=path, record=f"line {int(np.argmax(bad.values)) + 2}")
    out: dict[str, list[str]] = {}
    for t, g in zip(table["cell_type"].str.strip(), table["gene"].str.strip()):
        if g not in out.setdefault(t, []):
            out[t].append(g)
    if not out:
        raise InputFormatError("no markers", path=path)
    return out


def annotate_by_markers(adata, markers: dict[str, list[str]], *, groupby: str = "leiden", seed: int = 0,
                        key_added: str = "cell_type", min_markers: int = 2) -> pd.DataFrame:
    """Label each ``groupby`` cluster with the marker set of highest mean score.

    Scores every type with ``scanpy.tl.score_genes`` on log-normalised ``X`` (markers absent from
    ``var_names`` are dropped; a type with fewer than ``min_markers`` present is skipped, as a
    one-gene score is too noisy to compete with real sets). Adds
    ``obs['marker_score_<type>']`` and categorical ``obs[key_added]``; returns the cluster x type
    table of mean scores.
    """
    import scanpy as sc

    present = {t: [g for g in genes if g in adata.var_names] for t, genes in markers.items()}
    present = {t: g for t, g in present.items() if len(g) >= min_markers}
    if not present:
        raise InputFormatError(f"no cell type of the marker table has {min_markers} marker genes in the data")
    for t, genes in present.items():
        sc.tl.score_genes(adata, gene_list=genes, score_name=f"marker_score_{t}", random_state=seed,
                          ctrl_size=min(50, max(1, adata.n_vars - len(genes))), use_raw=False)
    cols = [f"marker_score_{t}" for t in present]
    means = adata.obs.groupby(groupby, observed=True)[cols].mean()
    means.columns = list(present)
    label = means.idxmax(axis=1)
    adata.obs[key_added] = pd.Categorical(adata.obs[groupby].map(label).astype(str), categories=list(present))
    adata.obs[key_added] = adata.obs[key_added].cat.remove_unused_categories()
    return means


def threshold_minimum(values: np.ndarray, *, n_bins: int = 256, max_iter: int = 10_000) -> float | None:
    """Threshold at the valley of a bimodal histogram (Prewitt & Mendelsohn's minimum method).

    The histogram of ``values`` (``n_bins`` bins) is smoothed with a 3-bin running mean until it
    has exactly two local maxima; the threshold is the centre of the lowest bin between them.
    This is the rule Scrublet uses (through scikit-image, which is not a dependency here).
    Returns None when the histogram never becomes bimodal.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 3 or np.ptp(values) == 0:
        return None
    hist, edges = np.histogram(values, bins=n_bins)
    centres = (edges[:-1] + edges[1:]) / 2
    smooth = hist.astype(float)
    for _ in range(max_iter):
        padded = np.concatenate([smooth[:1], smooth, smooth[-1:]])
        smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
        up = np.diff(smooth) > 0
        # a maximum: rising into the bin, not rising out of it
        maxima = np.flatnonzero(up[:-1] & ~up[1:]) + 1
        if len(maxima) == 2:
            lo, hi = maxima
            return float(centres[lo + int(np.argmin(smooth[lo:hi + 1]))])
        if len(maxima) < 2:
            return None
    return None


def _doublet_scores(adata, *, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Doublet scores of raw-count cells: scanpy's Scrublet with exact kNN, thresholded by
    ``threshold_minimum`` on the simulated doublets' scores (Scrublet's own automatic rule).

    If Scrublet fails, or its simulated scores are not bimodal, a documented heuristic is used:
    a cell is a doublet when its log total counts exceed the median by more than 4 robust SDs
    (MAD x 1.4826); the score is that robust z. The method used is returned as text.
    """
    import scanpy as sc

    try:
        tmp = sc.AnnData(adata.X.copy(), obs=pd.DataFrame(index=adata.obs_names.copy()))
        # threshold=inf: Scrublet's automatic threshold needs scikit-image; we apply the same rule below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # its detection-rate ratio divides by 0 here
            sc.pp.scrublet(tmp, random_state=seed, verbose=False, use_approx_neighbors=False, threshold=np.inf)
        score = tmp.obs["doublet_score"].to_numpy(dtype=float)
        threshold = threshold_minimum(tmp.uns["scrublet"]["doublet_scores_sim"])
        if threshold is not None:
            return score, score > threshold, f"scanpy.pp.scrublet (threshold {threshold:.3f} by minimum method)"
        reason = "simulated doublet scores not bimodal"
    except Exception as err:  # noqa: BLE001 - any Scrublet failure falls back to the heuristic
        reason = f"scrublet failed: {type(err).__name__}"
    log_tot = np.log1p(np.asarray(adata.X.sum(axis=1)).ravel())
    med = np.median(log_tot)
    mad = np.median(np.abs(log_tot - med)) * 1.4826 or 1.0
    z = (log_tot - med) / mad
    return z, z > 4.0, f"library-size heuristic ({reason})"


def run_singlecell(
    h5ad: str | Path,
    *,
    markers: str | Path,
    out_h5ad: str | Path,
    out_summary: str | Path,
    out_dir_figures: str | Path | None = None,
    out_umap_png: str | Path | None = None,
    out_markers_png: str | Path | None = None,
    out_qc_png: str | Path | None = None,
    truth: str | Path | None = None,
    min_genes: int = 200,
    min_cells: int = 3,
    max_pct_mito: float = 20.0,
    remove_doublets: bool = True,
    n_hvg: int = 2000,
    n_pcs: int = 30,
    n_neighbors: int = 15,
    leiden_resolution: float = 0.5,
    seed: int = 0,
    threads: int = 1,
) -> dict:
    """Run the single-cell chain on raw counts and annotate cell types from a marker table.

    Steps: QC metrics (``n_genes_by_counts``, ``total_counts``, ``pct_counts_mt`` from genes
    starting ``MT-``/``mt-``); drop cells with < ``min_genes`` genes or > ``max_pct_mito`` % mito;
    doublet scores with ``scanpy.pp.scrublet`` (fallback: library-size heuristic, see
    ``_doublet_scores``) and removal of predicted doublets; drop genes seen in < ``min_cells``
    cells; ``normalize_total`` (1e4) + ``log1p``; HVGs (seurat flavour, ``n_hvg`` capped at the
    gene count); PCA on scaled HVGs; kNN graph (exact sklearn kNN up to 50,000 cells, else
    pynndescent); Leiden (igraph flavour); UMAP; Wilcoxon ``rank_genes_groups`` per Leiden cluster;
    cell types by marker-set scoring (``annotate_by_markers``).

    Writes:

    - ``out_h5ad``: all retained cells and genes; ``X`` log-normalised (CSR float32),
      ``layers['counts']`` raw counts; ``obs``: ``donor`` (if given), QC columns, ``doublet_score``,
      ``predicted_doublet``, ``leiden``, ``cell_type``, ``marker_score_<type>``; ``var``:
      ``mt``, ``n_cells_by_counts``, ``highly_variable``...; ``obsm['X_pca']``, ``obsm['X_umap']``;
      ``obsp`` kNN graph; ``uns['rank_genes_groups']`` (per Leiden cluster),
      ``uns['cell_type_annotation']`` (cluster -> type, mean marker scores).
    - ``out_summary`` JSON: ``n_cells_in``, ``n_cells_out``, ``n_genes_in``, ``n_genes``,
      ``n_removed`` {``low_genes``, ``high_mito``, ``doublets``}, ``n_hvg``, ``n_clusters``,
      ``n_cell_types``, ``cells_per_type``, ``cluster_to_cell_type``, ``mean_qc`` {before, after}
      of ``total_counts``/``n_genes_by_counts``/``pct_counts_mt``, ``doublet_method``,
      ``n_doublets_called``, ``top_genes_per_cluster`` (5 each), ``parameters``;
      with ``truth`` also ``ari`` (adjusted Rand index of ``cell_type`` vs the true type over
      retained cells whose truth ``artefact`` is ``none``, or all retained cells if the table has no
      such column), ``ari_all_retained`` and ``n_truth_artefacts_retained``.
    - ``out_umap_png`` (UMAP by cell type and by Leiden cluster), ``out_markers_png`` (dot plot
      of the marker genes per cell type), ``out_qc_png`` (violins of the QC metrics before
      filtering); each defaults to ``umap.png`` / ``markers.png`` / ``qc.png`` in
      ``out_dir_figures`` (one of the two must be given).

    ``threads`` caps BLAS/OpenMP threads. Same input and seed give byte-identical outputs.
    Returns the summary dictionary.
    """
    from threadpoolctl import threadpool_limits

    # BLAS/OpenMP threads follow the rule's `threads`; oversubscribed BLAS makes PCA 5x slower.
    with threadpool_limits(limits=max(1, int(threads))):
        import scanpy as sc

        from cohortflow.singlecell import plots

        h5ad = Path(h5ad)
        pngs = {}
        for key, given in (("umap", out_umap_png), ("markers", out_markers_png), ("qc", out_qc_png)):
            if given is None and out_dir_figures is None:
                raise ConfigError(f"run_singlecell: give out_{key}_png or out_dir_figures")
            pngs[key] = Path(given) if given is not None else Path(out_dir_figures) / f"{key}.png"
        if not h5ad.exists():
            raise InputFormatError("file not found", path=h5ad)
        for name, value in (("min_genes", min_genes), ("min_cells", min_cells), ("n_hvg", n_hvg), ("n_pcs", n_pcs),
                            ("n_neighbors", n_neighbors)):
            if value < 0 or (name in ("n_hvg", "n_pcs", "n_neighbors") and value < 2):
                raise ConfigError(f"singlecell.{name} = {value} is out of range")
        marker_sets = read_markers(markers)
        adata = read_h5ad(h5ad)
        _check_counts(adata, h5ad)
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        adata.var_names_make_unique()
        n_cells_in, n_genes_in = adata.n_obs, adata.n_vars

        adata.var["mt"] = adata.var_names.str.startswith(MITO_PREFIXES)
        sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
        qc_cols = ["total_counts", "n_genes_by_counts", "pct_counts_mt"]
        qc_before = adata.obs[qc_cols].copy()
        mean_before = {c: float(qc_before[c].mean()) for c in qc_cols}

        low_genes = adata.obs["n_genes_by_counts"].to_numpy() < min_genes
        high_mito = ~low_genes & (adata.obs["pct_counts_mt"].to_numpy() > max_pct_mito)
        adata = adata[~(low_genes | high_mito)].copy()
        if adata.n_obs < 50:
            raise InputFormatError(f"only {adata.n_obs} cells pass QC (min_genes={min_genes}, "
                                   f"max_pct_mito={max_pct_mito})", path=h5ad)

        score, called, doublet_method = _doublet_scores(adata, seed=seed)
        adata.obs["doublet_score"] = score
        adata.obs["predicted_doublet"] = called
        n_doublets = int(called.sum())
        if remove_doublets and n_doublets:
            adata = adata[~called].copy()

        sc.pp.filter_genes(adata, min_cells=min_cells)
        adata.layers["counts"] = adata.X.copy()
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        n_hvg_used = int(min(n_hvg, adata.n_vars - 1))
        sc.pp.highly_variable_genes(adata, n_top_genes=n_hvg_used, flavor="seurat")

        # PCA on scaled HVGs in a side object, so X keeps every gene log-normalised for the integration.
        hv = adata[:, adata.var["highly_variable"].to_numpy()].copy()
        hv.X = hv.X.toarray()  # scaling centres the data: dense anyway
        sc.pp.scale(hv, max_value=10)
        n_comps = int(min(n_pcs, hv.n_vars - 1, hv.n_obs - 1))
        sc.pp.pca(hv, n_comps=n_comps, random_state=seed, svd_solver="arpack")
        adata.obsm["X_pca"] = hv.obsm["X_pca"]
        adata.uns["pca"] = hv.uns["pca"]
        del hv

        transformer = compute_neighbors(adata, n_neighbors=n_neighbors, n_pcs=n_comps, seed=seed)
        sc.tl.leiden(adata, resolution=leiden_resolution, flavor="igraph", n_iterations=2, directed=False,
                     random_state=seed)
        sc.tl.umap(adata, random_state=seed)
        sc.tl.rank_genes_groups(adata, groupby="leiden", method="wilcoxon", use_raw=False, pts=False)
        means = annotate_by_markers(adata, marker_sets, groupby="leiden", seed=seed)
        cluster_to_type = {str(k): str(v) for k, v in means.idxmax(axis=1).items()}
        adata.uns["cell_type_annotation"] = {
            "cluster_to_cell_type": cluster_to_type,
            "mean_marker_scores": {str(c): {t: float(means.loc[c, t]) for t in means.columns} for c in means.index},
            "method": "scanpy.tl.score_genes per marker set; cluster label = set with the highest mean score",
        }

        names = adata.uns["rank_genes_groups"]["names"]
        top_genes = {str(g): [str(x) for x in names[g][:5]] for g in names.dtype.names}
        counts_per_type = adata.obs["cell_type"].value_counts().sort_index()

        summary = {
            "n_cells_in": int(n_cells_in),
            "n_cells_out": int(adata.n_obs),
            "n_genes_in": int(n_genes_in),
            "n_genes": int(adata.n_vars),
            "n_removed": {"low_genes": int(low_genes.sum()), "high_mito": int(high_mito.sum()),
                          "doublets": n_doublets if remove_doublets else 0},
            "n_hvg": int(adata.var["highly_variable"].sum()),
            "n_pcs": n_comps,
            "n_clusters": int(adata.obs["leiden"].nunique()),
            "n_cell_types": int(adata.obs["cell_type"].nunique()),
            "cells_per_type": {str(k): int(v) for k, v in counts_per_type.items()},
            "cluster_to_cell_type": cluster_to_type,
            "mean_qc": {"before": mean_before,
                        "after": {c: float(adata.obs[c].mean()) for c in qc_cols}},
            "doublet_method": doublet_method,
            "n_doublets_called": n_doublets,
            "knn": transformer,
            "top_genes_per_cluster": top_genes,
            "parameters": {"min_genes": min_genes, "min_cells": min_cells, "max_pct_mito": max_pct_mito,
                           "remove_doublets": remove_doublets, "n_hvg": n_hvg, "n_pcs": n_pcs,
                           "n_neighbors": n_neighbors, "leiden_resolution": leiden_resolution, "seed": seed},
        }
        if truth is not None:
            summary.update(_truth_agreement(adata, truth))

        plots.umap_png(adata, pngs["umap"])
        plots.marker_dotplot_png(adata, marker_sets, pngs["markers"])
        plots.qc_violin_png(qc_before, pngs["qc"], max_pct_mito=max_pct_mito, min_genes=min_genes)

        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        with atomic_path(out_h5ad) as tmp:
            adata.write_h5ad(tmp)
        write_json_atomic(out_summary, summary)
        return summary


def compute_neighbors(adata, *, n_neighbors: int = 15, n_pcs: int | None = None, seed: int = 0,
                      use_rep: str = "X_pca") -> str:
    """kNN graph + UMAP connectivities (``scanpy.pp.neighbors``) on ``obsm[use_rep]``.

    Exact kNN (sklearn) up to 50,000 cells: deterministic, fast at that size, and it avoids the
    pynndescent path that crashes above 4,096 cells with scanpy 1.11.5 + pynndescent 0.7 + scipy
    1.17 (pynndescent is pinned to 0.6.0 for the larger data that still use it). Returns the
    transformer used.
    """
    import scanpy as sc

    transformer = "sklearn" if adata.n_obs <= _EXACT_KNN_MAX_CELLS else "pynndescent"
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, n_pcs=n_pcs, use_rep=use_rep, random_state=seed,
                    transformer=transformer)
    return transformer


def _check_counts(adata, path: Path) -> None:
    """Raw counts are required: non-negative integers."""
    x = adata.X
    data = x.data if sp.issparse(x) else np.asarray(x).ravel()
    sample = data[: 1_000_000]
    if sample.size and ((sample < 0).any() or not np.allclose(sample, np.round(sample))):
        raise InputFormatError("X does not hold raw counts (negative or non-integer values)", path=path)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputFormatError(f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)", path=path)


def _truth_agreement(adata, truth: str | Path) -> dict:
    from sklearn.metrics import adjusted_rand_score

    truth = Path(truth)
    if not truth.exists():
        raise InputFormatError("file not found", path=truth)
    table = pd.read_csv(truth, sep="\t", dtype=str)
    if not {"barcode", "true_cell_type"} <= set(table.columns):
        raise InputFormatError("need columns 'barcode' and 'true_cell_type'", path=truth, record="line 1")
    table = table.set_index("barcode")
    common = adata.obs_names.intersection(table.index)
    if len(common) == 0:
        raise InputFormatError("no barcode in common with the data", path=truth)
    pred = adata.obs.loc[common, "cell_type"].astype(str)
    true = table.loc[common, "true_cell_type"]
    out = {"ari_all_retained": float(adjusted_rand_score(true, pred)), "n_truth_cells_matched": int(len(common))}
    if "artefact" in table.columns:
        clean = (table.loc[common, "artefact"] == "none").to_numpy()
        out["ari"] = float(adjusted_rand_score(true[clean], pred[clean]))
        out["n_truth_artefacts_retained"] = {str(k): int(v) for k, v in
                                             table.loc[common, "artefact"][~clean].value_counts().sort_index().items()}
    else:
        out["ari"] = out["ari_all_retained"]
    return out
