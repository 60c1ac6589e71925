"""samtools-stats compatible statistics of one BAM/CRAM/SAM file, in a single pass.

Readers (``iter_read_columns``) decode records into int64 columns (``kernels.K_*``); the numba
kernel ``accumulate_read_stats`` folds them into counters. BAM is decoded by numba straight from
the BGZF stream (pysam's ``BGZFile``), CRAM and SAM through pysam's record iterator.

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
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cohortflow.alignment import kernels as K
from cohortflow.errors import CohortflowError, InputFormatError

_CHUNK_BYTES = 8 << 20
_PY_BATCH = 65536
_MISSING_QUAL_CHAR = chr(0xFF + 33)  # a 0xff quality byte as pysam's phred+33 text would show it


@dataclasses.dataclass
class AlignmentHeader:
    """What the QC needs from the header: contigs and read-group samples."""

    contig_names: list[str]
    contig_lengths: np.ndarray
    read_group_samples: list[str]
    file_format: str  # "BAM", "CRAM" or "SAM"


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

    def counter(self, index: int) -> int:
        return int(self.counters[index])


# --------------------------------------------------------------------------------------- readers


def open_alignment(path: str | Path, *, reference: str | Path | None = None, threads: int = 1):
    """Open ``path`` with pysam; CRAM without a readable reference is a CohortflowError."""
    import pysam

    path = Path(path)
    if not path.exists():
        raise CohortflowError("alignment file not found", path=path)
    if reference is not None and not Path(reference).exists():
        raise CohortflowError(f"reference FASTA not found: {reference}", path=path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise CohortflowError(f"cannot read file: {err}", path=path) from None
    if magic[:4] == b"CRAM" and reference is None:
        raise CohortflowError("CRAM input needs the reference FASTA it was written against (reference=)", path=path)
    kwargs = {"check_sq": False, "threads": max(1, int(threads))}
    if reference is not None:
        kwargs["reference_filename"] = str(reference)
    # htslib would print a warning for every CRAM without a .crai; the index is not needed here
    previous = pysam.set_verbosity(0)
    try:
        return pysam.AlignmentFile(str(path), "r", **kwargs)
    except (OSError, ValueError) as err:
        raise InputFormatError(f"cannot open as BAM/CRAM/SAM: {err}", path=path) from None
    finally:
        pysam.set_verbosity(previous)


def read_header(aln) -> AlignmentHeader:
    """Contigs, read-group SM values and the container format of an open pysam file."""
    names = list(aln.references)
    lengths = np.asarray(aln.lengths, dtype=np.int64)
    rgs = aln.header.to_dict().get("RG", []) or []
    samples = [rg.get("SM", "") for rg in rgs]
    fmt = "CRAM" if aln.is_cram else ("BAM" if aln.is_bam else "SAM")
    return AlignmentHeader(names, lengths, samples, fmt)


def _new_columns(capacity: int, n_blocks: int):
    # the decoder writes every field it returns, so the buffers need no zeroing
    return (np.empty((capacity, K.K_N), dtype=np.int64), np.empty(n_blocks, dtype=np.int64),
            np.empty(n_blocks, dtype=np.int64))


def _iter_bam_columns(path: Path) -> Iterator[tuple[np.ndarray, int, np.ndarray, np.ndarray]]:
    """Decode a BAM file's records into columns with numba, chunk by chunk."""
    from pysam.libcbgzf import BGZFile

    try:
        bgzf = BGZFile(str(path), "rb")
    except OSError as err:
        raise InputFormatError(f"cannot open BGZF stream: {err}", path=path) from None

    def read(size: int) -> bytes:
        try:
            return bgzf.read(size)
        except OSError as err:
            raise InputFormatError(f"cannot decompress BAM data: {err}", path=path,
                                   record=f"after record {records}") from None

    records = 0
    try:
        head = read(8)
        if len(head) < 8 or head[:4] != b"BAM\x01":
            raise InputFormatError("not a BAM file (bad magic)", path=path)
        (l_text,) = struct.unpack("<i", head[4:8])
        read(l_text)
        (n_ref,) = struct.unpack("<i", read(4))
        for _ in range(n_ref):
            (l_name,) = struct.unpack("<i", read(4))
            read(l_name + 4)
        pending = b""
        while True:
            data = read(_CHUNK_BYTES)
            buf = pending + data if pending else data
            if not buf:
                return
            arr = np.frombuffer(buf, dtype=np.uint8)
            consumed_total = 0
            while True:
                rest = arr[consumed_total:]
                cols, bs, be = _new_columns(len(rest) // 36 + 1, len(rest) // 4 + 1)
                n, consumed, _nb, err = K.decode_bam_records(rest, len(rest), cols, bs, be)
                if err >= 0:
                    raise InputFormatError("corrupt BAM record", path=path, record=records + n + 1)
                if n:
                    records += n
                    yield cols, n, bs, be
                consumed_total += consumed
                if n == 0 or consumed_total >= len(arr):
                    break
            pending = bytes(arr[consumed_total:]) if consumed_total < len(arr) else b""
            if not data:
                if pending:
                    raise InputFormatError("truncated BAM file (incomplete last record)", path=path,
                                           record=records + 1)
                return
    finally:
        bgzf.close()


def _iter_pysam_columns(aln, path: Path) -> Iterator[tuple[np.ndarray, int, np.ndarray, np.ndarray]]:
    """Decode CRAM/SAM records through pysam into the same columns as the BAM decoder.

    Per-read Python work is kept to the cheapest pysam accessors (``cigartuples``,
    ``query_qualities_str``) and list appends; quality sums are taken per batch with numpy.
    """
    rows: list[tuple] = []
    starts: list[int] = []
    ends: list[int] = []
    quals: list[str] = []
    nb = 0
    it = aln.fetch(until_eof=True)
    record = 0
    cov_skip = K.F_UNMAP | K.F_SECONDARY
    while True:
        try:
            r = next(it)
        except StopIteration:
            break
        except (OSError, ValueError) as err:
            hint = " (is reference= the FASTA this CRAM was written against?)" if aln.is_cram else ""
            raise InputFormatError(f"cannot decode record: {err}{hint}", path=path, record=record + 1) from None
        record += 1
        flag = r.flag
        l_seq = r.query_length
        pos = r.reference_start
        cigar = r.cigartuples
        hclip = cigar_bases = n_ops = 0
        if cigar:
            n_ops = len(cigar)
            want_blocks = not flag & cov_skip and l_seq > 0
            ref = pos
            for op, length in cigar:
                if op == 0 or op == 7 or op == 8:  # M = X
                    cigar_bases += length
                    if want_blocks and length:
                        starts.append(ref)
                        ends.append(ref + length)
                        nb += 1
                    ref += length
                elif op == 1:  # I
                    cigar_bases += length
                elif op == 2 or op == 3:  # D N
                    ref += length
                elif op == 5:  # H
                    hclip += length
        try:
            nm = r.get_tag("NM")
            if not isinstance(nm, int):
                nm = 0  # as bam_aux2i for a non-integer tag
        except KeyError:
            nm = 0
        q = r.query_qualities_str
        # htslib stores missing qualities as 0xff bytes and samtools sums those as-is
        quals.append(q if q is not None else _MISSING_QUAL_CHAR * l_seq)
        rows.append((flag, r.reference_id, pos, r.mapping_quality, l_seq, r.next_reference_id,
                     r.next_reference_start, r.template_length, hclip, cigar_bases, nm, 0, n_ops, nb))
        if len(rows) == _PY_BATCH:
            yield _pysam_batch(rows, quals, starts, ends)
            rows, starts, ends, quals, nb = [], [], [], [], 0
    if rows:
        yield _pysam_batch(rows, quals, starts, ends)


def _pysam_batch(rows, quals, starts, ends):
    cols = np.array(rows, dtype=np.int64).reshape(len(rows), K.K_N)
    codes = np.frombuffer("".join(quals).encode("utf-32-le"), dtype=np.uint32)
    cum = np.concatenate([[0], np.cumsum(codes, dtype=np.int64)])
    qend = np.cumsum(cols[:, K.K_LSEQ])
    qstart = qend - cols[:, K.K_LSEQ]
    cols[:, K.K_QUAL_SUM] = cum[qend] - cum[qstart] - 33 * cols[:, K.K_LSEQ]
    return cols, len(rows), np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


# ---------------------------------------------------------------------------------- accumulation


def collect_alignment_stats(path: str | Path, *, reference: str | Path | None = None,
                            threads: int = 1) -> AlignmentStats:
    """Read ``path`` once and return its samtools-stats and flagstat accumulators."""
    path = Path(path)
    aln = open_alignment(path, reference=reference, threads=threads)
    try:
        header = read_header(aln)
        n_ref = len(header.contig_names)
        counters = np.zeros(K.C_N, dtype=np.int64)
        counters[K.C_IS_SORTED] = 1
        counters[K.C_LAST_TID] = -1
        counters[K.C_LAST_POS] = -1
        counters[K.C_COV_TID] = -1
        flagstat = np.zeros((K.FS_N, 2), dtype=np.int64)
        read_lengths = np.zeros((3, 1024), dtype=np.int64)
        mapq_hist = np.zeros(256, dtype=np.int64)
        isize_hist = np.zeros((3, K.ISIZE_MAX + 1), dtype=np.int64)
        cov_window = np.zeros(1 << 16, dtype=np.int32)
        cov_hist = np.zeros(K.COV_MAX + 2, dtype=np.int64)
        span_min = np.full(max(n_ref, 1), -1, dtype=np.int64)
        span_max = np.full(max(n_ref, 1), -1, dtype=np.int64)

        if header.file_format == "BAM":
            chunks = _iter_bam_columns(path)
        else:
            chunks = _iter_pysam_columns(aln, path)
        for cols, n, bs, be in chunks:
            _check_chunk(cols, n, n_ref, path)
            longest = int((cols[:n, K.K_LSEQ] + cols[:n, K.K_HCLIP]).max())
            if longest >= read_lengths.shape[1]:
                grown = np.zeros((3, 2 * longest + 1), dtype=np.int64)
                grown[:, : read_lengths.shape[1]] = read_lengths
                read_lengths = grown
            start = 0
            while start < n:
                done = K.accumulate_read_stats(cols[start:n], n - start, bs, be,
                                               int(cols[start - 1, K.K_BLOCK_END]) if start else 0,
                                               counters, flagstat, read_lengths, mapq_hist, isize_hist,
                                               cov_window, cov_hist, span_min, span_max)
                start += done
                if start < n:  # a read's aligned blocks reach past the coverage window: grow it
                    cov_window = K.regrow_window(cov_window, counters, cov_window.shape[0] * 4)
        K.flush_coverage(cov_window, counters, cov_hist)
    finally:
        aln.close()
    return AlignmentStats(header, counters, flagstat, read_lengths, mapq_hist, isize_hist, cov_hist,
                          span_min, span_max)


def _check_chunk(cols, n, n_ref, path):
    tids = cols[:n, K.K_TID]
    bad = np.flatnonzero((tids < -1) | (tids >= n_ref))
    if bad.size:
        raise InputFormatError(f"reference id {int(tids[bad[0]])} not in the header ({n_ref} contigs)", path=path)
    mapped = (cols[:n, K.K_FLAG] & K.F_UNMAP) == 0
    bad = np.flatnonzero(mapped & ((tids < 0) | (cols[:n, K.K_NCIGAR] == 0)))
    if bad.size:
        raise InputFormatError("mapped read without reference or CIGAR", path=path)


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
    """samtools-stats text: header comments, SN, IS, RL, FRL, LRL, COV and (cohortflow) MAPQ.

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


def depth_summary(st: AlignmentStats, thresholds=(1, 10, 20, 30)) -> dict[str, float]:
    """Mean depth and % of positions at >= each threshold over the covered span.

    The span is, per contig, first to last reference position covered by an aligned (M/=/X)
    base of a read counted in COV; positions inside it with depth 0 count. Depth is samtools'
    COV depth (duplicates and QC-failed reads included, deletions excluded).
    """
    covered = st.span_max >= 0
    span = int((st.span_max[covered] - st.span_min[covered]).sum())
    out: dict[str, float] = {"covered_span_bp": float(span)}
    out["mean_depth"] = st.counter(K.C_COV_BASES) / span if span else 0.0
    for t in thresholds:
        at_least = int(st.cov_hist[t:].sum())
        out[f"pct_{t}x"] = 100.0 * at_least / span if span else 0.0
    return out
