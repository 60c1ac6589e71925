"""Manhattan and QQ plots of GWAS summary statistics (PNG, byte-stable)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cohortflow.io.atomic import write_png_atomic

DPI = 120
# PNG metadata without software/version strings so the bytes depend only on the data


def chrom_sort_key(chrom: str) -> tuple:
    """Natural chromosome order: 1..22, then X, Y, XY, MT, then others alphabetically."""
    c = re.sub(r"^chr", "", str(chrom), flags=re.IGNORECASE)
    if c.isdigit():
        return (0, int(c), "")
    order = {"X": 23, "Y": 24, "XY": 25, "MT": 26, "M": 26}
    return (1, order.get(c.upper(), 99), c)


def save_figure(fig: Figure, path: str | Path) -> None:
    write_png_atomic(fig, path, dpi=DPI)


def manhattan_plot(sumstats: pd.DataFrame, *, leads: pd.DataFrame, out: str | Path, title: str,
                   p_threshold: float) -> None:
    """Manhattan plot: -log10 p by position, chromosomes in alternating colours, the significance
    threshold as a dashed line and lead loci labelled with their nearest gene."""
    df = sumstats[np.isfinite(sumstats["neg_log10_p"])]
    chroms = sorted(df["chromosome"].unique(), key=chrom_sort_key)
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    offset = 0.0
    ticks, labels, offsets = [], [], {}
    colours = ("#1f4e79", "#7fa7d1")
    for i, c in enumerate(chroms):
        sub = df[df["chromosome"] == c]
        pos = sub["base_pair_location"].to_numpy(float)
        offsets[c] = offset - pos.min()
        x = pos - pos.min() + offset
        ax.scatter(x, sub["neg_log10_p"].to_numpy(), s=3, c=colours[i % 2], linewidths=0, rasterized=True)
        ticks.append((x.min() + x.max()) / 2)
        labels.append(str(c))
        offset = x.max() + max(1.0, 0.02 * (x.max() - x.min() + 1))
    ax.axhline(-np.log10(p_threshold), color="#c0392b", linestyle="--", linewidth=1)
    for _, lead in leads.iterrows():
        if lead["chromosome"] in offsets and isinstance(lead.get("nearest_gene"), str) and lead["nearest_gene"]:
            x = lead["base_pair_location"] + offsets[lead["chromosome"]]
            y = lead["neg_log10_p"]
            ax.annotate(lead["nearest_gene"], (x, y), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=7, fontstyle="italic")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10}(p)$")
    ax.set_title(title)
    ymax = max(float(df["neg_log10_p"].max()) if len(df) else 1.0, -np.log10(p_threshold))
    ax.set_ylim(0, ymax * 1.1 + 0.5)
    fig.tight_layout()
    save_figure(fig, out)


def qq_plot(series: list[tuple[str, np.ndarray]], *, out: str | Path, title: str) -> None:
    """QQ plot of observed vs expected -log10 p; ``series`` = [(legend label, -log10 p array)].

    Two panels: all variants, and the bulk of the distribution (observed up to twice the largest
    expected value), where genome-wide inflation such as stratification shows; strong true
    signals would otherwise squash it into a corner.
    """
    fig = Figure(figsize=(9, 4.5))
    axes = fig.subplots(1, 2)
    points = []
    for (label, nl10), colour in zip(series, ("#1f4e79", "#e67e22", "#27ae60")):
        obs = np.sort(nl10[np.isfinite(nl10)])[::-1]
        n = len(obs)
        if n == 0:
            continue
        exp = -np.log10((np.arange(1, n + 1) - 0.5) / n)
        points.append((label, colour, exp, obs))
    max_exp = max((p[2].max() for p in points), default=1.0)
    max_obs = max((p[3].max() for p in points), default=1.0)
    for ax, ylim, panel in ((axes[0], max(max_obs, max_exp) * 1.05, "all variants"),
                            (axes[1], 2 * max_exp, "bulk of the distribution")):
        for label, colour, exp, obs in points:
            keep = obs <= ylim
            ax.scatter(exp[keep], obs[keep], s=4, c=colour, linewidths=0, label=label, rasterized=True)
        ax.plot([0, max_exp], [0, max_exp], color="grey", linewidth=1)
        ax.set_xlim(0, max_exp * 1.05)
        ax.set_ylim(0, ylim)
        ax.set_xlabel(r"expected $-\log_{10}(p)$")
        ax.set_ylabel(r"observed $-\log_{10}(p)$")
        ax.set_title(panel, fontsize=10)
        ax.legend(loc="upper left", fontsize=8, markerscale=3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)
