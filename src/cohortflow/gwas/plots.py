"""Manhattan, QQ and regional association plots of GWAS summary statistics (PNG, byte-stable).

Manhattan and QQ plots draw millions of points in seconds by thinning the null mass: below a
-log10 p cut-off (:data:`THIN_BELOW`) only one point per occupied cell of a grid finer than the
image's pixels is drawn (the picture is the same); every point above it is drawn.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cohortflow.io.atomic import write_png_atomic

DPI = 120
# -log10 p below which points are thinned to one per grid cell; above it every point is drawn
THIN_BELOW = 3.0
# grid cells across the x axis and over [0, THIN_BELOW] on the y axis (finer than the pixels)
THIN_GRID = (2400, 300)

# LocusZoom r2 colours: [0, .2), [.2, .4), [.4, .6), [.6, .8), [.8, 1]; the lead; r2 unknown
R2_BINS = (0.2, 0.4, 0.6, 0.8)
R2_COLOURS = ("#357ebd", "#46b8da", "#5cb85c", "#eea236", "#d43f3a")
R2_LABELS = ("0.0–0.2", "0.2–0.4", "0.4–0.6", "0.6–0.8", "0.8–1.0")
LEAD_COLOUR = "#9632b8"
UNKNOWN_COLOUR = "#b0b0b0"


def chrom_sort_key(chrom: str) -> tuple:
    """Natural chromosome order: 1..22, then X, Y, XY, MT, then others alphabetically."""
    c = re.sub(r"^chr", "", str(chrom), flags=re.IGNORECASE)
    if c.isdigit():
        return (0, int(c), "")
    order = {"X": 23, "Y": 24, "XY": 25, "MT": 26, "M": 26}
    return (1, order.get(c.upper(), 99), c)


def save_figure(fig: Figure, path: str | Path) -> None:
    write_png_atomic(fig, path, dpi=DPI)


def thin_points(x: np.ndarray, y: np.ndarray, *, group: np.ndarray | None = None,
                thin_below: float = THIN_BELOW, grid: tuple[int, int] = THIN_GRID,
                x_range: tuple[float, float] | None = None) -> np.ndarray:
    """Indices of the points to draw: all with ``y >= thin_below`` (or non-finite x/y dropped),
    and below it the first point (in input order) of each occupied (group, x cell, y cell) of a
    ``grid`` over ``x_range`` x [0, thin_below]. Ascending, so drawing order is preserved."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    high = finite & (y >= thin_below)
    low = np.flatnonzero(finite & ~high)
    if low.size == 0:
        return np.flatnonzero(high)
    nx, ny = grid
    x0, x1 = x_range if x_range is not None else (float(x[finite].min()), float(x[finite].max()))
    span = x1 - x0 if x1 > x0 else 1.0
    xb = np.clip(((x[low] - x0) / span * nx).astype(np.int64), 0, nx - 1)
    yb = np.clip((np.maximum(y[low], 0.0) / thin_below * ny).astype(np.int64), 0, ny - 1)
    cell = xb * ny + yb
    if group is not None:
        cell = cell + np.asarray(group, dtype=np.int64)[low] * (nx * ny)
    # first point of each cell, without sorting all points (ufunc.at is unbuffered: exact minimum)
    none = np.iinfo(np.int64).max
    seen = np.full(int(cell.max()) + 1, none, dtype=np.int64)
    np.minimum.at(seen, cell, low)
    keep_low = seen[seen != none]
    keep = np.concatenate([keep_low, np.flatnonzero(high)])
    keep.sort()
    return keep


def manhattan_plot(sumstats: pd.DataFrame, *, leads: pd.DataFrame, out: str | Path, title: str,
                   p_threshold: float, thin_below: float = THIN_BELOW) -> dict:
    """Manhattan plot: -log10 p by position, chromosomes in alternating colours, the significance
    threshold as a dashed line and lead loci labelled with their nearest gene.

    Points below ``thin_below`` are thinned (see :func:`thin_points`); returns
    {"n_points": finite points, "drawn": positional indices (into ``sumstats``) of the points drawn}.
    """
    nl = sumstats["neg_log10_p"].to_numpy(float)
    pos_all = sumstats["base_pair_location"].to_numpy(float)
    codes, uniques = pd.factorize(sumstats["chromosome"].astype(str), sort=False)
    finite = np.isfinite(nl) & (codes >= 0)
    chroms = sorted(uniques, key=chrom_sort_key)
    rank_of = np.empty(len(uniques), dtype=np.int64)
    for r, c in enumerate(chroms):
        rank_of[list(uniques).index(c)] = r
    chrom_rank = np.where(codes >= 0, rank_of[np.maximum(codes, 0)], -1)
    # per-chromosome x offsets from the min/max position of each chromosome
    n_chrom = len(chroms)
    pmin = np.full(n_chrom, np.inf)
    pmax = np.full(n_chrom, -np.inf)
    np.minimum.at(pmin, chrom_rank[finite], pos_all[finite])
    np.maximum.at(pmax, chrom_rank[finite], pos_all[finite])
    offset = np.zeros(n_chrom)
    ticks, labels, offsets = [], [], {}
    cursor = 0.0
    for r, c in enumerate(chroms):
        if not np.isfinite(pmin[r]):
            continue
        offset[r] = cursor - pmin[r]
        offsets[c] = offset[r]
        width = pmax[r] - pmin[r]
        ticks.append(cursor + width / 2)
        labels.append(str(c))
        cursor += width + max(1.0, 0.02 * (width + 1))
    x = np.where(finite, pos_all + offset[np.maximum(chrom_rank, 0)], np.nan)
    y = np.where(finite, nl, np.nan)
    ymax = max(float(np.nanmax(y)) if finite.any() else 1.0, -np.log10(p_threshold))
    ytop = ymax * 1.1 + 0.5
    # about one grid cell per pixel of the axes (~1100 x 350 px at this size and DPI)
    ny = int(np.clip(np.ceil(thin_below / ytop * 350), 8, THIN_GRID[1]))
    drawn = thin_points(x, y, group=chrom_rank % 2, thin_below=thin_below, grid=(1100, ny))

    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    colours = np.array(["#1f4e79", "#7fa7d1"])
    ax.scatter(x[drawn], y[drawn], s=3, c=colours[chrom_rank[drawn] % 2], linewidths=0, rasterized=True)
    ax.axhline(-np.log10(p_threshold), color="#c0392b", linestyle="--", linewidth=1)
    for _, lead in leads.iterrows():
        chrom = str(lead["chromosome"])
        if chrom in offsets and isinstance(lead.get("nearest_gene"), str) and lead["nearest_gene"]:
            ax.annotate(lead["nearest_gene"], (lead["base_pair_location"] + offsets[chrom], lead["neg_log10_p"]),
                        xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7, fontstyle="italic")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10}(p)$")
    ax.set_title(title)
    ax.set_ylim(0, ytop)
    fig.tight_layout()
    save_figure(fig, out)
    return {"n_points": int(finite.sum()), "drawn": drawn}


def qq_points(nl10: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed) -log10 p, observed sorted descending; expected -log10((i - 0.5)/n)."""
    nl10 = np.asarray(nl10, dtype=float)
    obs = np.sort(nl10[np.isfinite(nl10)])[::-1]
    n = len(obs)
    exp = -np.log10((np.arange(1, n + 1) - 0.5) / n) if n else np.empty(0)
    return exp, obs


def qq_plot(series: list[tuple[str, np.ndarray]], *, out: str | Path, title: str,
            thin_below: float = THIN_BELOW) -> dict:
    """QQ plot of observed vs expected -log10 p; ``series`` = [(legend label, -log10 p array)].

    Two panels: all variants, and the bulk of the distribution (observed up to twice the largest
    expected value), where genome-wide inflation such as stratification shows; strong true
    signals would otherwise squash it into a corner. Points with observed and expected below
    ``thin_below`` are thinned. Returns {label: number of points drawn} per series.
    """
    fig = Figure(figsize=(9, 4.5))
    axes = fig.subplots(1, 2)
    points = []
    for (label, nl10), colour in zip(series, ("#1f4e79", "#e67e22", "#27ae60")):
        exp, obs = qq_points(nl10)
        if len(obs) == 0:
            continue
        # the dense part is where both coordinates are small: thin on max(exp, obs)
        keep = thin_points(exp, np.maximum(obs, np.minimum(exp, thin_below)), thin_below=thin_below,
                           x_range=(0.0, float(exp[0])))
        points.append((label, colour, exp, obs, keep))
    max_exp = max((p[2][0] for p in points), default=1.0)
    max_obs = max((p[3][0] for p in points), default=1.0)
    for ax, ylim, panel in ((axes[0], max(max_obs, max_exp) * 1.05, "all variants"),
                            (axes[1], 2 * max_exp, "bulk of the distribution")):
        for label, colour, exp, obs, keep in points:
            sel = keep[obs[keep] <= ylim]
            ax.scatter(exp[sel], obs[sel], s=4, c=colour, linewidths=0, label=label, rasterized=True)
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
    return {label: int(len(keep)) for label, _c, _e, _o, keep in points}


def r2_colour_index(r2: np.ndarray) -> np.ndarray:
    """LocusZoom bin of each r2: 0..4 for [0,.2), [.2,.4), [.4,.6), [.6,.8), [.8,1]; -1 if unknown."""
    r2 = np.asarray(r2, dtype=float)
    idx = np.digitize(np.nan_to_num(r2, nan=0.0), R2_BINS)
    return np.where(np.isfinite(r2), idx, -1)


def _gene_rows(genes: pd.DataFrame, gap: float) -> list[int]:
    """Greedy packing of genes (sorted by start) into rows so labelled genes do not overlap."""
    row_end: list[float] = []
    rows = []
    for start, end in zip(genes["start"], genes["end"]):
        for r, last in enumerate(row_end):
            if start > last + gap:
                row_end[r] = end
                rows.append(r)
                break
        else:
            row_end.append(end)
            rows.append(len(row_end) - 1)
    return rows


def regional_plot(points: pd.DataFrame, *, lead_variant_id: str, chromosome: str, start: int, end: int,
                  out: str | Path, title: str, genes: pd.DataFrame | None = None,
                  p_threshold: float | None = None) -> dict:
    """LocusZoom-style regional association plot.

    ``points``: variant_id, base_pair_location, neg_log10_p, r2 (with the lead; NaN where unknown)
    of the variants in [start, end] on ``chromosome``. Points are coloured by r2 bin, the lead is
    a purple diamond, unknown r2 grey. ``genes`` (chrom, start, end, gene_name, strand), when
    given, are drawn in a track underneath. Returns {"n_points", "n_r2_known"}.
    """
    pts = points[np.isfinite(points["neg_log10_p"].to_numpy(float))]
    pos = pts["base_pair_location"].to_numpy(float) / 1e6
    y = pts["neg_log10_p"].to_numpy(float)
    r2 = pts["r2"].to_numpy(float)
    is_lead = (pts["variant_id"].astype(str) == str(lead_variant_id)).to_numpy()
    cls = r2_colour_index(r2)

    region_genes = None
    if genes is not None and len(genes):
        g = genes[(genes["chrom"].astype(str).str.replace(r"^chr", "", regex=True, flags=re.IGNORECASE)
                   == re.sub(r"^chr", "", str(chromosome), flags=re.IGNORECASE))
                  & (genes["end"] >= start) & (genes["start"] <= end)]
        region_genes = g.sort_values(["start", "end", "gene_name"], kind="stable")
    n_rows = 0
    if region_genes is not None and len(region_genes):
        rows = _gene_rows(region_genes, gap=0.08 * (end - start))
        n_rows = max(rows) + 1
    fig = Figure(figsize=(8, 4.6 + (0.3 * min(n_rows, 8) if n_rows else 0)))
    if n_rows:
        ax, gax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 0.6 + 0.35 * min(n_rows, 8)]})
    else:
        ax, gax = fig.add_subplot(), None
    order = np.argsort(cls, kind="stable")  # higher r2 drawn on top
    order = order[~is_lead[order]]
    colours = np.array(R2_COLOURS + (UNKNOWN_COLOUR,))
    ax.scatter(pos[order], y[order], s=16, c=colours[cls[order]], edgecolors="#333333", linewidths=0.3,
               rasterized=True)
    if is_lead.any():
        ax.scatter(pos[is_lead], y[is_lead], s=70, marker="D", c=LEAD_COLOUR, edgecolors="black",
                   linewidths=0.6, zorder=3)
    if p_threshold is not None:
        ax.axhline(-np.log10(p_threshold), color="#c0392b", linestyle="--", linewidth=0.8)
    handles = [Line2D([], [], marker="D", linestyle="", color=LEAD_COLOUR, markeredgecolor="black",
                      label="lead")]
    handles += [Line2D([], [], marker="o", linestyle="", color=c, markeredgecolor="#333333", label=lab)
                for c, lab in zip(R2_COLOURS[::-1], R2_LABELS[::-1])]
    if (cls < 0).any():
        handles.append(Line2D([], [], marker="o", linestyle="", color=UNKNOWN_COLOUR, label="r² unknown"))
    ax.legend(handles=handles, title="r²", fontsize=7, title_fontsize=8, loc="upper right", framealpha=0.9)
    ymax = max(float(y.max()) if len(y) else 1.0, -np.log10(p_threshold) if p_threshold else 0.0)
    ax.set_ylim(0, ymax * 1.12 + 0.5)
    ax.set_xlim(start / 1e6, end / 1e6)
    ax.set_ylabel(r"$-\log_{10}(p)$")
    ax.set_title(title, fontsize=10)
    if gax is not None:
        rows = _gene_rows(region_genes, gap=0.08 * (end - start))
        for (gstart, gend, name, strand), row in zip(
                region_genes[["start", "end", "gene_name", "strand"]].itertuples(index=False), rows):
            if row >= 8:
                continue  # a dense region shows its first eight rows of genes
            yy = -row
            gax.plot([gstart / 1e6, gend / 1e6], [yy, yy], color="#1f4e79", linewidth=2.5, solid_capstyle="butt")
            arrow = "→" if strand == "+" else ("←" if strand == "-" else "")
            mid = (max(gstart, start) + min(gend, end)) / 2e6
            gax.text(mid, yy - 0.28, f"{name} {arrow}".strip(), ha="center", va="top", fontsize=7, fontstyle="italic")
        gax.set_ylim(-min(n_rows, 8) + 0.2, 0.6)
        gax.set_yticks([])
        for side in ("left", "right", "top"):
            gax.spines[side].set_visible(False)
        gax.set_xlabel(f"chromosome {chromosome} position (Mb)")
    else:
        ax.set_xlabel(f"chromosome {chromosome} position (Mb)")
    fig.tight_layout()
    save_figure(fig, out)
    return {"n_points": int(len(pts)), "n_r2_known": int(np.isfinite(r2).sum())}
