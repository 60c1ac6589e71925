"""samtools-stats compatible statistics of one BAM/CRAM/SAM file, in a single pass.

The reader (:mod:`cohortflow.alignment.reader`) decodes records of any container into int64
columns (``kernels.K_*``); the numba kernel ``accumulate_read_stats`` folds them into counters
(:class:`SamtoolsStatsAccumulator`).

The definitions follow samtools 1.16 ``stats`` with default options (no filtering flags,
``--insert-size 8000``, ``--most-inserts 0.99``, ``--coverage 1,1000,1``, no ``--remove-overlaps``):
secondary alignments count only in "non-primary alignments"; supplementary alignments count in
"supplementary alignments", "reads duplicated", "bases duplicated", "mismatches", "bases mapped
(cigar)", the insert-size histogram and coverage, but not in read counts, lengths or qualities.
Coverage (COV) is collected from mapped non-secondary reads over their M/=/X operations while
the file is coordinate-sorted, as samtools does.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from cohortflow.alignment import kernels as K
from cohortflow.alignment.reader import AlignmentHeader, RecordBatch, open_alignment, record_batches
from cohortflow.alignment.sections import BaseSections
from cohortflow.errors import InputFormatError


@dataclasses.dataclass
class AlignmentStats:
    """Accumulated samtools-stats / flagstat numbers of one file (see ``kernels`` for layouts)."""

    header: AlignmentHeader
    counters: np.ndarray
    flagstat: np.ndarray
    read_lengths: np.ndarray
    mapq_hist: np.ndarray
    isize_hist: np.ndarray
    cov_hist: np.ndarray
    span_min: np.ndarray
    span_max: np.ndarray
    sections: BaseSections | None = None  # per-cycle, GC and indel sections (FFQ ... LTC, ID, IC)

    def counter(self, index: int) -> int:
        return int(self.counters[index])


# ---------------------------------------------------------------------------------- accumulation


class SamtoolsStatsAccumulator:
    """Folds record batches (file order) into samtools-stats and flagstat counters."""

    def __init__(self, header: AlignmentHeader, *, path: str | Path):
        self.header = header
        self.path = Path(path)
        n_ref = len(header.contig_names)
        self.n_ref = n_ref
        self.counters = np.zeros(K.C_N, dtype=np.int64)
        self.counters[K.C_IS_SORTED] = 1
        self.counters[K.C_LAST_TID] = -1
        self.counters[K.C_LAST_POS] = -1
        self.counters[K.C_COV_TID] = -1
        self.flagstat = np.zeros((K.FS_N, 2), dtype=np.int64)
        self.read_lengths = np.zeros((3, 1024), dtype=np.int64)
        self.mapq_hist = np.zeros(256, dtype=np.int64)
        self.isize_hist = np.zeros((3, K.ISIZE_MAX + 1), dtype=np.int64)
        self.cov_window = np.zeros(1 << 16, dtype=np.int32)
        self.cov_hist = np.zeros(K.COV_MAX + 2, dtype=np.int64)
        self.span_min = np.full(max(n_ref, 1), -1, dtype=np.int64)
        self.span_max = np.full(max(n_ref, 1), -1, dtype=np.int64)
        self.sections = BaseSections.new()

    def add(self, batch: RecordBatch) -> None:
        cols, n, bs, be = batch.cols, batch.n, batch.block_start, batch.block_end
        self.sections.add(batch.buf, np.ascontiguousarray(cols[:n, K.K_REC_OFF]), n, path=self.path)
        _check_chunk(cols, n, self.n_ref, self.path, batch.first_record)
        longest = int((cols[:n, K.K_LSEQ] + cols[:n, K.K_HCLIP]).max())
        if longest >= self.read_lengths.shape[1]:
            grown = np.zeros((3, 2 * longest + 1), dtype=np.int64)
            grown[:, : self.read_lengths.shape[1]] = self.read_lengths
            self.read_lengths = grown
        start = 0
        while start < n:
            done = K.accumulate_read_stats(cols[start:n], n - start, bs, be,
                                           int(cols[start - 1, K.K_BLOCK_END]) if start else 0,
                                           self.counters, self.flagstat, self.read_lengths, self.mapq_hist,
                                           self.isize_hist, self.cov_window, self.cov_hist, self.span_min,
                                           self.span_max)
            start += done
            if start < n:  # a read's aligned blocks reach past the coverage window: grow it
                self.cov_window = K.regrow_window(self.cov_window, self.counters, self.cov_window.shape[0] * 4)

    def finish(self) -> "AlignmentStats":
        K.flush_coverage(self.cov_window, self.counters, self.cov_hist)
        return AlignmentStats(self.header, self.counters, self.flagstat, self.read_lengths, self.mapq_hist,
                              self.isize_hist, self.cov_hist, self.span_min, self.span_max, self.sections)


def collect_alignment_stats(path: str | Path, *, reference: str | Path | None = None,
                            threads: int = 1) -> AlignmentStats:
    """Read ``path`` once and return its samtools-stats and flagstat accumulators."""
    path = Path(path)
    aln, header = open_alignment(path, reference=reference, threads=threads)
    aln.close()
    acc = SamtoolsStatsAccumulator(header, path=path)
    for batch in record_batches(path, file_format=header.file_format, reference=reference, threads=threads):
        acc.add(batch)
    return acc.finish()


def _check_chunk(cols, n, n_ref, path, first_record):
    tids = cols[:n, K.K_TID]
    bad = np.flatnonzero((tids < -1) | (tids >= n_ref))
    if bad.size:
        raise InputFormatError(f"reference id {int(tids[bad[0]])} not in the header ({n_ref} contigs)", path=path,
                               record=first_record + int(bad[0]))
    mapped = (cols[:n, K.K_FLAG] & K.F_UNMAP) == 0
    bad = np.flatnonzero(mapped & ((tids < 0) | (cols[:n, K.K_NCIGAR] == 0)))
    if bad.size:
        raise InputFormatError("mapped read without reference or CIGAR", path=path, record=first_record + int(bad[0]))


# ------------------------------------------------------------------------------------- reporting


def _f32(x) -> np.float32:
    return np.float32(x)


def insert_size_summary(isize_hist: np.ndarray, *, main_bulk: float = 0.99):
    """samtools' insert-size figures from the per-read histogram (pairs counted twice).

    Returns (per-pair histogram (3, n) after halving with truncation as samtools does, number of
    rows to print (``ibulk``), average, standard deviation, inward, outward, other pair counts).
    """
    pairs = isize_hist // 2
    totals = pairs.sum(axis=0)
    n_inward, n_outward, n_other = (int(x) for x in pairs.sum(axis=1))
    n_isize = int(totals.sum())
    ibulk = 0
    bulk = 0.0
    avg = 0.0
    for isize in range(totals.shape[0]):
        num = int(totals[isize])
        if num > 0:
            ibulk = isize + 1
        bulk += num
        avg += isize * num
        if n_isize and bulk / n_isize > main_bulk:
            ibulk = isize + 1
            n_isize = int(bulk)
            break
    denom = n_isize if n_isize else 1
    avg /= denom
    sd = 0.0
    for isize in range(1, ibulk):
        sd += int(totals[isize]) * (isize - avg) * (isize - avg) / denom
    return pairs, ibulk, avg, math.sqrt(sd), n_inward, n_outward, n_other


def summary_numbers(st: AlignmentStats) -> list[tuple[str, str, str]]:
    """The SN section as (field, value text, trailing comment) in samtools' order and format."""
    c = st.counters
    n1, n2, nother = int(c[K.C_READS_1ST]), int(c[K.C_READS_2ND]), int(c[K.C_READS_OTHER])
    seqs = n1 + n2 + nother
    _, _, isize_avg, isize_sd, n_in, n_out, n_oth = insert_size_summary(st.isize_hist)
    cig = int(c[K.C_BASES_MAPPED_CIGAR])
    err = float(_f32(int(c[K.C_MISMATCHES])) / _f32(cig)) if cig else 0.0
    total_len = int(c[K.C_TOTAL_LEN])
    avg_len = float(total_len // seqs) if seqs else 0.0  # samtools divides the integers
    avg_1 = float(_f32(int(c[K.C_TOTAL_LEN_1ST])) / _f32(n1)) if n1 else 0.0
    avg_2 = float(_f32(int(c[K.C_TOTAL_LEN_2ND])) / _f32(n2)) if n2 else 0.0
    avg_q = int(c[K.C_SUM_QUAL]) / total_len if total_len else 0.0
    pct_pp = float(_f32(100 * int(c[K.C_PROPERLY_PAIRED])) / _f32(seqs)) if seqs else 0.0
    ignores = "# ignores clipping"

    def i(key):
        return str(int(c[key]))

    return [
        ("raw total sequences", str(seqs), "# excluding supplementary and secondary reads"),
        ("filtered sequences", "0", ""),
        ("sequences", str(seqs), ""),
        ("is sorted", "1" if c[K.C_IS_SORTED] else "0", ""),
        ("1st fragments", str(n1), ""),
        ("last fragments", str(n2), ""),
        ("reads mapped", str(int(c[K.C_PAIRED_AND_MAPPED] + c[K.C_SINGLE_MAPPED])), ""),
        ("reads mapped and paired", i(K.C_PAIRED_AND_MAPPED), "# paired-end technology bit set + both mates mapped"),
        ("reads unmapped", i(K.C_UNMAPPED), ""),
        ("reads properly paired", i(K.C_PROPERLY_PAIRED), "# proper-pair bit set"),
        ("reads paired", i(K.C_PAIRED_TECH), "# paired-end technology bit set"),
        ("reads duplicated", i(K.C_DUP), "# PCR or optical duplicate bit set"),
        ("reads MQ0", i(K.C_MQ0), "# mapped and MQ=0"),
        ("reads QC failed", i(K.C_QCFAIL), ""),
        ("non-primary alignments", i(K.C_SECONDARY), ""),
        ("supplementary alignments", i(K.C_SUPPLEMENTARY), ""),
        ("total length", str(total_len), ignores),
        ("total first fragment length", i(K.C_TOTAL_LEN_1ST), ignores),
        ("total last fragment length", i(K.C_TOTAL_LEN_2ND), ignores),
        ("bases mapped", i(K.C_BASES_MAPPED), ignores),
        ("bases mapped (cigar)", str(cig), "# more accurate"),
        ("bases trimmed", "0", ""),
        ("bases duplicated", i(K.C_TOTAL_LEN_DUP), ""),
        ("mismatches", i(K.C_MISMATCHES), "# from NM fields"),
        ("error rate", "%e" % err, "# mismatches / bases mapped (cigar)"),
        ("average length", "%.0f" % avg_len, ""),
        ("average first fragment length", "%.0f" % avg_1, ""),
        ("average last fragment length", "%.0f" % avg_2, ""),
        ("maximum length", i(K.C_MAX_LEN), ""),
        ("maximum first fragment length", i(K.C_MAX_LEN_1ST), ""),
        ("maximum last fragment length", i(K.C_MAX_LEN_2ND), ""),
        ("average quality", "%.1f" % avg_q, ""),
        ("insert size average", "%.1f" % isize_avg, ""),
        ("insert size standard deviation", "%.1f" % isize_sd, ""),
        ("inward oriented pairs", str(n_in), ""),
        ("outward oriented pairs", str(n_out), ""),
        ("pairs with other orientation", str(n_oth), ""),
        ("pairs on different chromosomes", str(int(c[K.C_ANOMALOUS]) // 2), ""),
        ("percentage of properly paired reads (%)", "%.1f" % pct_pp, ""),
    ]


def format_stats_text(st: AlignmentStats, *, source: str) -> str:
    """samtools-stats text: header comments, SN, FFQ, LFQ, GCF, GCL, GCC, GCT, FBC, FTC, LBC, LTC,
    IS, RL, FRL, LRL, ID, IC, COV and (cohortflow) MAPQ.

    ``source`` is written in the header comment instead of samtools' command line, so the bytes
    do not depend on where the file lives.
    """
    out: list[str] = [
        # MultiQC recognises samtools-stats files by this sentence, so it is kept word for word
        "# This file was produced by samtools stats compatible code (cohortflow alignment QC, "
        "samtools 1.16 definitions) and can be plotted using plot-bamstats\n",
        "# This file contains statistics for all reads.\n",
        f"# The command line was:  stats {source}\n",
        "# Summary Numbers. Use `grep ^SN | cut -f 2-` to extract this part.\n",
    ]
    for field, value, comment in summary_numbers(st):
        out.append(f"SN\t{field}:\t{value}" + (f"\t{comment}" if comment else "") + "\n")
    cycles_text, indels_text = st.sections.format_text() if st.sections is not None else ("", "")
    out.append(cycles_text)  # FFQ ... LTC sit between SN and IS in samtools' order

    pairs, ibulk, *_ = insert_size_summary(st.isize_hist)
    out.append("# Insert sizes. Use `grep ^IS | cut -f 2-` to extract this part. The columns are: "
               "insert size, pairs total, inward oriented pairs, outward oriented pairs, other pairs\n")
    for isize in range(ibulk):
        a, b, o = (int(pairs[k, isize]) for k in range(3))
        out.append(f"IS\t{isize}\t{a + b + o}\t{a}\t{b}\t{o}\n")

    labels = [("RL", "Read lengths"), ("FRL", "Read lengths - first fragments"),
              ("LRL", "Read lengths - last fragments")]
    for row, (tag, title) in enumerate(labels):
        out.append(f"# {title}. Use `grep ^{tag} | cut -f 2-` to extract this part. "
                   "The columns are: read length, count\n")
        for length in np.flatnonzero(st.read_lengths[row]):
            if length > 0:
                out.append(f"{tag}\t{int(length)}\t{int(st.read_lengths[row, length])}\n")

    out.append(indels_text)  # ID and IC between LRL and COV
    out.append("# Coverage distribution. Use `grep ^COV | cut -f 2-` to extract this part.\n")
    for depth in np.flatnonzero(st.cov_hist[1:K.COV_MAX + 1]) + 1:
        out.append(f"COV\t[{depth}-{depth}]\t{depth}\t{int(st.cov_hist[depth])}\n")
    if st.cov_hist[K.COV_MAX + 1]:
        out.append(f"COV\t[{K.COV_MAX}<]\t{K.COV_MAX}\t{int(st.cov_hist[K.COV_MAX + 1])}\n")

    out.append("# Mapping qualities (cohortflow extension, not written by samtools). "
               "Use `grep ^MAPQ | cut -f 2-` to extract this part. The columns are: MAPQ, "
               "primary mapped reads\n")
    for q in np.flatnonzero(st.mapq_hist):
        out.append(f"MAPQ\t{int(q)}\t{int(st.mapq_hist[q])}\n")
    return "".join(out)
