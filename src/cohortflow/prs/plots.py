"""Figures of the polygenic score evaluation (:mod:`cohortflow.prs.evaluate`).

Every figure is aggregate: histograms and hexagonal bins with fewer than ``min_cell_count``
individuals are not drawn, and no individual point is plotted. Matplotlib ``Figure`` objects
(no pyplot state), written by :func:`cohortflow.gwas.plots.save_figure` (PNG without date or
software metadata: the same data give the same bytes).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cohortflow.gwas.plots import save_figure

CASE_COLOUR = "#c0392b"
CONTROL_COLOUR = "#7fa7d1"
MAIN_COLOUR = "#1f4e79"
CHOSEN_COLOUR = "#d35400"
HIST_BINS = 30
MAX_COLUMNS = 3


def _grid(n_panels: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list]:
    n_panels = max(n_panels, 1)
    ncols = min(n_panels, MAX_COLUMNS)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def distribution_plot(path: str | Path, panels: list[dict], *, binary: bool, trait: str, min_cell_count: int) -> None:
    """Per method (``panels``: method, column, score, y on the test split): binary, the density
    of the standardised score in cases and in controls (bins with < min_cell_count of a class
    left out); quantitative, the trait against the standardised score in hexagonal bins (bins with
    < min_cell_count individuals left out) with the least-squares line. Both over the central 98%
    of the score (and trait), so no axis limit is one individual's value."""
    fig, axes = _grid(len(panels))
    if not panels:
        _empty(axes[0], "no score could be evaluated")
    for ax, panel in zip(axes, panels):
        s = np.asarray(panel["score"], float)
        z = (s - s.mean()) / s.std(ddof=1)
        y = np.asarray(panel["y"], float)
        # the central 98% only: axis limits at the extremes would show single individuals' values
        lo, hi = np.quantile(z, [0.01, 0.99])
        if binary:
            edges = np.linspace(lo, hi, HIST_BINS + 1)
            width = edges[1] - edges[0]
            for val, colour, label in ((0, CONTROL_COLOUR, "controls"), (1, CASE_COLOUR, "cases")):
                counts, _ = np.histogram(z[y == val], bins=edges)
                shown = np.where(counts >= min_cell_count, counts, 0)
                density = shown / max(int((y == val).sum()), 1) / width
                ax.stairs(density, edges, fill=True, alpha=0.45, color=colour, label=label)
                ax.stairs(density, edges, color=colour, linewidth=1)
            ax.set_ylabel("density")
            ax.legend(fontsize=8, frameon=False)
        else:
            y_lo, y_hi = np.quantile(y, [0.01, 0.99])
            inside = (z >= lo) & (z <= hi) & (y >= y_lo) & (y <= y_hi)
            grid = max(8, min(30, int(math.sqrt(len(z)) / 3)))  # cells big enough to hold min_cell_count
            ax.hexbin(z[inside], y[inside], gridsize=grid, mincnt=min_cell_count, cmap="Blues", linewidths=0.2,
                      extent=(lo, hi, y_lo, y_hi))
            slope, intercept = np.polyfit(z, y, 1)
            xs = np.array([lo, hi])
            ax.plot(xs, intercept + slope * xs, color=CHOSEN_COLOUR, linewidth=1.2)
            ax.set_ylabel(trait)
        ax.set_xlabel("score (SD units)")
        ax.set_title(f"{panel['method']} ({panel['column']})", fontsize=9)
    fig.suptitle(f"{trait}: scores in the test split" + (" by case status" if binary else ""), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def decile_plot(path: str | Path, panels: list[dict], *, binary: bool, trait: str, reference_decile: int) -> None:
    """Per method: the trait mean (quantitative) or the odds ratio against the reference decile
    (binary, log scale) by score decile in the test split, with bootstrap 95% intervals;
    suppressed deciles are not drawn."""
    fig, axes = _grid(len(panels))
    if not panels:
        _empty(axes[0], "no score could be evaluated")
    key = "odds_ratio" if binary else "mean"
    for ax, panel in zip(axes, panels):
        rows = panel["stats"][key]
        shown = np.asarray(panel["shown"], bool)
        x = np.arange(1, len(rows) + 1)
        val = np.array([r["value"] for r in rows], float)
        low = np.array([r["ci_low"] for r in rows], float)
        high = np.array([r["ci_high"] for r in rows], float)
        keep = shown & np.isfinite(val)
        with np.errstate(invalid="ignore"):
            err = np.vstack([val - np.where(np.isfinite(low), low, val),
                             np.where(np.isfinite(high), high, val) - val])
        ax.errorbar(x[keep], val[keep], yerr=err[:, keep], fmt="o-", color=MAIN_COLOUR, capsize=3, markersize=4)
        if binary:
            ax.set_yscale("log")
            ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_ylabel(f"odds ratio vs decile {reference_decile}")
        else:
            ax.set_ylabel(f"mean {trait}")
        ax.set_xticks(x)
        ax.set_xlabel("score decile (test split)")
        ax.set_title(f"{panel['method']} ({panel['column']})", fontsize=9)
    fig.suptitle(f"{trait} by polygenic score decile (95% bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _threshold_value(label: str) -> float | None:
    """The p-value threshold of a candidate label such as ``p<5e-08``, ``p<=0.01`` or ``0.001``."""
    m = re.fullmatch(r"(?:p\s*<=?\s*)?([0-9.]+(?:[eE][-+]?[0-9]+)?)", label.strip())
    if m is None:
        return None
    try:
        value = float(m.group(1))
    except ValueError:
        return None
    return value if value > 0 else None


def threshold_plot(path: str | Path, panels: list[dict], *, trait: str) -> None:
    """Per method with several candidates: the validation metric of each candidate (against the
    p-value threshold on a log axis when every label is one, else in column order), the chosen
    candidate marked. Without such a method, one panel saying so."""
    fig, axes = _grid(len(panels))
    if not panels:
        _empty(axes[0], "no method has several candidates:\nnothing was chosen on the validation split")
    for ax, panel in zip(axes, panels):
        labels = panel["labels"]
        values = np.array(panel["values"], float)
        thresholds = [_threshold_value(lab) for lab in labels]
        numeric = all(t is not None for t in thresholds)
        x = np.array(thresholds, float) if numeric else np.arange(len(labels), dtype=float)
        order = np.argsort(x, kind="stable")
        ok = np.isfinite(values[order])
        ax.plot(x[order][ok], values[order][ok], "o-", color=MAIN_COLOUR, markersize=4)
        chosen = panel["selected"]
        if chosen is not None:
            ax.plot([x[chosen]], [values[chosen]], "o", markersize=11, markerfacecolor="none",
                    markeredgecolor=CHOSEN_COLOUR, markeredgewidth=2, label=f"chosen: {labels[chosen]}")
            ax.legend(fontsize=8, frameon=False)
        if numeric:
            ax.set_xscale("log")
            ax.set_xlabel("p-value threshold")
        else:
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
            ax.set_xlabel("candidate")
        ax.set_ylabel(f"{panel['metric']} (validation split)")
        ax.set_title(panel["method"], fontsize=9)
    fig.suptitle(f"{trait}: candidates judged on the validation split", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
