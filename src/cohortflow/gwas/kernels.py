"""Shared numerics of the association kernels (pure functions on numpy arrays, no I/O).

Genotypes reach the kernels as PLINK .bed bytes (variants x bytes, 2-bit codes, low bits first:
00 = two A1 alleles, 01 = missing, 10 = one, 11 = none), so no int8 matrix is ever materialised.
The linear and logistic tests live in :mod:`linear_kernels` and :mod:`logistic_kernels`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# errcode values in the output tables (empty string = fine)
ERR_OK = 0
ERR_MONOMORPHIC = 1
ERR_TOO_FEW = 2
ERR_RANK_DEFICIENT = 3
ERR_NO_CONVERGENCE = 4
ERR_SEPARATION = 5
ERRCODE_NAMES = ("", "monomorphic", "too_few_observations", "rank_deficient", "no_convergence", "separation")

# plink2 --glm refuses a predictor whose variance inflation factor exceeds 50 (--vif default)
MAX_VIF = 50.0

# A1 allele count of each 2-bit code; a missing call (01) counts 0 and is tracked separately
CODE_VALUE = np.array([2.0, 0.0, 1.0, 0.0])
CODE_MISSING = 1

# summation loops may be reordered (vectorised); still one fixed order per build, so results do not
# depend on threads or block boundaries. NaN/inf semantics are kept.
FAST = {"reassoc", "contract", "arcp", "nsz"}


@numba.njit(cache=True, nogil=True)
def cholesky_inplace(a: np.ndarray, k: int) -> bool:
    """Lower Cholesky factor of a[:k, :k] in place; False if not positive definite."""
    for j in range(k):
        s = a[j, j]
        for p in range(j):
            s -= a[j, p] * a[j, p]
        if s <= 0.0:
            return False
        d = math.sqrt(s)
        a[j, j] = d
        for i in range(j + 1, k):
            s = a[i, j]
            for p in range(j):
                s -= a[i, p] * a[j, p]
            a[i, j] = s / d
    return True


@numba.njit(cache=True, nogil=True)
def chol_solve(lower: np.ndarray, k: int, b: np.ndarray, out: np.ndarray) -> None:
    """Solve (L L') out = b with L = lower[:k, :k]."""
    for i in range(k):
        s = b[i]
        for p in range(i):
            s -= lower[i, p] * out[p]
        out[i] = s / lower[i, i]
    for i in range(k - 1, -1, -1):
        s = out[i]
        for p in range(i + 1, k):
            s -= lower[p, i] * out[p]
        out[i] = s / lower[i, i]


# exp(x) = 2^j exp(r), j = round(x log2 e), |r| <= log(2)/2, exp(r) by its Taylor series to r^12
# (truncation < 2e-16 relative). Written as plain elementwise loops so LLVM vectorises them: numba's
# math.exp is a scalar libm call and was most of a logistic fit's time.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low bits
_SHIFTER_BITS = np.int64(0x4338000000000000)
_INV_FACT = tuple(1.0 / math.factorial(i) for i in range(13))


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def expit_into(eta: np.ndarray, out: np.ndarray, bits: np.ndarray, n: int) -> None:
    """out[i] = 1 / (1 + exp(-eta[i])) for i < n; ``bits`` is int64 scratch of length >= n."""
    scale = bits.view(np.float64)
    c = _INV_FACT
    for i in range(n):
        x = -eta[i]
        x = min(max(x, -708.0), 708.0)
        t = x * _LOG2E + _SHIFTER
        scale[i] = t
        kf = t - _SHIFTER
        r = (x - kf * _LN2_HI) - kf * _LN2_LO
        poly = c[12]
        for j in range(11, -1, -1):  # Horner, unrolled by LLVM
            poly = poly * r + c[j]
        out[i] = poly
    for i in range(n):
        bits[i] = (bits[i] - _SHIFTER_BITS + 1023) << 52
    for i in range(n):
        out[i] = 1.0 / (1.0 + out[i] * scale[i])


@numba.njit(cache=True)
def _log_betacf(a: float, b: float, x: float) -> float:
    """log of the continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for mm in range(1, 10000):
        m2 = 2 * mm
        aa = mm * (b - mm) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + mm) * (qab + mm) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.log(h)


@numba.njit(cache=True)
def log_t_two_sided_p(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Natural log of the two-sided Student-t p-value, accurate far below the double range.

    p = I_x(df/2, 1/2) with x = df / (df + t^2); evaluated by the continued fraction in log space
    (valid in the tail, x < (a + 1) / (a + b + 2), which holds wherever p underflows).
    """
    out = np.empty(t.shape[0])
    for i in range(t.shape[0]):
        a = df[i] / 2.0
        b = 0.5
        tt = t[i] * t[i]
        x = df[i] / (df[i] + tt)
        log_x = math.log(df[i]) - math.log(df[i] + tt)
        log_1mx = math.log(tt) - math.log(df[i] + tt)
        lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        out[i] = a * log_x + b * log_1mx - math.log(a) - lbeta + _log_betacf(a, b, x)
    return out
