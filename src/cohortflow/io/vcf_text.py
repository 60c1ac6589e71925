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
BATCH_BYTES = 32 << 20


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return igzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def vcf_text_batches(path: str | Path, *, batch_bytes: int = BATCH_BYTES) -> Iterator[np.ndarray] | None:
    """The data lines of a VCF text file as uint8 arrays of whole lines (newline-terminated
    except perhaps the file's last), the header skipped; None when ``path`` is not VCF text
    (BCF, or a first line that is not ``##fileformat``/``#CHROM``)."""
    path = Path(path)
    with _open(path) as fh:
        head = fh.read(5)
    if not head.startswith(b"#"):
        return None
    return _batches(path, batch_bytes)


def _batches(path: Path, batch_bytes: int) -> Iterator[np.ndarray]:
    """Two buffers: the reader thread decompresses into one while the caller parses the other.
    A partial last line moves to the front of the next buffer. Each yielded array is valid until
    the generator is resumed."""
    buffers = [np.empty(batch_bytes, dtype=np.uint8), np.empty(batch_bytes, dtype=np.uint8)]
    with _open(path) as fh, ThreadPoolExecutor(max_workers=1) as reader:
        current = 0
        carry = 0  # bytes of a partial line at the front of buffers[current]
        pending = reader.submit(fh.readinto, memoryview(buffers[current])[carry:])
        in_header = True
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
