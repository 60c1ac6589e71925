"""Deterministic low-level writers for the demo data: BGZF, FASTA and a reproducible .npz.

Everything here writes byte-identical files for identical inputs (no timestamps, fixed
compression level), so demo outputs can be compared by checksum.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cohortflow.errors import InputFormatError

# Uncompressed bytes per BGZF block; the value bgzip uses, so a compressed block always fits 64 KiB.
_BGZF_BLOCK_INPUT = 0xFF00
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# Level 1: about 6x faster than zlib's default on genotype text, files ~1.5x larger.
_BGZF_LEVEL = 1

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _bgzf_block(data: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    if len(payload) > 0xFFFF - 25:  # incompressible input: store it
        compressor = zlib.compressobj(0, zlib.DEFLATED, -15)
        payload = compressor.compress(data) + compressor.flush()
    block_size = len(payload) + 25  # 18-byte header + payload + 8-byte trailer, minus one
    header = struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, ord("B"), ord("C"), 2, block_size)
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data))
    return header + payload + trailer


class BgzfWriter:
    """Minimal BGZF writer (the blocked gzip of htslib) with a fixed compression level."""

    def __init__(self, path: str | Path, *, level: int = _BGZF_LEVEL):
        self._fh = open(path, "wb")
        self._level = level
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= _BGZF_BLOCK_INPUT:
            n_full = len(self._pending) // _BGZF_BLOCK_INPUT * _BGZF_BLOCK_INPUT
            view = memoryview(self._pending)
            self._fh.write(
                b"".join(
                    _bgzf_block(bytes(view[i : i + _BGZF_BLOCK_INPUT]), self._level)
                    for i in range(0, n_full, _BGZF_BLOCK_INPUT)
                )
            )
            view.release()
            del self._pending[:n_full]

    def close(self) -> None:
        if self._fh.closed:
            return
        if self._pending:
            self._fh.write(_bgzf_block(bytes(self._pending), self._level))
            self._pending.clear()
        self._fh.write(_BGZF_EOF)
        self._fh.close()

    def __enter__(self) -> BgzfWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_fasta(path: str | Path, contigs: dict[str, np.ndarray], *, line_width: int = 60) -> None:
    """Write base-code arrays (0..3 = A,C,G,T) as a FASTA file with fixed-width lines."""
    with open(path, "wb") as fh:
        for name, codes in contigs.items():
            fh.write(f">{name}\n".encode())
            letters = BASES[codes]
            n_full = len(letters) // line_width * line_width
            body = np.empty((n_full // line_width, line_width + 1), dtype=np.uint8)
            body[:, :line_width] = letters[:n_full].reshape(-1, line_width)
            body[:, line_width] = ord("\n")
            fh.write(body.tobytes())
            if n_full < len(letters):
                fh.write(letters[n_full:].tobytes() + b"\n")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``numpy.savez_compressed`` but with fixed zip timestamps, so bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)


def read_fasta_region(path: str | Path, contig: str, start0: int, end0: int) -> np.ndarray:
    """Base codes (0..3) of ``contig[start0:end0]`` from an indexed FASTA; other letters -> error."""
    import pysam

    with pysam.FastaFile(str(path)) as fasta:
        if contig not in fasta.references:
            raise InputFormatError(f"contig {contig!r} not in the reference", path=path)
        seq = fasta.fetch(contig, start0, end0).upper().encode()
    lookup = np.full(256, 255, dtype=np.uint8)
    lookup[BASES] = np.arange(4, dtype=np.uint8)
    codes = lookup[np.frombuffer(seq, dtype=np.uint8)]
    if (codes == 255).any():
        raise InputFormatError(f"non-ACGT base in {contig}:{start0 + 1}-{end0}", path=path)
    return codes
