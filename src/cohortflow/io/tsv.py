"""Tab-separated tables written by numba kernels (Python or Arrow number printing would dominate
the run time of QC and ingestion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cohortflow.io.atomic import atomic_open
from cohortflow.variants.kernels import NUMBER_FIELD_WIDTH, format_number_columns, join_text_columns

TSV_DIGITS = 8  # significant digits of float columns (%.8g)


def write_tsv(path: Path, columns: dict[str, np.ndarray | pa.Array | pa.ChunkedArray], *,
               header: bool = True) -> None:
    """Tab-separated table, with a header line unless ``header`` is False: float arrays as
    ``%.8g`` (NaN empty), integer and boolean arrays as integers, Arrow arrays as their strings
    (null empty); formatted and joined by numba kernels (Python or Arrow float printing would
    dominate the QC run time)."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    numbers = [(k, np.asarray(c)) for k, c in enumerate(columns.values())
               if not isinstance(c, (pa.Array, pa.ChunkedArray))]
    if numbers:
        values = np.vstack([c.astype(np.float64) for _, c in numbers])
        digits = np.array([0 if c.dtype.kind in "iub" else TSV_DIGITS for _, c in numbers], dtype=np.int64)
        number_offsets, number_data = format_number_columns(values, digits)
    else:
        number_offsets, number_data = np.zeros((0, n + 1), dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.empty((len(names), n + 1), dtype=np.int64)
    slot = np.zeros(len(names), dtype=np.int64)
    pieces, base = [number_data], len(number_data)
    for row, (k, _) in enumerate(numbers):
        offsets[k], slot[k] = number_offsets[row], NUMBER_FIELD_WIDTH
    for k, col in enumerate(columns.values()):
        if not isinstance(col, (pa.Array, pa.ChunkedArray)):
            continue
        arr = pc.fill_null(col.cast(pa.string()), "")
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        buffers = arr.buffers()
        offsets[k] = np.frombuffer(buffers[1], dtype=np.int32)[arr.offset:arr.offset + n + 1] + base
        data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
        pieces.append(data)
        base += len(data)
    body = join_text_columns(offsets, np.concatenate(pieces), slot)
    with atomic_open(path, "wb", compress=False) as fh:
        if header:
            fh.write(("\t".join(names) + "\n").encode())
        fh.write(memoryview(body))
