"""Meta-analysis numerics (pure functions on numpy arrays, no I/O).

Per variant, over the cohorts that have it (beta_i, se_i aligned to one effect allele):

- inverse-variance weights w_i = 1 / se_i^2; fixed effect beta = sum(w_i beta_i) / sum(w_i),
  se = 1 / sqrt(sum w_i), z = beta / se, two-sided normal p;
- Cochran's Q = sum w_i (beta_i - beta)^2 on k - 1 degrees of freedom (chi-square p), and
  I2 = max(0, (Q - (k - 1)) / Q) as a fraction (not a percentage);
- DerSimonian-Laird tau2 = max(0, (Q - (k - 1)) / (sum w_i - sum w_i^2 / sum w_i)); random
  effects with weights 1 / (se_i^2 + tau2): beta, se = 1 / sqrt(sum of them), z and normal p.

With one cohort Q, its p and I2 are undefined (NaN) and tau2 is 0 (random = fixed). p-values are
returned as log10 p, computed in log space (``log_ndtr``; the chi-square tail from its
continued fraction where it underflows), so they stay exact far below 1e-300.
Every variant is computed on its own, in a fixed cohort order: results do not depend on the
thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange
from scipy import special

LOG10_E = math.log10(math.e)
LN2 = math.log(2.0)

# direction characters per cohort (GWAMA's): absent, positive, negative, exactly zero
ABSENT, PLUS, MINUS, ZERO = ord("?"), ord("+"), ord("-"), ord("0")


@numba.njit(parallel=True, cache=True, nogil=True)
def meta_kernel(beta: np.ndarray, se: np.ndarray, eaf: np.ndarray, n: np.ndarray):
    """Fixed and random effects of (cohorts x variants) arrays; NaN beta or se = cohort absent.

    Returns (beta_fixed, se_fixed, q, tau2, beta_random, se_random, i2, eaf, n, n_cohorts,
    direction): per-variant arrays (NaN where no cohort has the variant), ``eaf`` weighted by
    each cohort's n (cohorts with a frequency and n > 0; their plain mean when none has n),
    ``n`` summed over the cohorts with one, ``direction`` a (variants x cohorts) uint8 array of
    '?', '+', '-', '0'."""
    k_all, m = beta.shape
    b_f = np.full(m, np.nan)
    s_f = np.full(m, np.nan)
    q_out = np.full(m, np.nan)
    tau_out = np.full(m, np.nan)
    b_r = np.full(m, np.nan)
    s_r = np.full(m, np.nan)
    i2_out = np.full(m, np.nan)
    eaf_out = np.full(m, np.nan)
    n_out = np.full(m, np.nan)
    k_out = np.zeros(m, dtype=np.int64)
    direction = np.empty((m, k_all), dtype=np.uint8)
    for j in prange(m):
        w_sum = 0.0
        wb_sum = 0.0
        w2_sum = 0.0
        k = 0
        for c in range(k_all):
            b = beta[c, j]
            s = se[c, j]
            if b == b and s == s:
                w = 1.0 / (s * s)
                w_sum += w
                wb_sum += w * b
                w2_sum += w * w
                k += 1
                direction[j, c] = PLUS if b > 0.0 else (MINUS if b < 0.0 else ZERO)
            else:
                direction[j, c] = ABSENT
        k_out[j] = k
        if k == 0:
            continue
        bf = wb_sum / w_sum
        b_f[j] = bf
        s_f[j] = 1.0 / math.sqrt(w_sum)
        q = 0.0
        num = 0.0
        den = 0.0
        eaf_plain = 0.0
        n_eaf = 0
        n_sum = 0.0
        n_known = 0
        for c in range(k_all):
            b = beta[c, j]
            s = se[c, j]
            if b == b and s == s:
                d = b - bf
                q += d * d / (s * s)
                f = eaf[c, j]
                nn = n[c, j]
                if nn == nn:
                    n_sum += nn
                    n_known += 1
                if f == f:
                    eaf_plain += f
                    n_eaf += 1
                    if nn == nn and nn > 0.0:
                        num += nn * f
                        den += nn
        if den > 0.0:
            eaf_out[j] = num / den
        elif n_eaf > 0:
            eaf_out[j] = eaf_plain / n_eaf
        if n_known > 0:
            n_out[j] = n_sum
        tau2 = 0.0
        if k >= 2:
            df = k - 1.0
            q_out[j] = q
            i2_out[j] = (q - df) / q if q > df else 0.0
            scale = w_sum - w2_sum / w_sum
            if scale > 0.0:
                tau2 = max((q - df) / scale, 0.0)
        tau_out[j] = tau2
        if tau2 == 0.0:
            b_r[j] = bf
            s_r[j] = s_f[j]
        else:
            wr_sum = 0.0
            wrb_sum = 0.0
            for c in range(k_all):
                b = beta[c, j]
                s = se[c, j]
                if b == b and s == s:
                    wr = 1.0 / (s * s + tau2)
                    wr_sum += wr
                    wrb_sum += wr * b
            b_r[j] = wrb_sum / wr_sum
            s_r[j] = 1.0 / math.sqrt(wr_sum)
    return b_f, s_f, q_out, tau_out, b_r, s_r, i2_out, eaf_out, n_out, k_out, direction


def log10_normal_p(z: np.ndarray) -> np.ndarray:
    """log10 of the two-sided normal p-value of ``z`` (NaN stays NaN; exact in the far tail)."""
    z = np.asarray(z, dtype=float)
    with np.errstate(invalid="ignore"):
        return (LN2 + special.log_ndtr(-np.abs(z))) * LOG10_E


@numba.njit(cache=True, nogil=True)
def _log_gamma_q_cf(a: float, x: float) -> float:
    """ln Q(a, x), the regularised upper incomplete gamma, by its continued fraction (modified
    Lentz); valid for x > a + 1, where it converges quickly and Q may be far below 1e-300."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return -x + a * math.log(x) - math.lgamma(a) + math.log(h)


@numba.njit(cache=True, nogil=True)
def _log_chi2_sf_tail(q: np.ndarray, df: np.ndarray) -> np.ndarray:
    out = np.empty(q.shape[0])
    for i in range(q.shape[0]):
        out[i] = _log_gamma_q_cf(df[i] / 2.0, q[i] / 2.0)
    return out


def log10_chi2_p(q: np.ndarray, df: np.ndarray) -> np.ndarray:
    """log10 of the chi-square upper tail P(X > q) with ``df`` degrees of freedom (NaN where q or
    df is NaN or df < 1); in log space where the tail underflows."""
    q = np.asarray(q, dtype=float)
    df = np.asarray(df, dtype=float)
    out = np.full(q.shape, np.nan)
    ok = np.isfinite(q) & np.isfinite(df) & (df >= 1)
    if not ok.any():
        return out
    qo, do = np.maximum(q[ok], 0.0), df[ok]
    with np.errstate(divide="ignore"):
        p = special.chdtrc(do, qo)
        lp = np.log10(p)
    tiny = (p < 1e-290) & (qo / 2.0 > do / 2.0 + 1.0)
    if tiny.any():
        lp[tiny] = _log_chi2_sf_tail(qo[tiny], do[tiny]) * LOG10_E
    out[ok] = lp
    return out


def meta_statistics(beta: np.ndarray, se: np.ndarray, eaf: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """Everything the meta-analysis writes, per variant, from (cohorts x variants) arrays aligned
    to one effect allele (NaN beta/se: the cohort lacks the variant).

    Keys: beta, standard_error, z, log10_p, beta_random, standard_error_random, z_random,
    log10_p_random, q, log10_q_p, i2, tau2, effect_allele_frequency, n, n_cohorts, direction
    (bytes, one character per cohort)."""
    beta = np.ascontiguousarray(beta, dtype=float)
    se = np.ascontiguousarray(se, dtype=float)
    eaf = np.ascontiguousarray(eaf, dtype=float)
    n = np.ascontiguousarray(n, dtype=float)
    b_f, s_f, q, tau2, b_r, s_r, i2, eaf_m, n_m, k, direction = meta_kernel(beta, se, eaf, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_f = b_f / s_f
        z_r = b_r / s_r
    return {
        "beta": b_f, "standard_error": s_f, "z": z_f, "log10_p": log10_normal_p(z_f),
        "beta_random": b_r, "standard_error_random": s_r, "z_random": z_r, "log10_p_random": log10_normal_p(z_r),
        "q": q, "log10_q_p": log10_chi2_p(q, np.where(k >= 2, k - 1.0, np.nan)), "i2": i2, "tau2": tau2,
        "effect_allele_frequency": eaf_m, "n": n_m, "n_cohorts": k,
        "direction": direction,
    }
