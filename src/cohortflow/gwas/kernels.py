"""numba kernels for per-variant association tests (pure functions on numpy arrays, no I/O).

Both regressions exclude a sample whose genotype call is missing from that variant's model only,
as plink2 --glm does (the sample count ``n`` varies per variant).

Linear: covariates are given as ``Q``, an orthonormal basis (n x k, Q'Q = I) of the covariate
columns (intercept included) over the analysed samples. For a variant with missing calls M the
covariate cross-products are downdated, ``A = I - Q_M'Q_M``, so each variant costs
O(n_carriers k + |M| k^2 + k^3).

Logistic: Newton-Raphson (IRLS) per variant, started at the covariate-only fit, with missing
calls given weight zero. The Wald statistic uses the inverse information. When the genotype
alone separates cases from controls, or Newton fails, the variant is refitted with Firth's
penalised likelihood (plink2's firth-fallback) unless that is switched off.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# errcode values in the output tables (empty string = fine)
ERR_OK = 0
ERR_MONOMORPHIC = 1
ERR_TOO_FEW = 2
ERR_COLLINEAR = 3
ERR_NO_CONVERGENCE = 4
ERR_SEPARATION = 5
ERRCODE_NAMES = ("", "monomorphic", "too_few_observations", "collinear", "no_convergence", "separation")

# plink2 --glm refuses a predictor whose variance inflation factor exceeds 50 (--vif default)
MAX_VIF = 50.0


@numba.njit(cache=True, nogil=True)
def _cholesky_inplace(a: np.ndarray, k: int) -> bool:
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
def _chol_solve(lower: np.ndarray, k: int, b: np.ndarray, out: np.ndarray) -> None:
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


@numba.njit(cache=True, parallel=True)
def gather_samples(geno: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Columns ``idx`` of a genotype block (m x n int8), contiguous."""
    m = geno.shape[0]
    n = idx.shape[0]
    out = np.empty((m, n), dtype=np.int8)
    for v in numba.prange(m):
        for i in range(n):
            out[v, i] = geno[v, idx[i]]
    return out


@numba.njit(cache=True, parallel=True)
def linear_block(geno: np.ndarray, q: np.ndarray, y: np.ndarray, qty: np.ndarray, yty: float,
                 chunk: int = 16):
    """Linear regression of ``y`` on covariates + genotype for every variant of a block.

    geno: int8 (m x n), A1 counts, -1 missing. q: (n x k) orthonormal covariate basis.
    y: (n,) phenotype (centred). qty = Q'y, yty = y'y over all n samples.
    Returns beta, se, t, df (float), n (int64), allele sum (float) and errcode (int8) per variant.
    """
    m, n = geno.shape
    k = q.shape[1]
    beta = np.full(m, np.nan)
    se = np.full(m, np.nan)
    tstat = np.full(m, np.nan)
    dfree = np.zeros(m)
    nobs = np.zeros(m, dtype=np.int64)
    gsum = np.zeros(m)
    err = np.zeros(m, dtype=np.int8)
    n_chunks = (m + chunk - 1) // chunk
    for ch in numba.prange(n_chunks):
        a = np.empty((k, k))
        by = np.empty(k)
        bg = np.empty(k)
        xy = np.empty(k)
        xg = np.empty(k)
        for v in range(ch * chunk, min(m, (ch + 1) * chunk)):
            a[:, :] = 0.0
            for j in range(k):
                a[j, j] = 1.0
                by[j] = qty[j]
                bg[j] = 0.0
            yy = yty
            gy = 0.0
            c = 0
            s = 0
            sq = 0
            first = -1
            is_const = True
            for i in range(n):
                g = geno[v, i]
                if g > 0:
                    c += 1
                    s += g
                    sq += g * g
                    gf = float(g)
                    gy += gf * y[i]
                    for j in range(k):
                        bg[j] += gf * q[i, j]
                    if first < 0:
                        first = g
                    elif g != first:
                        is_const = False
                elif g == 0:
                    c += 1
                    if first < 0:
                        first = g
                    elif g != first:
                        is_const = False
                else:
                    # missing call: downdate the covariate cross-products
                    yi = y[i]
                    yy -= yi * yi
                    for j in range(k):
                        qij = q[i, j]
                        by[j] -= qij * yi
                        for p in range(j + 1):
                            a[j, p] -= qij * q[i, p]
            nobs[v] = c
            gsum[v] = s
            df = c - k - 1
            dfree[v] = df
            if c == 0 or is_const:
                err[v] = ERR_MONOMORPHIC
                continue
            if df < 1:
                err[v] = ERR_TOO_FEW
                continue
            if not _cholesky_inplace(a, k):
                err[v] = ERR_COLLINEAR
                continue
            _chol_solve(a, k, by, xy)
            _chol_solve(a, k, bg, xg)
            yry = yy
            grg = float(sq)
            gry = gy
            for j in range(k):
                yry -= by[j] * xy[j]
                grg -= bg[j] * xg[j]
                gry -= bg[j] * xy[j]
            gcc = sq - s * s / c
            if grg <= 0.0 or gcc <= 0.0 or gcc / grg > MAX_VIF:
                err[v] = ERR_COLLINEAR
                continue
            b = gry / grg
            rss = yry - b * gry
            if rss < 0.0:
                rss = 0.0
            beta[v] = b
            se[v] = math.sqrt(rss / df / grg)
            tstat[v] = b / se[v] if se[v] > 0 else np.inf * np.sign(b)
    return beta, se, tstat, dfree, nobs, gsum, err


@numba.njit(cache=True, nogil=True)
def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _newton_logistic(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray,
                     max_iter: int, tol: float, eta: np.ndarray, w: np.ndarray, r: np.ndarray,
                     wx: np.ndarray, h: np.ndarray, grad: np.ndarray, step: np.ndarray) -> int:
    """Newton iterations for logistic regression with predictors xt (kx x n, rows = predictors).

    Samples with mask 0 carry no weight. ``b`` holds the start and receives the estimate;
    ``h`` receives the Cholesky factor of the information of the last iteration.
    Returns iterations used (>0), -1 if no convergence, -2 if the information became singular.
    """
    n = xt.shape[1]
    for it in range(1, max_iter + 1):
        eta[:] = np.dot(b[:kx], xt)
        for i in range(n):
            prob = _expit(eta[i])
            w[i] = mask[i] * prob * (1.0 - prob)
            r[i] = mask[i] * (y[i] - prob)
        for j in range(kx):
            for i in range(n):
                wx[j, i] = w[i] * xt[j, i]
        grad[:] = np.dot(xt, r)
        h[:, :] = np.dot(wx, xt.T)
        if not _cholesky_inplace(h, kx):
            return -2
        _chol_solve(h, kx, grad, step)
        big = 0.0
        for j in range(kx):
            b[j] += step[j]
            d = abs(step[j]) / (1.0 + abs(b[j]))
            if d > big:
                big = d
        if abs(b[kx - 1]) > 50.0:
            return -1  # diverging: (quasi-)separation involving the covariates
        if big < tol:
            # quadratic convergence: with a last step below tol the information factor from
            # this iteration differs from the one at the estimate by O(tol) relative
            return it
    return -1


@numba.njit(cache=True, nogil=True)
def _firth_state(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, prob: np.ndarray,
                 w: np.ndarray, wx: np.ndarray, h: np.ndarray) -> float:
    """At ``b``: probabilities, weights, Cholesky factor of X'WX (in ``h``) and the penalised
    log-likelihood l(b) + log|X'WX| / 2 (-inf if X'WX is singular)."""
    n = xt.shape[1]
    prob[:] = np.dot(b[:kx], xt)
    loglik = 0.0
    for i in range(n):
        e = prob[i]
        pi = _expit(e)
        prob[i] = pi
        w[i] = mask[i] * pi * (1.0 - pi)
        if mask[i] > 0:
            # log(p) = -log(1 + exp(-e)), log(1 - p) = -log(1 + exp(e)), stable for large |e|
            if y[i] > 0.5:
                loglik -= math.log1p(math.exp(-e)) if e > -30 else -e
            else:
                loglik -= math.log1p(math.exp(e)) if e < 30 else e
    for j in range(kx):
        for i in range(n):
            wx[j, i] = w[i] * xt[j, i]
    h[:, :] = np.dot(wx, xt.T)
    if not _cholesky_inplace(h, kx):
        return -np.inf
    for j in range(kx):
        loglik += math.log(h[j, j])  # log|X'WX| / 2 = sum log diag(L)
    return loglik


@numba.njit(cache=True, nogil=True)
def _firth_logistic(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray,
                    max_iter: int, tol: float, prob: np.ndarray, w: np.ndarray, r: np.ndarray,
                    wx: np.ndarray, h: np.ndarray, grad: np.ndarray, step: np.ndarray,
                    z: np.ndarray, b_try: np.ndarray) -> int:
    """Firth-penalised logistic regression (Jeffreys prior). Newton steps on the modified score
    U*_j = sum_i (y_i - p_i + h_i (1/2 - p_i)) x_ij (h_i: hat-matrix diagonal), capped at 5 per
    coefficient and halved until the penalised likelihood does not drop (as logistf).
    ``h`` receives the Cholesky factor of X'WX at the estimate (Wald standard errors).
    Returns iterations used, -1 (no convergence) or -2 (singular information)."""
    n = xt.shape[1]
    current = _firth_state(xt, kx, y, mask, b, prob, w, wx, h)
    if current == -np.inf:
        return -2
    for it in range(1, max_iter + 1):
        for i in range(n):
            if mask[i] == 0.0:
                r[i] = 0.0
                continue
            hs = 0.0
            for j in range(kx):
                acc = xt[j, i]
                for p in range(j):
                    acc -= h[j, p] * z[p]
                z[j] = acc / h[j, j]
                hs += z[j] * z[j]
            r[i] = y[i] - prob[i] + w[i] * hs * (0.5 - prob[i])
        grad[:] = np.dot(xt, r)
        _chol_solve(h, kx, grad, step)
        biggest = 0.0
        for j in range(kx):
            biggest = max(biggest, abs(step[j]))
        scale = 5.0 / biggest if biggest > 5.0 else 1.0
        big = 0.0
        for j in range(kx):
            d = abs(scale * step[j]) / (1.0 + abs(b[j]))
            if d > big:
                big = d
        if big < tol:
            return it  # h still holds the factor at b
        accepted = False
        for _ in range(30):
            for j in range(kx):
                b_try[j] = b[j] + scale * step[j]
            trial = _firth_state(xt, kx, y, mask, b_try, prob, w, wx, h)
            if trial > current:
                accepted = True
                break
            scale *= 0.5
        if not accepted:
            # no ascent left: at the optimum up to rounding when the Newton step is already tiny
            _firth_state(xt, kx, y, mask, b, prob, w, wx, h)
            return it if big < 1e-4 else -1
        for j in range(kx):
            b[j] = b_try[j]
        current = trial
    return -1


@numba.njit(cache=True)
def logistic_null(qt: np.ndarray, y: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Covariate-only logistic fit (start values for the per-variant fits); NaNs if it fails."""
    k, n = qt.shape
    b = np.zeros(k)
    mask = np.ones(n)
    it = _newton_logistic(qt, k, y, mask, b, max_iter, tol, np.empty(n), np.empty(n), np.empty(n),
                          np.empty((k, n)), np.zeros((k, k)), np.empty(k), np.empty(k))
    if it < 0:
        b[:] = np.nan
    return b


@numba.njit(cache=True, parallel=True)
def logistic_block(geno: np.ndarray, qt: np.ndarray, y: np.ndarray, b_null: np.ndarray,
                   firth: bool = True, max_iter: int = 25, tol: float = 1e-8, chunk: int = 16):
    """Logistic regression (Wald test) of 0/1 ``y`` on covariates + genotype for each variant.

    geno: int8 (m x n), -1 missing. qt: (k x n) covariates incl. intercept (rows).
    b_null: covariate-only estimates (start values). With ``firth``, a variant whose ordinary fit
    fails (separation, no convergence) is refitted by Firth-penalised regression (plink2's
    firth-fallback). Returns beta, se, z, n, allele sum, errcode, used_firth.
    """
    m, n = geno.shape
    k = qt.shape[0]
    kx = k + 1
    beta = np.full(m, np.nan)
    se = np.full(m, np.nan)
    zstat = np.full(m, np.nan)
    nobs = np.zeros(m, dtype=np.int64)
    gsum = np.zeros(m)
    err = np.zeros(m, dtype=np.int8)
    used_firth = np.zeros(m, dtype=np.bool_)
    n_chunks = (m + chunk - 1) // chunk
    for ch in numba.prange(n_chunks):
        z = np.empty(kx)
        b_try = np.empty(kx)
        xt = np.empty((kx, n))
        xt[:k] = qt
        mask = np.empty(n)
        eta = np.empty(n)
        w = np.empty(n)
        r = np.empty(n)
        wx = np.empty((kx, n))
        h = np.zeros((kx, kx))
        grad = np.empty(kx)
        step = np.empty(kx)
        b = np.empty(kx)
        for v in range(ch * chunk, min(m, (ch + 1) * chunk)):
            c = 0
            s = 0.0
            cases = 0.0
            first = -1
            is_const = True
            # genotype ranges among cases and controls: non-overlapping ranges mean the genotype
            # alone (quasi-)separates them, so the MLE does not exist
            min_case, max_case, min_ctrl, max_ctrl = 3, -1, 3, -1
            for i in range(n):
                g = geno[v, i]
                if g < 0:
                    mask[i] = 0.0
                    xt[k, i] = 0.0
                else:
                    mask[i] = 1.0
                    xt[k, i] = g
                    c += 1
                    s += g
                    if y[i] > 0.5:
                        cases += 1.0
                        min_case = min(min_case, g)
                        max_case = max(max_case, g)
                    else:
                        min_ctrl = min(min_ctrl, g)
                        max_ctrl = max(max_ctrl, g)
                    if first < 0:
                        first = g
                    elif g != first:
                        is_const = False
            nobs[v] = c
            gsum[v] = s
            if c == 0 or is_const:
                err[v] = ERR_MONOMORPHIC
                continue
            if c - kx < 1 or cases == 0.0 or cases == c:
                err[v] = ERR_TOO_FEW
                continue
            separated = max_case <= min_ctrl or max_ctrl <= min_case
            it = -1
            if not separated:
                for j in range(k):
                    b[j] = b_null[j]
                b[k] = 0.0
                it = _newton_logistic(xt, kx, y, mask, b, max_iter, tol, eta, w, r, wx, h, grad, step)
                if it > 0 and abs(b[k]) > 15.0 and 1.0 / h[k, k] > 100.0:
                    it = -1  # diverging estimate: treat as separation
            if it < 0 and firth:
                for j in range(k):
                    b[j] = b_null[j]
                b[k] = 0.0
                it = _firth_logistic(xt, kx, y, mask, b, max_iter * 4, tol, eta, w, r, wx, h, grad, step, z, b_try)
                if it > 0:
                    used_firth[v] = True
            if it < 0 and separated:
                err[v] = ERR_SEPARATION
                continue
            if it < 0:
                # probabilities pinned at 0/1 mean (quasi-)separation; otherwise plain failure
                pinned = False
                for i in range(n):
                    if mask[i] > 0:
                        e = 0.0
                        for j in range(kx):
                            e += xt[j, i] * b[j]
                        if abs(e) > 30.0 or e != e:
                            pinned = True
                            break
                err[v] = ERR_SEPARATION if (pinned or it == -2) else ERR_NO_CONVERGENCE
                continue
            # inverse information [g, g] = 1 / L[k, k]^2 (genotype is the last predictor)
            sev = 1.0 / h[k, k]
            beta[v] = b[k]
            se[v] = sev
            zstat[v] = b[k] / sev
    return beta, se, zstat, nobs, gsum, err, used_firth


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
