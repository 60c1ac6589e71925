"""VCF text in batches of whole data lines, for the fast ingestion path.

BGZF (bgzip) files are decompressed block by block by ISA-L, the blocks of a batch shared among
``threads`` threads (ISA-L releases the GIL), each thread also noting the newlines of the blocks
it inflated while they are in cache; every block's CRC32 and length are checked. Plain gzip and
uncompressed VCF are read as one stream in a background thread. BCF and anything that is not VCF
text is left to cyvcf2 (:func:`vcf_text_batches` returns None).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from isal import igzip, igzip_lib

from cohortflow.bitops import copy_bytes, load_u64

GZIP_MAGIC = b"\x1f\x8b"
TABIX_PSEUDO_BIN = 37450
BATCH_BYTES = 32 << 20
RAW_BYTES = 8 << 20  # compressed bytes read at a time (BGZF)
BGZF_MIN_BLOCK = 28  # header 18 + empty deflate 2 + trailer 8


class NotFastText(Exception):
    """The file is not what the fast path reads (a damaged or non-BGZF gzip member among BGZF
    blocks): the caller reads it with htslib instead, which reports any real damage."""


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return igzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


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


def vcf_text_batches(path: str | Path, *, batch_bytes: int = BATCH_BYTES, contig: str | None = None,
                     threads: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]] | None:
    """The data lines of a VCF text file in batches ``(buf, ends)``: ``buf`` a uint8 array of
    whole lines, the header skipped; ``ends`` the offset of each line's newline in ``buf`` (or
    ``len(buf)`` for a last line without one). None when ``path`` is not VCF text (BCF, or a
    first line that is not a ``#`` line). Each batch is valid until the generator is resumed.
    The generator raises :class:`NotFastText` where a BGZF file turns out to hold something else.

    With ``contig``, reading starts at the contig's first record, found in the file's tabix
    (.tbi) index, and goes on to the end of the file (the caller stops at the next contig);
    None when there is no .tbi or it does not list the contig. ``threads``: BGZF blocks
    inflated at a time."""
    path = Path(path)
    with _open(path) as fh:
        head = fh.read(5)
    if not head.startswith(b"#"):
        return None
    start = None
    if contig is not None:
        start = tabix_contig_start(Path(f"{path}.tbi"), contig)
        if start is None:
            return None
    if _is_bgzf(path):
        return _bgzf_batches(path, batch_bytes, max(1, int(threads)), start=start)
    if start is not None:  # a .tbi beside a file that is not BGZF: its offsets mean nothing here
        return None
    return _with_line_ends(_batches(path, batch_bytes))


def _is_bgzf(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = np.frombuffer(fh.read(RAW_BYTES // 64), dtype=np.uint8)
    n, _, status = bgzf_block_table(head, len(head), np.empty(1, np.int64), np.empty(1, np.int64),
                                    np.empty(1, np.int64))
    return n > 0


def _with_line_ends(batches: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from cohortflow.variants.vcf_kernels import line_bounds

    for buf in batches:
        yield buf, line_bounds(buf)[1]


def _split_evenly(weights: np.ndarray, parts: int) -> list[int]:
    """Cut points 0 = c0 <= c1 <= ... <= c_parts = len(weights) making the parts' weight sums
    about equal."""
    total = np.cumsum(weights)
    if not len(total) or total[-1] == 0:
        return [0] * parts + [len(weights)]
    targets = total[-1] * np.arange(1, parts) / parts
    return [0] + np.searchsorted(total, targets, side="left").tolist() + [len(weights)]


def _bgzf_plans(path: Path, batch_bytes: int, start: tuple[int, int] | None):
    """The file's BGZF blocks in batches of about ``batch_bytes`` decompressed: (compressed
    bytes, offsets, sizes and decompressed sizes of the batch's blocks in them)."""
    capacity = RAW_BYTES // BGZF_MIN_BLOCK + 1
    offsets, sizes, isizes = (np.empty(capacity, dtype=np.int64) for _ in range(3))
    with open(path, "rb") as fh:
        if start is not None:
            fh.seek(start[0])
        leftover = b""
        while True:
            chunk = fh.read(RAW_BYTES)
            raw = leftover + chunk if leftover else chunk
            if not raw:
                return
            n, used, status = bgzf_block_table(np.frombuffer(raw, dtype=np.uint8), len(raw), offsets, sizes, isizes)
            if status != 0 or (not chunk and used != len(raw)):  # not BGZF, or a truncated last block
                raise NotFastText
            view = memoryview(raw)
            first = 0
            while first < n:
                fits = int(np.searchsorted(np.cumsum(isizes[first:n]), batch_bytes, side="right"))
                last = min(n, first + max(1, fits))
                yield view, offsets[first:last].tolist(), sizes[first:last].tolist(), isizes[first:last].tolist()
                first = last
            leftover = raw[used:]


def _bgzf_batches(path: Path, batch_bytes: int, threads: int, *,
                  start: tuple[int, int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of whole lines of a BGZF file. ``start``: a tabix virtual offset (offset of a
    block in the file, offset inside its decompressed data) where the first data line starts;
    without it the header lines are skipped.

    With threads > 1 the next batch is inflated (into the other of two buffers) while the caller
    parses the one yielded."""
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    texts = [np.empty(batch_bytes + (1 << 17), dtype=np.uint8) for _ in range(2 if pool else 1)]
    ends_buffers = [[np.empty(1 << 14, dtype=np.int64) for _ in range(threads)] for _ in texts]

    def submit(plan, slot: int, at: int):
        """Start inflating ``plan`` into texts[slot] from offset ``at``; returns a waiter giving
        the newline offsets."""
        raw_view, offsets, sizes, isizes = plan
        need = at + sum(isizes)
        if need > len(texts[slot]):
            bigger = np.empty(2 * need, dtype=np.uint8)
            bigger[:at] = texts[slot][:at]
            texts[slot] = bigger
        positions = (at + np.concatenate(([0], np.cumsum(isizes)[:-1]))).tolist()
        cuts = _split_evenly(np.asarray(sizes), threads)
        jobs = [(raw_view, offsets[a:b], sizes[a:b], isizes[a:b], positions[a:b], texts[slot], k)
                for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:]))]
        if pool is None:
            parts = [_inflate_blocks(job, ends_buffers[slot]) for job in jobs]
            return lambda: parts
        futures = [pool.submit(_inflate_blocks, job, ends_buffers[slot]) for job in jobs]
        return lambda: [f.result() for f in futures]

    skip = 0 if start is None else start[1]
    in_header = start is None
    plans = _bgzf_plans(path, batch_bytes, start)
    slot = 0
    try:
        plan = next(plans, None)
        if plan is None:
            return
        pending = submit(plan, slot, 0)
        total = sum(plan[3])
        while True:
            parts = pending()
            ends = np.concatenate(parts) if len(parts) > 1 else parts[0]
            text = texts[slot]
            if skip:
                ends = ends[ends >= skip]
            plan = next(plans, None)
            if not len(ends):  # no complete line yet: keep filling this buffer
                if plan is None:
                    break
                pending = submit(plan, slot, total)
                total += sum(plan[3])
                continue
            cut = int(ends[-1]) + 1
            begin, skip = skip, 0
            if in_header:
                begin, in_header = _header_end(text, cut)
                ends = ends[ends >= begin]
            carry = total - cut
            following = slot
            if plan is not None and pool is not None:  # inflate the next batch meanwhile
                following = 1 - slot
                if carry > len(texts[following]):
                    texts[following] = np.empty(2 * carry, dtype=np.uint8)
                texts[following][:carry] = text[cut:total]
                pending = submit(plan, following, carry)
            if cut > begin:
                yield text[begin:cut], ends - begin
            if plan is None:  # what is left is a last line without a newline
                text[:carry] = text[cut:total]
                total = carry
                break
            if pool is None:
                text[:carry] = text[cut:total]
                pending = submit(plan, slot, carry)
            slot = following
            total = carry + sum(plan[3])
        text = texts[slot]
        begin = _header_end(text, total)[0] if in_header else skip
        if total > begin:
            yield text[begin:total], np.array([total - begin], dtype=np.int64)
    finally:
        plans.close()
        if pool is not None:
            pool.shutdown()


def _inflate_blocks(job, ends_buffers) -> np.ndarray:
    """Inflate BGZF blocks into ``text`` at their positions and return the offsets of their
    newlines (a copy). Runs in a worker thread; ISA-L checks each block's CRC32."""
    raw_view, offsets, sizes, isizes, positions, text, worker = job
    ends = ends_buffers[worker]
    count = 0
    for offset, size, isize, position in zip(offsets, sizes, isizes, positions):
        if isize == 0:
            continue
        try:
            data = igzip_lib.decompress(raw_view[offset:offset + size], flag=igzip_lib.DECOMP_GZIP,
                                        bufsize=isize)
        except igzip_lib.IsalError:
            raise NotFastText from None
        if len(data) != isize:
            raise NotFastText
        block = np.frombuffer(data, dtype=np.uint8)
        placed = place_block(text, position, block, ends, count)
        while placed < 0:  # more newlines than ``ends`` holds: grow it and place the block again
            bigger = np.empty(2 * len(ends) + isize, dtype=np.int64)
            bigger[:count] = ends[:count]
            ends = ends_buffers[worker] = bigger
            placed = place_block(text, position, block, ends, count)
        count = placed
    return ends[:count].copy()


NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)
LOW_BITS = np.uint64(0x0101010101010101)
HIGH_BITS = np.uint64(0x8080808080808080)


@numba.njit(cache=True, nogil=True)
def place_block(text: np.ndarray, position: int, block: np.ndarray, ends: np.ndarray, count: int) -> int:
    """Copy ``block`` into text[position:] and append the offsets (in ``text``) of its newlines
    to ends[count:]; returns the new count, or -1 when ``ends`` is too short. Words without a
    newline byte are skipped with the has-zero-byte trick."""
    n = block.shape[0]
    copy_bytes(text, position, block)
    limit = ends.shape[0]
    i = 0
    while i < n:
        if i + 8 <= n:
            x = load_u64(block, i) ^ NEWLINES
            if not ((x - LOW_BITS) & ~x & HIGH_BITS):
                i += 8
                continue
            stop = i + 8
        else:
            stop = n
        for j in range(i, stop):
            if block[j] == 10:
                if count >= limit:
                    return -1
                ends[count] = position + j
                count += 1
        i = stop
    return count


@numba.njit(cache=True, nogil=True)
def bgzf_block_table(raw: np.ndarray, stop: int, offsets: np.ndarray, sizes: np.ndarray, isizes: np.ndarray):
    """The complete BGZF blocks at the start of raw[:stop]: their offsets, sizes and
    decompressed sizes (ISIZE) into the arrays given (as many as they hold); returns (blocks,
    bytes they span, status), status 1 when a block header is not BGZF's."""
    p = 0
    n = 0
    while n < offsets.shape[0] and p + 18 <= stop:
        if raw[p] != 31 or raw[p + 1] != 139 or raw[p + 2] != 8 or (raw[p + 3] & 4) == 0:
            return n, p, 1
        xlen = np.int64(raw[p + 10]) | (np.int64(raw[p + 11]) << 8)
        if p + 12 + xlen > stop:
            break
        bsize = -1
        q = p + 12
        while q + 4 <= p + 12 + xlen:
            slen = np.int64(raw[q + 2]) | (np.int64(raw[q + 3]) << 8)
            if raw[q] == 66 and raw[q + 1] == 67 and slen == 2 and q + 6 <= p + 12 + xlen:
                bsize = (np.int64(raw[q + 4]) | (np.int64(raw[q + 5]) << 8)) + 1
            q += 4 + slen
        if bsize < 12 + xlen + 8:
            return n, p, 1
        if p + bsize > stop:
            break
        e = p + bsize
        offsets[n] = p
        sizes[n] = bsize
        isizes[n] = (np.int64(raw[e - 4]) | (np.int64(raw[e - 3]) << 8) | (np.int64(raw[e - 2]) << 16)
                     | (np.int64(raw[e - 1]) << 24))
        if isizes[n] > 65536:
            return n, p, 1
        n += 1
        p = e
    return n, p, 0


def _batches(path: Path, batch_bytes: int) -> Iterator[np.ndarray]:
    """Batches of whole lines of a plain or gzip (not BGZF) file, the header skipped. Two
    buffers: the reader thread decompresses into one while the caller parses the other. A partial
    last line moves to the front of the next buffer. Each yielded array is valid until the
    generator is resumed."""
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
