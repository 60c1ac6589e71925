"""Whole small text files that may be gzip- or BGZF-compressed (scoring files, summary statistics)."""

from __future__ import annotations

import zlib
from pathlib import Path

from isal import igzip

from cohortflow.errors import InputFormatError


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def read_inflated(path: str | Path) -> bytes:
    """The file's bytes, inflated by ISA-L when they are gzip (also multi-member, e.g. BGZF); a
    missing, unreadable or damaged file is one InputFormatError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFormatError(f"cannot read the file ({exc.strerror or exc})", path=path) from None
    if is_gzip(data):
        try:
            return igzip.decompress(data)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise InputFormatError(f"cannot inflate the gzip file: damaged gzip data ({exc})", path=path) from None
    return data
