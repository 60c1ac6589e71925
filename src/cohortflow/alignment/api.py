"""Alignment QC entry points called by the workflow scripts and the CLI.

``alignment_qc`` reads one BAM/CRAM/SAM once and writes, atomically:

* ``{out_prefix}.stats``: samtools-stats text (SN, IS, RL, FRL, LRL, COV sections in samtools'
  layout, plus a ``MAPQ`` section that samtools does not write), readable by MultiQC's samtools
  module; SN values equal those of ``samtools stats`` 1.16 with default options;
* ``{out_prefix}.flagstat``: exactly ``samtools flagstat`` default text;
* ``{out_prefix}.metrics.tsv``: one row, columns ``METRIC_COLUMNS``.

``summarize_alignment_qc`` concatenates metrics rows into one TSV sorted by sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cohortflow.alignment import kernels as K
from cohortflow.alignment.flagstat import format_flagstat_text
from cohortflow.alignment.stats import (
    AlignmentStats,
    collect_alignment_stats,
    depth_summary,
    format_stats_text,
    insert_size_summary,
    summary_numbers,
)
from cohortflow.errors import ConfigError, InputFormatError
from cohortflow.io.atomic import atomic_open

METRIC_COLUMNS = [
    "sample", "total_reads", "mapped_pct", "properly_paired_pct", "duplicate_pct", "mapq20_pct",
    "insert_size_mean", "insert_size_sd", "error_rate", "mean_depth", "pct_1x", "pct_10x",
    "pct_20x", "pct_30x", "pass", "fail_reasons",
]

DEFAULT_THRESHOLDS = {"min_mapped_pct": 95.0, "max_duplicate_pct": 20.0, "min_mean_depth": 10.0}

# threshold name -> (metric column, direction): "min" fails below, "max" fails above
_THRESHOLD_RULES = {
    "min_total_reads": ("total_reads", "min"),
    "min_mapped_pct": ("mapped_pct", "min"),
    "min_properly_paired_pct": ("properly_paired_pct", "min"),
    "max_duplicate_pct": ("duplicate_pct", "max"),
    "min_mapq20_pct": ("mapq20_pct", "min"),
    "max_error_rate": ("error_rate", "max"),
    "min_mean_depth": ("mean_depth", "min"),
    "min_pct_10x": ("pct_10x", "min"),
    "min_pct_20x": ("pct_20x", "min"),
    "min_pct_30x": ("pct_30x", "min"),
}


def alignment_qc(bam: str | Path, *, out_prefix: str | Path, reference: str | Path | None = None,
                 sample: str | None = None, threads: int = 1, thresholds: dict | None = None) -> dict:
    """QC one alignment file in a single pass; write ``.stats``, ``.flagstat``, ``.metrics.tsv``.

    Parameters
    ----------
    bam
        BAM, CRAM or SAM file (CRAM needs ``reference``).
    out_prefix
        Output path prefix; ``{out_prefix}.stats``, ``{out_prefix}.flagstat`` and
        ``{out_prefix}.metrics.tsv`` are written (atomically).
    reference
        FASTA the CRAM was written against (ignored for BAM/SAM statistics).
    sample
        Sample name; default the SM of the first @RG line, else the file name stem.
    threads
        htslib decompression threads for CRAM/SAM input (BAM is decoded by numba, one thread).
    thresholds
        Pass/fail limits, keys from ``_THRESHOLD_RULES`` (e.g. ``min_mapped_pct``,
        ``max_duplicate_pct``, ``min_mean_depth``); ``None`` uses ``DEFAULT_THRESHOLDS``, an empty
        dict disables all checks. A ``None`` value disables that check.

    Returns
    -------
    dict
        The metrics row (``METRIC_COLUMNS``) plus ``"paths"`` (stats, flagstat, metrics) and
        ``"summary_numbers"`` (the SN fields as text, as written).

    Metric definitions (all percentages 0-100):
    ``total_reads`` = SN raw total sequences (primary reads); ``mapped_pct`` = reads mapped /
    raw total; ``properly_paired_pct`` = SN percentage of properly paired reads;
    ``duplicate_pct`` = reads duplicated / raw total (as MultiQC); ``mapq20_pct`` = primary mapped
    reads with MAPQ >= 20 / reads mapped; ``insert_size_mean``/``_sd`` and ``error_rate`` = SN
    values at full precision; ``mean_depth`` and ``pct_{1,10,20,30}x`` are over the covered span
    of each contig with reads (first to last aligned base, zero-depth gaps inside it included),
    with samtools' COV depth (duplicates included, deletions excluded; see ``depth_summary``).
    """
    bam = Path(bam)
    limits = _check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    st = collect_alignment_stats(bam, reference=reference, threads=threads)
    if sample is None or str(sample) == "":
        sample = next((s for s in st.header.read_group_samples if s), None) or _stem(bam)
    row = qc_metrics(st, sample=str(sample))
    row["pass"], row["fail_reasons"] = _apply_thresholds(row, limits)

    prefix = str(out_prefix)
    paths = {"stats": prefix + ".stats", "flagstat": prefix + ".flagstat", "metrics": prefix + ".metrics.tsv"}
    with atomic_open(paths["stats"]) as fh:
        fh.write(format_stats_text(st, source=bam.name))
    with atomic_open(paths["flagstat"]) as fh:
        fh.write(format_flagstat_text(st.flagstat))
    with atomic_open(paths["metrics"]) as fh:
        fh.write(_metrics_tsv([row]))
    result = dict(row)
    result["paths"] = paths
    result["summary_numbers"] = {field: value for field, value, _ in summary_numbers(st)}
    return result


def qc_metrics(st: AlignmentStats, *, sample: str) -> dict:
    """The per-sample metrics row (without pass/fail) from collected statistics."""
    c = st.counters
    total = int(c[K.C_READS_1ST] + c[K.C_READS_2ND] + c[K.C_READS_OTHER])
    mapped = int(c[K.C_PAIRED_AND_MAPPED] + c[K.C_SINGLE_MAPPED])
    cig = int(c[K.C_BASES_MAPPED_CIGAR])
    _, _, isize_avg, isize_sd, *_ = insert_size_summary(st.isize_hist)
    depth = depth_summary(st)

    def pct(n, d):
        return 100.0 * n / d if d else 0.0

    return {
        "sample": sample,
        "total_reads": total,
        "mapped_pct": pct(mapped, total),
        "properly_paired_pct": pct(int(c[K.C_PROPERLY_PAIRED]), total),
        "duplicate_pct": pct(int(c[K.C_DUP]), total),
        "mapq20_pct": pct(int(c[K.C_MAPQ20]), mapped),
        "insert_size_mean": isize_avg,
        "insert_size_sd": isize_sd,
        "error_rate": int(c[K.C_MISMATCHES]) / cig if cig else 0.0,
        "mean_depth": depth["mean_depth"],
        "pct_1x": depth["pct_1x"],
        "pct_10x": depth["pct_10x"],
        "pct_20x": depth["pct_20x"],
        "pct_30x": depth["pct_30x"],
    }


def summarize_alignment_qc(metrics_paths: list, *, out: str | Path) -> None:
    """Concatenate per-sample ``.metrics.tsv`` rows into ``out``, sorted by sample.

    Columns are ``METRIC_COLUMNS``; a duplicated sample name or a file with other columns is an
    InputFormatError.
    """
    frames = []
    for path in metrics_paths:
        try:
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise InputFormatError(f"cannot read metrics table: {err}", path=path) from None
        if list(df.columns) != METRIC_COLUMNS:
            raise InputFormatError(f"expected columns {' '.join(METRIC_COLUMNS)}", path=path)
        frames.append(df)
    if frames:
        table = pd.concat(frames, ignore_index=True)
    else:
        table = pd.DataFrame(columns=METRIC_COLUMNS)
    dup = table["sample"][table["sample"].duplicated()]
    if len(dup):
        raise InputFormatError(f"sample {dup.iloc[0]!r} appears in more than one metrics file")
    table = table.sort_values("sample", kind="stable")
    # values stay text, so the summary repeats each per-sample row's bytes
    rows = table.to_dict("records")
    with atomic_open(out) as fh:
        fh.write(_metrics_tsv(rows, preformatted=True))


# ---------------------------------------------------------------------------------------- helpers


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".sam.gz", ".bam", ".cram", ".sam"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _check_thresholds(thresholds: dict) -> dict:
    if not isinstance(thresholds, dict):
        raise ConfigError(f"alignment QC thresholds must be a mapping, got {type(thresholds).__name__}")
    out = {}
    for key, value in thresholds.items():
        if key not in _THRESHOLD_RULES:
            raise ConfigError(f"unknown alignment QC threshold {key!r}; known: {', '.join(sorted(_THRESHOLD_RULES))}")
        if value is None:
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"alignment QC threshold {key} must be a number, got {value!r}") from None
    return out


def _apply_thresholds(row: dict, limits: dict) -> tuple[bool, str]:
    reasons = []
    for key in sorted(limits):
        column, direction = _THRESHOLD_RULES[key]
        value, limit = float(row[column]), limits[key]
        if (direction == "min" and value < limit) or (direction == "max" and value > limit):
            word = "<" if direction == "min" else ">"
            reasons.append(f"{column}={_fmt(value)}{word}{_fmt(limit)}")
    return (not reasons), ";".join(reasons)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NA"
        return "%.6g" % value
    return str(value)


def _metrics_tsv(rows: list[dict], *, preformatted: bool = False) -> str:
    lines = ["\t".join(METRIC_COLUMNS)]
    for row in rows:
        lines.append("\t".join(str(row[c]) if preformatted else _fmt(row[c]) for c in METRIC_COLUMNS))
    return "\n".join(lines) + "\n"
