"""Plots of the genetics integration stage (PNG, byte-stable: Agg backend, no metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.io.atomic import write_png_atomic

_DPI = 120


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height))


def _save(plt, fig, path: str | Path) -> None:
    write_png_atomic(fig, path, dpi=_DPI)
    plt.close(fig)


def plot_celltype_ranking(ranking: pd.DataFrame, path: str | Path, *, title: str = "",
                          umap: np.ndarray | None = None, norm_score: np.ndarray | None = None) -> None:
    """Horizontal bars of each cell type's association statistic (95 % quantile of normalised
    scores), rank 1 at the top; bars with Monte-Carlo p < 0.05 are filled dark, and each is
    labelled with its MC p. With ``umap`` (cells x 2) and ``norm_score`` (per cell), a second
    panel shows the UMAP coloured by the normalised disease score (diverging, centred at 0,
    clipped at +-3; highest scores drawn last so they are not hidden)."""
    n = len(ranking)
    with_umap = umap is not None and norm_score is not None and len(umap) == len(norm_score) > 0
    plt, fig = _figure(12.0 if with_umap else 6.5, max(2.5 if not with_umap else 4.5, 0.45 * n + 1.2))
    ax = fig.add_subplot(1, 2 if with_umap else 1, 1)
    y = np.arange(n)[::-1]
    sig = ranking["mc_p"].to_numpy() < 0.05
    ax.barh(y, ranking["assoc_stat"].to_numpy(), color=np.where(sig, "#b2182b", "#bbbbbb"))
    ax.set_yticks(y)
    ax.set_yticklabels([f"{c} (n={k})" for c, k in zip(ranking["cell_type"], ranking["n_cells"])])
    for yi, stat, p in zip(y, ranking["assoc_stat"], ranking["mc_p"]):
        ax.text(stat, yi, f"  p={p:.3g}", va="center", ha="left" if stat >= 0 else "right", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("association statistic (95% quantile of normalised disease score)")
    ax.set_title(title, fontsize=10)
    lo, hi = ax.get_xlim()
    # room for the p labels on both sides (a negative bar's label sits left of its end)
    left_room = 0.25 * (hi - lo) if (ranking["assoc_stat"].to_numpy() < 0).any() else 0.0
    ax.set_xlim(lo - left_room, hi + 0.25 * (hi - lo))
    if with_umap:
        um = fig.add_subplot(1, 2, 2)
        score = np.clip(np.nan_to_num(np.asarray(norm_score, dtype=float)), -3.0, 3.0)
        order = np.argsort(score, kind="stable")
        points = um.scatter(umap[order, 0], umap[order, 1], c=score[order], cmap="RdBu_r", vmin=-3, vmax=3,
                            s=max(0.5, min(6.0, 3000.0 / len(score))), linewidths=0, rasterized=True)
        fig.colorbar(points, ax=um, shrink=0.8, label="normalised disease score")
        um.set_xticks([])
        um.set_yticks([])
        um.set_xlabel("UMAP1")
        um.set_ylabel("UMAP2")
        um.set_title("cells by disease score", fontsize=10)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_spatial_scores(spots: pd.DataFrame, path: str | Path, *, title: str = "") -> None:
    """Map of the spots at (x, y) coloured by normalised disease score (diverging, centred at 0,
    clipped to the 1-99 % range)."""
    plt, fig = _figure(6.0, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    score = spots["score"].to_numpy(dtype=float)
    lim = float(np.nanpercentile(np.abs(score), 99)) or 1.0
    n = len(spots)
    size = float(np.clip(20000.0 / max(n, 1), 2.0, 60.0))
    art = ax.scatter(spots["x"], spots["y"], c=score, cmap="RdBu_r", vmin=-lim, vmax=lim, s=size,
                     linewidths=0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(art, ax=ax, shrink=0.8, label="normalised disease score")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(plt, fig, path)
