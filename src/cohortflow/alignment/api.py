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

import numpy as np

from cohortflow.alignment import kernels as K
from cohortflow.alignment.depth import DEFAULT_EXCLUDE_FLAGS, DepthAccumulator, DepthResult, read_regions
from cohortflow.alignment.flagstat import format_flagstat_text
from cohortflow.alignment.reader import open_alignment, record_batches, record_byte_batches
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
    "pct_20x", "pct_30x", "x_depth_ratio", "y_depth_ratio", "inferred_sex", "contamination",
    "contamination_sites", "pass", "fail_reasons",
]
SITE_COUNT_COLUMNS = ["chrom", "pos", "ref", "alt", "ref_count", "alt_count", "other_count"]

DEFAULT_THRESHOLDS = {"min_mapped_pct": 95.0, "max_duplicate_pct": 20.0, "min_mean_depth": 10.0,
                      "max_contamination": 0.03}

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
    "max_contamination": ("contamination", "max"),
}


def _scan(bam: Path, *, reference, regions, threads, per_base_fh, exclude_flags, min_mapq, count_overlaps,
          with_stats: bool, sites=None, sites_path=None):
    aln, header = open_alignment(bam, reference=reference, threads=threads,
                                 require_index=regions is not None or sites is not None)
    aln.close()
    if sites is not None and len(sites) and not set(sites.contig_names) & set(header.contig_names):
        raise InputFormatError(f"none of the sites' contigs ({', '.join(sites.contig_names[:3])}) is in the header of "
                               f"{Path(bam).name} ({', '.join(header.contig_names[:3])}): do the names follow the "
                               "same convention (chr1 vs 1)?", path=sites_path)
    region_set = read_regions(regions, header.contig_names, header.contig_lengths) if regions is not None else None
    depth = DepthAccumulator(header, path=bam, regions=region_set, per_base=per_base_fh,
                             exclude_flags=exclude_flags, min_mapq=min_mapq, count_overlaps=count_overlaps,
                             threads=threads, require_sorted=region_set is not None)
    stats = SamtoolsStatsAccumulator(header, path=bam) if with_stats else None
    counter = None
    if sites is not None:
        from cohortflow.alignment.sites import SiteCounter

        counter = SiteCounter(sites, header.contig_names, path=bam)
    if stats is None and counter is None:  # depth alone needs no decoded columns: record offsets do
        records = 0
        for buf, rec_off in record_byte_batches(bam, file_format=header.file_format, reference=reference,
                                                threads=threads):
            n = len(rec_off)
            depth.add_records(buf, rec_off, n, records + 1)
            records += n
        return header, None, depth.finish(), None
    for batch in record_batches(bam, file_format=header.file_format, reference=reference, threads=threads):
        if stats is not None:
            stats.add(batch)
        depth.add(batch)
        if counter is not None:
            counter.add(batch.buf, np.ascontiguousarray(batch.cols[:batch.n, K.K_REC_OFF]), batch.n)
    return (header, (stats.finish() if stats is not None else None), depth.finish(),
            counter.counts if counter is not None else None)


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
        _, _, result, _ = _scan(bam, reference=reference, regions=regions, threads=threads, per_base_fh=fh,
                                exclude_flags=exclude_flags, min_mapq=min_mapq, count_overlaps=count_overlaps,
                                with_stats=False)
        if fh is not None:
            fh.close()
    paths = _depth_outputs(prefix, result)
    if per_base:
        paths["per_base"] = prefix + ".per-base.bed.gz"
    return paths


def alignment_qc(bam: str | Path, *, out_prefix: str | Path, reference: str | Path | None = None,
                 regions: str | Path | None = None, sites: str | Path | None = None, sample: str | None = None,
                 threads: int = 1, thresholds: dict | None = None, per_base: bool = False,
                 write_empty_sites: bool = False) -> dict:
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
    sites
        VCF/BCF of common biallelic SNPs with allele frequencies (INFO/AF; see
        :func:`cohortflow.alignment.sites.read_sites`): base counts at them (MAPQ >= 20, base
        quality >= 20) go to ``{out_prefix}.sites.tsv.gz`` (individual-level: for the cohort's
        swap check, never for a report) and give the contamination estimate
        (:func:`cohortflow.alignment.contamination.estimate_contamination`, freemix). Needs an
        indexed, coordinate-sorted file.
    per_base
        Also write ``{out_prefix}.per-base.bed.gz`` (over the regions when given).
    write_empty_sites
        Without ``sites``, still write ``{out_prefix}.sites.tsv.gz`` (header only), so a workflow
        can declare it.

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
        site_set = None
        if sites is not None:
            from cohortflow.alignment.sites import read_sites

            site_set = read_sites(sites)
        header, st, dres, counts = _scan(bam, reference=reference, regions=regions, threads=threads,
                                         per_base_fh=fh, exclude_flags=DEFAULT_EXCLUDE_FLAGS, min_mapq=0,
                                         count_overlaps=False, with_stats=True, sites=site_set, sites_path=sites)
        if fh is not None:
            fh.close()
    if sample is None or str(sample) == "":
        sample = next((s for s in header.read_group_samples if s), None) or _stem(bam)
    row = qc_metrics(st, dres, sample=str(sample))
    if counts is not None:
        from cohortflow.alignment.contamination import estimate_contamination

        est = estimate_contamination(counts[:, 0], counts[:, 1], site_set.af)
        row["contamination"], row["contamination_sites"] = float(est["alpha"]), int(est["n_sites"])
    else:
        row["contamination"], row["contamination_sites"] = math.nan, 0
    row["pass"], row["fail_reasons"] = _apply_thresholds(row, limits)

    paths = {"stats": prefix + ".stats", "flagstat": prefix + ".flagstat", "metrics": prefix + ".metrics.tsv"}
    with atomic_open(paths["stats"]) as out:
        out.write(format_stats_text(st, source=bam.name))
    with atomic_open(paths["flagstat"]) as out:
        out.write(format_flagstat_text(st.flagstat))
    paths.update(_depth_outputs(prefix, dres))
    if per_base:
        paths["per_base"] = prefix + ".per-base.bed.gz"
    if counts is not None or write_empty_sites:
        paths["sites"] = prefix + ".sites.tsv.gz"
        _write_site_counts(paths["sites"], site_set, counts)
    with atomic_open(paths["metrics"]) as out:
        out.write(_metrics_tsv([row]))
    result = dict(row)
    result["paths"] = paths
    result["summary_numbers"] = {field: value for field, value, _ in summary_numbers(st)}
    result["sorted"] = dres.sorted
    return result


def _write_site_counts(path: str, sites, counts) -> None:
    import pandas as pd

    if sites is None:
        with atomic_open(path) as fh:
            fh.write("\t".join(SITE_COUNT_COLUMNS) + "\n")
        return
    letters = np.array(["", "A", "C", "", "G", "", "", "", "T"], dtype=object)
    table = pd.DataFrame({"chrom": sites.chrom, "pos": sites.pos + 1, "ref": letters[sites.ref],
                          "alt": letters[sites.alt], "ref_count": counts[:, 0], "alt_count": counts[:, 1],
                          "other_count": counts[:, 2]}, columns=SITE_COUNT_COLUMNS)
    with atomic_open(path) as fh:  # gzip with mtime 0: the same bytes every run
        fh.write(table.to_csv(sep="\t", index=False))


def read_site_counts(path: str | Path) -> pd.DataFrame:
    """A ``.sites.tsv.gz`` written by :func:`alignment_qc`."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", dtype={"chrom": str})
    except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputFormatError(f"cannot read site counts: {err}", path=path) from None
    if list(table.columns) != SITE_COUNT_COLUMNS:
        raise InputFormatError(f"expected columns {' '.join(SITE_COUNT_COLUMNS)}", path=path)
    return table


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


IDENTITY_COLUMNS = ["reported_sex", "sex_check", "genotype_sites", "self_concordance", "best_match",
                    "best_match_concordance", "identity_check"]
SUMMARY_COLUMNS = METRIC_COLUMNS[:-2] + IDENTITY_COLUMNS + ["pass", "fail_reasons"]


def summarize_alignment_qc(metrics_paths: list, *, out: str | Path, site_counts: list | None = None,
                           genotypes: str | Path | None = None, sample_info: str | Path | None = None,
                           identity_out: str | Path | None = None, min_sites: int = 20,
                           self_min: float = 0.8, match_min: float = 0.9) -> pd.DataFrame:
    """The cohort's alignment QC table: every sample's metrics row plus the cohort checks.

    * Sex check: ``inferred_sex`` against the sex in ``sample_info`` (a TSV with ``IID`` (or
      ``sample``) and ``sex`` columns: 1/M male, 2/F female, anything else unknown). ``sex_check``
      is ``ok``, ``mismatch`` (a failure), ``ambiguous`` (the reads do not say) or ``unknown``.
    * Identity (swap) check, with ``site_counts`` (each sample's ``.sites.tsv.gz``, in the order of
      ``metrics_paths``) and ``genotypes`` (a PLINK prefix of the cohort's genotype calls): the
      genotypes called from each BAM's reads are compared with every genotyped sample
      (:func:`cohortflow.alignment.contamination.swap_check`): ``identity_check`` ``ok``, ``swap``
      (the reads match another sample better: a failure), ``mismatch`` (they match nobody: a
      failure), ``no_genotypes`` or ``too_few_sites``. ``identity_out`` gets the per-BAM table.

    ``pass``/``fail_reasons`` join each sample's own threshold failures and the cohort checks.
    Columns are ``SUMMARY_COLUMNS``; rows sorted by sample. A duplicated sample name or a file with
    other columns is an InputFormatError. Returns the table.
    """
    import pandas as pd

    frames = []
    for path in metrics_paths:
        try:
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise InputFormatError(f"cannot read metrics table: {err}", path=path) from None
        if list(df.columns) != METRIC_COLUMNS:
            raise InputFormatError(f"expected columns {' '.join(METRIC_COLUMNS)}", path=path)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=METRIC_COLUMNS)
    dup = table["sample"][table["sample"].duplicated()]
    if len(dup):
        raise InputFormatError(f"sample {dup.iloc[0]!r} appears in more than one metrics file")

    reported = _reported_sex(sample_info) if sample_info is not None else {}
    table["reported_sex"] = [reported.get(s, "NA") for s in table["sample"]]
    table["sex_check"] = [_sex_check(i, r) for i, r in zip(table["inferred_sex"], table["reported_sex"])]

    for col, empty in (("genotype_sites", "0"), ("self_concordance", "NA"), ("best_match", ""),
                       ("best_match_concordance", "NA"), ("identity_check", "not_checked")):
        table[col] = empty
    if site_counts is not None and genotypes is not None:
        if len(site_counts) != len(metrics_paths):
            raise ConfigError("site_counts must list one file per metrics file, in the same order")
        identity = identity_check(list(table["sample"]), site_counts, genotypes, min_sites=min_sites,
                                  self_min=self_min, match_min=match_min)
        by_sample = identity.set_index("claimed_sample")
        table["genotype_sites"] = [str(int(by_sample.at[s, "self_sites"])) for s in table["sample"]]
        table["self_concordance"] = [_fmt(float(by_sample.at[s, "self_concordance"])) for s in table["sample"]]
        table["best_match"] = [str(by_sample.at[s, "best_other_sample"]) for s in table["sample"]]
        table["best_match_concordance"] = [_fmt(float(by_sample.at[s, "best_other_concordance"]))
                                           for s in table["sample"]]
        table["identity_check"] = [str(by_sample.at[s, "status"]) for s in table["sample"]]
        if identity_out is not None:
            with atomic_open(identity_out) as fh:
                fh.write(identity.to_csv(sep="\t", index=False, float_format="%.4f", na_rep="NA"))
    elif identity_out is not None:
        raise ConfigError("identity_out needs site_counts and genotypes")

    reasons, passed = [], []
    for _, row in table.iterrows():
        why = [r for r in str(row["fail_reasons"]).split(";") if r]
        if row["sex_check"] == "mismatch":
            why.append(f"sex reported {row['reported_sex']} inferred {row['inferred_sex']}")
        if row["identity_check"] == "swap":
            why.append(f"reads match sample {row['best_match']} (concordance {row['best_match_concordance']}) "
                       f"not {row['sample']} ({row['self_concordance']})")
        elif row["identity_check"] == "mismatch":
            why.append(f"reads match no genotyped sample (self concordance {row['self_concordance']})")
        reasons.append(";".join(why))
        passed.append("false" if why else "true")
    table["pass"], table["fail_reasons"] = passed, reasons
    table = table.sort_values("sample", kind="stable")[SUMMARY_COLUMNS]
    with atomic_open(out) as fh:
        fh.write(_metrics_tsv(table.to_dict("records"), preformatted=True, columns=SUMMARY_COLUMNS))
    return table.reset_index(drop=True)


def _reported_sex(path) -> dict[str, str]:
    import pandas as pd

    try:
        info = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputFormatError(f"cannot read sample information: {err}", path=path) from None
    id_col = next((c for c in ("IID", "sample", "#IID") if c in info.columns), None)
    if id_col is None or "sex" not in info.columns:
        raise InputFormatError("sample information needs an IID (or sample) column and a sex column", path=path)
    code = {"1": "M", "M": "M", "MALE": "M", "2": "F", "F": "F", "FEMALE": "F"}
    return {i: code.get(str(v).strip().upper(), "NA") for i, v in zip(info[id_col], info["sex"])}


def _sex_check(inferred: str, reported: str) -> str:
    if inferred == "ambiguous":
        return "ambiguous"
    if inferred not in ("M", "F") or reported not in ("M", "F"):
        return "unknown"
    return "ok" if inferred == reported else "mismatch"


def identity_check(samples: list[str], site_counts: list, genotypes: str | Path, *, min_sites: int = 20,
                   self_min: float = 0.8, match_min: float = 0.9, min_depth: int = 8) -> pd.DataFrame:
    """Each sample's BAM genotypes (from its ``.sites.tsv.gz``) against every genotyped sample of
    the PLINK fileset ``genotypes`` (sites matched on chrom, position and alleles, either order);
    returns :func:`cohortflow.alignment.contamination.swap_check`'s table."""
    import pandas as pd

    from cohortflow.alignment.contamination import concordance_rows, genotype_concordance, swap_check
    from cohortflow.io.plink import open_bed

    bed = open_bed(genotypes)
    bim = bed.bim
    key = bim["chrom"].astype(str) + ":" + bim["pos"].astype(str)
    index = pd.Series(np.arange(len(bim)), index=key.to_numpy())
    index = index[~index.index.duplicated(keep=False)]  # multi-allelic positions are ambiguous: skipped
    names = bed.fam["iid"].astype(str).tolist()
    rows = []
    cache: dict[tuple, np.ndarray] = {}
    for sample, path in zip(samples, site_counts):
        counts = read_site_counts(path)
        k = (counts["chrom"].astype(str) + ":" + counts["pos"].astype(str)).to_numpy()
        found = np.isin(k, index.index.to_numpy())
        counts, k = counts[found], k[found]
        var = index.loc[k].to_numpy()
        a1 = bim["a1"].astype(str).str.upper().to_numpy()[var]
        a2 = bim["a2"].astype(str).str.upper().to_numpy()[var]
        alt = counts["alt"].astype(str).to_numpy()
        ref = counts["ref"].astype(str).to_numpy()
        same = (alt == a1) & (ref == a2)
        flipped = (alt == a2) & (ref == a1)
        use = same | flipped
        var, same = var[use], same[use]
        ckey = tuple(var.tolist())
        if ckey not in cache:
            cache[ckey] = _genotypes_at(bed, var)
        geno = cache[ckey].copy()
        geno[~same] = np.where(geno[~same] >= 0, 2 - geno[~same], -1)  # dosage of the sites' alt allele
        sub = counts[use]
        result = genotype_concordance(sub["ref_count"].to_numpy(), sub["alt_count"].to_numpy(), geno,
                                      min_depth=min_depth)
        rows.append(concordance_rows(sample, sample, names, result))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["bam", "claimed_sample", "genotype_sample", "concordance", "n_compared"])
    return swap_check(table, min_sites=min_sites, self_min=self_min, match_min=match_min)


def _genotypes_at(bed, variants: np.ndarray) -> np.ndarray:
    """Genotype rows (A1 dosage, -1 missing; variants x samples, int8) of the given variants."""
    order = np.argsort(variants, kind="stable")
    out = np.empty((len(variants), bed.n_samples), dtype=np.int8)
    out[order] = bed.read_rows(variants[order])
    return out


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


def _metrics_tsv(rows: list[dict], *, preformatted: bool = False, columns: list[str] = METRIC_COLUMNS) -> str:
    lines = ["\t".join(columns)]
    for row in rows:
        lines.append("\t".join(str(row[c]) if preformatted else _fmt(row[c]) for c in columns))
    return "\n".join(lines) + "\n"
