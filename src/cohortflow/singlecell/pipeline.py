"""Single-cell analysis chain (scanpy): QC, doublets, normalisation, clustering, UMAP, marker genes, annotation.

``run_singlecell`` (the ``cohortflow sc`` command and the workflow's ``singlecell`` rule) reads an
``.h5ad`` of raw counts, or of already processed data (``detect_input_kind``), and writes an
annotated ``.h5ad`` that the genetics integration reads, a JSON summary of aggregate figures and
three PNGs. Outputs of the ``.h5ad`` (counts input; see ``run_singlecell`` for processed input):

- ``X``: log-normalised (``normalize_total`` to 1e4, ``log1p``), CSR float32, every retained gene;
  ``layers['counts']``: the raw counts of the same cells and genes.
- ``obs``: the input's columns (``donor`` kept), QC metrics ``n_genes_by_counts``,
  ``total_counts``, ``total_counts_mt``, ``pct_counts_mt``; ``doublet_score``,
  ``predicted_doublet``; ``leiden``; ``cell_type`` and ``marker_score_<type>``.
- ``var``: ``mt``, ``n_cells_by_counts``, ``mean_counts``, ``pct_dropout_by_counts``,
  ``total_counts``, ``n_cells``, ``highly_variable``, ``means``, ``dispersions``,
  ``dispersions_norm``.
- ``obsm``: ``X_pca``, ``X_umap``; ``obsp``: ``distances``, ``connectivities``.
- ``uns``: ``rank_genes_groups`` (Wilcoxon per Leiden cluster vs the rest, scanpy's layout),
  ``cell_type_annotation`` (cluster -> type, mean marker scores, markers used), ``pca``,
  ``neighbors``, ``leiden``, ``umap``.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.errors import ConfigError, InputFormatError
from cohortflow.io.h5ad import read_h5ad
from cohortflow.io.atomic import atomic_path, write_json_atomic

__all__ = ["run_singlecell", "detect_input_kind", "default_markers_path", "read_markers", "annotate_by_markers",
           "compute_neighbors", "threshold_minimum", "MITO_PREFIXES"]

log = logging.getLogger(__name__)

MITO_PREFIXES = ("MT-", "mt-")
# Above this many cells, exact kNN (sklearn) gives way to approximate kNN (pynndescent).
_EXACT_KNN_MAX_CELLS = 50_000


def default_markers_path() -> Path:
    """The PBMC marker table shipped in the package (``cohortflow/resources/pbmc_markers.tsv``)."""
    from importlib.resources import files

    return Path(str(files("cohortflow") / "resources" / "pbmc_markers.tsv"))


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

    The histogram of ``values`` (``n_bins`` bins over their range) is smoothed with a 3-bin
    running mean (edges reflected) until it has exactly two local maxima; the threshold is the
    centre of the lowest bin between them. This is the rule Scrublet uses, through
    ``skimage.filters.threshold_minimum`` (scikit-image is not a dependency here), with its
    definition of a maximum: scanning upwards from the first bin, a bin followed by a lower one
    while rising, so the first bin counts when the histogram starts by falling (Scrublet's
    homotypic doublets pile up there). Returns None when the histogram never becomes bimodal.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 3 or np.ptp(values) == 0:
        return None
    hist, edges = np.histogram(values, bins=n_bins)
    centres = (edges[:-1] + edges[1:]) / 2
    smooth = hist.astype(float)

    def maxima(h: np.ndarray) -> list[int]:
        found, rising = [], True
        for i in range(h.size - 1):
            if rising and h[i + 1] < h[i]:
                found.append(i)
                rising = False
            elif not rising and h[i + 1] > h[i]:
                rising = True
        return found

    for _ in range(max_iter):
        padded = np.concatenate([smooth[:1], smooth, smooth[-1:]])
        smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
        peaks = maxima(smooth)
        if len(peaks) == 2:
            lo, hi = peaks
            return float(centres[lo + int(np.argmin(smooth[lo:hi + 1]))])
        if len(peaks) < 2:
            return None
    return None


def detect_input_kind(adata) -> tuple[str, str]:
    """What the matrix of an input ``.h5ad`` holds, and where the chain takes its data from.

    Returns ``(kind, source)``; ``kind`` is ``counts`` (non-negative integers: the whole chain
    runs), ``log_normalised`` (non-negative, not all integers: QC, doublets, normalisation and
    log1p are skipped) or ``scaled`` (negative values: centred per gene, as after
    ``scanpy.pp.scale``; only PCA onwards runs, on ``X`` as given). ``source`` is ``X``,
    ``layers['counts']`` or ``raw``. Counts are looked for in ``X``, then ``layers['counts']``,
    then ``raw.X``; a scaled ``X`` with a non-negative ``raw.X`` (scanpy's convention: log data kept
    in ``raw`` before scaling) is run from ``raw``. The test is on the first 1,000,000 stored values.
    """
    def kind_of(x) -> str | None:
        data = x.data if sp.issparse(x) else np.asarray(x).ravel()
        sample = np.asarray(data[:1_000_000], dtype=np.float64)
        if sample.size == 0:
            return None
        if (sample < 0).any():
            return "scaled"
        return "counts" if np.array_equal(sample, np.round(sample)) else "log_normalised"

    x_kind = kind_of(adata.X)
    if x_kind == "counts":
        return "counts", "X"
    layer = adata.layers.get("counts") if "counts" in adata.layers else None
    if layer is not None and kind_of(layer) == "counts":
        return "counts", "layers['counts']"
    raw_kind = kind_of(adata.raw.X) if adata.raw is not None else None
    if raw_kind == "counts":
        return "counts", "raw"
    if x_kind == "scaled" and raw_kind == "log_normalised":
        return "log_normalised", "raw"
    if x_kind is None:
        raise InputFormatError(f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)")
    return x_kind, "X"


def _matrix_from(adata, source: str):
    """An AnnData whose ``X`` is the chosen source matrix (CSR float32), obs kept."""
    import anndata as ad

    if source == "X":
        out = adata
    elif source == "layers['counts']":
        out = ad.AnnData(adata.layers["counts"], obs=adata.obs.copy(), var=adata.var.copy())
    else:  # raw: its own genes
        out = ad.AnnData(adata.raw.X, obs=adata.obs.copy(), var=adata.raw.var.copy())
    out.X = sp.csr_matrix(out.X, dtype=np.float32)
    return out


# Scrublet's kNN is quadratic in cells: per-batch runs when every batch has at least this many cells.
_SCRUBLET_MIN_BATCH = 2000
# Genes given to Scrublet: its PCA and z-scoring are dense in genes, and doublets show in the variable genes.
_SCRUBLET_N_GENES = 2000


def _doublet_scores(adata, *, seed: int, batch_key: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Doublet scores of raw-count cells: scanpy's Scrublet with exact kNN, thresholded by
    ``threshold_minimum`` on the simulated doublets' scores (Scrublet's own automatic rule).

    Scrublet gets the raw counts of the 2,000 most variable genes (seurat flavour on a
    log-normalised copy) rather than all genes: its z-scoring and PCA densify its gene set, which
    on 100,000 cells x 20,000 genes costs minutes and ~15 GB, and the simulated doublets differ
    from singlets in the variable genes. With ``batch_key`` (an obs column whose every batch has
    >= 2,000 cells, e.g. the capture lane or donor) Scrublet runs per batch, as its authors
    advise (doublets form within a capture), each batch with its own threshold; otherwise on all
    cells. If Scrublet fails, or the simulated scores of a batch are not bimodal, a documented
    heuristic is used for that batch: a cell is a doublet when its log total counts exceed the
    batch median by more than 4 robust SDs (MAD x 1.4826); the score is that robust z. The method
    used is returned as text.
    """
    import scanpy as sc

    if adata.n_vars > _SCRUBLET_N_GENES:
        lognorm = sc.AnnData(adata.X.copy())
        sc.pp.normalize_total(lognorm, target_sum=1e4)
        sc.pp.log1p(lognorm)
        sc.pp.highly_variable_genes(lognorm, n_top_genes=_SCRUBLET_N_GENES, flavor="seurat")
        genes = lognorm.var["highly_variable"].to_numpy()
        del lognorm
        counts = adata.X[:, genes]
    else:
        counts = adata.X
    if batch_key is not None:
        sizes = adata.obs[batch_key].astype(str).value_counts()
        if sizes.min() < _SCRUBLET_MIN_BATCH:
            batch_key = None
    n = adata.n_obs
    if batch_key is not None:
        batches = adata.obs[batch_key].astype(str).to_numpy()
        names = sorted(set(batches))
    else:
        batches, names = np.zeros(n, dtype=object), [0]
    score = np.zeros(n)
    called = np.zeros(n, dtype=bool)
    fallbacks: list[str] = []
    thresholds = []
    for name in names:
        idx = np.flatnonzero(batches == name)
        x = counts[idx]
        reason = None
        try:
            tmp = sc.AnnData(x.copy(), obs=pd.DataFrame(index=adata.obs_names[idx].copy()))
            # threshold=inf: Scrublet's automatic threshold needs scikit-image; the same rule follows.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # its detection-rate ratio divides by 0 here
                sc.pp.scrublet(tmp, random_state=seed, verbose=False, use_approx_neighbors=False, threshold=np.inf)
            s = tmp.obs["doublet_score"].to_numpy(dtype=float)
            threshold = threshold_minimum(tmp.uns["scrublet"]["doublet_scores_sim"])
            if threshold is not None:
                score[idx], called[idx] = s, s > threshold
                thresholds.append(threshold)
                continue
            reason = "simulated doublet scores not bimodal"
        except Exception as err:  # noqa: BLE001 - any Scrublet failure falls back to the heuristic
            reason = f"scrublet failed: {type(err).__name__}"
        log_tot = np.log1p(np.asarray(adata.X[idx].sum(axis=1)).ravel())
        med = np.median(log_tot)
        mad = np.median(np.abs(log_tot - med)) * 1.4826 or 1.0
        z = (log_tot - med) / mad
        score[idx], called[idx] = z, z > 4.0
        fallbacks.append(f"{name}: {reason}" if batch_key else reason)
    where = f" per {batch_key!r} batch ({len(names)})" if batch_key else ""
    if not fallbacks:
        rng_ = f"{min(thresholds):.3f}" if len(thresholds) == 1 else f"{min(thresholds):.3f}-{max(thresholds):.3f}"
        return score, called, f"scanpy.pp.scrublet{where} (threshold {rng_} by minimum method)"
    if len(fallbacks) == len(names):
        return score, called, f"library-size heuristic{where} ({'; '.join(fallbacks[:3])})"
    return score, called, (f"scanpy.pp.scrublet{where}, minimum-method thresholds; library-size heuristic in "
                           f"{len(fallbacks)} batch(es) ({'; '.join(fallbacks[:3])})")


class _Steps:
    """Wall time per step, logged and added to ``timings`` when the caller gives one."""

    def __init__(self, timings: dict | None):
        self.timings = timings if timings is not None else {}
        self.t = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.t
        log.info("%s: %.1f s", name, now - self.t)
        self.t = now


def run_singlecell(
    h5ad: str | Path,
    *,
    markers: str | Path | None = None,
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
    doublet_batch_key: str | None = "donor",
    n_hvg: int = 2000,
    n_pcs: int = 30,
    n_neighbors: int = 15,
    leiden_resolution: float = 0.5,
    seed: int = 0,
    threads: int = 1,
    timings: dict | None = None,
) -> dict:
    """Run the single-cell chain and annotate cell types from a marker table.

    Input: an ``.h5ad`` of raw counts (``X``, else ``layers['counts']``, else ``raw.X``), or of
    processed data (see ``detect_input_kind``): log-normalised data skip QC, doublets, filtering,
    normalisation and log1p; scaled data (negative values, no log-normalised ``raw``) also skip
    HVG selection and scaling (PCA on ``X`` as given; ranking and scoring on scaled values). What
    was skipped and why is in the summary (``input_kind``, ``input_source``, ``skipped_steps``,
    ``input_note``) and the log. ``markers``: ``cell_type<TAB>gene`` table; default the PBMC table
    shipped in the package (``default_markers_path``).

    Steps on counts: QC metrics (``n_genes_by_counts``, ``total_counts``, ``pct_counts_mt`` from
    genes starting ``MT-``/``mt-``); drop cells with < ``min_genes`` genes or > ``max_pct_mito`` %
    mito; doublet scores with ``scanpy.pp.scrublet`` on the 2,000 most variable genes, per
    ``obs[doublet_batch_key]`` batch when the column exists and each batch has >= 2,000 cells
    (``_doublet_scores``), and removal of predicted doublets when
    ``remove_doublets``; drop genes seen in < ``min_cells`` cells; ``normalize_total`` (1e4) +
    ``log1p``. Then on every input: HVGs (seurat flavour, ``n_hvg`` capped at the gene count); PCA
    (ARPACK) on scaled HVGs; kNN graph (``compute_neighbors``); Leiden (igraph flavour, 2
    iterations); UMAP; Wilcoxon ``rank_genes_groups`` per Leiden cluster
    (``cohortflow.singlecell.rank_genes``: scanpy's test, computed from the non-zero values);
    cell types by marker-set scoring per cluster (``annotate_by_markers``).

    Writes:

    - ``out_h5ad``: all retained cells and genes; ``X`` log-normalised (CSR float32; scaled
      values only for a scaled-only input); ``layers['counts']`` raw counts (counts input only);
      ``obs``: the input's columns (``donor`` kept), ``n_genes_by_counts``, ``total_counts``,
      ``total_counts_mt``, ``pct_counts_mt``, ``doublet_score``, ``predicted_doublet`` (counts input),
      ``leiden``, ``cell_type``, ``marker_score_<type>``; ``var``: ``mt``, ``n_cells_by_counts``,
      ``highly_variable``, ``means``, ``dispersions``...; ``obsm['X_pca']``, ``obsm['X_umap']``;
      ``obsp`` kNN ``distances`` / ``connectivities``; ``uns['rank_genes_groups']`` (per Leiden
      cluster, scanpy's layout), ``uns['cell_type_annotation']`` (``cluster_to_cell_type``,
      ``mean_marker_scores`` per cluster and type, ``markers_used`` per type, ``method``).
    - ``out_summary`` JSON: ``input_kind``, ``input_source``, ``skipped_steps``, ``input_note``,
      ``n_cells_in``, ``n_cells_out``, ``n_genes_in``, ``n_genes``, ``n_removed`` {``low_genes``,
      ``high_mito``, ``doublets``}, ``n_hvg``, ``n_pcs``, ``n_clusters``, ``n_cell_types``,
      ``cells_per_type``, ``cluster_to_cell_type``, ``mean_qc`` {before, after} of
      ``total_counts``/``n_genes_by_counts``/``pct_counts_mt`` (counts input), ``doublet_method``,
      ``n_doublets_called``, ``knn``, ``top_genes_per_cluster`` (5 each), ``markers_file`` (name
      only), ``parameters``; with ``truth`` also ``ari`` (adjusted Rand index of ``cell_type`` vs
      the true type over retained cells whose truth ``artefact`` is ``none``, or all retained cells
      if the table has no such column), ``ari_all_retained`` and ``n_truth_artefacts_retained``.
    - ``out_umap_png`` (UMAP by cell type and by Leiden cluster), ``out_markers_png`` (dot plot of
      the marker genes per cell type), ``out_qc_png`` (violins of genes, UMIs and % mito per cell
      before filtering, with the thresholds, and UMIs vs genes coloured by % mito; a note instead
      for processed input); each defaults to ``umap.png`` / ``markers.png`` / ``qc.png`` in
      ``out_dir_figures`` (one of the two must be given).

    ``threads`` caps BLAS/OpenMP/numba threads. Same input and seed give byte-identical outputs;
    nothing is written when a step fails. ``timings``, if given, receives wall seconds per step.
    Returns the summary dictionary.
    """
    from threadpoolctl import threadpool_limits

    # BLAS/OpenMP threads follow the rule's `threads`; oversubscribed BLAS makes PCA 5x slower.
    with threadpool_limits(limits=max(1, int(threads))):
        import numba
        import scanpy as sc

        from cohortflow.singlecell import plots
        from cohortflow.singlecell.rank_genes import rank_genes_groups_wilcoxon

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
        steps = _Steps(timings)
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
        markers = Path(markers) if markers is not None else default_markers_path()
        marker_sets = read_markers(markers)
        adata = read_h5ad(h5ad)
        if adata.n_obs == 0 or adata.n_vars == 0:
            raise InputFormatError(f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)", path=h5ad)
        try:
            kind, source = detect_input_kind(adata)
        except InputFormatError as err:
            raise InputFormatError(err.args[0], path=h5ad) from None
        adata = _matrix_from(adata, source)
        adata.var_names_make_unique()
        n_cells_in, n_genes_in = adata.n_obs, adata.n_vars
        steps.done("read")

        skipped: list[str] = []
        note = ""
        if kind == "counts":
            note = f"raw counts from {source}"
        elif kind == "log_normalised":
            skipped = ["qc_metrics", "cell_filter", "doublets", "gene_filter", "normalize_total", "log1p"]
            note = (f"processed input: {source} holds non-negative non-integer values (log-normalised), "
                    f"so QC, doublet detection, filtering, normalisation and log1p are skipped")
            if source == "raw":
                note += "; X was scaled (negative values), the log-normalised raw.X is used"
        else:
            skipped = ["qc_metrics", "cell_filter", "doublets", "gene_filter", "normalize_total", "log1p",
                       "highly_variable_genes", "scale"]
            note = ("processed input: X holds negative values (scaled) and no log-normalised raw.X, so the chain "
                    "starts at PCA on X as given; marker ranking and scores are on scaled values")
        log.info("%s: %s", h5ad.name, note)

        qc_cols = ["total_counts", "n_genes_by_counts", "pct_counts_mt"]
        qc_before = None
        n_removed = {"low_genes": 0, "high_mito": 0, "doublets": 0}
        doublet_method = "skipped (processed input)"
        n_doublets = 0
        mean_qc = None
        if kind == "counts":
            adata.var["mt"] = adata.var_names.str.startswith(MITO_PREFIXES)
            sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
            qc_before = adata.obs[qc_cols].copy()
            low_genes = adata.obs["n_genes_by_counts"].to_numpy() < min_genes
            high_mito = ~low_genes & (adata.obs["pct_counts_mt"].to_numpy() > max_pct_mito)
            n_removed["low_genes"], n_removed["high_mito"] = int(low_genes.sum()), int(high_mito.sum())
            adata = adata[~(low_genes | high_mito)].copy()
            if adata.n_obs < 50:
                raise InputFormatError(f"only {adata.n_obs} cells pass QC (min_genes={min_genes}, "
                                       f"max_pct_mito={max_pct_mito})", path=h5ad)
            steps.done("qc_metrics_and_filter")

            batch_key = doublet_batch_key if doublet_batch_key and doublet_batch_key in adata.obs else None
            score, called, doublet_method = _doublet_scores(adata, seed=seed, batch_key=batch_key)
            adata.obs["doublet_score"] = score
            adata.obs["predicted_doublet"] = called
            n_doublets = int(called.sum())
            if remove_doublets and n_doublets:
                adata = adata[~called].copy()
                n_removed["doublets"] = n_doublets
            steps.done("doublets")

            sc.pp.filter_genes(adata, min_cells=min_cells)
            adata.layers["counts"] = adata.X.copy()
            sc.pp.normalize_total(adata, target_sum=1e4)
            sc.pp.log1p(adata)
            mean_qc = {"before": {c: float(qc_before[c].mean()) for c in qc_cols},
                       "after": {c: float(adata.obs[c].mean()) for c in qc_cols}}
            steps.done("normalize_log1p")

        if kind == "scaled":
            pca_input = adata.copy()
            pca_input.X = pca_input.X.toarray()
            n_hvg_used = 0
        else:
            n_hvg_used = int(min(n_hvg, adata.n_vars - 1))
            sc.pp.highly_variable_genes(adata, n_top_genes=n_hvg_used, flavor="seurat")
            # PCA on scaled HVGs in a side object, so X keeps every gene log-normalised for the integration.
            pca_input = adata[:, adata.var["highly_variable"].to_numpy()].copy()
            pca_input.X = pca_input.X.toarray()  # scaling centres the data: dense anyway
            sc.pp.scale(pca_input, max_value=10)
            steps.done("highly_variable_genes_scale")
        n_comps = int(min(n_pcs, pca_input.n_vars - 1, pca_input.n_obs - 1))
        sc.pp.pca(pca_input, n_comps=n_comps, random_state=seed, svd_solver="arpack")
        adata.obsm["X_pca"] = pca_input.obsm["X_pca"]
        adata.uns["pca"] = pca_input.uns["pca"]
        del pca_input
        steps.done("pca")

        transformer = compute_neighbors(adata, n_neighbors=n_neighbors, n_pcs=n_comps, seed=seed)
        steps.done("neighbors")
        sc.tl.leiden(adata, resolution=leiden_resolution, flavor="igraph", n_iterations=2, directed=False,
                     random_state=seed)
        steps.done("leiden")
        sc.tl.umap(adata, random_state=seed)
        steps.done("umap")
        rank_genes_groups_wilcoxon(adata, "leiden")
        steps.done("rank_genes_groups")
        means = annotate_by_markers(adata, marker_sets, groupby="leiden", seed=seed)
        cluster_to_type = {str(k): str(v) for k, v in means.idxmax(axis=1).items()}
        adata.uns["cell_type_annotation"] = {
            "cluster_to_cell_type": cluster_to_type,
            "mean_marker_scores": {str(c): {t: float(means.loc[c, t]) for t in means.columns} for c in means.index},
            "markers_used": {t: [g for g in marker_sets[t] if g in adata.var_names] for t in means.columns},
            "method": "scanpy.tl.score_genes per marker set; cluster label = set with the highest mean score",
        }
        steps.done("annotate")

        names = adata.uns["rank_genes_groups"]["names"]
        top_genes = {str(g): [str(x) for x in names[g][:5]] for g in names.dtype.names}
        counts_per_type = adata.obs["cell_type"].value_counts().sort_index()
        summary = {
            "input_kind": kind,
            "input_source": source,
            "skipped_steps": skipped,
            "input_note": note,
            "n_cells_in": int(n_cells_in),
            "n_cells_out": int(adata.n_obs),
            "n_genes_in": int(n_genes_in),
            "n_genes": int(adata.n_vars),
            "n_removed": n_removed,
            "n_hvg": int(adata.var["highly_variable"].sum()) if "highly_variable" in adata.var else 0,
            "n_pcs": n_comps,
            "n_clusters": int(adata.obs["leiden"].nunique()),
            "n_cell_types": int(adata.obs["cell_type"].nunique()),
            "cells_per_type": {str(k): int(v) for k, v in counts_per_type.items()},
            "cluster_to_cell_type": cluster_to_type,
            "mean_qc": mean_qc,
            "doublet_method": doublet_method,
            "n_doublets_called": n_doublets,
            "knn": transformer,
            "top_genes_per_cluster": top_genes,
            "markers_file": markers.name,
            "parameters": {"min_genes": min_genes, "min_cells": min_cells, "max_pct_mito": max_pct_mito,
                           "remove_doublets": remove_doublets, "doublet_batch_key": doublet_batch_key,
                           "n_hvg": n_hvg, "n_pcs": n_pcs, "n_neighbors": n_neighbors,
                           "leiden_resolution": leiden_resolution, "seed": seed},
        }
        if truth is not None:
            summary.update(_truth_agreement(adata, truth))

        plots.umap_png(adata, pngs["umap"])
        plots.marker_dotplot_png(adata, marker_sets, pngs["markers"])
        if qc_before is not None:
            plots.qc_violin_png(qc_before, pngs["qc"], max_pct_mito=max_pct_mito, min_genes=min_genes)
        else:
            plots.note_png(f"QC skipped: {note}", pngs["qc"])
        steps.done("plots")

        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        _write_h5ad_atomic(adata, out_h5ad)
        write_json_atomic(out_summary, summary)
        steps.done("write")
        return summary


def _write_h5ad_atomic(adata, path: str | Path) -> None:
    """h5ad written to a temporary name and renamed, so a failed write leaves no partial file."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)

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
