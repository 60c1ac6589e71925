"""numba writers of the large per-cycle sections of samtools-stats text (FFQ/LFQ, GCC/GCT/FBC/LBC).

Long reads give these sections a row per cycle (millions), so they are written straight into a
uint8 buffer rather than with a Python ``%`` per row. Pure functions on arrays, no I/O; each
writes at ``out[pos:]`` and returns the new position, the caller sizing ``out`` with the
``*_bound`` helpers.

``put_fixed2`` is C's ``printf("%.2f")`` for the values involved (finite, below 2^53): the exact
binary value times 100 is rounded to an integer, an exact half to even (glibc in the default
rounding mode; Python's ``'%.2f'`` agrees), so no value near a rounding tie can come out
differently from samtools.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cohortflow.numfmt import n_digits, put_int

_TAB = 9
_NEWLINE = 10


@numba.njit(cache=True, nogil=True)
def put_fixed2(x: float, out: np.ndarray, pos: int) -> int:
    """Write finite ``x`` (|x| < 2^53) as ``%.2f`` at ``out[pos:]``; returns the new position."""
    if x < 0 or (x == 0 and math.copysign(1.0, x) < 0):
        out[pos] = 45  # '-' (printf keeps the sign of -0.0 and of values rounding to zero)
        pos += 1
        x = -x
    hundredths = np.int64(0)
    if x == 100.0:  # common in long-read tables (one read per cycle): skip the exact rounding
        hundredths = np.int64(10000)
    elif x > 0:
        frac, exp2 = math.frexp(x)  # x = frac * 2^exp2, 0.5 <= frac < 1
        mant = np.int64(frac * 9007199254740992.0)  # frac * 2^53: exact
        scaled = mant * np.int64(100)  # x * 100 = scaled * 2^shift exactly, scaled < 2^60
        shift = exp2 - 53
        if shift >= 0:
            hundredths = scaled << shift
        elif shift > -62:  # (from -62 on, x * 100 < 1/4: rounds to 0)
            s = -shift
            hundredths = scaled >> s
            rem = scaled & ((np.int64(1) << s) - 1)
            half = np.int64(1) << (s - 1)
            if rem > half or (rem == half and (hundredths & 1) == 1):
                hundredths += 1
    whole = hundredths // 100
    if whole >= 100:
        pos = put_int(whole, out, pos)
    elif whole >= 10:  # (percentages: the common widths written directly)
        out[pos] = 48 + whole // 10
        out[pos + 1] = 48 + whole % 10
        pos += 2
    else:
        out[pos] = 48 + whole
        pos += 1
    cents = hundredths % 100
    out[pos] = 46  # '.'
    out[pos + 1] = 48 + cents // 10
    out[pos + 2] = 48 + cents % 10
    return pos + 3


@numba.njit(cache=True, nogil=True)
def _put_tag(tag: np.ndarray, out: np.ndarray, pos: int) -> int:
    for k in range(tag.shape[0]):
        out[pos + k] = tag[k]
    return pos + tag.shape[0]


@numba.njit(cache=True, nogil=True)
def write_quality_rows(tag: np.ndarray, quals: np.ndarray, spilled: np.ndarray, rows: int,
                       width: int, out: np.ndarray, pos: int) -> int:
    """FFQ/LFQ rows ``tag\\tcycle\\tcount_q0..count_q{width-1}\\n`` for cycles 1..rows.

    ``quals`` (cycles, qual_width) are counts, ``spilled`` the same shape (added) or empty; cells
    outside ``quals`` are 0 (samtools prints every cycle and quality up to its maxima).
    """
    have_rows = min(rows, quals.shape[0])
    have_cols = min(width, quals.shape[1])
    with_spilled = spilled.shape[0] > 0
    for c in range(rows):
        pos = _put_tag(tag, out, pos)
        out[pos] = _TAB
        pos = put_int(c + 1, out, pos + 1)
        for q in range(width):
            out[pos] = _TAB
            pos += 1
            value = np.int64(0)
            if c < have_rows and q < have_cols:
                value = np.int64(quals[c, q])
                if with_spilled:
                    value += np.int64(spilled[c, q])
            if value < 10:  # most cells of long-read tables: one digit
                out[pos] = 48 + value
                pos += 1
            else:
                pos = put_int(value, out, pos)
        out[pos] = _NEWLINE
        pos += 1
    return pos


# 4-bit BAM base codes of A C G T N, and of the complements of A C G T (read-oriented counts)
_CODE_A, _CODE_C, _CODE_G, _CODE_T, _CODE_N = 1, 2, 4, 8, 15


@numba.njit(cache=True, nogil=True)
def write_base_content_rows(tag: np.ndarray, bases: np.ndarray, spilled: np.ndarray, fragments: int,
                            read_oriented: bool, used_cycles: np.ndarray, out: np.ndarray, pos: int) -> int:
    """GCC/GCT/FBC/LBC rows ``tag\tcycle\t%.2f...\n`` of the cycles with A/C/G/T bases.

    ``bases`` (fragment, strand, cycle, 4-bit code) counts (layout of ``sections_kernels``),
    ``spilled`` the same shape (added) or empty; ``fragments`` 0 first, 1 last, 2 both; a
    fragment's counts lie in its first ``used_cycles[fragment]`` cycles (the rest, zero, is not
    read: long-read tables are large, and untouched pages cost a fault even to read). Columns:
    A C G T N other (``read_oriented``: A C G T, reverse-strand bases complemented), each as
    100.0 * count / (A+C+G+T) computed in doubles as samtools does.
    """
    f_lo = 0 if fragments == 2 else fragments
    f_hi = 2 if fragments == 2 else fragments + 1
    with_spilled = spilled.shape[0] > 0
    n_columns = 4 if read_oriented else 6
    counts = np.zeros(6, dtype=np.int64)
    code_counts = np.zeros(16, dtype=np.int64)
    for c in range(bases.shape[2]):
        counts[:] = 0
        for f in range(f_lo, f_hi):
            if c >= used_cycles[f]:
                continue
            for strand in range(2):
                for code in range(16):
                    value = np.int64(bases[f, strand, c, code])
                    if with_spilled:
                        value += spilled[f, strand, c, code]
                    code_counts[code] = value
                if read_oriented and strand == 1:
                    counts[0] += code_counts[_CODE_T]
                    counts[1] += code_counts[_CODE_G]
                    counts[2] += code_counts[_CODE_C]
                    counts[3] += code_counts[_CODE_A]
                else:
                    counts[0] += code_counts[_CODE_A]
                    counts[1] += code_counts[_CODE_C]
                    counts[2] += code_counts[_CODE_G]
                    counts[3] += code_counts[_CODE_T]
                if not read_oriented:
                    counts[4] += code_counts[_CODE_N]
                    every = np.int64(0)
                    for code in range(16):
                        every += code_counts[code]
                    counts[5] += every - code_counts[_CODE_A] - code_counts[_CODE_C] - \
                        code_counts[_CODE_G] - code_counts[_CODE_T] - code_counts[_CODE_N]
        total = counts[0] + counts[1] + counts[2] + counts[3]
        if total == 0:
            continue
        pos = _put_tag(tag, out, pos)
        out[pos] = _TAB
        pos = put_int(c + 1, out, pos + 1)
        denominator = np.float64(total)
        for k in range(n_columns):
            out[pos] = _TAB
            pos = put_fixed2(100.0 * np.float64(counts[k]) / denominator, out, pos + 1)
        out[pos] = _NEWLINE
        pos += 1
    return pos


def quality_rows_bound(tag: bytes, rows: int, width: int, max_count: int) -> int:
    """Bytes ``write_quality_rows`` writes at most, every count at most ``max_count``."""
    per_row = len(tag) + 1 + n_digits(max(rows, 1)) + width * (1 + n_digits(max(max_count, 0))) + 1
    return rows * per_row


def base_content_rows_bound(tag: bytes, cycles: int, max_count: int) -> int:
    """Bytes ``write_base_content_rows`` writes at most for ``cycles`` cycles, no cell of the
    table (fragment, strand, cycle, code) above ``max_count``."""
    # a column sums at most 2 fragments x 2 strands x 16 codes, over a total of at least 1: a
    # percentage is at most 6400 * max_count; its digits, '.', 2 decimals and a tab
    per_value = 1 + n_digits(6400 * max(max_count, 0)) + 3
    return cycles * (len(tag) + 1 + n_digits(max(cycles, 1)) + 6 * per_value + 1)
