"""numba kernels for the linear association test (pure functions on numpy arrays, no I/O).

Model per variant: y = covariates + beta g + e over the samples analysed for the phenotype whose
genotype call is present (a missing call drops the sample from that variant's regression only,
as plink2 --glm does).

The covariates enter as ``Q``, an orthonormal basis of [1, covariates] over the analysed samples
(Q'Q = I). Everything a variant needs is a handful of cross-products, gathered in one pass over
its packed .bed bytes:

- ``G'Z`` for Z = [Q | Y] (rows of samples not analysed are zero): four variants are decoded to
  float rows, then multiplied with two Z columns at a time over sample tiles that stay in L1
  (near the FMA units' peak; a 256-entry table per byte measured 3x slower);
- sum g and sum g^2 over analysed samples with a call;
- for the few analysed samples whose call is missing, ``Z_M'Z_M``: the covariate cross-products
  become ``I - Q_M'Q_M`` (a rank-|M| downdate, never a refit).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cohortflow.gwas.kernels import (
    CODE_MISSING,
    ERR_MONOMORPHIC,
    ERR_RANK_DEFICIENT,
    ERR_TOO_FEW,
    FAST,
    MAX_VIF,
    chol_solve,
    cholesky_inplace,
)


# samples per tile of the dot products (4 genotype rows + Z rows stay in L1)
SAMPLE_TILE = 256
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _decode_row(row: np.ndarray, mask: np.ndarray, codes: np.ndarray, g: np.ndarray, sums: np.ndarray) -> bool:
    """A1 counts of one .bed row into g (0 for a missing call), in two vectorisable passes
    (2-bit codes, then counts); sums[0], sums[1] = sum g, sum g^2 over analysed samples (mask 1).
    Returns whether any byte holds a missing call (of any sample)."""
    nb = row.shape[0]
    flagged = 0
    for b in range(nb):
        x = np.int64(row[b])
        codes[4 * b] = x & 3
        codes[4 * b + 1] = (x >> 2) & 3
        codes[4 * b + 2] = (x >> 4) & 3
        codes[4 * b + 3] = x >> 6
        flagged += (x & ~(x >> 1) & 0x55) != 0
    s = 0.0
    q = 0.0
    for i in range(4 * nb):
        c = np.int32(codes[i])
        gi = np.float64((1 - (c & 1)) * (2 - (c >> 1)))  # codes 00, 01, 10, 11 -> 2, 0, 1, 0
        g[i] = gi
        s += gi * mask[i]
        q += gi * gi * mask[i]
    sums[0] = s
    sums[1] = q
    return flagged > 0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _missing_cross(row: np.ndarray, pattern: np.ndarray, zt: np.ndarray, out: np.ndarray) -> int:
    """Add z_i z_i' (lower triangle, row by row) over analysed samples i whose call is missing;
    returns their number."""
    cz = zt.shape[0]
    count = 0
    for b in range(row.shape[0]):
        code = np.int64(row[b])
        pat = np.int64(pattern[b])
        if pat == 0 or (code & ~(code >> 1) & 0x55) == 0:
            continue
        for s in range(4):
            if (code >> (2 * s)) & 3 == CODE_MISSING and (pat >> s) & 1:
                i = 4 * b + s
                count += 1
                p = 0
                for j in range(cz):
                    zj = zt[j, i]
                    for l in range(j + 1):
                        out[p] += zj * zt[l, i]
                        p += 1
    return count


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST, inline="always")
def _dot_4x2(g0, g1, g2, g3, za, zb, acc, j):
    """acc[u, j..j+1] += g_u . z_(j..j+1) for the four genotype rows of one sample tile."""
    a0 = a1 = a2 = a3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    for i in range(g0.shape[0]):
        x = za[i]
        y = zb[i]
        h0 = g0[i]
        h1 = g1[i]
        h2 = g2[i]
        h3 = g3[i]
        a0 += h0 * x
        a1 += h1 * x
        a2 += h2 * x
        a3 += h3 * x
        b0 += h0 * y
        b1 += h1 * y
        b2 += h2 * y
        b3 += h3 * y
    acc[0, j] += a0
    acc[1, j] += a1
    acc[2, j] += a2
    acc[3, j] += a3
    acc[0, j + 1] += b0
    acc[1, j + 1] += b1
    acc[2, j + 1] += b2
    acc[3, j + 1] += b3


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy", fastmath=FAST)
def _cross_products_chunks(raw, zt, pattern, mask, chunk, gz, allele_sum, square_sum, n_missing, missing_cross):
    """The body of :func:`cross_products`, filling its outputs chunk by chunk."""
    m = raw.shape[0]
    n4 = zt.shape[1]
    cz = zt.shape[0]
    n_chunks = (m + chunk - 1) // chunk
    for ch in numba.prange(n_chunks):
        g = np.zeros((4, n4))
        codes = np.zeros(n4, dtype=np.uint8)
        sums = np.zeros(2)
        flagged = np.zeros(4, dtype=np.bool_)
        acc = np.zeros((4, cz))
        for v0 in range(ch * chunk, min(m, (ch + 1) * chunk), 4):
            for u in range(4):
                if v0 + u < m:
                    flagged[u] = _decode_row(raw[v0 + u], mask, codes, g[u], sums)
                    allele_sum[v0 + u] = sums[0]
                    square_sum[v0 + u] = sums[1]
                else:
                    g[u, :] = 0.0
            # sample tiles keep the four genotype rows and Z's rows in L1 across column pairs
            acc[:, :] = 0.0
            for t0 in range(0, n4, SAMPLE_TILE):
                t1 = min(n4, t0 + SAMPLE_TILE)
                g0 = g[0, t0:t1]
                g1 = g[1, t0:t1]
                g2 = g[2, t0:t1]
                g3 = g[3, t0:t1]
                # a pair of columns at a time: 8 accumulators, each load feeds several multiply-adds
                # (four columns at a time measured no faster)
                for j in range(0, cz, 2):
                    _dot_4x2(g0, g1, g2, g3, zt[j, t0:t1], zt[j + 1, t0:t1], acc, j)
            for u in range(min(4, m - v0)):
                for j in range(cz):
                    gz[v0 + u, j] = acc[u, j]
            for u in range(min(4, m - v0)):
                if flagged[u]:
                    n_missing[v0 + u] = _missing_cross(raw[v0 + u], pattern, zt, missing_cross[v0 + u])


def cross_products(raw: np.ndarray, zt: np.ndarray, pattern: np.ndarray, chunk: int = 64):
    """One pass over packed genotypes.

    raw: uint8 (m x nb) .bed rows. zt: float64 (cz x 4 nb), Z transposed, zero in the columns of
    samples not analysed and of the padding past the last sample; cz even. pattern: uint8 (nb,),
    bit s set when sample 4 b + s is analysed.
    Returns ``gz`` (m x cz) = G'Z over the calls present, ``allele_sum`` and ``square_sum`` (sum g,
    sum g^2 over analysed samples with a call), ``n_missing`` (analysed samples without a call)
    and ``missing_cross`` (m x cz (cz + 1) / 2): the lower triangle of Z_M'Z_M row by row, M the
    analysed samples without a call. Every sum runs in one fixed order per variant, whatever the
    chunking or thread count.
    """
    m, nb = raw.shape
    cz = zt.shape[0]
    n4 = zt.shape[1]
    ntri = cz * (cz + 1) // 2
    gz = np.zeros((m, cz))
    allele_sum = np.zeros(m)
    square_sum = np.zeros(m)
    n_missing = np.zeros(m, dtype=np.int64)
    missing_cross = np.zeros((m, ntri))
    chunk = max(4, chunk // 4 * 4)
    mask = np.ascontiguousarray(np.unpackbits(pattern[:, None], axis=1, bitorder="little")[:, :4].ravel(),
                                dtype=np.float64)[:n4]
    # chunks are handed out one at a time (dynamic scheduling), so a thread slowed by other work
    # (the output writer) takes fewer of them; the callee's only parallel loop is over chunks
    previous = numba.set_parallel_chunksize(1)
    try:
        _cross_products_chunks(raw, zt, pattern, mask, chunk, gz, allele_sum, square_sum, n_missing,
                               missing_cross)
    finally:
        numba.set_parallel_chunksize(previous)
    return gz, allele_sum, square_sum, n_missing, missing_cross


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def linear_tests(gz: np.ndarray, allele_sum: np.ndarray, square_sum: np.ndarray, n_missing: np.ndarray,
                 missing_cross: np.ndarray, k: int, n_analysed: int, qty: np.ndarray, yty: np.ndarray):
    """Per variant and phenotype: beta, SE and t of the genotype, adjusted for the covariates.

    The first five arguments come from :func:`cross_products` with Z = [Q | Y] (k covariate
    columns, then p phenotype columns centred over the analysed samples, then possibly a zero
    column that made the count even).
    qty (k x p) = Q'Y and yty (p,) = diag(Y'Y) over all analysed samples.
    Returns beta, se, t (m x p), df, n (m,), allele sum (m,) and errcode (m x p; int8).
    """
    m = gz.shape[0]
    p_count = qty.shape[1]
    beta = np.full((m, p_count), np.nan)
    se = np.full((m, p_count), np.nan)
    tstat = np.full((m, p_count), np.nan)
    dfree = np.zeros(m)
    nobs = np.zeros(m, dtype=np.int64)
    gsum = np.zeros(m)
    err = np.zeros((m, p_count), dtype=np.int8)
    chunk = 256
    for ch in numba.prange((m + chunk - 1) // chunk):
        a = np.zeros((k, k))
        bg = np.empty(k)
        xg = np.empty(k)
        by = np.empty(k)
        xy = np.empty(k)
        for v in range(ch * chunk, min(m, (ch + 1) * chunk)):
            c = n_analysed - n_missing[v]
            s = allele_sum[v]
            sq = square_sum[v]
            nobs[v] = c
            gsum[v] = s
            df = c - k - 1
            dfree[v] = df
            # exact integers: the observed genotypes are constant iff c * sum g^2 == (sum g)^2
            if c == 0 or c * sq == s * s:
                err[v, :] = ERR_MONOMORPHIC
                continue
            if df < 1:
                err[v, :] = ERR_TOO_FEW
                continue
            full = n_missing[v] == 0  # then Q'Q = I over the samples with a call: no solves
            tri = missing_cross[v]
            for j in range(k):
                bg[j] = gz[v, j]
            if full:
                for j in range(k):
                    xg[j] = bg[j]
            else:
                for j in range(k):
                    row = j * (j + 1) // 2
                    for l in range(j + 1):
                        a[j, l] = -tri[row + l]
                    a[j, j] += 1.0
                if not cholesky_inplace(a, k):
                    err[v, :] = ERR_RANK_DEFICIENT
                    continue
                chol_solve(a, k, bg, xg)
            grg = sq
            for j in range(k):
                grg -= bg[j] * xg[j]
            gcc = sq - s * s / c
            # variance inflation of the genotype given the covariates (plink2's --vif check)
            if grg <= 0.0 or gcc / grg > MAX_VIF:
                err[v, :] = ERR_RANK_DEFICIENT
                continue
            for t in range(p_count):
                col = k + t
                row = col * (col + 1) // 2
                if full:
                    for j in range(k):
                        by[j] = qty[j, t]
                        xy[j] = qty[j, t]
                    yy = yty[t]
                else:
                    for j in range(k):
                        by[j] = qty[j, t] - tri[row + j]
                    yy = yty[t] - tri[row + col]
                    chol_solve(a, k, by, xy)
                yry = yy
                gry = gz[v, col]
                for j in range(k):
                    yry -= by[j] * xy[j]
                    gry -= bg[j] * xy[j]
                b = gry / grg
                rss = yry - b * gry
                if rss < 0.0:
                    rss = 0.0
                beta[v, t] = b
                se[v, t] = math.sqrt(rss / df / grg)
                tstat[v, t] = b / se[v, t] if se[v, t] > 0.0 else math.copysign(math.inf, b)
    return beta, se, tstat, dfree, nobs, gsum, err
