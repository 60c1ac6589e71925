"""Per-base read depth of a coordinate-sorted alignment file, as mosdepth computes it.

:class:`DepthAccumulator` takes the record batches of :mod:`cohortflow.alignment.reader` in file
order, keeps one contig's depth at a time (a difference array of the contig's length, as mosdepth
does) and, as each contig is finished, folds it into:

* per-contig and total summaries (length, summed depth, min, max) and depth histograms: the
  ``.mosdepth.summary.txt`` and ``.mosdepth.global.dist.txt`` files, byte for byte as mosdepth
  0.3.3 writes them, so MultiQC's mosdepth module reads them;
* per-region means and summaries for a BED of regions (``.regions.bed.gz``,
  ``.mosdepth.region.dist.txt``);
* an optional per-base track (``.per-base.bed.gz``: runs of equal depth, mosdepth's layout), over
  whole contigs or, with regions, over the regions only;
* ``coverage.tsv``: mean, median and % of bases at >= 1/10/20/30x per contig or per region.

The depth definition is in :mod:`cohortflow.alignment.depth_kernels`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cohortflow.alignment import depth_kernels as DK
from cohortflow.alignment import kernels as K
from cohortflow.alignment.reader import AlignmentHeader, RecordBatch
from cohortflow.errors import InputFormatError
from cohortflow.io.bgzf import EOF_BLOCK, write_bgzf

DEFAULT_EXCLUDE_FLAGS = 1796  # unmapped, secondary, QC-fail, duplicate (mosdepth -F default)
COVERAGE_THRESHOLDS = (1, 10, 20, 30)
COVERAGE_COLUMNS = ["region", "chrom", "start", "end", "length", "mean", "median",
                    *[f"pct_{t}x" for t in COVERAGE_THRESHOLDS]]


@dataclasses.dataclass
class Regions:
    """BED regions by contig index (sorted by start within a contig, as mosdepth sorts them)."""

    starts: dict[int, np.ndarray]
    stops: dict[int, np.ndarray]
    names: dict[int, list[str]]

    def of(self, tid: int):
        return self.starts.get(tid), self.stops.get(tid), self.names.get(tid)


def read_regions(path: str | Path, contig_names: list[str], contig_lengths: np.ndarray) -> Regions:
    """A BED file (chrom, start, end[, name]; ``#`` and ``track`` lines skipped) as :class:`Regions`.

    A region on a contig the alignment header lacks, outside its contig or with end <= start
    is an InputFormatError naming the line.
    """
    path = Path(path)
    index = {name: i for i, name in enumerate(contig_names)}
    rows: dict[int, list[tuple[int, int, str]]] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputFormatError(f"cannot read regions BED: {err}", path=path) from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track ", "browser ")):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 3:
            raise InputFormatError("a BED line needs chrom, start and end separated by tabs", path=path, record=line_no)
        chrom = fields[0]
        try:
            start, stop = int(fields[1]), int(fields[2])
        except ValueError:
            raise InputFormatError(f"start/end must be integers, got {fields[1]!r} {fields[2]!r}", path=path,
                                   record=line_no) from None
        if chrom not in index:
            shown = ", ".join(contig_names[:5]) + (", ..." if len(contig_names) > 5 else "")
            raise InputFormatError(f"contig {chrom!r} is not in the alignment header ({shown}): do the names "
                                   "follow the same convention (chr1 vs 1)?", path=path, record=line_no)
        tid = index[chrom]
        if not 0 <= start < stop <= int(contig_lengths[tid]):
            raise InputFormatError(f"region {chrom}:{start}-{stop} is empty or outside the contig "
                                   f"(length {int(contig_lengths[tid])})", path=path, record=line_no)
        rows.setdefault(tid, []).append((start, stop, fields[3] if len(fields) > 3 else ""))
    if not rows:
        raise InputFormatError("no regions in the BED file", path=path)
    starts, stops, names = {}, {}, {}
    for tid, items in rows.items():
        items.sort(key=lambda r: r[0])  # stable, by start only, as mosdepth
        starts[tid] = np.array([r[0] for r in items], dtype=np.int64)
        stops[tid] = np.array([r[1] for r in items], dtype=np.int64)
        names[tid] = [r[2] for r in items]
    return Regions(starts, stops, names)


@dataclasses.dataclass
class ContigDepth:
    """One contig's depth summary (contigs with at least one record)."""

    tid: int
    length: int
    bases: int
    min: int
    max: int
    hist: np.ndarray  # positions by depth


@dataclasses.dataclass
class RegionDepth:
    tid: int
    start: int
    stop: int
    name: str
    mean: float  # mosdepth's float mean
    bases: int
    min: int
    max: int
    hist: np.ndarray | None  # positions by depth (None: contig without records)


@dataclasses.dataclass
class DepthResult:
    header: AlignmentHeader
    contigs: list[ContigDepth]
    regions: list[RegionDepth] | None
    sorted: bool

    # ---------------------------------------------------------------- mosdepth-format outputs
    def mosdepth_summary(self) -> str:
        lines = ["chrom\tlength\tbases\tmean\tmin\tmax"]
        names = self.header.contig_names
        total = _Stat()
        total_region = _Stat()
        by_tid = self._regions_by_tid()
        for c in self.contigs:
            stat = _Stat(c.length, c.bases, c.min, c.max)
            lines.append(stat.line(names[c.tid]))
            total = total + stat
            if self.regions is not None:
                region_stat = _Stat()
                for r in by_tid.get(c.tid, []):
                    region_stat = region_stat + _Stat(r.stop - r.start, r.bases, r.min, r.max)
                lines.append(region_stat.line(names[c.tid] + "_region"))
                total_region = total_region + region_stat
        lines.append(total.line("total"))
        if self.regions is not None:
            lines.append(total_region.line("total_region"))
        return "\n".join(lines) + "\n"

    def mosdepth_dist(self, *, regions: bool = False) -> str:
        names = self.header.contig_names
        out: list[str] = []
        total = np.zeros(1, dtype=np.int64)
        by_tid = self._regions_by_tid()
        for c in self.contigs:
            if regions:
                hists = [r.hist for r in by_tid.get(c.tid, []) if r.hist is not None]
                hist = _sum_hists(hists) if hists else np.zeros(1, dtype=np.int64)
            else:
                hist = c.hist
            _dist_lines(names[c.tid], hist, out)
            total = _sum_hists([total, hist])
        _dist_lines("total", total, out)
        return "".join(out)

    def regions_bed(self) -> str:
        names = self.header.contig_names
        lines = []
        for r in self.regions or []:
            label = f"\t{r.name}" if r.name else ""
            lines.append(f"{names[r.tid]}\t{r.start}\t{r.stop}{label}\t{_mos_float(r.mean)}\n")
        return "".join(lines)

    # ------------------------------------------------------------------------- coverage.tsv
    def coverage_rows(self) -> list[dict]:
        """Rows of ``coverage.tsv``: per contig with records then ``total``; with regions, per
        region then ``total_regions``."""
        names = self.header.contig_names
        rows = []
        if self.regions is None:
            for c in self.contigs:
                rows.append(_coverage_row(names[c.tid], names[c.tid], 0, c.length, c.hist))
            rows.append(_coverage_row("total", ".", ".", ".", _sum_hists([c.hist for c in self.contigs])
                                      if self.contigs else np.zeros(1, dtype=np.int64)))
        else:
            hists = []
            for r in self.regions:
                hist = r.hist if r.hist is not None else _zeros_hist(r.stop - r.start)
                hists.append(hist)
                label = r.name or f"{names[r.tid]}:{r.start + 1}-{r.stop}"
                rows.append(_coverage_row(label, names[r.tid], r.start, r.stop, hist))
            rows.append(_coverage_row("total_regions", ".", ".", ".", _sum_hists(hists)))
        return rows

    def coverage_tsv(self) -> str:
        lines = ["\t".join(COVERAGE_COLUMNS)]
        for row in self.coverage_rows():
            lines.append("\t".join(_fmt_cov(row[c]) for c in COVERAGE_COLUMNS))
        return "\n".join(lines) + "\n"

    def depth_by_contig(self) -> dict[str, tuple[int, int]]:
        """(bases counted, summed depth) per contig name: over the regions when there are
        regions, else over whole contigs with records (for the sex check)."""
        names = self.header.contig_names
        out: dict[str, tuple[int, int]] = {}
        if self.regions is None:
            for c in self.contigs:
                out[names[c.tid]] = (c.length, c.bases)
        else:
            for r in self.regions:
                length, bases = out.get(names[r.tid], (0, 0))
                out[names[r.tid]] = (length + r.stop - r.start, bases + r.bases)
        return out

    def _regions_by_tid(self) -> dict[int, list[RegionDepth]]:
        out: dict[int, list[RegionDepth]] = {}
        for r in self.regions or []:
            out.setdefault(r.tid, []).append(r)
        return out


@dataclasses.dataclass
class _Stat:
    length: int = 0
    bases: int = 0
    # mosdepth starts its sums (totals, a contig's regions) from a zeroed statistic, so their
    # minimum is always 0; only a single contig's line shows its true minimum
    min: int = 0
    max: int = 0

    def __add__(self, other: "_Stat") -> "_Stat":
        return _Stat(self.length + other.length, self.bases + other.bases, min(self.min, other.min),
                     max(self.max, other.max))

    def line(self, name: str) -> str:
        mean = self.bases / self.length if self.length else 0.0
        return f"{name}\t{self.length}\t{self.bases}\t{_mos_float(mean)}\t{self.min}\t{self.max}"


def _mos_float(x: float) -> str:
    return "%.2f" % x


def _sum_hists(hists: list[np.ndarray]) -> np.ndarray:
    size = max(len(h) for h in hists)
    out = np.zeros(size, dtype=np.int64)
    for h in hists:
        out[: len(h)] += h
    return out


def _zeros_hist(length: int) -> np.ndarray:
    hist = np.zeros(1, dtype=np.int64)
    hist[0] = length
    return hist


def _dist_lines(name: str, hist: np.ndarray, out: list[str]) -> None:
    """mosdepth's cumulative distribution: proportion of bases at >= each depth, from the top;
    depths above 300 with no bases and proportions below 8e-5 are left out."""
    total = int(hist.sum())
    if total < 1:
        return
    # mosdepth's histogram has at least 1000 bins; bins with no bases above 300 are skipped, so
    # only the bins <= 300 it holds beyond ours matter (proportion 0 until the first base)
    size = max(len(hist), 301)
    cum = 0.0
    for depth in range(size - 1, -1, -1):
        count = int(hist[depth]) if depth < len(hist) else 0
        if depth > 300 and count == 0:
            continue
        cum += count / total
        if cum < 8e-5:
            continue
        out.append(f"{name}\t{depth}\t{_mos_float(cum)}\n")


def _coverage_row(region, chrom, start, end, hist: np.ndarray) -> dict:
    positions = int(hist.sum())
    depths = np.arange(len(hist))
    row = {"region": region, "chrom": chrom, "start": start, "end": end, "length": positions}
    if positions == 0:
        row.update({"mean": float("nan"), "median": float("nan")})
        row.update({f"pct_{t}x": float("nan") for t in COVERAGE_THRESHOLDS})
        return row
    row["mean"] = float((depths * hist).sum() / positions)
    cum = np.cumsum(hist)
    lo = int(np.searchsorted(cum, (positions - 1) // 2, side="right"))
    hi = int(np.searchsorted(cum, positions // 2, side="right"))
    row["median"] = (lo + hi) / 2  # as numpy's median of the per-base depths
    for t in COVERAGE_THRESHOLDS:
        row[f"pct_{t}x"] = 100.0 * float(hist[t:].sum()) / positions
    return row


def _fmt_cov(value) -> str:
    if isinstance(value, float):
        return "NA" if value != value else "%.4f" % value
    return str(value)


class DepthAccumulator:
    """Folds record batches (file order) into per-base depth; see the module docstring.

    ``per_base``: a binary file object receiving the bgzipped per-base track (or None).
    """

    initial_mate_slots = 1 << 12  # mates waiting for their overlapping partner (grown as needed)

    def __init__(self, header: AlignmentHeader, *, path: str | Path, regions: Regions | None = None,
                 per_base: BinaryIO | None = None, exclude_flags: int = DEFAULT_EXCLUDE_FLAGS,
                 min_mapq: int = 0, count_overlaps: bool = False, threads: int = 1,
                 require_sorted: bool = False):
        self.header = header
        self.path = Path(path)
        self.regions = regions
        self.per_base = per_base
        self.exclude_flags = int(exclude_flags)
        self.min_mapq = int(min_mapq)
        self.count_overlaps = bool(count_overlaps)
        self.threads = max(1, int(threads))
        self.require_sorted = require_sorted
        self.seen = np.zeros(max(1, len(header.contig_names)), dtype=np.bool_)
        self.tid = -1
        self.diff: np.ndarray | None = None
        self.state = np.zeros(DK.S_N, dtype=np.int64)
        self.slot_pos, self.slot_val, self.slot_meta, self.free = DK.new_slots(self.initial_mate_slots)
        self.mate_keys, self.mate_vals = DK.new_mate_table(len(self.free))
        self.state[DK.S_FREE_TOP] = len(self.free)
        self.contigs: list[ContigDepth] = []
        self.region_results: list[RegionDepth] = []
        self.next_tid = 0  # contigs before this one are finished (written)
        self.unsorted = False
        self.records = 0
        self._no_contig = np.zeros(1, dtype=np.int32)  # diff while no contig is open (never written)

    # ------------------------------------------------------------------------------ input
    def add(self, batch: RecordBatch) -> None:
        self.add_records(batch.buf, np.ascontiguousarray(batch.cols[:batch.n, K.K_REC_OFF]), batch.n,
                         batch.first_record)

    def add_records(self, buf: np.ndarray, rec_off: np.ndarray, n: int, first_record: int) -> None:
        """Add the ``n`` records at offsets ``rec_off`` of ``buf`` (file order)."""
        if self.unsorted:
            return
        start = 0
        while start < n:
            diff = self.diff if self.diff is not None else self._no_contig
            status = DK.add_depth(buf, rec_off, n, start, self.tid, diff, self.exclude_flags, self.min_mapq,
                                  self.count_overlaps, self.state, self.mate_keys, self.mate_vals,
                                  self.slot_pos, self.slot_val, self.slot_meta, self.free, self.seen)
            if status == DK.NEED_SLOTS:
                self._grow_slots()
                start = int(self.state[DK.S_RESUME])
                continue
            if status == DK.UNSORTED:
                self._mark_unsorted(first_record)
                return
            if status >= n:
                break
            new_tid = int(DK.record_tid(buf, rec_off[status]))
            if new_tid < self.tid or new_tid < 0:
                self._mark_unsorted(first_record + status)
                return
            self._close_contig()
            self._open_contig(new_tid)
            start = status
        self.records += n

    def _mark_unsorted(self, record: int) -> None:
        if self.require_sorted:
            raise InputFormatError("not coordinate-sorted, but depth over regions needs sorted reads: run "
                                   "`samtools sort` (and `samtools index`) first", path=self.path, record=record)
        self.unsorted = True
        self.diff = None

    def _grow_slots(self) -> None:
        old = len(self.free)
        pos, val, meta, free = DK.new_slots(2 * old)
        pos[:old], val[:old], meta[:old] = self.slot_pos, self.slot_val, self.slot_meta
        top = int(self.state[DK.S_FREE_TOP])
        # new slots old..2*old-1 become free; the old free stack is empty (that is why we grew)
        free[:] = -1
        fresh = np.arange(2 * old - 1, old - 1, -1, dtype=np.int64)
        free[: len(fresh)] = fresh
        free[len(fresh): len(fresh) + top] = self.free[:top]
        self.state[DK.S_FREE_TOP] = len(fresh) + top
        self.slot_pos, self.slot_val, self.slot_meta, self.free = pos, val, meta, free
        keys, vals = DK.new_mate_table(len(free))
        DK.rehash_mates(self.mate_keys, self.mate_vals, keys, vals)
        self.mate_keys, self.mate_vals = keys, vals

    def _open_contig(self, tid: int) -> None:
        self._flush_empty_contigs_before(tid)
        self.tid = tid
        length = int(self.header.contig_lengths[tid])
        self.diff = np.zeros(length + 1, dtype=np.int32)
        self.state[DK.S_LAST_POS] = -1
        self.mate_keys[:] = 0
        self.free[:] = np.arange(len(self.free) - 1, -1, -1)
        self.state[DK.S_FREE_TOP] = len(self.free)

    # --------------------------------------------------------------------------- contigs
    def _flush_empty_contigs_before(self, tid: int) -> None:
        """Contigs before ``tid`` without counted reads: zero depth (and 'seen' ones still get
        their summary line, as mosdepth)."""
        for t in range(self.next_tid, tid):
            self._finish_contig(t, None)
        self.next_tid = max(self.next_tid, tid)

    def _close_contig(self) -> None:
        if self.tid >= 0:
            self._finish_contig(self.tid, self.diff)
            self.next_tid = self.tid + 1
            self.tid = -1
            self.diff = None

    def _finish_contig(self, tid: int, diff: np.ndarray | None) -> None:
        length = int(self.header.contig_lengths[tid])
        has_records = bool(self.seen[tid]) or diff is not None
        if diff is None and has_records:
            diff = np.zeros(length + 1, dtype=np.int32)
        starts, stops, names = self.regions.of(tid) if self.regions is not None else (None, None, None)
        if diff is None:  # a contig with no records at all: depth 0, no summary (as mosdepth)
            if starts is not None:
                for s, e, name in zip(starts.tolist(), stops.tolist(), names):
                    self.region_results.append(RegionDepth(tid, s, e, name, 0.0, 0, 0, 0, None))
            if self.per_base is not None:
                if self.regions is None:
                    self._write_text(f"{self.header.contig_names[tid]}\t0\t{length}\t0\n".encode())
                elif starts is not None:
                    self._write_text("".join(f"{self.header.contig_names[tid]}\t{s}\t{e}\t0\n"
                                             for s, e in zip(starts.tolist(), stops.tolist())).encode())
            return
        hist = np.zeros(1000, dtype=np.int64)
        bases, lo, hi = DK.to_depth(diff, length, hist)
        if hi >= len(hist):  # deeper than the histogram: count again into one that fits
            hist = np.zeros(int(hi) + 11, dtype=np.int64)
            DK.add_histogram(diff, 0, length, hist)
        self.contigs.append(ContigDepth(tid, length, int(bases), int(lo), int(hi), hist))
        if starts is not None:
            means = np.zeros(len(starts), dtype=np.float64)
            stats = np.zeros((len(starts), 4), dtype=np.int64)
            DK.region_stats(diff, starts, stops, means, stats)
            for k, (s, e, name) in enumerate(zip(starts.tolist(), stops.tolist(), names)):
                rh = np.zeros(max(1000, int(stats[k, 3]) + 11), dtype=np.int64)
                DK.add_histogram(diff, s, e, rh)
                self.region_results.append(RegionDepth(tid, s, e, name, float(means[k]), int(stats[k, 1]),
                                                       int(stats[k, 2]), int(stats[k, 3]), rh))
        if self.per_base is not None:
            name = np.frombuffer(self.header.contig_names[tid].encode(), dtype=np.uint8)
            spans = [(0, length)] if self.regions is None else list(zip(starts.tolist(), stops.tolist())) \
                if starts is not None else []
            for s, e in spans:
                self._write_runs(diff, s, e, name)

    def _write_runs(self, depth: np.ndarray, start: int, stop: int, name: np.ndarray) -> None:
        out = np.empty(1 << 24, dtype=np.uint8)
        i = start
        while i < stop:
            o, i = DK.format_runs(depth, i, stop, name, out)
            self._write_text(out[:o].tobytes())

    def _write_text(self, data: bytes) -> None:
        write_bgzf(self.per_base, data, threads=self.threads, final=False)

    # ------------------------------------------------------------------------------ output
    def finish(self) -> DepthResult:
        if not self.unsorted:
            self._close_contig()
            self._flush_empty_contigs_before(len(self.header.contig_names))
        if self.per_base is not None:
            self.per_base.write(EOF_BLOCK)
        return DepthResult(self.header, self.contigs if not self.unsorted else [],
                           self.region_results if self.regions is not None and not self.unsorted else
                           (None if self.regions is None else []), not self.unsorted)
