"""Forest plots of meta-analysed variants (PNG, byte-stable)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cohortflow.gwas.plots import DPI
from cohortflow.io.atomic import write_png_atomic

Z95 = 1.959963984540054
COHORT_COLOUR = "#1f4e79"
FIXED_COLOUR = "#c0392b"
RANDOM_COLOUR = "#e67e22"


def _diamond(ax, centre: float, half_width: float, y: float, colour: str) -> None:
    ax.fill([centre - half_width, centre, centre + half_width, centre], [y, y + 0.3, y, y - 0.3],
            color=colour, zorder=3)


def forest_plot(panels: list[dict], *, names: list[str], out: str | Path, title: str, ncols: int = 3) -> int:
    """One forest plot per variant in ``panels``: each cohort's beta +- 1.96 SE (absent cohorts
    left out), then the fixed- and random-effects summaries as diamonds spanning their 95% CI.

    Each panel dict: ``label`` (panel title), ``beta`` and ``se`` (per cohort, NaN where absent,
    in ``names`` order), ``beta_fixed``, ``se_fixed``, ``beta_random``, ``se_random``, ``note``
    (a line under the title, e.g. p and I2). Without panels the figure says so. Returns the
    number of panels drawn."""
    k = len(names)
    if not panels:
        fig = Figure(figsize=(6, 2))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}\nno lead variant to show", ha="center", va="center")
        write_png_atomic(fig, out, dpi=DPI)
        return 0
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    # axes placed in inches (no tight_layout: it measured every text and took seconds)
    label_in = 0.25 + 0.065 * max(len(n) for n in [*names, "random"])
    axes_w, axes_h = 3.2, 0.3 * (k + 2) + 0.3
    cell_w, cell_h = label_in + axes_w + 0.25, axes_h + 1.05
    top_in = 0.45
    fig_w, fig_h = ncols * cell_w, nrows * cell_h + top_in
    fig = Figure(figsize=(fig_w, fig_h))
    axes = []
    for i in range(len(panels)):
        r, c = divmod(i, ncols)
        x0 = c * cell_w + label_in
        y0 = fig_h - top_in - (r + 1) * cell_h + 0.55
        axes.append(fig.add_axes((x0 / fig_w, y0 / fig_h, axes_w / fig_w, axes_h / fig_h)))
    labels = list(names) + ["fixed", "random"]
    ys = np.arange(len(labels))[::-1].astype(float)
    for ax, panel in zip(axes, panels):
        beta = np.asarray(panel["beta"], dtype=float)
        se = np.asarray(panel["se"], dtype=float)
        present = np.isfinite(beta) & np.isfinite(se)
        y_c = ys[:k]
        ax.errorbar(beta[present], y_c[present], xerr=Z95 * se[present], fmt="s", color=COHORT_COLOUR,
                    markersize=4, capsize=2, lw=1)
        _diamond(ax, panel["beta_fixed"], Z95 * panel["se_fixed"], ys[k], FIXED_COLOUR)
        _diamond(ax, panel["beta_random"], Z95 * panel["se_random"], ys[k + 1], RANDOM_COLOUR)
        ax.axvline(0.0, color="#888888", lw=0.8, ls="--", zorder=1)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_ylim(-0.8, len(labels) - 0.2)
        lows = np.concatenate([beta[present] - Z95 * se[present],
                               [panel["beta_fixed"] - Z95 * panel["se_fixed"],
                                panel["beta_random"] - Z95 * panel["se_random"], 0.0]])
        highs = np.concatenate([beta[present] + Z95 * se[present],
                                [panel["beta_fixed"] + Z95 * panel["se_fixed"],
                                 panel["beta_random"] + Z95 * panel["se_random"], 0.0]])
        lo, hi = float(np.min(lows)), float(np.max(highs))
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("beta (95% CI)", fontsize=8)
        ax.set_title(f"{panel['label']}\n{panel.get('note', '')}", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 0.15 / fig_h, va="top")
    write_png_atomic(fig, out, dpi=DPI)
    return len(panels)
