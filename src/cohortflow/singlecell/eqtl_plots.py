"""Box plots of pseudobulk expression by genotype, one row per eQTL, one panel per cell type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.io.atomic import write_png_atomic

__all__ = ["eqtl_boxplots", "top_pairs"]

# A genotype group smaller than this is not drawn (a box of one or two donors shows their values).
MIN_GROUP = 3


def top_pairs(results: pd.DataFrame, *, fdr: float = 0.05, max_pairs: int = 4) -> list[tuple[str, str]]:
    """(variant, gene) pairs to show: those with a test at FDR < ``fdr`` by best p-value, else
    the single best-p pair; at most ``max_pairs``."""
    tested = results[results["p_value"].notna()]
    if tested.empty:
        return []
    best = tested.sort_values(["p_value", "cell_type", "variant_id", "gene"], kind="stable")
    sig = best[best["fdr"] < fdr]
    chosen = sig if len(sig) else best.head(1)
    return list(dict.fromkeys(zip(chosen["variant_id"], chosen["gene"])))[:max_pairs]


def eqtl_boxplots(results: pd.DataFrame, bulk, dosage: pd.DataFrame, *, out_png: str | Path, fdr: float = 0.05,
                  max_pairs: int = 4) -> list[dict]:
    """Write a PNG: for each pair of :func:`top_pairs` (rows), pseudobulk log1p CP10k of the gene
    by genotype (A2/A2, A1/A2, A1/A1) in each tested cell type (columns), with beta, p and FDR in
    the title (red when FDR < ``fdr``). Boxes only (no points per donor); groups of fewer than
    ``MIN_GROUP`` donors are left out. Returns the plotted pairs [{variant_id, gene}]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = top_pairs(results, fdr=fdr, max_pairs=max_pairs)
    types = sorted(results.loc[results["p_value"].notna(), "cell_type"].unique())
    if not pairs:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no eQTL test ran", ha="center", va="center")
        write_png_atomic(fig, out_png)
        plt.close(fig)
        return []
    fig, axes = plt.subplots(len(pairs), len(types), figsize=(2.3 * len(types) + 0.6, 2.6 * len(pairs)),
                             squeeze=False, sharey="row")
    obs = bulk.obs
    for r, (variant, gene) in enumerate(pairs):
        rows = results[(results["variant_id"] == variant) & (results["gene"] == gene)].set_index("cell_type")
        a1 = str(rows["effect_allele"].iloc[0])
        a2 = str(rows["other_allele"].iloc[0])
        labels = [f"{a2}/{a2}", f"{a1}/{a2}", f"{a1}/{a1}"]
        for c, cell_type in enumerate(types):
            ax = axes[r, c]
            if cell_type not in rows.index or not np.isfinite(rows.at[cell_type, "p_value"]):
                ax.set_title(f"{cell_type}\nnot tested", fontsize=8)
                ax.set_xticks([])
                continue
            sel = (obs["cell_type"] == cell_type).to_numpy() & obs["donor"].isin(dosage.columns).to_numpy()
            expr = np.asarray(bulk[sel, gene].X).ravel()
            dose = dosage.loc[variant, obs["donor"].to_numpy()[sel]].to_numpy()
            groups = [expr[dose == k] for k in (0, 1, 2)]
            shown = [k for k in range(3) if groups[k].size >= MIN_GROUP]
            if shown:
                ax.boxplot([groups[k] for k in shown], positions=shown, widths=0.6, showfliers=False)
            ax.set_xticks(range(3), [f"{labels[k]}\nn={groups[k].size}" if groups[k].size >= MIN_GROUP
                                     else f"{labels[k]}\nn<{MIN_GROUP}" for k in range(3)], fontsize=7)
            ax.set_xlim(-0.6, 2.6)
            row = rows.loc[cell_type]
            significant = row["fdr"] < fdr
            ax.set_title(f"{cell_type}\nbeta={row['beta']:.2f} p={row['p_value']:.1e} FDR={row['fdr']:.1e}",
                         fontsize=7, color="#c0392b" if significant else "black")
        axes[r, 0].set_ylabel(f"{gene}\nlog1p CP10k\n({variant})", fontsize=7)
    fig.suptitle("Pseudobulk expression by genotype (per donor and cell type)", fontsize=9)
    fig.tight_layout()
    write_png_atomic(fig, out_png)
    plt.close(fig)
    return [{"variant_id": v, "gene": g} for v, g in pairs]
