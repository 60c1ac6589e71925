"""Figures of the report's alignment QC section, drawn at report time from per-sample aggregates.

Readers take the aggregate distributions the alignment QC writes (samtools-stats ``IS`` lines,
mosdepth ``dist`` files); plotters take plain arrays and labels and return PNG bytes. Labels are
whatever the caller passes (the report passes pseudonymised IDs); nothing here sees reads or
genotypes.

The PNGs are byte-stable: matplotlib's default style (not the user's matplotlibrc), the DejaVu Sans
font bundled with matplotlib, the Agg renderer, and no Software/date metadata.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cohortflow.errors import InputFormatError

PASS_COLOUR = "#3b6ea8"
FAIL_COLOUR = "#c0392b"
SEX_COLOURS = {"M": ("reported male", "#2c7fb8"), "F": ("reported female", "#d95f0e")}
UNKNOWN_SEX = ("sex not reported", "#8c8c8c")
MAX_LEGEND_SAMPLES = 10  # more samples than this: colour by pass/fail instead of one colour each
MAX_POINT_LABELS = 40  # more samples than this: only the sex-check mismatches are labelled
DPI = 110


# --------------------------------------------------------------------------------------------
# Readers


def read_insert_sizes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(insert size, pairs) from the ``IS`` lines of a samtools-stats file (``IS  size  pairs_total
    inward  outward  other``), sorted by size; empty arrays when the file has no IS lines."""
    sizes, pairs = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.startswith("IS\t"):
                continue
            fields = line.rstrip("\r\n").split("\t")
            try:
                size, count = int(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                raise InputFormatError("IS line needs an integer insert size and a pair count", path=path,
                                       record=f"line {line_no}") from None
            if size < 0 or not math.isfinite(count) or count < 0:
                raise InputFormatError("IS line with a negative insert size or pair count", path=path,
                                       record=f"line {line_no}")
            sizes.append(size)
            pairs.append(count)
    order = np.argsort(np.asarray(sizes, dtype=np.int64), kind="stable")
    return np.asarray(sizes, dtype=np.int64)[order], np.asarray(pairs, dtype=np.float64)[order]


def read_depth_distribution(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(depth, proportion of bases at >= depth) of the ``total`` lines of a mosdepth
    ``*.dist.txt`` file (``chrom  depth  proportion``), sorted by depth; empty when absent."""
    depths, props = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if not fields[0] or fields[0] != "total":
                continue
            try:
                depth, prop = int(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                raise InputFormatError("dist line needs a contig, an integer depth and a proportion", path=path,
                                       record=f"line {line_no}") from None
            if depth < 0 or not (0.0 <= prop <= 1.0):
                raise InputFormatError("dist line with a negative depth or a proportion outside 0-1", path=path,
                                       record=f"line {line_no}")
            depths.append(depth)
            props.append(prop)
    order = np.argsort(np.asarray(depths, dtype=np.int64), kind="stable")
    return np.asarray(depths, dtype=np.int64)[order], np.asarray(props, dtype=np.float64)[order]


def quantile_of_histogram(values: np.ndarray, counts: np.ndarray, q: float) -> float | None:
    """The smallest value at which the cumulative share of ``counts`` reaches ``q`` (None if empty)."""
    total = float(counts.sum())
    if total <= 0:
        return None
    cumulative = np.cumsum(counts) / total
    return float(values[min(int(np.searchsorted(cumulative, q - 1e-12)), len(values) - 1)])


# --------------------------------------------------------------------------------------------
# Plotters (each returns PNG bytes)


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


@contextlib.contextmanager
def _style():
    """matplotlib's default style and bundled font, whatever the user's matplotlibrc says."""
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(
        {"font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False}
    ):
        yield


def _line_styles(labels: Sequence[str], failed: Sequence[bool]) -> tuple[list[dict], list | None]:
    """Per-line keyword arguments and legend handles: one colour per sample (labelled) for a few
    samples; blue for passed and red for failed when there are many."""
    from matplotlib.lines import Line2D

    n = len(labels)
    if n <= MAX_LEGEND_SAMPLES:
        import matplotlib

        cmap = matplotlib.colormaps["tab10"]
        styles = [dict(color=cmap(i % 10), linewidth=1.6, linestyle="--" if bad else "-",
                       label=f"{label} (failed)" if bad else label)
                  for i, (label, bad) in enumerate(zip(labels, failed))]
        return styles, None
    styles = [dict(color=FAIL_COLOUR if bad else PASS_COLOUR, linewidth=1.3 if bad else 0.8,
                   alpha=0.9 if bad else 0.45, zorder=3 if bad else 2) for bad in failed]
    n_fail = sum(bool(b) for b in failed)
    handles = [Line2D([], [], color=PASS_COLOUR, label=f"passed ({n - n_fail})")]
    if n_fail:
        handles.append(Line2D([], [], color=FAIL_COLOUR, label=f"failed ({n_fail})"))
    return styles, handles


def _legend(ax, handles, n_lines: int) -> None:
    if handles is not None:
        ax.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    elif n_lines:
        ax.legend(fontsize=7.5, frameon=False, loc="best", ncol=2 if n_lines > 5 else 1)


def coverage_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray, bool]], *, targets: bool,
                  depth_marks: Sequence[int] = (10, 20, 30), min_share: float = 0.01) -> bytes:
    """Share of bases covered at >= each depth, one line per sample.

    ``curves``: (label, depth, proportion at >= depth, failed). The depth axis ends where every
    sample's share has fallen below ``min_share``.
    """
    labels = [c[0] for c in curves]
    styles, handles = _line_styles(labels, [c[3] for c in curves])
    x_max = 1
    for _, depth, prop, _ in curves:
        above = depth[prop >= min_share]
        if len(above):
            x_max = max(x_max, int(above.max()))
    x_max = max(5, math.ceil(x_max * 1.05))
    with _style():
        fig = _new_figure(6.4, 4.2)
        ax = fig.subplots()
        for mark in depth_marks:
            if mark <= x_max:
                ax.axvline(mark, color="#bbbbbb", linestyle=":", linewidth=1, zorder=1)
        for (_, depth, prop, _), style in zip(curves, styles):
            keep = depth <= x_max
            ax.plot(depth[keep], 100.0 * prop[keep], **style)
        ax.set_xlim(0, x_max)
        ax.set_ylim(0, 101)
        ax.set_xlabel("depth")
        ax.set_ylabel(f"% of {'target ' if targets else ''}bases at ≥ depth")
        ax.set_title("Coverage distribution", fontsize=11)
        _legend(ax, handles, len(curves))
        fig.tight_layout()
        return _png(fig)


def insert_size_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray, bool]], *, q: float = 0.99) -> bytes:
    """Insert-size distribution, one line per sample: pairs at each size as a share of the
    sample's pairs; the axis ends at the largest per-sample ``q`` quantile."""
    labels = [c[0] for c in curves]
    styles, handles = _line_styles(labels, [c[3] for c in curves])
    x_max = 0
    for _, sizes, pairs, _ in curves:
        top = quantile_of_histogram(sizes, pairs, q)
        if top is not None:
            x_max = max(x_max, int(top))
    x_max = max(x_max, 10)
    with _style():
        fig = _new_figure(6.4, 4.2)
        ax = fig.subplots()
        for (_, sizes, pairs, _), style in zip(curves, styles):
            total = float(pairs.sum())
            keep = sizes <= x_max
            ax.plot(sizes[keep], 100.0 * pairs[keep] / total, **style)
        ax.set_xlim(0, x_max)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("insert size (bp)")
        ax.set_ylabel("% of the sample's pairs")
        ax.set_title("Insert-size distribution", fontsize=11)
        _legend(ax, handles, len(curves))
        fig.tight_layout()
        return _png(fig)


def sex_check_plot(points: Sequence[tuple[str, float, float, str, bool]]) -> bytes:
    """X against Y depth (each relative to the autosomes), one point per sample coloured by
    reported sex; the expected XX (1, 0) and XY (0.5, 0.5) positions marked; samples whose
    reported sex the depths contradict are ringed in red.

    ``points``: (label, x ratio, y ratio, reported sex M/F/other, mismatch).
    """
    from matplotlib.lines import Line2D

    xs = np.array([p[1] for p in points], dtype=float)
    ys = np.array([p[2] for p in points], dtype=float)
    x_hi = max(1.25, float(np.nanmax(xs)) + 0.1) if len(xs) else 1.25
    y_hi = max(0.65, float(np.nanmax(ys)) + 0.08) if len(ys) else 0.65
    label_all = len(points) <= MAX_POINT_LABELS
    with _style():
        fig = _new_figure(6.0, 4.6)
        ax = fig.subplots()
        # the expected positions: round in screen space whatever the axis scales
        ax.scatter([1.0, 0.5], [0.0, 0.5], s=1400, facecolors="#eeeeee", edgecolors="#999999",
                   linestyles="--", linewidths=1, zorder=1)
        ax.annotate("expected XX", (1.0, 0.0), xytext=(-26, 0), textcoords="offset points", ha="right",
                    va="center", fontsize=8, color="#666666")
        ax.annotate("expected XY", (0.5, 0.5), xytext=(0, 26), textcoords="offset points", ha="center",
                    fontsize=8, color="#666666")
        handles = []
        for code, (name, colour) in [*SEX_COLOURS.items(), (None, UNKNOWN_SEX)]:
            sel = [i for i, p in enumerate(points)
                   if (p[3] == code if code is not None else p[3] not in SEX_COLOURS)]
            if not sel:
                continue
            ax.scatter(xs[sel], ys[sel], s=36, color=colour, edgecolors="white", linewidths=0.6, zorder=3)
            handles.append(Line2D([], [], marker="o", linestyle="", color=colour, label=name))
        bad = [i for i, p in enumerate(points) if p[4]]
        if bad:
            ax.scatter(xs[bad], ys[bad], s=150, facecolors="none", edgecolors=FAIL_COLOUR, linewidths=1.8, zorder=4)
            handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                                  markeredgecolor=FAIL_COLOUR, markeredgewidth=1.8, markersize=10,
                                  label="reported sex contradicted"))
        placed: list[tuple[float, float, int]] = []
        near_x, near_y = 0.06 * x_hi, 0.06 * y_hi
        for i, p in enumerate(points):
            if not (label_all or p[4]):
                continue
            # a label position its close neighbours have not taken (right-up, right-down, left-up, left-down)
            taken = {k for x, y, k in placed if abs(x - xs[i]) < near_x and abs(y - ys[i]) < near_y}
            k = next((k for k in range(4) if k not in taken), len(placed) % 4)
            placed.append((xs[i], ys[i], k))
            dx, dy = (7 if k in (0, 1) else -7), (4 if k in (0, 2) else -11)
            ax.annotate(p[0], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                        ha="left" if dx > 0 else "right", color=FAIL_COLOUR if p[4] else "#333333", zorder=5)
        ax.set_xlim(0, x_hi)
        ax.set_ylim(-0.06, y_hi)
        ax.set_xlabel("X depth / autosomal depth")
        ax.set_ylabel("Y depth / autosomal depth")
        ax.set_title("Sex check from X and Y depth", fontsize=11)
        ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper right")
        fig.tight_layout()
        return _png(fig)


def contamination_plot(bars: Sequence[tuple[str, float]], *, threshold: float | None) -> bytes:
    """Estimated contamination (%) per sample, in the given order; bars above ``threshold`` (a
    fraction) in red and the threshold drawn."""
    labels = [b[0] for b in bars]
    values = np.array([100.0 * b[1] for b in bars], dtype=float)
    limit = None if threshold is None else 100.0 * threshold
    colours = [FAIL_COLOUR if limit is not None and v > limit else PASS_COLOUR for v in values]
    with _style():
        fig = _new_figure(6.4, 4.2)
        ax = fig.subplots()
        positions = np.arange(len(values))
        ax.bar(positions, values, color=colours, width=0.8 if len(values) > 1 else 0.5)
        if limit is not None:
            ax.axhline(limit, color=FAIL_COLOUR, linestyle="--", linewidth=1.2,
                       label=f"maximum {limit:g}%")
            ax.legend(fontsize=8, frameon=False, loc="upper right")
        if len(labels) <= MAX_POINT_LABELS:
            ax.set_xticks(positions, labels, rotation=90 if len(labels) > 8 else 0, fontsize=7.5)
        else:
            ax.set_xticks([])
            ax.set_xlabel(f"samples ({len(labels)}, in table order)")
        top = max([float(values.max()) if len(values) else 0.0, limit or 0.0, 0.5])
        ax.set_ylim(0, top * 1.15)
        ax.set_ylabel("estimated contamination (%)")
        ax.set_title("Contamination", fontsize=11)
        fig.tight_layout()
        return _png(fig)
