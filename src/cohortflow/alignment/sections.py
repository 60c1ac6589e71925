"""Per-base samtools-stats sections (FFQ LFQ GCF GCL GCC GCT FBC FTC LBC LTC, and ID IC).

``BaseSections`` accumulates batches of uncompressed BAM records with the numba kernel of
``sections_kernels`` and writes the sections as samtools 1.16.1 ``stats`` does with default
options. In a samtools stats file they sit in two places:

* ``format_cycles_text()`` (FFQ, LFQ, GCF, GCL, GCC, GCT, FBC, FTC, LBC, LTC): after SN, before IS;
* ``format_indels_text()`` (ID, IC): after LRL, before COV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from cohortflow.alignment import sections_format as SF
from cohortflow.alignment import sections_kernels as SK
from cohortflow.errors import InputFormatError

_INITIAL_CYCLES = 320
_INITIAL_QUAL_WIDTH = 8  # grown to the next multiple of 8 above the highest quality seen
# The per-base tables count in uint32 (half the memory of int64: long reads make them large).
# A record adds at most 1 to any of their cells, so they cannot overflow before this many records
# have been folded; then they are spilled into int64 totals and restart from zero.
_SPILL_AFTER_RECORDS = 2**32 - 1
_ACGTN = np.array([SK.CODE_A, SK.CODE_C, SK.CODE_G, SK.CODE_T, SK.CODE_N])
# "no spilled totals" for the numba writers: quality (2-d) and base (4-d) tables
_NO_SPILL_QUALS = np.zeros((0, 0), dtype=np.int64)
_NO_SPILL_BASES = np.zeros((0, 0, 0, 0), dtype=np.int64)


def _max_cell(table: np.ndarray) -> int:
    return int(table.max()) if table.size else 0


def _section_comment(tag: str, title: str, columns: str = "") -> str:
    tail = f" The columns are: {columns}" if columns else ""
    return f"# {title}. Use `grep ^{tag} | cut -f 2-` to extract this part.{tail}\n"


_PCT_COLUMNS = ("cycle; A,C,G,T base counts as a percentage of all A/C/G/T bases [%]; and N and O "
                "counts as a percentage of all A/C/G/T bases [%]")
_QUAL_COMMENT = "# Columns correspond to qualities and rows to cycles. First column is the cycle number.\n"


@dataclasses.dataclass
class BaseSections:
    """Accumulators of the per-base sections (layouts in ``sections_kernels``).

    ``quals`` and ``bases`` are the kernel's uint32 working tables; ``quality_counts()`` and
    ``strand_base_counts()`` give int64 totals (spilled counts included).
    """

    quals: np.ndarray
    bases: np.ndarray
    gc_hist: np.ndarray
    indel_len: np.ndarray
    indel_cycle: np.ndarray
    state: np.ndarray
    quals_spilled: np.ndarray | None = None
    bases_spilled: np.ndarray | None = None
    records_since_spill: int = 0

    @classmethod
    def new(cls) -> BaseSections:
        state = np.zeros(SK.S_N, dtype=np.int64)
        state[SK.S_MAX_QUAL] = -1
        return cls(
            quals=np.zeros((2, _INITIAL_CYCLES, _INITIAL_QUAL_WIDTH), dtype=np.uint32),
            bases=np.zeros((2, 2, _INITIAL_CYCLES, 16), dtype=np.uint32),
            gc_hist=np.zeros((2, SK.GC_BINS), dtype=np.int64),
            indel_len=np.zeros((2, SK.ID_MAX_LEN + 1), dtype=np.int64),
            indel_cycle=np.zeros((4, _INITIAL_CYCLES), dtype=np.int64),
            state=state,
        )

    # ------------------------------------------------------------------------------ accumulation

    def add(self, buf: np.ndarray, rec_off: np.ndarray, n: int | None = None, *, path=None) -> None:
        """Fold the first ``n`` records (offsets ``rec_off``, file order) of ``buf`` in."""
        n = len(rec_off) if n is None else int(n)
        if self.records_since_spill + n > _SPILL_AFTER_RECORDS:
            self._spill()
        self.records_since_spill += n
        start = 0
        while start < n:
            start, status = SK.accumulate_base_sections(
                buf, rec_off, start, n, self.quals, self.bases, self.gc_hist, self.indel_len,
                self.indel_cycle, self.state)
            if status == SK.STATUS_GROW:
                self._grow(int(self.state[SK.S_NEED_CYCLES]), int(self.state[SK.S_NEED_QUALS]))
            elif status == SK.STATUS_CORRUPT:
                raise InputFormatError("corrupt BAM record (fields or CIGAR do not fit the record)",
                                       path=path, record=f"record {start + 1} of the batch")

    def _spill(self) -> None:
        if self.quals_spilled is None:
            self.quals_spilled = np.zeros(self.quals.shape, dtype=np.int64)
            self.bases_spilled = np.zeros(self.bases.shape, dtype=np.int64)
        self.quals_spilled += self.quals
        self.bases_spilled += self.bases
        self.quals[...] = 0
        self.bases[...] = 0
        self.records_since_spill = 0

    def quality_counts(self, fragment: int) -> np.ndarray:
        """int64 (cycles, width): cycle, quality of first (0) or last (1) fragments."""
        out = self.quals[fragment].astype(np.int64)
        if self.quals_spilled is not None:
            out += self.quals_spilled[fragment]
        return out

    def strand_base_counts(self, fragment: int, strand: int) -> np.ndarray:
        """int64 (cycles, 16): base-code counts per cycle of one fragment (0 first, 1 last) and
        strand (0 forward, 1 reverse)."""
        out = self.bases[fragment, strand].astype(np.int64)
        if self.bases_spilled is not None:
            out += self.bases_spilled[fragment, strand]
        return out

    def _grow(self, need_cycles: int, need_quals: int) -> None:
        cycles = self.bases.shape[2]
        if need_cycles > cycles:
            cycles = max(need_cycles, 2 * cycles)
        width = self.quals.shape[2]
        if need_quals > width:
            # the next multiple of 8: long reads make a row per cycle, so unused quality columns
            # cost memory; qualities seldom grow once many records have been read
            width = min(-(-need_quals // 8) * 8, 256)

        # a fragment's counts lie in its cycles below its longest record: only those are copied
        # (long reads make these tables large, and every page copied is a page touched)
        used = (min(self.max_len_first, self.bases.shape[2]), min(self.max_len_last, self.bases.shape[2]))

        def grown(arr, shape):
            out = np.zeros(shape, dtype=arr.dtype)
            for f in range(2):
                out[f, ..., :used[f], :arr.shape[-1]] = arr[f, ..., :used[f], :]
            return out

        self.quals = grown(self.quals, (2, cycles, width))
        self.bases = grown(self.bases, (2, 2, cycles, 16))
        if self.quals_spilled is not None:
            self.quals_spilled = grown(self.quals_spilled, (2, cycles, width))
            self.bases_spilled = grown(self.bases_spilled, (2, 2, cycles, 16))
        # rows: insertions first/last, deletions first/last
        indel_cycle = np.zeros((4, cycles), dtype=self.indel_cycle.dtype)
        for row in range(4):
            rows = used[row % 2]
            indel_cycle[row, :rows] = self.indel_cycle[row, :rows]
        self.indel_cycle = indel_cycle

    # --------------------------------------------------------------------------------- reporting

    @property
    def max_len_first(self) -> int:
        return int(self.state[SK.S_MAX_LEN_1ST])

    @property
    def max_len_last(self) -> int:
        return int(self.state[SK.S_MAX_LEN_2ND])

    def _gc_rows(self, tag: str, fragment: int) -> list[str]:
        # one line per run of equal bins, at the run's start bin averaged with the previous run's
        # start (samtools' step plot); the last run is not printed
        hist = self.gc_hist[fragment].tolist()
        n_gc = len(hist)
        out = []
        prev = 0
        for b in range(n_gc):
            if hist[b] == hist[prev]:
                continue
            out.append("%s\t%.2f\t%d\n" % (tag, (b + prev) * 0.5 * 100.0 / (n_gc - 1), hist[prev]))
            prev = b
        return out

    def base_content(self, fragment: int) -> np.ndarray:
        """(cycles, 6) counts of A C G T N other per cycle of first (0) or last (1) fragments."""
        codes = self.strand_base_counts(fragment, 0) + self.strand_base_counts(fragment, 1)
        out = np.empty((codes.shape[0], 6), dtype=np.int64)
        out[:, :5] = codes[:, _ACGTN]
        out[:, 5] = codes.sum(axis=1) - out[:, :5].sum(axis=1)
        return out

    def base_content_read_oriented(self) -> np.ndarray:
        """(cycles, 4) A C G T per cycle, first and last fragments, reverse strand complemented."""
        acgt, tgca = _ACGTN[:4], _ACGTN[:4][::-1]
        out = self.strand_base_counts(0, 0)[:, acgt] + self.strand_base_counts(1, 0)[:, acgt]
        out += self.strand_base_counts(0, 1)[:, tgca] + self.strand_base_counts(1, 1)[:, tgca]
        return out

    def _quality_rows(self, tag: bytes, fragment: int, rows: int) -> tuple[int, Callable]:
        # samtools prints qualities 0..max+1 (at most 0..255) for every cycle up to the longest
        # unclipped first/last record, counted bases or not
        width = min(int(self.state[SK.S_MAX_QUAL]) + 2, 256)
        quals = self.quals[fragment]
        spilled = self.quals_spilled[fragment] if self.quals_spilled is not None else _NO_SPILL_QUALS
        tag_codes = np.frombuffer(tag, dtype=np.uint8)
        max_count = _max_cell(quals[:rows]) + _max_cell(spilled[:rows])

        def write(out, pos):
            return SF.write_quality_rows(tag_codes, quals, spilled, rows, width, out, pos)
        return SF.quality_rows_bound(tag, rows, width, max_count), write

    def _base_content_rows(self, tag: bytes, fragments: int, read_oriented: bool) -> tuple[int, Callable]:
        # rows of cycles with A/C/G/T bases, each column 100.0 * count / (A+C+G+T) in doubles
        spilled = self.bases_spilled if self.bases_spilled is not None else _NO_SPILL_BASES
        tag_codes = np.frombuffer(tag, dtype=np.uint8)
        used_cycles = np.array([self.max_len_first, self.max_len_last], dtype=np.int64)
        max_count = 0  # of a cell, sizing the text
        for f, used in enumerate(used_cycles.tolist()):
            cell = _max_cell(self.bases[f, :, :used])
            if self.bases_spilled is not None:
                cell += _max_cell(self.bases_spilled[f, :, :used])
            max_count = max(max_count, cell)

        def write(out, pos):
            return SF.write_base_content_rows(tag_codes, self.bases, spilled, fragments, read_oriented,
                                              used_cycles, out, pos)
        return SF.base_content_rows_bound(tag, self.bases.shape[2], max_count), write

    def _fragment_totals(self, fragment: int) -> list[int]:
        """A C G T N base counts of all cycles of first (0) or last (1) fragments."""
        used = self.max_len_first if fragment == 0 else self.max_len_last  # (the rest is zero)
        codes = self.bases[fragment, :, :used].sum(axis=(0, 1), dtype=np.int64)
        if self.bases_spilled is not None:
            codes += self.bases_spilled[fragment, :, :used].sum(axis=(0, 1))
        return codes[_ACGTN].tolist()

    def format_cycles_text(self) -> str:
        """FFQ, LFQ, GCF, GCL, GCC, GCT, FBC, FTC, LBC, LTC: in the stats file after SN, before IS.

        Long reads make a row per cycle (millions) in FFQ/LFQ and the base-content sections: numba
        writes those into one byte buffer with the rest, decoded once.
        """
        parts: list = [_section_comment("FFQ", "First Fragment Qualities"), _QUAL_COMMENT,
                       self._quality_rows(b"FFQ", 0, self.max_len_first),
                       _section_comment("LFQ", "Last Fragment Qualities"), _QUAL_COMMENT,
                       self._quality_rows(b"LFQ", 1, self.max_len_last),
                       _section_comment("GCF", "GC Content of first fragments"), *self._gc_rows("GCF", 0),
                       _section_comment("GCL", "GC Content of last fragments"), *self._gc_rows("GCL", 1),
                       _section_comment("GCC", "ACGT content per cycle", _PCT_COLUMNS),
                       self._base_content_rows(b"GCC", 2, False),
                       _section_comment("GCT", "ACGT content per cycle, read oriented",
                                        "cycle; A,C,G,T base counts as a percentage of all A/C/G/T bases [%]"),
                       self._base_content_rows(b"GCT", 2, True)]
        for fragment, content_tag, total_tag, word in ((0, "FBC", "FTC", "first"), (1, "LBC", "LTC", "last")):
            parts += [_section_comment(content_tag, f"ACGT content per cycle for {word} fragments", _PCT_COLUMNS),
                      self._base_content_rows(content_tag.encode(), fragment, False),
                      _section_comment(total_tag, f"ACGT raw counters for {word} fragments",
                                       "A,C,G,T,N base counters"),
                      f"{total_tag}\t" + "\t".join(map(str, self._fragment_totals(fragment))) + "\n"]
        parts = [p.encode() if isinstance(p, str) else p for p in parts]
        out = np.empty(sum(len(p) if isinstance(p, bytes) else p[0] for p in parts), dtype=np.uint8)
        pos = 0
        for part in parts:
            if isinstance(part, bytes):
                out[pos:pos + len(part)] = np.frombuffer(part, dtype=np.uint8)
                pos += len(part)
            else:
                pos = part[1](out, pos)
        return str(memoryview(out)[:pos], "ascii")

    def format_indels_text(self) -> str:
        """ID and IC: in the stats file after LRL, before COV."""
        out: list[str] = [_section_comment("ID", "Indel distribution",
                                           "length, number of insertions, number of deletions")]
        ins, dels = self.indel_len[0].tolist(), self.indel_len[1].tolist()
        for length in range(1, len(ins)):
            if ins[length] or dels[length]:
                out.append(f"ID\t{length}\t{ins[length]}\t{dels[length]}\n")
        out.append(_section_comment("IC", "Indels per cycle", "cycle, number of insertions (fwd), .. (rev) , "
                                    "number of deletions (fwd), .. (rev)"))
        # samtools' column titles say fwd/rev; the columns are first/last fragments
        for cycle in np.flatnonzero(self.indel_cycle.any(axis=0)).tolist():
            i1, i2, d1, d2 = self.indel_cycle[:, cycle].tolist()
            out.append(f"IC\t{cycle + 1}\t{i1}\t{i2}\t{d1}\t{d2}\n")
        return "".join(out)

    def format_text(self) -> tuple[str, str]:
        """(``format_cycles_text()``, ``format_indels_text()``): the two places they go."""
        return self.format_cycles_text(), self.format_indels_text()
