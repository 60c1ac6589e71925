"""PLINK 1 binary genotypes (.bed/.bim/.fam), variant-major, 2-bit packed.

Genotypes are returned as int8 counts of the .bim column-5 allele (A1, the ALT allele when written
by our ingestion), with -1 for a missing call: this is the allele plink2 counts and reports as A1.

2-bit codes (low bits first within each byte): 00 = A1/A1 (2), 01 = missing, 10 = A1/A2 (1),
11 = A2/A2 (0).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from cohortflow.errors import InputFormatError
from cohortflow.io.atomic import atomic_path

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
BIM_COLUMNS = ["chrom", "id", "cm", "pos", "a1", "a2"]
FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "pheno"]

# code -> A1 count; index by 2-bit code
_CODE_TO_COUNT = np.array([2, -1, 1, 0], dtype=np.int8)


def _lookup_table() -> np.ndarray:
    table = np.empty((256, 4), dtype=np.int8)
    for byte in range(256):
        for j in range(4):
            table[byte, j] = _CODE_TO_COUNT[(byte >> (2 * j)) & 3]
    return table


_BYTE_TABLE = _lookup_table()


@numba.njit(cache=True, nogil=True)
def decode_bed_block(raw: np.ndarray, n_samples: int, table: np.ndarray) -> np.ndarray:
    """Decode packed rows (variants x bytes) into an int8 matrix (variants x samples)."""
    m = raw.shape[0]
    out = np.empty((m, n_samples), dtype=np.int8)
    for v in range(m):
        for s in range(n_samples):
            out[v, s] = table[raw[v, s >> 2], s & 3]
    return out


@numba.njit(cache=True, nogil=True)
def encode_bed_block(geno: np.ndarray) -> np.ndarray:
    """Pack an int8 matrix (variants x samples; A1 counts, -1 missing) into .bed rows."""
    m, n = geno.shape
    nbytes = (n + 3) // 4
    out = np.zeros((m, nbytes), dtype=np.uint8)
    for v in range(m):
        for s in range(n):
            g = geno[v, s]
            if g == 2:
                code = 0
            elif g == 1:
                code = 2
            elif g == 0:
                code = 3
            else:
                code = 1
            out[v, s >> 2] |= np.uint8(code << (2 * (s & 3)))
    return out


_BIM_TYPES = {"chrom": pa.string(), "id": pa.string(), "cm": pa.float64(), "pos": pa.int64(),
              "a1": pa.string(), "a2": pa.string()}


def read_bim_table(path: str | Path) -> pa.Table:
    """A .bim as an Arrow table (columns chrom, id, cm, pos, a1, a2).

    Tab-separated files (what plink writes) are parsed by Arrow's multi-threaded reader, with no
    Python string objects; other whitespace goes through pandas."""
    path = Path(path)
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(column_names=BIM_COLUMNS),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(column_types=_BIM_TYPES, strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table = pa.Table.from_pandas(read_bim(path), preserve_index=False)
        return table.cast(pa.schema([(c, _BIM_TYPES[c]) for c in BIM_COLUMNS]))
    for name in ("cm", "pos"):
        column = table.column(name)
        if column.null_count:
            line = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]) + 1
            raise InputFormatError(f"not a PLINK .bim file (missing {name} value)", path=path,
                                   record=f"line {line}")
    return table


def read_bim(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    try:
        bim = pd.read_csv(path, sep=r"\s+", header=None, names=BIM_COLUMNS, keep_default_na=False,
                          dtype={"chrom": str, "id": str, "cm": float, "pos": np.int64, "a1": str, "a2": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"not a PLINK .bim file ({exc})", path=path) from None
    short = (bim["a2"] == "").to_numpy()
    if short.any():  # pandas fills the columns a short line lacks with ""
        raise InputFormatError("not a PLINK .bim file (fewer than 6 columns: chrom, id, cm, pos, A1, A2)",
                               path=path, record=f"line {int(np.flatnonzero(short)[0]) + 1}")
    return bim


def read_fam(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    try:
        fam = pd.read_csv(path, sep=r"\s+", header=None, names=FAM_COLUMNS,
                          dtype={"fid": str, "iid": str, "father": str, "mother": str, "sex": np.int64, "pheno": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"not a PLINK .fam file ({exc})", path=path) from None
    return fam


@dataclass
class Bed:
    """A PLINK fileset opened for block-wise reading (memory O(samples x block))."""

    prefix: Path
    bim_table: pa.Table
    fam: pd.DataFrame

    @cached_property
    def bim(self) -> pd.DataFrame:
        """The .bim as a DataFrame (columns chrom, id, cm, pos, a1, a2), built on first use."""
        return self.bim_table.to_pandas()

    @property
    def n_samples(self) -> int:
        return len(self.fam)

    @property
    def n_variants(self) -> int:
        return self.bim_table.num_rows

    @property
    def bytes_per_variant(self) -> int:
        return (self.n_samples + 3) // 4

    def read_packed(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The .bed bytes of variants [start, stop) as uint8 (variants x ceil(samples / 4)), read
        with plain file reads (no memory map, so resident memory stays one block)."""
        stop = self.n_variants if stop is None else min(stop, self.n_variants)
        nb = self.bytes_per_variant
        count = max(stop - start, 0)
        with open(_p(self.prefix, ".bed"), "rb") as fh:
            fh.seek(3 + start * nb)
            buf = fh.read(count * nb)
        if len(buf) != count * nb:
            raise InputFormatError(f"truncated .bed file (variant {start + len(buf) // nb + 1} of "
                                   f"{self.n_variants} incomplete)", path=_p(self.prefix, ".bed"))
        return np.frombuffer(buf, dtype=np.uint8).reshape(count, nb)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Genotypes of variants [start, stop) as int8 (variants x samples)."""
        return decode_bed_block(self.read_packed(start, stop), self.n_samples, _BYTE_TABLE)

    def read_rows(self, rows: np.ndarray, samples: np.ndarray | None = None, *, max_gap: int = 64) -> np.ndarray:
        """Genotypes of the ascending .bim rows ``rows`` (int8, rows x samples), optionally only the
        sample indices ``samples``; reads contiguous runs, merging gaps up to ``max_gap`` rows."""
        rows = np.asarray(rows, dtype=np.int64)
        n_out = self.n_samples if samples is None else len(samples)
        out = np.empty((rows.size, n_out), dtype=np.int8)
        i = 0
        while i < rows.size:
            j = i
            while j + 1 < rows.size and rows[j + 1] - rows[j] <= max_gap:
                j += 1
            block = self.read(int(rows[i]), int(rows[j]) + 1)[rows[i:j + 1] - rows[i]]
            out[i:j + 1] = block if samples is None else block[:, samples]
            i = j + 1
        return out

    def iter_packed_blocks(self, block_size: int = 4096, *, start: int = 0,
                           stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start index, packed .bed rows, read-only) over the variants ``start:stop``
        (default all), in blocks of at most ``block_size`` starting at ``start``.

        The rows are a window of a memory map of the .bed (no copy); once the consumer moves on,
        the window's pages are released, so resident memory stays about one block."""
        nb = self.bytes_per_variant
        path = _p(self.prefix, ".bed")
        expected = 3 + self.n_variants * nb
        size = path.stat().st_size
        if size < expected:
            raise InputFormatError(f"truncated .bed file ({size} bytes, {expected} expected for "
                                   f"{self.n_variants} variants x {self.n_samples} samples)", path=path)
        stop = self.n_variants if stop is None else stop
        if not 0 <= start <= stop <= self.n_variants:
            raise ValueError(f"variant range {start}:{stop} outside 0:{self.n_variants}")
        if stop == start:
            return
        page = mmap.PAGESIZE
        with open(path, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        data = np.frombuffer(mm, dtype=np.uint8)
        for first in range(start, stop, block_size):
            count = min(block_size, stop - first)
            offset = 3 + first * nb
            yield first, data[offset:offset + count * nb].reshape(count, nb)
            lo = offset // page * page
            hi = (offset + count * nb) // page * page  # the last partial page serves the next block
            if hi > lo and hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def iter_blocks(self, block_size: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start index, int8 genotype block) over all variants."""
        for start in range(0, self.n_variants, block_size):
            yield start, self.read(start, start + block_size)


def open_bed(prefix: str | Path) -> Bed:
    """Open ``prefix.bed/.bim/.fam``; checks the magic bytes and the file size."""
    prefix = Path(str(prefix).removesuffix(".bed"))
    for ext in (".bed", ".bim", ".fam"):
        p = Path(f"{prefix}{ext}")
        if not p.exists():
            raise InputFormatError("file not found", path=p)
    bed_path = Path(f"{prefix}.bed")
    bim = read_bim_table(f"{prefix}.bim")
    fam = read_fam(f"{prefix}.fam")
    with open(bed_path, "rb") as fh:
        magic = fh.read(3)
    if magic != BED_MAGIC:
        raise InputFormatError("not a variant-major PLINK 1 .bed file (bad magic bytes)", path=bed_path)
    expected = 3 + bim.num_rows * ((len(fam) + 3) // 4)
    actual = bed_path.stat().st_size
    if actual != expected:
        raise InputFormatError(
            f"size {actual} bytes does not match {bim.num_rows} variants x {len(fam)} samples "
            f"(expected {expected})", path=bed_path)
    return Bed(prefix=Path(str(prefix)), bim_table=bim, fam=fam)


# Path.with_suffix would mangle prefixes containing dots; keep explicit string concatenation.
def _p(prefix: Path, ext: str) -> Path:
    return Path(f"{prefix}{ext}")




class BedWriter:
    """Stream blocks of genotypes into ``prefix.bed`` atomically, then write .bim/.fam.

    Use as a context manager; nothing appears under the final names unless the block succeeds.
    """

    def __init__(self, prefix: str | Path, fam: pd.DataFrame):
        self.prefix = Path(str(prefix))
        self.fam = fam
        self._bims: list[pd.DataFrame] = []
        self._ctx = None
        self._fh = None

    def __enter__(self) -> BedWriter:
        self._ctx = atomic_path(_p(self.prefix, ".bed"))
        tmp = self._ctx.__enter__()
        self._fh = open(tmp, "wb")
        self._fh.write(BED_MAGIC)
        return self

    def write(self, geno: np.ndarray, bim: pd.DataFrame) -> None:
        if geno.shape != (len(bim), len(self.fam)):
            raise ValueError(f"genotype block {geno.shape} does not match {len(bim)} variants x {len(self.fam)} samples")
        self._fh.write(encode_bed_block(np.ascontiguousarray(geno, dtype=np.int8)).tobytes())
        self._bims.append(bim[BIM_COLUMNS])

    def __exit__(self, exc_type, exc, tb) -> None:
        self._fh.close()
        if exc_type is None:
            bim = pd.concat(self._bims, ignore_index=True) if self._bims else pd.DataFrame(columns=BIM_COLUMNS)
            write_bim(_p(self.prefix, ".bim"), bim)
            write_fam(_p(self.prefix, ".fam"), self.fam)
        self._ctx.__exit__(exc_type, exc, tb)


def write_bim(path: str | Path, bim: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        bim[BIM_COLUMNS].to_csv(tmp, sep="\t", header=False, index=False, lineterminator="\n")


def write_fam(path: str | Path, fam: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        fam[FAM_COLUMNS].to_csv(tmp, sep=" ", header=False, index=False, lineterminator="\n")


def write_bed(prefix: str | Path, geno: np.ndarray, bim: pd.DataFrame, fam: pd.DataFrame) -> None:
    """Write a whole genotype matrix (variants x samples) as a PLINK fileset."""
    with BedWriter(prefix, fam) as writer:
        writer.write(geno, bim)
