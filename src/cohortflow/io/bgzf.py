"""BGZF streams inflated in parallel: BAM files and the uncompressed-BAM pipe of htslib.

:func:`inflate_batches` reads a BGZF stream (a file or a pipe) and yields its decompressed bytes
in batches of whole blocks. The blocks of a batch are shared among ``threads`` ISA-L workers,
which release the GIL, and the next batch is inflated while the caller works on the one yielded;
each block's CRC32 and length are checked by ISA-L. A stream that stops inside a block, a
damaged block or a missing end-of-file marker is one :class:`~cohortflow.errors.InputFormatError`.

:func:`write_bgzf` is the other direction: text compressed into BGZF blocks in parallel, with the
end-of-file marker, readable by htslib, tabix and gzip.
"""

from __future__ import annotations

import collections
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from isal import igzip_lib, isal_zlib

from cohortflow.errors import InputFormatError
from cohortflow.io.vcf_text import bgzf_block_table

RAW_BYTES = 4 << 20  # compressed bytes read at a time
BGZF_MIN_BLOCK = 28
AHEAD = 2  # batches being inflated while the caller works on one
BLOCK_DATA = 0xFF00  # uncompressed bytes per written block, as htslib
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _inflate(raw: memoryview, offsets, sizes, isizes, positions, out: np.ndarray, where: str):
    for offset, size, isize, position in zip(offsets, sizes, isizes, positions):
        if isize == 0:
            continue
        try:
            data = igzip_lib.decompress(raw[offset:offset + size], flag=igzip_lib.DECOMP_GZIP, bufsize=isize)
        except igzip_lib.IsalError as err:
            return f"corrupt BGZF block at compressed offset {where}+{offset}: {err}"
        if len(data) != isize:
            return f"corrupt BGZF block at compressed offset {where}+{offset}: size does not match its trailer"
        out[position:position + isize] = np.frombuffer(data, dtype=np.uint8)
    return None


def inflate_batches(fh: BinaryIO, *, path: str | Path, threads: int = 1) -> Iterator[np.ndarray]:
    """Decompressed bytes of the BGZF stream ``fh``, a batch of whole blocks at a time.

    A yielded array is valid until the generator has been resumed once more (its memory is then
    reused: copy what must be kept). ``path`` names the stream in errors.
    """
    threads = max(1, int(threads))
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    capacity = RAW_BYTES // BGZF_MIN_BLOCK + 1
    offsets, sizes, isizes = (np.empty(capacity, dtype=np.int64) for _ in range(3))
    in_flight: collections.deque = collections.deque()
    consumed_raw = 0  # compressed bytes before the current chunk (for error offsets)
    leftover = b""
    last_block_empty = False
    seen_any = False

    # output buffers are reused round-robin: fresh memory costs a page fault per 4 KiB, which on
    # some machines costs more than inflating into it
    ring: list[np.ndarray] = [np.empty(0, dtype=np.uint8) for _ in range(AHEAD + 2)]
    turn = [0]

    def submit(view: memoryview, n: int, base: int):
        offs, szs, iszs = offsets[:n].tolist(), sizes[:n].tolist(), isizes[:n].tolist()
        positions = np.concatenate(([0], np.cumsum(iszs)[:-1])).tolist() if n else []
        total = int(sum(iszs))
        slot = turn[0] % len(ring)
        turn[0] += 1
        if len(ring[slot]) < total:
            ring[slot] = np.empty(max(total, 2 * len(ring[slot])), dtype=np.uint8)
        out = ring[slot][:total]
        parts = threads if pool is not None else 1
        cuts = np.linspace(0, n, parts + 1).astype(int).tolist()
        jobs = [(view, offs[a:b], szs[a:b], iszs[a:b], positions[a:b], out, str(base))
                for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        if pool is None:
            errors = [_inflate(*job) for job in jobs]
            return out, (lambda: errors)
        futures = [pool.submit(_inflate, *job) for job in jobs]
        return out, (lambda: [f.result() for f in futures])

    def collect():
        out, wait = in_flight.popleft()
        for err in wait():
            if err:
                raise InputFormatError(err, path=path)
        return out

    try:
        while True:
            # a fresh buffer per chunk: the one before may still be read by inflating workers
            raw = bytearray(len(leftover) + RAW_BYTES)
            raw[:len(leftover)] = leftover
            got = fh.readinto(memoryview(raw)[len(leftover):])
            got = got or 0
            size = len(leftover) + got
            if size == 0:
                break
            arr = np.frombuffer(raw, dtype=np.uint8, count=size)
            n, used, status = bgzf_block_table(arr, size, offsets, sizes, isizes)
            if status != 0:
                raise InputFormatError(f"not BGZF data at compressed offset {consumed_raw + used}", path=path)
            if got == 0 and used != size:
                raise InputFormatError(f"truncated file: incomplete BGZF block at compressed offset {consumed_raw + used}",
                                       path=path)
            if n:
                seen_any = True
                last_block_empty = int(isizes[n - 1]) == 0
                in_flight.append(submit(memoryview(raw)[:used], n, consumed_raw))
            consumed_raw += used
            leftover = bytes(raw[used:size])
            if got == 0 and not leftover:
                break
            while len(in_flight) > (AHEAD if pool is not None else 0):
                yield collect()
        while in_flight:
            yield collect()
        if seen_any and not last_block_empty:
            raise InputFormatError("truncated file: no BGZF end-of-file marker", path=path)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _deflate_block(data: bytes, level: int) -> bytes:
    body = isal_zlib.compress(data, level=level, wbits=-15)
    header = struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, ord("B"), ord("C"), 2,
                         len(body) + 25)
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def write_bgzf(out: BinaryIO, data: bytes | memoryview, *, threads: int = 1, level: int = 1,
               final: bool = True) -> None:
    """Compress ``data`` into BGZF blocks written to ``out`` (the EOF marker after, if ``final``).

    The bytes depend only on ``data`` and ``level``, not on ``threads``.
    """
    view = memoryview(data)
    pieces = [bytes(view[i:i + BLOCK_DATA]) for i in range(0, len(view), BLOCK_DATA)]
    if threads > 1 and len(pieces) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            blocks = list(pool.map(_deflate_block, pieces, [level] * len(pieces)))
    else:
        blocks = [_deflate_block(p, level) for p in pieces]
    for block in blocks:
        out.write(block)
    if final:
        out.write(EOF_BLOCK)
