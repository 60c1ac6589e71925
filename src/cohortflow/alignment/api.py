"""Alignment QC entry points called by the workflow scripts and the CLI.

``alignment_qc`` reads one BAM/CRAM/SAM once and writes, atomically:

* ``{out_prefix}.stats``: samtools-stats text (SN, IS, RL, FRL, LRL, COV sections in samtools'
  layout, plus a ``MAPQ`` section that samtools does not write), readable by MultiQC's samtools
  module; SN values equal those of ``samtools stats`` 1.16 with default options;
* ``{out_prefix}.flagstat``: exactly ``samtools flagstat`` default text;
* ``{out_prefix}.mosdepth.summary.txt`` and ``.mosdepth.global.dist.txt`` (with regions also
  ``.mosdepth.region.dist.txt`` and ``.regions.bed.gz``): mosdepth 0.3.3's files byte for byte;
* ``{out_prefix}.coverage.tsv``: mean, median, % of bases >= 1/10/20/30x per contig or region;
* ``{out_prefix}.per-base.bed.gz`` when asked: runs of equal depth (whole contigs, or the regions);
* ``{out_prefix}.metrics.tsv``: one row, columns ``METRIC_COLUMNS``.

``depth`` is the depth part alone (mosdepth's job). ``summarize_alignment_qc`` concatenates
metrics rows into one TSV sorted by sample.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pandas as pd

from cohortflow.alignment import kernels as K
from cohortflow.alignment.depth import DEFAULT_EXCLUDE_FLAGS, DepthAccumulator, DepthResult, read_regions
from cohortflow.alignment.flagstat import format_flagstat_text
from cohortflow.alignment.reader import open_alignment, record_batches
from cohortflow.alignment.sex import infer_sex
from cohortflow.alignment.stats import (
    AlignmentStats,
    SamtoolsStatsAccumulator,
    format_stats_text,
    insert_size_summary,
    summary_numbers,
)
from cohortflow.errors import ConfigError, InputFormatError
from cohortflow.io.atomic import atomic_open, atomic_path
from cohortflow.io.bgzf import write_bgzf

METRIC_COLUMNS = [
    "sample", "total_reads", "mapped_pct", "properly_paired_pct", "duplicate_pct", "mapq20_pct",
    "insert_size_mean", "insert_size_sd", "error_rate", "mean_depth", "pct_1x", "pct_10x",
    "pct_20x", "pct_30x", "x_depth_ratio", "y_depth_ratio", "inferred_sex", "pass", "fail_reasons",
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
    "min_pct_1x": ("pct_1x", "min"),
    "min_pct_10x": ("pct_10x", "min"),
    "min_pct_20x": ("pct_20x", "min"),
    "min_pct_30x": ("pct_30x", "min"),
}


def _scan(bam: Path, *, reference, regions, threads, per_base_fh, exclude_flags, min_mapq, count_overlaps,
          with_stats: bool):
    aln, header = open_alignment(bam, reference=reference, threads=threads, require_index=regions is not None)
    aln.close()
    region_set = read_regions(regions, header.contig_names, header.contig_lengths) if regions is not None else None
    depth = DepthAccumulator(header, path=bam, regions=region_set, per_base=per_base_fh,
                             exclude_flags=exclude_flags, min_mapq=min_mapq, count_overlaps=count_overlaps,
                             threads=threads, require_sorted=region_set is not None)
    stats = SamtoolsStatsAccumulator(header, path=bam) if with_stats else None
    for batch in record_batches(bam, file_format=header.file_format, reference=reference, threads=threads):
        if stats is not None:
            stats.add(batch)
        depth.add(batch)
    return header, (stats.finish() if stats is not None else None), depth.finish()


def _depth_outputs(prefix: str, result: DepthResult) -> dict:
    paths = {"coverage": prefix + ".coverage.tsv", "mosdepth_summary": prefix + ".mosdepth.summary.txt",
             "mosdepth_global_dist": prefix + ".mosdepth.global.dist.txt"}
    with atomic_open(paths["coverage"]) as fh:
        fh.write(result.coverage_tsv())
    with atomic_open(paths["mosdepth_summary"]) as fh:
        fh.write(result.mosdepth_summary())
    with atomic_open(paths["mosdepth_global_dist"]) as fh:
        fh.write(result.mosdepth_dist())
    if result.regions is not None:
        paths["mosdepth_region_dist"] = prefix + ".mosdepth.region.dist.txt"
        paths["regions"] = prefix + ".regions.bed.gz"
        with atomic_open(paths["mosdepth_region_dist"]) as fh:
            fh.write(result.mosdepth_dist(regions=True))
        with atomic_path(paths["regions"]) as tmp, open(tmp, "wb") as fh:
            write_bgzf(fh, result.regions_bed().encode())
    return paths


def depth(bam: str | Path, *, out_prefix: str | Path, reference: str | Path | None = None,
          regions: str | Path | None = None, per_base: bool = True, threads: int = 1,
          exclude_flags: int = DEFAULT_EXCLUDE_FLAGS, min_mapq: int = 0, count_overlaps: bool = False) -> dict:
    """Per-base depth of one alignment file, mosdepth's outputs (and ``coverage.tsv``).

    Writes ``{out_prefix}.mosdepth.summary.txt``, ``.mosdepth.global.dist.txt``, ``.coverage.tsv``,
    ``.per-base.bed.gz`` (unless ``per_base=False``) and, with ``regions`` (a BED; the file must
    then be sorted and indexed), ``.regions.bed.gz`` and ``.mosdepth.region.dist.txt``. Defaults
    are mosdepth's: reads with flags 1796 skipped, no MAPQ filter, mate overlaps counted once
    (``count_overlaps=True``: ``samtools depth`` instead). Returns the paths written.
    """
    bam, prefix = Path(bam), str(out_prefix)
    with contextlib.ExitStack() as stack:
        fh = None
        if per_base:
            tmp = stack.enter_context(atomic_path(prefix + ".per-base.bed.gz"))
            fh = stack.enter_context(open(tmp, "wb"))
        _, _, result = _scan(bam, reference=reference, regions=regions, threads=threads, per_base_fh=fh,
                             exclude_flags=exclude_flags, min_mapq=min_mapq, count_overlaps=count_overlaps,
                             with_stats=False)
        if fh is not None:
            fh.close()
    paths = _depth_outputs(prefix, result)
    if per_base:
        paths["per_base"] = prefix + ".per-base.bed.gz"
    return paths


def alignment_qc(bam: str | Path, *, out_prefix: str | Path, reference: str | Path | None = None,
                 regions: str | Path | None = None, sample: str | None = None, threads: int = 1,
                 thresholds: dict | None = None, per_base: bool = False) -> dict:
    """QC one alignment file in a single pass; write the files listed in the module docstring.

    Parameters
    ----------
    bam
        BAM, CRAM or SAM file (CRAM needs ``reference``).
    out_prefix
        Output path prefix.
    reference
        FASTA the CRAM was written against (checked against the CRAM header; unused for BAM/SAM).
    regions
        BED of target regions: depth metrics, coverage rows and the sex check are taken over
        them (the file must then be coordinate-sorted and indexed). Without it, over every
        contig with reads.
    sample
        Sample name; default the SM of the first @RG line, else the file name stem.
    threads
        Threads for BGZF decompression (BAM) or htslib decoding (CRAM/SAM) and for compressing
        the per-base track; the record kernels run in the calling thread alongside.
    thresholds
        Pass/fail limits, keys from ``_THRESHOLD_RULES`` (e.g. ``min_mapped_pct``,
        ``max_duplicate_pct``, ``min_mean_depth``); ``None`` uses ``DEFAULT_THRESHOLDS``, an empty
        dict disables all checks. A ``None`` value disables that check.
    per_base
        Also write ``{out_prefix}.per-base.bed.gz`` (over the regions when given).

    Returns
    -------
    dict
        The metrics row (``METRIC_COLUMNS``) plus ``"paths"`` and ``"summary_numbers"`` (the SN
        fields as text, as written).

    Metric definitions (all percentages 0-100):
    ``total_reads`` = SN raw total sequences (primary reads); ``mapped_pct`` = reads mapped /
    raw total; ``properly_paired_pct`` = SN percentage of properly paired reads;
    ``duplicate_pct`` = reads duplicated / raw total (as MultiQC); ``mapq20_pct`` = primary mapped
    reads with MAPQ >= 20 / reads mapped; ``insert_size_mean``/``_sd`` and ``error_rate`` = SN
    values at full precision; ``mean_depth`` and ``pct_{1,10,20,30}x`` are mosdepth's depth
    (duplicates, secondary and QC-failed reads skipped, mate overlaps counted once, deletions not
    covered) over the regions, or over every contig with reads; ``x_depth_ratio``,
    ``y_depth_ratio`` and ``inferred_sex`` as :func:`cohortflow.alignment.sex.infer_sex`.
    """
    bam = Path(bam)
    limits = _check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    prefix = str(out_prefix)
    with contextlib.ExitStack() as stack:
        fh = None
        if per_base:
            tmp = stack.enter_context(atomic_path(prefix + ".per-base.bed.gz"))
            fh = stack.enter_context(open(tmp, "wb"))
        header, st, dres = _scan(bam, reference=reference, regions=regions, threads=threads, per_base_fh=fh,
                                 exclude_flags=DEFAULT_EXCLUDE_FLAGS, min_mapq=0, count_overlaps=False,
                                 with_stats=True)
        if fh is not None:
            fh.close()
    if sample is None or str(sample) == "":
        sample = next((s for s in header.read_group_samples if s), None) or _stem(bam)
    row = qc_metrics(st, dres, sample=str(sample))
    row["pass"], row["fail_reasons"] = _apply_thresholds(row, limits)

    paths = {"stats": prefix + ".stats", "flagstat": prefix + ".flagstat", "metrics": prefix + ".metrics.tsv"}
    with atomic_open(paths["stats"]) as out:
        out.write(format_stats_text(st, source=bam.name))
    with atomic_open(paths["flagstat"]) as out:
        out.write(format_flagstat_text(st.flagstat))
    paths.update(_depth_outputs(prefix, dres))
    if per_base:
        paths["per_base"] = prefix + ".per-base.bed.gz"
    with atomic_open(paths["metrics"]) as out:
        out.write(_metrics_tsv([row]))
    result = dict(row)
    result["paths"] = paths
    result["summary_numbers"] = {field: value for field, value, _ in summary_numbers(st)}
    result["sorted"] = dres.sorted
    return result


def qc_metrics(st: AlignmentStats, dres: DepthResult, *, sample: str) -> dict:
    """The per-sample metrics row (without pass/fail) from collected statistics."""
    c = st.counters
    total = int(c[K.C_READS_1ST] + c[K.C_READS_2ND] + c[K.C_READS_OTHER])
    mapped = int(c[K.C_PAIRED_AND_MAPPED] + c[K.C_SINGLE_MAPPED])
    cig = int(c[K.C_BASES_MAPPED_CIGAR])
    _, _, isize_avg, isize_sd, *_ = insert_size_summary(st.isize_hist)
    depth = dres.coverage_rows()[-1]  # the total (or total over regions)
    sex = infer_sex(dres.depth_by_contig()) if dres.sorted else \
        {"x_depth_ratio": math.nan, "y_depth_ratio": math.nan, "inferred_sex": "NA"}

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
        "mean_depth": depth["mean"],
        "pct_1x": depth["pct_1x"],
        "pct_10x": depth["pct_10x"],
        "pct_20x": depth["pct_20x"],
        "pct_30x": depth["pct_30x"],
        **sex,
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
        if math.isnan(value):  # not measured (e.g. depth of an unsorted file): not a failure
            continue
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
