"""numba kernels of the genetics integration stage (pure functions on numpy arrays, no I/O).

- :func:`quadform_saddlepoint`: saddlepoint tail of a weighted sum of independent chi2(1)
  variables (the null of the SNP-wise mean gene statistic), returned as the Barndorff-Nielsen
  r* normal deviate, so that P(Q > q) = Phi(-r*) without loss of precision in the far tail.
"""

from __future__ import annotations

import math

import numba
import numpy as np




@numba.njit(cache=True)
def _cgf_derivs(t: float, lam: np.ndarray) -> tuple[float, float, float]:
    """K(t), K'(t), K''(t) of sum_j lam_j * chi2_1."""
    k0 = 0.0
    k1 = 0.0
    k2 = 0.0
    for j in range(lam.shape[0]):
        a = 1.0 - 2.0 * lam[j] * t
        k0 -= 0.5 * math.log(a)
        k1 += lam[j] / a
        k2 += 2.0 * lam[j] * lam[j] / (a * a)
    return k0, k1, k2


@numba.njit(cache=True)
def quadform_saddlepoint(q: float, lam: np.ndarray) -> tuple[float, bool]:
    """Saddlepoint (Barndorff-Nielsen r*) deviate for P(sum_j lam_j chi2_1 > q).

    ``lam`` are positive eigenvalues. Returns ``(r_star, ok)``; P(Q > q) ~= Phi(-r_star).
    ``ok`` is False when q is so close to E[Q] that r* is numerically unstable (|w| < 1e-3);
    the caller then uses a moment-matched approximation, which is exact to first order there.
    """
    lam_max = 0.0
    lam_sum = 0.0
    for j in range(lam.shape[0]):
        lam_sum += lam[j]
        if lam[j] > lam_max:
            lam_max = lam[j]
    if q <= 0.0 or lam_max <= 0.0:
        return -math.inf, True
    # K'(t) is increasing on (-inf, 1/(2 lam_max)); bracket the root of K'(t) = q.
    hi = 0.5 / lam_max
    lo = -lam.shape[0] / (2.0 * q) - 1.0
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        k0, k1, k2 = _cgf_derivs(mid, lam)
        if k1 > q:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-15 * max(1.0, abs(hi)) / lam_max:
            break
    t = 0.5 * (lo + hi)
    # a few Newton polish steps (stay inside the bracket)
    for _ in range(5):
        k0, k1, k2 = _cgf_derivs(t, lam)
        step = (k1 - q) / k2
        t_new = t - step
        if t_new <= lo or t_new >= hi:
            break
        t = t_new
    k0, k1, k2 = _cgf_derivs(t, lam)
    arg = 2.0 * (t * q - k0)
    if arg < 0.0:
        arg = 0.0
    w = math.sqrt(arg)
    if t < 0.0:
        w = -w
    v = t * math.sqrt(k2)
    if abs(w) < 1e-3 or v / w <= 0.0:
        return w, False
    return w + math.log(v / w) / w, True
