"""Plots of the variant stages (PNG, byte-stable, no sample IDs drawn)."""

from __future__ import annotations


import numpy as np

from cohortflow.io.atomic import write_png_atomic


def plot_pcs(pcs: np.ndarray, *, path, populations: np.ndarray | None = None,
             variance_explained: np.ndarray | None = None, dpi: int = 120) -> None:
    """PC1 vs PC2 and PC3 vs PC4 scatter (PC1 vs PC3 when only three PCs), coloured by
    population when given (legend shows population labels only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = pcs.shape[1]
    pairs = [(0, 1), (2, 3)] if k >= 4 else [(0, 1), (0, 2)] if k == 3 else [(0, 1)]
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


def _threshold_line(ax, x, label, *, vertical=True) -> None:
    (ax.axvline if vertical else ax.axhline)(x, color="#c0392b", linestyle="--", linewidth=1.2, label=label)


def plot_sample_qc(sample_qc, *, path, mind: float, female_max_f: float = 0.2, male_min_f: float = 0.8,
                   dpi: int = 120) -> None:
    """Per-sample QC figure from ``sample_qc.tsv`` columns: call rate (histogram, the --mind
    threshold drawn), heterozygosity F against call rate (mean +- 3 SD guide lines) and, when
    ``sex_f`` is present, chrX F by reported sex with the sex-check thresholds. Distributions
    only: no sample is labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_sex = "sex_f" in sample_qc.columns and np.isfinite(sample_qc["sex_f"].to_numpy(float)).any()
    fig, axes = plt.subplots(1, 3 if has_sex else 2, figsize=(15 if has_sex else 10, 4.2))
    call = sample_qc["call_rate"].to_numpy(float)
    ax = axes[0]
    ax.hist(call[np.isfinite(call)], bins=40, color="#3b6ea8")
    _threshold_line(ax, 1.0 - mind, f"--mind {mind:g} (call rate {1 - mind:g})")
    ax.set_xlabel("sample call rate")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8, frameon=False)
    ax = axes[1]
    het = sample_qc["het_f"].to_numpy(float)
    ok = np.isfinite(het) & np.isfinite(call)
    ax.scatter(call[ok], het[ok], s=6, alpha=0.6, color="#3b6ea8", linewidths=0)
    if ok.sum() > 2:
        mean, sd = het[ok].mean(), het[ok].std()
        for sign in (-1, 1):
            _threshold_line(ax, mean + sign * 3 * sd, "mean +- 3 SD" if sign < 0 else None, vertical=False)
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("sample call rate")
    ax.set_ylabel("heterozygosity F (autosomes)")
    if has_sex:
        ax = axes[2]
        sex_f = sample_qc["sex_f"].to_numpy(float)
        column = next((c for c in ("reported_sex", "sex") if c in sample_qc.columns), None)
        sex = sample_qc[column].to_numpy() if column else np.zeros(len(sex_f))
        bins = np.linspace(np.nanmin(sex_f) - 0.05, max(1.05, np.nanmax(sex_f) + 0.05), 40)
        for code, name, colour in ((1, "reported male", "#2c7fb8"), (2, "reported female", "#d95f0e"),
                                   (0, "sex unknown", "#7f7f7f")):
            sel = (sex == code) & np.isfinite(sex_f)
            if sel.any():
                ax.hist(sex_f[sel], bins=bins, alpha=0.6, color=colour, label=name)
        _threshold_line(ax, female_max_f, f"female if F < {female_max_f:g}")
        ax.axvline(male_min_f, color="#8e44ad", linestyle="--", linewidth=1.2, label=f"male if F > {male_min_f:g}")
        ax.set_xlabel("chrX inbreeding F")
        ax.set_ylabel("samples")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Sample QC")
    fig.tight_layout()
    write_png_atomic(fig, path, dpi=dpi)
    plt.close(fig)


def plot_variant_qc(variant_qc, *, path, geno: float, maf: float, hwe: float, dpi: int = 120) -> None:
    """Per-variant QC figure from ``variant_qc.tsv`` columns: call rate, minor allele frequency
    and -log10 HWE p histograms, each with its filter threshold drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    call = variant_qc["call_rate"].to_numpy(float)
    axes[0].hist(call[np.isfinite(call)], bins=50, color="#3b6ea8")
    _threshold_line(axes[0], 1.0 - geno, f"--geno {geno:g}")
    axes[0].set_xlabel("variant call rate")
    minor = variant_qc["maf"].to_numpy(float)
    axes[1].hist(minor[np.isfinite(minor)], bins=50, range=(0, 0.5), color="#3b6ea8")
    _threshold_line(axes[1], maf, f"--maf {maf:g}")
    axes[1].set_xlabel("minor allele frequency")
    p = variant_qc["hwe_p"].to_numpy(float)
    with np.errstate(divide="ignore"):
        score = -np.log10(p[np.isfinite(p) & (p > 0)])
    axes[2].hist(np.minimum(score, 50), bins=50, color="#3b6ea8")
    axes[2].set_yscale("log")
    if hwe > 0:
        _threshold_line(axes[2], -np.log10(hwe), f"--hwe {hwe:g}")
    axes[2].set_xlabel("-log10 HWE exact p (capped at 50)")
    for ax in axes:
        ax.set_ylabel("variants")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Variant QC")
    fig.tight_layout()
    write_png_atomic(fig, path, dpi=dpi)
    plt.close(fig)
