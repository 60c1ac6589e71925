"""PNG figures of the single-cell and spatial stages (matplotlib, byte-stable output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cohortflow.io.atomic import write_png_atomic

__all__ = ["umap_png", "marker_dotplot_png", "qc_violin_png", "note_png", "spatial_maps_png", "save_png"]

_DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path) -> None:
    """Save atomically, without the Software/date metadata that would change the bytes."""
    plt = _pyplot()
    write_png_atomic(fig, path, dpi=_DPI)
    plt.close(fig)


def _palette(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _scatter_categorical(ax, xy: np.ndarray, labels: pd.Series, *, title: str, size: float) -> None:
    cats = list(labels.cat.categories) if hasattr(labels, "cat") else sorted(labels.unique())
    colours = _palette(len(cats))
    codes = pd.Categorical(labels, categories=cats).codes
    for i, cat in enumerate(cats):
        sel = codes == i
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colours[i], label=f"{cat} ({int(sel.sum())})",
                   linewidths=0, rasterized=True)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=3, frameon=False)


def umap_png(adata, path: str | Path) -> None:
    """UMAP coloured by ``obs['cell_type']`` and by ``obs['leiden']``."""
    plt = _pyplot()
    xy = adata.obsm["X_umap"]
    size = max(1.0, 30000.0 / max(adata.n_obs, 1) ** 1.1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    _scatter_categorical(axes[0], xy, adata.obs["cell_type"], title="cell type", size=size)
    _scatter_categorical(axes[1], xy, adata.obs["leiden"], title="Leiden cluster", size=size)
    for ax in axes:
        ax.set_xlabel("UMAP1")
        ax.set_ylabel("UMAP2")
    fig.tight_layout()
    save_png(fig, path)


def marker_dotplot_png(adata, markers: dict[str, list[str]], path: str | Path, *, groupby: str = "cell_type",
                       max_per_type: int = 5) -> None:
    """Dot plot: dot size = fraction of cells expressing, colour = mean log-normalised expression."""
    plt = _pyplot()
    genes: list[str] = []
    for t, gs in markers.items():
        genes += [g for g in gs if g in adata.var_names and g not in genes][:max_per_type]
    groups = list(adata.obs[groupby].cat.categories)
    if not genes or not groups:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no marker genes in the data", ha="center", va="center")
        ax.axis("off")
        save_png(fig, path)
        return
    x = adata[:, genes].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    codes = adata.obs[groupby].cat.codes.to_numpy()
    mean = np.vstack([x[codes == i].mean(axis=0) if (codes == i).any() else np.zeros(len(genes))
                      for i in range(len(groups))])
    frac = np.vstack([(x[codes == i] > 0).mean(axis=0) if (codes == i).any() else np.zeros(len(genes))
                      for i in range(len(groups))])
    scaled = mean / np.maximum(mean.max(axis=0, keepdims=True), 1e-12)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(genes) + 2.5), 0.4 * len(groups) + 2))
    gx, gy = np.meshgrid(np.arange(len(genes)), np.arange(len(groups)))
    sc_ = ax.scatter(gx.ravel(), gy.ravel(), s=(frac.ravel() * 120) + 1, c=scaled.ravel(), cmap="Reds",
                     vmin=0, vmax=1, edgecolors="grey", linewidths=0.3)
    ax.set_xticks(np.arange(len(genes)), genes, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(groups)), groups, fontsize=8)
    ax.set_xlim(-0.7, len(genes) - 0.3)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    fig.colorbar(sc_, ax=ax, fraction=0.03, pad=0.01, label="mean expression (scaled per gene)")
    ax.set_title("marker genes (dot size: fraction of cells expressing)")
    fig.tight_layout()
    save_png(fig, path)


def qc_violin_png(qc: pd.DataFrame, path: str | Path, *, max_pct_mito: float | None = None,
                  min_genes: int | None = None) -> None:
    """QC before filtering: violins of ``n_genes_by_counts``, ``total_counts`` and ``pct_counts_mt``
    with the thresholds (dashed), and UMIs vs genes per cell coloured by % mitochondrial."""
    plt = _pyplot()
    cols = [("n_genes_by_counts", "genes per cell", min_genes), ("total_counts", "UMIs per cell", None),
            ("pct_counts_mt", "% mitochondrial", max_pct_mito)]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    # at most 20,000 jittered points per violin (evenly spaced cells): the figure, not the data, sets the cost
    shown = np.unique(np.linspace(0, len(qc) - 1, num=min(len(qc), 20_000)).astype(np.int64))
    for ax, (col, label, thr) in zip(axes, cols):
        vals = qc[col].to_numpy(dtype=float)
        if np.ptp(vals) > 0:
            ax.violinplot(vals, showmedians=True)
        ax.scatter(1 + (shown % 97 - 48) / 400.0, vals[shown], s=0.5, color="black", alpha=0.3, rasterized=True)
        if thr is not None:
            ax.axhline(thr, color="red", lw=1, ls="--")
        ax.set_title(label)
        ax.set_xticks([])
    ax = axes[3]
    sc_ = ax.scatter(qc["total_counts"].to_numpy()[shown], qc["n_genes_by_counts"].to_numpy()[shown],
                     c=qc["pct_counts_mt"].to_numpy()[shown], s=2, cmap="viridis", linewidths=0, rasterized=True)
    if min_genes is not None:
        ax.axhline(min_genes, color="red", lw=1, ls="--")
    fig.colorbar(sc_, ax=ax, fraction=0.05, pad=0.01, label="% mitochondrial")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("UMIs per cell")
    ax.set_ylabel("genes per cell")
    fig.suptitle(f"QC before filtering ({len(qc)} cells)")
    fig.tight_layout()
    save_png(fig, path)


def note_png(text: str, path: str | Path) -> None:
    """A small figure holding only a note (a stage's figure that does not apply to this input)."""
    import textwrap

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 2))
    ax.text(0.5, 0.5, textwrap.fill(text, 100), ha="center", va="center", fontsize=9)
    ax.axis("off")
    save_png(fig, path)


def spatial_maps_png(coords: np.ndarray, panels: list[tuple[str, np.ndarray]], path: str | Path, *,
                     categorical: dict[str, pd.Series] | None = None) -> None:
    """Spot maps: one panel per (title, values) pair plus one per categorical obs column."""
    plt = _pyplot()
    categorical = categorical or {}
    n = len(panels) + len(categorical)
    ncol = min(3, max(n, 1))
    nrow = int(np.ceil(max(n, 1) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 4.2 * nrow), squeeze=False)
    size = max(2.0, 0.8 * (300.0 / np.sqrt(max(len(coords), 1))) ** 2)
    k = 0
    for title, values in panels:
        ax = axes.flat[k]
        k += 1
        im = ax.scatter(coords[:, 0], coords[:, 1], c=values, s=size, cmap="viridis", linewidths=0, rasterized=True)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title, fontsize=9)
    for title, labels in categorical.items():
        ax = axes.flat[k]
        k += 1
        _scatter_categorical(ax, coords, labels.astype("category"), title=title, size=size)
    for ax in axes.flat:
        ax.set_aspect("equal")
        ax.invert_yaxis()  # image convention: y grows downwards, as in Visium pixel coordinates
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)
