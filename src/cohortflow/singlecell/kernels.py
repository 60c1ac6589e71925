"""Spatial autocorrelation: Moran's I and Geary's C on a weights graph, analytic and permutation tests.

Conventions (those of ``squidpy.gr.spatial_autocorr`` with its default ``transformation=True``):

- the weights ``W`` (n x n, sparse or dense, ``W[i, j]`` = weight of neighbour ``j`` for ``i``)
  are **row-standardised** before use (each non-empty row sums to 1) unless
  ``row_standardise=False``;
- ``I = n / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2`` and
  ``C = (n - 1) * sum_ij w_ij (x_i - x_j)^2 / (2 S0 sum_i z_i^2)``, with ``z = x - mean(x)``;
- the analytic variance is the normality-assumption variance (Cliff & Ord 1981, as in
  pysal/esda and squidpy): Moran ``(n^2 S1 - n S2 + 3 S0^2) / ((n^2 - 1) S0^2) - E[I]^2`` with
  ``E[I] = -1/(n-1)``; Geary ``((2 S1 + S2)(n - 1) - 4 S0^2) / (2 (n + 1) S0^2)`` with
  ``E[C] = 1``;
- p-values are one-tailed in the direction of the observed deviation (``two_tailed=True``
  doubles them): analytic ``p = P(Z > z)`` if ``z > 0`` else ``P(Z < z)``; permutation
  ``p = (min(#{null >= obs}, #{null < obs}) + 1) / (n_perms + 1)``, values permuted over locations.

A constant feature has no defined statistic: its results are NaN.
The numba kernel works on CSR arrays and numpy only; the wrappers accept scipy sparse or dense W.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse as sp
from scipy import stats

__all__ = [
    "AutocorrResult",
    "row_standardise",
    "weight_moments",
    "morans_i",
    "gearys_c",
    "autocorr_permutations",
    "morans_i_permutation",
    "permutation_pvalue",
    "autocorr_numerators_perm",
]


class AutocorrResult(NamedTuple):
    """Statistic, its null expectation and analytic variance, z-score and analytic p-value.

    Scalars for a 1-D ``values``; arrays (one per column) for a 2-D ``values``.
    """

    statistic: float | np.ndarray
    expected: float
    var: float
    z: float | np.ndarray
    p_analytic: float | np.ndarray


@numba.njit(cache=True, parallel=True)
def autocorr_numerators_perm(indptr, indices, data, y, perms):
    """Moran and Geary numerators of every column of ``y`` under every permutation.

    ``y`` (n, k) float64, centred per column; ``perms`` (n_perms, n) int64, row ``p`` maps location
    ``i`` to the value ``y[perms[p, i]]``. Returns ``(moran, geary)``, each (n_perms, k):
    ``sum_ij w_ij y_pi y_pj`` and ``sum_ij w_ij (y_pi - y_pj)^2``. Permutations run in parallel;
    each one's sums are accumulated serially in index order, so results do not depend on threads.
    """
    n_perms = perms.shape[0]
    n = y.shape[0]
    k = y.shape[1]
    moran = np.zeros((n_perms, k))
    geary = np.zeros((n_perms, k))
    for p in numba.prange(n_perms):
        acc_m = np.zeros(k)
        acc_g = np.zeros(k)
        for i in range(n):
            pi = perms[p, i]
            for e in range(indptr[i], indptr[i + 1]):
                pj = perms[p, indices[e]]
                w = data[e]
                for c in range(k):
                    a = y[pi, c]
                    b = y[pj, c]
                    acc_m[c] += w * a * b
                    d = a - b
                    acc_g[c] += w * d * d
        moran[p, :] = acc_m
        geary[p, :] = acc_g
    return moran, geary


def row_standardise(W) -> sp.csr_matrix:
    """CSR copy of ``W`` with each non-empty row scaled to sum 1 (squidpy's ``transformation``)."""
    W = sp.csr_matrix(W, dtype=np.float64, copy=True)
    sums = np.asarray(W.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    return sp.csr_matrix(sp.diags(scale) @ W)


def weight_moments(W) -> tuple[float, float, float]:
    """``S0 = sum w``, ``S1 = 1/2 sum (w_ij + w_ji)^2``, ``S2 = sum_i (w_i. + w_.i)^2``."""
    W = sp.csr_matrix(W, dtype=np.float64)
    s0 = float(W.sum())
    t = W + W.T
    s1 = float(t.multiply(t).sum()) / 2.0
    s2 = float(((np.asarray(W.sum(axis=1)).ravel() + np.asarray(W.sum(axis=0)).ravel()) ** 2).sum())
    return s0, s1, s2


def _prepare(values, W, row_std: bool):
    x = np.asarray(values, dtype=np.float64)
    scalar = x.ndim == 1
    if scalar:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"values must be 1-D or 2-D (n_obs x n_features), got shape {x.shape}")
    n = x.shape[0]
    if W.shape != (n, n):
        raise ValueError(f"weights shape {W.shape} does not match {n} observations")
    Wm = row_standardise(W) if row_std else sp.csr_matrix(W, dtype=np.float64)
    z = x - x.mean(axis=0)
    ss = (z * z).sum(axis=0)
    ss[ss <= 1e-12 * np.maximum(1.0, (x * x).sum(axis=0))] = np.nan  # constant feature
    return x, z, ss, Wm, scalar


def _tail_p(z: np.ndarray, two_tailed: bool) -> np.ndarray:
    p = np.where(z > 0, stats.norm.sf(z), stats.norm.cdf(z))
    p = np.where(np.isnan(z), np.nan, p)
    return np.minimum(1.0, 2.0 * p) if two_tailed else p


def _out(stat, expected, var, z, p, scalar):
    if scalar:
        return AutocorrResult(float(stat[0]), float(expected), float(var), float(z[0]), float(p[0]))
    return AutocorrResult(stat, float(expected), float(var), z, p)


def morans_i(values, W, *, row_standardise: bool = True, two_tailed: bool = False) -> AutocorrResult:
    """Moran's I of ``values`` (n,) or (n, k) on weights ``W``, with the normality-assumption test.

    Returns ``(I, expected, var, z, p_analytic)``; see the module docstring for the conventions.
    """
    x, z, ss, Wm, scalar = _prepare(values, W, row_standardise)
    n = x.shape[0]
    s0, s1, s2 = weight_moments(Wm)
    stat = n / s0 * np.einsum("ij,ij->j", z, Wm @ z) / ss
    expected = -1.0 / (n - 1)
    var = (n * n * s1 - n * s2 + 3.0 * s0 * s0) / ((n - 1) * (n + 1) * s0 * s0) - expected ** 2
    zscore = (stat - expected) / np.sqrt(var)
    return _out(stat, expected, var, zscore, _tail_p(zscore, two_tailed), scalar)


def gearys_c(values, W, *, row_standardise: bool = True, two_tailed: bool = False) -> AutocorrResult:
    """Geary's C of ``values`` (n,) or (n, k) on weights ``W``, with the normality-assumption test.

    Returns ``(C, expected=1, var, z, p_analytic)``; C < 1 means positive autocorrelation.
    """
    x, z, ss, Wm, scalar = _prepare(values, W, row_standardise)
    n = x.shape[0]
    s0, s1, s2 = weight_moments(Wm)
    coo = Wm.tocoo()
    diff = z[coo.row] - z[coo.col]
    num = (coo.data[:, None] * diff * diff).sum(axis=0)
    stat = (n - 1) * num / (2.0 * s0 * ss)
    var = ((2 * s1 + s2) * (n - 1) - 4 * s0 * s0) / (2 * (n + 1) * s0 * s0)
    zscore = (stat - 1.0) / np.sqrt(var)
    return _out(stat, 1.0, var, zscore, _tail_p(zscore, two_tailed), scalar)


def autocorr_permutations(values, W, *, n_perms: int = 999, seed: int = 0,
                          row_standardise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Null distributions of Moran's I and Geary's C: values permuted over locations.

    Returns ``(I_null, C_null)``, each (n_perms,) for 1-D ``values`` or (n_perms, k). The
    permutations come from ``numpy.random.default_rng(seed)``; all features share them.
    """
    if n_perms < 1:
        raise ValueError("n_perms must be >= 1")
    x, z, ss, Wm, scalar = _prepare(values, W, row_standardise)
    n = x.shape[0]
    s0 = float(Wm.sum())
    rng = np.random.default_rng(seed)
    zc = np.ascontiguousarray(np.nan_to_num(z), dtype=np.float64)
    indptr, indices, data = Wm.indptr.astype(np.int64), Wm.indices.astype(np.int64), Wm.data.astype(np.float64)
    # Permutations are drawn in blocks of at most ~16M indices (128 MB), in order from one generator.
    block = int(max(1, min(n_perms, (1 << 24) // max(n, 1))))
    m = np.empty((n_perms, zc.shape[1]))
    g = np.empty((n_perms, zc.shape[1]))
    for lo in range(0, n_perms, block):
        hi = min(n_perms, lo + block)
        perms = rng.permuted(np.tile(np.arange(n, dtype=np.int64), (hi - lo, 1)), axis=1)
        m[lo:hi], g[lo:hi] = autocorr_numerators_perm(indptr, indices, data, zc, perms)
    i_null = n / s0 * m / ss
    c_null = (n - 1) * g / (2.0 * s0 * ss)
    if scalar:
        return i_null[:, 0], c_null[:, 0]
    return i_null, c_null


def permutation_pvalue(observed, null, *, two_tailed: bool = False):
    """``(min(#{null >= obs}, #{null < obs}) + 1) / (n_perms + 1)``, doubled (capped at 1) if two-tailed.

    ``observed`` scalar or (k,); ``null`` (n_perms,) or (n_perms, k).
    """
    null = np.asarray(null, dtype=float)
    obs = np.asarray(observed, dtype=float)
    n_perms = null.shape[0]
    larger = (null >= obs).sum(axis=0)
    count = np.minimum(larger, n_perms - larger)
    p = (count + 1.0) / (n_perms + 1.0)
    if two_tailed:
        p = np.minimum(1.0, 2.0 * p)
    p = np.where(np.isnan(obs), np.nan, p)
    return float(p) if np.ndim(p) == 0 else p


def morans_i_permutation(values, W, n_perms: int = 999, seed: int = 0, *, row_standardise: bool = True,
                         two_tailed: bool = False):
    """Permutation p-value of Moran's I (scalar for 1-D ``values``, array for 2-D)."""
    observed = morans_i(values, W, row_standardise=row_standardise).statistic
    i_null, _ = autocorr_permutations(values, W, n_perms=n_perms, seed=seed, row_standardise=row_standardise)
    return permutation_pvalue(observed, i_null, two_tailed=two_tailed)
