"""Plots of the variant stages (PNG, byte-stable, no sample IDs drawn)."""

from __future__ import annotations


import numpy as np

from cohortflow.io.atomic import write_png_atomic


def plot_pcs(pcs: np.ndarray, *, path, populations: np.ndarray | None = None,
             variance_explained: np.ndarray | None = None, dpi: int = 120) -> None:
    """PC1 vs PC2 and PC1 vs PC3 scatter, coloured by population when given (legend shows
    population labels only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(0, 1), (0, 2)] if pcs.shape[1] >= 3 else [(0, 1)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 5), squeeze=False)
    labels = None if populations is None else np.asarray(populations, dtype=object)
    for ax, (i, j) in zip(axes[0], pairs):
        if labels is None:
            ax.scatter(pcs[:, i], pcs[:, j], s=6, alpha=0.7, color="#3b6ea8", linewidths=0)
        else:
            names = sorted({str(x) for x in labels})
            # tab10's colours are the most distinct; tab20 (paired shades) only when needed
            cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
            for k, pop in enumerate(names):
                sel = labels.astype(str) == pop
                ax.scatter(pcs[sel, i], pcs[sel, j], s=6, alpha=0.7, color=cmap(k % cmap.N), label=pop,
                           linewidths=0)
        def axis_label(k):
            if variance_explained is None:
                return f"PC{k + 1}"
            return f"PC{k + 1} ({100 * variance_explained[k]:.1f}%)"
        ax.set_xlabel(axis_label(i))
        ax.set_ylabel(axis_label(j))
    if labels is not None:
        axes[0][-1].legend(markerscale=2.5, fontsize=7, loc="best", frameon=False)
    fig.suptitle("Genotype PCA")
    fig.tight_layout()
    write_png_atomic(fig, path, dpi=dpi)
    plt.close(fig)
