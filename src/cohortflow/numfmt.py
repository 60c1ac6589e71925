"""Numbers as text in numba kernels, for the table writers (QC tables, the .bim, KING's .kin0):
one ``%g`` formatter with two rounding rules.

- C's ``printf("%.{digits}g")`` (``plink2=False``, 1 <= digits <= 15): the value scaled to
  ``digits`` significant digits is rounded half to even (so a value within an ulp of a rounding
  tie may differ from printf in the last digit);
- plink2's ``dtoa_g`` (``plink2=True``, 6 significant digits only): plink2's own scaling and
  thresholds, rounding half to even within 5e-9 of a tie (``BankerRoundD``), so that kinship
  tables match plink2's byte for byte.

Both then share the layout of ``%g``: trailing zeros dropped, exponential notation below 1e-4
and from 10^digits (plink2: from 999999.49999999) as ``d.ddde-05`` (at least two exponent
digits). Pure functions writing into a
uint8 buffer at a position and returning the new position.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_POW10 = 10.0 ** np.arange(23)                     # exact doubles
_IPOW10 = 10 ** np.arange(19, dtype=np.int64)
_DIGIT_PAIRS = np.array([ord(c) for k in range(100) for c in f"{k:02d}"], dtype=np.uint8)

# plink2 dtoa_g: 6 significant digits, decimal notation in [_G6_LOW, _G6_HIGH) (below 1) and in
# [_G6_HIGH, _G6_TOP) (from 1), rounding boundaries shifted by its tie tolerance
_G6_LOW = 9.9999949999999e-5
_G6_HIGH = 0.99999949999999
_G6_TOP = 999999.49999999
_G6_NINES = 9.9999949999999


@numba.njit(cache=True, nogil=True)
def put_digits(value: int, out: np.ndarray, pos: int, width: int) -> int:
    """Write ``value`` as exactly ``width`` decimal digits (zero-padded) at ``pos``, two at a time."""
    k = pos + width
    while k - pos >= 2:
        pair = 2 * (value % 100)
        value //= 100
        out[k - 2] = _DIGIT_PAIRS[pair]
        out[k - 1] = _DIGIT_PAIRS[pair + 1]
        k -= 2
    if k > pos:
        out[pos] = 48 + value % 10
    return pos + width


@numba.njit(cache=True, nogil=True)
def n_digits(value: int) -> int:
    """Decimal digits of a non-negative integer (at least 1)."""
    n = 1
    while n < 19 and value >= _IPOW10[n]:
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def put_int(value: int, out: np.ndarray, pos: int) -> int:
    """Write an integer in decimal (``-`` for negatives); returns the new position."""
    if value < 0:
        out[pos] = 45
        pos += 1
        value = -value
    return put_digits(value, out, pos, n_digits(value))


@numba.njit(cache=True, nogil=True)
def _printf_digits(x: float, digits: int) -> tuple[int, int, bool]:
    """(mantissa, exponent, exponential notation) of positive finite ``x`` to ``digits``
    significant digits: x ~ mantissa * 10^(exponent - digits + 1), 10^(digits-1) <= mantissa <
    10^digits, the scaled value rounded half to even."""
    # decimal exponent from the binary one (may be off by one; corrected below)
    e = int(math.floor((math.frexp(x)[1] - 1) * 0.30102999566398120))
    lo = _IPOW10[digits - 1]
    mant = 0
    for _ in range(3):
        k = digits - 1 - e
        scaled = x
        while k > 22:
            scaled *= 1e22
            k -= 22
        while k < -22:
            scaled /= 1e22
            k += 22
        scaled = scaled * _POW10[k] if k >= 0 else scaled / _POW10[-k]
        mant = int(np.rint(scaled))
        if mant >= 10 * lo:
            e += 1
        elif mant < lo:
            e -= 1
        else:
            break
    if mant >= 10 * lo:
        mant //= 10
    return mant, e, e < -4 or e >= digits


@numba.njit(cache=True, nogil=True)
def _banker_round(x: float) -> int:
    """plink2's BankerRoundD (kBankerRound8): round half to even within 5e-9 of a tie."""
    whole = int(x)
    if whole & 1:
        return whole + int((x - whole) + 0.500000005)
    return whole + int((x - whole) + 0.499999995)


@numba.njit(cache=True, nogil=True)
def _plink2_g6_digits(x: float) -> tuple[int, int, bool]:
    """(mantissa, exponent, exponential notation) of positive finite ``x`` to 6 significant
    digits as plink2's dtoa_g computes them: its scaling steps and thresholds, ``_banker_round``
    (exponential notation from _G6_TOP even where that rounds to 999999, exponent 5)."""
    if _G6_LOW <= x < _G6_HIGH:
        e = -1
        if x < 9.9999949999999e-3:
            x *= 100
            e -= 2
        if x < 9.9999949999999e-2:
            x *= 10
            e -= 1
        return _banker_round(x * 1000000), e, False
    if x < _G6_LOW or x >= _G6_TOP:
        # scaled into [1, 10) by powers of ten, 10^256 down to 10^1, as plink2 does
        xp10 = 0
        negative_exp = x < _G6_LOW
        power = 256
        while power >= 1:
            scale = 10.0 ** power
            if negative_exp:
                if x < _G6_NINES / scale:
                    x *= scale
                    xp10 += power
            elif x >= _G6_NINES * scale / 10.0:
                x *= 1.0 / scale
                xp10 += power
            power //= 2
        return _banker_round(x * 100000), -xp10 if negative_exp else xp10, True
    # [1, 1e6): the decimal point after the integer digits
    int_digits = 1
    bound = _G6_NINES
    while x >= bound and int_digits < 6:
        int_digits += 1
        bound *= 10.0
    return _banker_round(x * 10.0 ** (6 - int_digits)), int_digits - 1, False


@numba.njit(cache=True, nogil=True)
def put_g(x: float, digits: int, plink2: bool, out: np.ndarray, pos: int) -> int:
    """Write ``x`` as ``%.{digits}g`` at ``out[pos:]`` (C rounding, or plink2's dtoa_g with
    ``plink2`` and digits 6; see the module docstring); ``inf``, ``-inf``; NaN writes nothing.
    Returns the new position (at most digits + 9 bytes written)."""
    if x != x:
        return pos
    if x < 0:
        out[pos] = 45  # '-'
        pos += 1
        x = -x
    if x == math.inf:
        out[pos] = 105
        out[pos + 1] = 110
        out[pos + 2] = 102
        return pos + 3
    if x == 0.0:
        out[pos] = 48
        return pos + 1
    if plink2:
        mant, e, exponential = _plink2_g6_digits(x)
    else:
        mant, e, exponential = _printf_digits(x, digits)
    n_sig = digits
    while n_sig > 1 and mant % 10 == 0:
        mant //= 10
        n_sig -= 1
    if exponential:
        pos = put_digits(mant, out, pos, n_sig)
        if n_sig > 1:  # insert the point after the first digit
            for k in range(pos - 1, pos - n_sig, -1):
                out[k + 1] = out[k]
            out[pos - n_sig + 1] = 46
            pos += 1
        out[pos] = 101  # 'e'
        out[pos + 1] = 45 if e < 0 else 43
        ae = -e if e < 0 else e
        return put_digits(ae, out, pos + 2, 3 if ae >= 100 else 2)
    if e < 0:
        out[pos] = 48
        out[pos + 1] = 46
        pos += 2
        for _ in range(-e - 1):
            out[pos] = 48
            pos += 1
        return put_digits(mant, out, pos, n_sig)
    if n_sig <= e + 1:
        pos = put_digits(mant, out, pos, n_sig)
        for _ in range(e + 1 - n_sig):
            out[pos] = 48
            pos += 1
        return pos
    pos = put_digits(mant, out, pos, n_sig)  # then open a point after e + 1 digits
    for k in range(pos - 1, pos - (n_sig - e - 1) - 1, -1):
        out[k + 1] = out[k]
    out[pos - (n_sig - e - 1)] = 46
    return pos + 1
