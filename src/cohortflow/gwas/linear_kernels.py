"""numba kernels for the linear association test (pure functions on numpy arrays, no I/O).

Model per variant: y = covariates + beta g + e over the samples analysed for the phenotype whose
genotype call is present (a missing call drops the sample from that variant's regression only,
as plink2 --glm does).

The covariates enter as ``Q``, an orthonormal basis of [1, covariates] over the analysed samples
(Q'Q = I). Everything a variant needs is a handful of cross-products, gathered in one pass over
its packed .bed bytes:

- ``G'Z`` for Z = [Q | Y] (rows of samples not analysed are zero), using a 256-entry table per
  byte (the four samples' contributions for every genotype combination), so a byte costs one
  vector add instead of four multiply-adds;
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
    CODE_VALUE,
    ERR_MONOMORPHIC,
    ERR_RANK_DEFICIENT,
    ERR_TOO_FEW,
    FAST,
    MAX_VIF,
    any_missing_code,
    chol_solve,
    cholesky_inplace,
)


def _code_tables() -> tuple[np.ndarray, np.ndarray]:
    """``decode[4 code + s]``: A1 count of sample s in a .bed byte (0 for a missing call).
    ``counts[16 pattern + code]``: over the samples of the byte selected by the 4-bit ``pattern``,
    the number of calls with two A1 alleles, with one and missing ones, packed in 21-bit fields."""
    decode = np.zeros(1024)
    counts = np.zeros(16 * 256, dtype=np.int64)
    for code in range(256):
        for s in range(4):
            decode[4 * code + s] = CODE_VALUE[(code >> (2 * s)) & 3]
        for pattern in range(16):
            two = one = miss = 0
            for s in range(4):
                if pattern >> s & 1:
                    c = (code >> (2 * s)) & 3
                    two += c == 0
                    one += c == 2
                    miss += c == CODE_MISSING
            counts[256 * pattern + code] = two | (one << 21) | (miss << 42)
    return decode, counts


DECODE_TABLE, COUNT_TABLE = _code_tables()
_FIELD = (1 << 21) - 1


# samples per tile of the dot products (4 genotype rows + Z rows stay in L1)
SAMPLE_TILE = 256
# bytes with a missing call remembered per variant during decoding (more: rescan the row)
MISSING_BYTES_CAP = 512


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _decode4(raw: np.ndarray, v0: int, m: int, pattern: np.ndarray, decode: np.ndarray, counts: np.ndarray,
             g: np.ndarray, packed: np.ndarray, miss_bytes: np.ndarray, n_miss_bytes: np.ndarray) -> None:
    """A1 counts of variants v0..v0+3 into the rows of g (rows past m stay zero), their packed
    genotype counts over the analysed samples (see :func:`_code_tables`) into ``packed`` and the
    positions of bytes holding an analysed sample's missing call into ``miss_bytes``."""
    nb = raw.shape[1]
    cap = miss_bytes.shape[1]
    for u in range(4):
        gu = g[u]
        packed[u] = 0
        n_miss_bytes[u] = 0
        if v0 + u >= m:
            gu[:] = 0.0
            continue
        row = raw[v0 + u]
        acc = np.int64(0)
        nm = 0
        for b in range(nb):
            code = np.int64(row[b])
            o = code * 4
            gu[4 * b] = decode[o]
            gu[4 * b + 1] = decode[o + 1]
            gu[4 * b + 2] = decode[o + 2]
            gu[4 * b + 3] = decode[o + 3]
            c = counts[256 * np.int64(pattern[b]) + code]
            acc += c
            if c >> 42:
                if nm < cap:
                    miss_bytes[u, nm] = b
                nm += 1
        packed[u] = acc
        n_miss_bytes[u] = nm


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _missing_cross(row: np.ndarray, byte_idx: np.ndarray, pattern: np.ndarray, zt: np.ndarray,
                   out: np.ndarray) -> None:
    """Add z_i z_i' (lower triangle, row by row) over analysed samples i whose call is missing,
    looking at the bytes ``byte_idx`` of the variant's row."""
    cz = zt.shape[0]
    for b in byte_idx:
        pat = np.int64(pattern[b])
        code = row[b]
        for s in range(4):
            if (code >> (2 * s)) & 3 == CODE_MISSING and (pat >> s) & 1:
                i = 4 * b + s
                p = 0
                for j in range(cz):
                    zj = zt[j, i]
                    for l in range(j + 1):
                        out[p] += zj * zt[l, i]
                        p += 1


@numba.njit(cache=True, parallel=True, error_model="numpy", fastmath=FAST)
def cross_products(raw: np.ndarray, zt: np.ndarray, pattern: np.ndarray, decode: np.ndarray,
                   counts: np.ndarray, chunk: int = 64):
    """One pass over packed genotypes.

    raw: uint8 (m x nb) .bed rows. zt: float64 (cz x 4 nb), Z transposed, zero in the columns of
    samples not analysed and of the padding past the last sample; cz even. pattern: uint8 (nb,),
    bit s set when sample 4 b + s is analysed. decode, counts: :data:`DECODE_TABLE`,
    :data:`COUNT_TABLE`.
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
    n_chunks = (m + chunk - 1) // chunk
    for ch in numba.prange(n_chunks):
        g = np.zeros((4, n4))
        packed = np.zeros(4, dtype=np.int64)
        acc = np.zeros((4, cz))
        miss_bytes = np.zeros((4, MISSING_BYTES_CAP), dtype=np.int64)
        n_miss_bytes = np.zeros(4, dtype=np.int64)
        all_bytes = np.arange(nb)
        for v0 in range(ch * chunk, min(m, (ch + 1) * chunk), 4):
            _decode4(raw, v0, m, pattern, decode, counts, g, packed, miss_bytes, n_miss_bytes)
            # sample tiles keep the four genotype rows and Z's rows in L1 across column pairs
            acc[:, :] = 0.0
            for t0 in range(0, n4, SAMPLE_TILE):
                t1 = min(n4, t0 + SAMPLE_TILE)
                g0 = g[0, t0:t1]
                g1 = g[1, t0:t1]
                g2 = g[2, t0:t1]
                g3 = g[3, t0:t1]
                for j in range(0, cz, 2):
                    a0 = 0.0
                    a1 = 0.0
                    a2 = 0.0
                    a3 = 0.0
                    b0 = 0.0
                    b1 = 0.0
                    b2 = 0.0
                    b3 = 0.0
                    za = zt[j, t0:t1]
                    zb = zt[j + 1, t0:t1]
                    for i in range(t1 - t0):
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
            for u in range(min(4, m - v0)):
                for j in range(cz):
                    gz[v0 + u, j] = acc[u, j]
            for u in range(min(4, m - v0)):
                v = v0 + u
                two = packed[u] & _FIELD
                one = (packed[u] >> 21) & _FIELD
                miss = (packed[u] >> 42) & _FIELD
                allele_sum[v] = 2.0 * two + one
                square_sum[v] = 4.0 * two + one
                n_missing[v] = miss
                if miss > 0:
                    nmb = n_miss_bytes[u]
                    byte_idx = miss_bytes[u, :nmb] if nmb <= MISSING_BYTES_CAP else all_bytes
                    _missing_cross(raw[v], byte_idx, pattern, zt, missing_cross[v])
    return gz, allele_sum, square_sum, n_missing, missing_cross


@numba.njit(cache=True, parallel=True, error_model="numpy")
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
    for v in numba.prange(m):
        a = np.zeros((k, k))
        bg = np.empty(k)
        xg = np.empty(k)
        by = np.empty(k)
        xy = np.empty(k)
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
        tri = missing_cross[v]
        for j in range(k):
            row = j * (j + 1) // 2
            for l in range(j + 1):
                a[j, l] = -tri[row + l]
            a[j, j] += 1.0
        if not cholesky_inplace(a, k):
            err[v, :] = ERR_RANK_DEFICIENT
            continue
        for j in range(k):
            bg[j] = gz[v, j]
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
