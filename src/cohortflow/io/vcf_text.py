"""VCF text in batches of whole data lines, for the fast ingestion path.

Plain or gzip/BGZF-compressed VCF; decompression by ISA-L (~2 GB/s) in a background thread so it
overlaps the parsing of the previous batch. BCF and anything that is not VCF text is left to
cyvcf2 (:func:`vcf_text_batches` returns None).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from isal import igzip

GZIP_MAGIC = b"\x1f\x8b"
TABIX_PSEUDO_BIN = 37450
BATCH_BYTES = 32 << 20


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return igzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def _open_at(path: Path, start: tuple[int, int] | None):
    """The decompressed stream of ``path``, from a BGZF virtual offset when given."""
    if start is None:
        return _open(path)
    block, within = start
    raw = open(path, "rb")
    raw.seek(block)
    stream = igzip.IGzipFile(fileobj=raw, mode="rb")
    stream.read(within)
    return _Closing(stream, raw)


class _Closing:
    """A decompressed stream that also closes the raw file under it."""

    def __init__(self, stream, raw):
        self._stream, self._raw = stream, raw

    def readinto(self, buffer) -> int:
        return self._stream.readinto(buffer)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._stream.close()
        self._raw.close()


def tabix_contig_start(index: Path, contig: str) -> tuple[int, int] | None:
    """BGZF virtual offset (block offset, offset inside the block) of the first record of
    ``contig`` according to a tabix .tbi index; None when the index is absent or has no such
    contig. The contig's records run from there (files indexed by tabix are sorted)."""
    if not index.exists():
        return None
    data = memoryview(igzip.decompress(index.read_bytes()))
    if bytes(data[:4]) != b"TBI\x01":
        return None
    n_ref = int.from_bytes(data[4:8], "little", signed=True)
    names_len = int.from_bytes(data[32:36], "little", signed=True)
    names = bytes(data[36:36 + names_len]).split(b"\0")[:n_ref]
    pos = 36 + names_len
    for ref in range(n_ref):
        n_bin = int.from_bytes(data[pos:pos + 4], "little", signed=True)
        pos += 4
        first = None
        for _ in range(n_bin):
            bin_id = int.from_bytes(data[pos:pos + 4], "little")
            n_chunk = int.from_bytes(data[pos + 4:pos + 8], "little", signed=True)
            pos += 8
            chunks = np.frombuffer(data[pos:pos + 16 * n_chunk], dtype="<u8").reshape(n_chunk, 2)
            pos += 16 * n_chunk
            if bin_id == TABIX_PSEUDO_BIN:  # (start, end) of the contig's records, then counts
                begin = int(chunks[0, 0])
            else:
                begin = int(chunks[:, 0].min()) if n_chunk else None
            if begin is not None and (first is None or begin < first):
                first = begin
        n_intv = int.from_bytes(data[pos:pos + 4], "little", signed=True)
        pos += 4 + 8 * n_intv
        if names[ref].decode() == contig:
            return None if first is None else (first >> 16, first & 0xFFFF)
    return None


def vcf_text_batches(path: str | Path, *, batch_bytes: int = BATCH_BYTES,
                     contig: str | None = None) -> Iterator[np.ndarray] | None:
    """The data lines of a VCF text file as uint8 arrays of whole lines (newline-terminated
    except perhaps the file's last), the header skipped; None when ``path`` is not VCF text
    (BCF, or a first line that is not ``##fileformat``/``#CHROM``).

    With ``contig``, reading starts at the contig's first record, found in the file's tabix
    (.tbi) index, and goes on to the end of the file (the caller stops at the next contig);
    None when there is no .tbi or it does not list the contig."""
    path = Path(path)
    with _open(path) as fh:
        head = fh.read(5)
    if not head.startswith(b"#"):
        return None
    if contig is None:
        return _batches(path, batch_bytes)
    start = tabix_contig_start(Path(f"{path}.tbi"), contig)
    if start is None:
        return None
    return _batches(path, batch_bytes, start=start)


def _batches(path: Path, batch_bytes: int, *, start: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Two buffers: the reader thread decompresses into one while the caller parses the other.
    A partial last line moves to the front of the next buffer. Each yielded array is valid until
    the generator is resumed. ``start``: (offset of a BGZF block in the file, offset in its
    decompressed data) of the first data line to read (a tabix virtual offset)."""
    buffers = [np.empty(batch_bytes, dtype=np.uint8), np.empty(batch_bytes, dtype=np.uint8)]
    with _open_at(path, start) as fh, ThreadPoolExecutor(max_workers=1) as reader:
        current = 0
        carry = 0  # bytes of a partial line at the front of buffers[current]
        pending = reader.submit(fh.readinto, memoryview(buffers[current])[carry:])
        in_header = start is None
        while True:
            got = pending.result()
            buf = buffers[current]
            total = carry + got
            if got == 0:  # end of file: the rest is the last line
                cut = total
            else:
                cut = last_newline(buf, total) + 1
                if cut == 0:  # a line longer than the buffer: grow it
                    bigger = np.empty(2 * len(buf), dtype=np.uint8)
                    bigger[:total] = buf[:total]
                    buffers[current] = bigger
                    carry = total
                    pending = reader.submit(fh.readinto, memoryview(bigger)[carry:])
                    continue
            following = 1 - current
            rest = total - cut
            if len(buffers[following]) < rest + batch_bytes // 2:
                buffers[following] = np.empty(max(batch_bytes, 2 * rest), dtype=np.uint8)
            buffers[following][:rest] = buf[cut:total]
            if got:
                pending = reader.submit(fh.readinto, memoryview(buffers[following])[rest:])
            start = 0
            if in_header:
                start, in_header = _header_end(buf, cut)
            if cut > start:
                yield buf[start:cut]
            if got == 0:
                return
            current, carry = following, rest


@numba.njit(cache=True, nogil=True)
def last_newline(buf: np.ndarray, stop: int) -> int:
    """Index of the last newline in buf[:stop], -1 if none."""
    for i in range(stop - 1, -1, -1):
        if buf[i] == 10:
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def _header_end(buf: np.ndarray, stop: int) -> tuple[int, bool]:
    """Offset of the first data line in buf[:stop] and whether the header may go on past it."""
    pos = 0
    while pos < stop and buf[pos] == 35:  # '#'
        while pos < stop and buf[pos] != 10:
            pos += 1
        if pos >= stop:
            return stop, True
        pos += 1
    return pos, pos >= stop
