"""numba kernels for the logistic association test (pure functions on numpy arrays, no I/O).

Per variant: logistic regression of a 0/1 trait on covariates + genotype by Newton-Raphson,
started at the covariate-only fit, with a missing genotype call giving that sample weight zero
(it leaves the variant's model, as in plink2 --glm). The Wald statistic uses the inverse
information. When the genotype alone separates cases from controls, or Newton fails, the variant
is refitted by Firth's penalised likelihood (``FIRTH_FALLBACK``, plink2's firth-fallback), or
every variant is (``FIRTH_ALWAYS``), or none is (``FIRTH_NEVER``).

The loops over samples are written elementwise so that LLVM vectorises them (see
:func:`cohortflow.gwas.kernels.expit_into`); dot products may be summed in any fixed order.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cohortflow.gwas.kernels import (
    CODE_MISSING,
    CODE_VALUE,
    ERR_MONOMORPHIC,
    ERR_NO_CONVERGENCE,
    ERR_SEPARATION,
    ERR_TOO_FEW,
    FAST,
    chol_solve,
    cholesky_inplace,
    expit_into,
)

FIRTH_NEVER = 0
FIRTH_FALLBACK = 1
FIRTH_ALWAYS = 2
# Firth converges when a Newton step would move the estimates by < 1e-6 standard errors
FIRTH_DECREMENT_TOL = 1e-12


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _dot(a: np.ndarray, b: np.ndarray, n: int) -> float:
    s = 0.0
    for i in range(n):
        s += a[i] * b[i]
    return s


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _weighted_dot(a: np.ndarray, w: np.ndarray, b: np.ndarray, n: int) -> float:
    s = 0.0
    for i in range(n):
        s += a[i] * w[i] * b[i]
    return s


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _linear_predictor(xt: np.ndarray, kx: int, b: np.ndarray, eta: np.ndarray, n: int) -> None:
    for i in range(n):
        eta[i] = 0.0
    for j in range(kx):
        bj = b[j]
        row = xt[j]
        for i in range(n):
            eta[i] += bj * row[i]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _information(xt: np.ndarray, kx: int, w: np.ndarray, h: np.ndarray, n: int) -> None:
    """Lower triangle of X'WX into h."""
    for j in range(kx):
        for l in range(j + 1):
            h[j, l] = _weighted_dot(xt[j], w, xt[l], n)


# samples per tile of a Newton pass: the tile's predictors (kx x TILE doubles) stay in L1
SAMPLE_TILE = 256


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _score_information(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, grad: np.ndarray,
                       h: np.ndarray, eta: np.ndarray, prob: np.ndarray, wx: np.ndarray, r: np.ndarray,
                       bits: np.ndarray) -> None:
    """Score X'(y - p) into grad and the lower triangle of the information X'WX into h at ``b``,
    tile by tile over the samples (scratch: eta, prob, r, bits SAMPLE_TILE long, wx kx x
    SAMPLE_TILE)."""
    n = xt.shape[1]
    for j in range(kx):
        grad[j] = 0.0
        for l in range(j + 1):
            h[j, l] = 0.0
    for t0 in range(0, n, SAMPLE_TILE):
        nt = min(SAMPLE_TILE, n - t0)
        for i in range(nt):
            eta[i] = 0.0
        for j in range(kx):
            bj = b[j]
            row = xt[j, t0:t0 + nt]
            for i in range(nt):
                eta[i] += bj * row[i]
        expit_into(eta, prob, bits, nt)
        ms = mask[t0:t0 + nt]
        ys = y[t0:t0 + nt]
        for i in range(nt):
            p = prob[i]
            r[i] = ms[i] * (ys[i] - p)
            prob[i] = ms[i] * p * (1.0 - p)  # the weight, reusing the buffer
        for j in range(kx):
            row = xt[j, t0:t0 + nt]
            out = wx[j]
            acc = 0.0
            for i in range(nt):
                acc += row[i] * r[i]
                out[i] = row[i] * prob[i]
            grad[j] += acc
        for j in range(kx):
            wj = wx[j]
            for l in range(j + 1):
                row = xt[l, t0:t0 + nt]
                acc = 0.0
                for i in range(nt):
                    acc += wj[i] * row[i]
                h[j, l] += acc


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _null_step(xt: np.ndarray, k: int, mask: np.ndarray, null_w: np.ndarray, null_r: np.ndarray,
               null_info: np.ndarray, null_score: np.ndarray, b: np.ndarray, h: np.ndarray, grad: np.ndarray,
               step: np.ndarray, u: np.ndarray) -> bool:
    """The first Newton step from the covariate-only fit (b = [b_null, 0]) without a pass over the
    covariates: their weights, residuals, information and score at b_null are known for all
    analysed samples (``null_*``); samples whose call is missing (mask 0) are taken out by a rank
    update, and only the genotype row of the information is computed. Row k of xt is the
    genotype, 0 where the call is missing. Moves b; False if the information is singular."""
    n = xt.shape[1]
    kx = k + 1
    g = xt[k]
    for j in range(k):
        grad[j] = null_score[j]
        for l in range(j + 1):
            h[j, l] = null_info[j, l]
    for i in range(n):
        if mask[i] == 0.0:
            wi = null_w[i]
            ri = null_r[i]
            for j in range(k):
                xj = xt[j, i]
                grad[j] -= ri * xj
                for l in range(j + 1):
                    h[j, l] -= wi * xj * xt[l, i]
    for i in range(n):
        u[i] = null_w[i] * g[i]
    for j in range(k):
        h[k, j] = _dot(xt[j], u, n)
    h[k, k] = _dot(g, u, n)
    grad[k] = _dot(g, null_r, n)
    if not cholesky_inplace(h, kx):
        return False
    chol_solve(h, kx, grad, step)
    for j in range(kx):
        b[j] += step[j]
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _newton_direction(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, grad: np.ndarray,
                      h: np.ndarray, step: np.ndarray, eta: np.ndarray, prob: np.ndarray, wx: np.ndarray,
                      r: np.ndarray, bits: np.ndarray) -> bool:
    """Newton step at b into ``step`` (h: Cholesky factor of the information); False if singular."""
    _score_information(xt, kx, y, mask, b, grad, h, eta, prob, wx, r, bits)
    if not cholesky_inplace(h, kx):
        return False
    chol_solve(h, kx, grad, step)
    return True


@numba.njit(cache=True, nogil=True)
def _relative_step(step: np.ndarray, scale: float, b: np.ndarray, kx: int) -> float:
    """Largest |scale step_j| / (1 + |b_j|): the convergence measure of every fit here."""
    big = 0.0
    for j in range(kx):
        d = abs(scale * step[j]) / (1.0 + abs(b[j]))
        if d > big:
            big = d
    return big


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _newton(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, max_iter: int, tol: float,
            eta: np.ndarray, prob: np.ndarray, wx: np.ndarray, r: np.ndarray, bits: np.ndarray, h: np.ndarray,
            grad: np.ndarray, step: np.ndarray) -> int:
    """Newton iterations for logistic regression with predictors xt (kx x n, rows = predictors).

    Samples with mask 0 carry no weight. ``b`` holds the start and receives the estimate; ``h``
    receives the Cholesky factor of the information of the last iteration. Converged when the
    largest relative step is below ``tol`` (quadratic convergence: the estimate is then exact to
    about tol^2 and the information to about tol). Scratch: see :func:`_score_information`.
    Returns iterations used (> 0), -1 if no convergence, -2 if the information became singular.
    """
    for it in range(1, max_iter + 1):
        if not _newton_direction(xt, kx, y, mask, b, grad, h, step, eta, prob, wx, r, bits):
            return -2
        big = _relative_step(step, 1.0, b, kx)
        for j in range(kx):
            b[j] += step[j]
        if not big < 1e300:
            return -1
        if abs(b[kx - 1]) > 50.0:
            return -1  # diverging: (quasi-)separation involving the covariates
        if big < tol:
            return it
    return -1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _loglik(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, eta: np.ndarray) -> float:
    """Log-likelihood at b (scalar loop: only the rare safeguarded fits need it)."""
    n = xt.shape[1]
    _linear_predictor(xt, kx, b, eta, n)
    total = 0.0
    for i in range(n):
        if mask[i] == 0.0:
            continue
        e = eta[i] if y[i] > 0.5 else -eta[i]
        total -= math.log1p(math.exp(-e)) if e > -30.0 else -e
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _newton_safe(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, max_iter: int,
                 tol: float, eta: np.ndarray, prob: np.ndarray, wx: np.ndarray, r: np.ndarray, bits: np.ndarray,
                 h: np.ndarray, grad: np.ndarray, step: np.ndarray, full_eta: np.ndarray, b_try: np.ndarray) -> int:
    """Newton iterations with step halving until the log-likelihood does not drop: for the few
    variants (mostly a handful of carriers) where plain Newton overshoots and diverges."""
    current = _loglik(xt, kx, y, mask, b, full_eta)
    for it in range(1, max_iter + 1):
        if not _newton_direction(xt, kx, y, mask, b, grad, h, step, eta, prob, wx, r, bits):
            return -2
        scale = 1.0
        accepted = False
        trial = current
        for _ in range(40):
            for j in range(kx):
                b_try[j] = b[j] + scale * step[j]
            trial = _loglik(xt, kx, y, mask, b_try, full_eta)
            if trial >= current:
                accepted = True
                break
            scale *= 0.5
        big = _relative_step(step, scale, b, kx)
        if not accepted:
            # no ascent left: the optimum up to rounding if the Newton step is already tiny
            return it if big < 1e-4 else -1
        for j in range(kx):
            b[j] = b_try[j]
        current = trial
        if abs(b[kx - 1]) > 50.0:
            return -1
        if big < tol:
            return it if _newton_direction(xt, kx, y, mask, b, grad, h, step, eta, prob, wx, r, bits) else -2
    return -1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _firth_state(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, eta: np.ndarray,
                 prob: np.ndarray, w: np.ndarray, bits: np.ndarray, h: np.ndarray) -> float:
    """At ``b``: probabilities, weights, Cholesky factor of X'WX (in ``h``) and the penalised
    log-likelihood l(b) + log|X'WX| / 2 (-inf if X'WX is singular)."""
    n = xt.shape[1]
    _linear_predictor(xt, kx, b, eta, n)
    expit_into(eta, prob, bits, n)
    loglik = 0.0
    for i in range(n):
        pi = prob[i]
        w[i] = mask[i] * pi * (1.0 - pi)
        if mask[i] > 0.0:
            e = eta[i]
            # log(p) = -log(1 + exp(-e)), log(1 - p) = -log(1 + exp(e)), stable for large |e|
            if y[i] > 0.5:
                loglik -= math.log1p(math.exp(-e)) if e > -30.0 else -e
            else:
                loglik -= math.log1p(math.exp(e)) if e < 30.0 else e
    _information(xt, kx, w, h, n)
    if not cholesky_inplace(h, kx):
        return -np.inf
    for j in range(kx):
        loglik += math.log(h[j, j])  # log|X'WX| / 2 = sum log diag(L)
    return loglik


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _firth(xt: np.ndarray, kx: int, y: np.ndarray, mask: np.ndarray, b: np.ndarray, max_iter: int, tol: float,
           eta: np.ndarray, prob: np.ndarray, w: np.ndarray, r: np.ndarray, bits: np.ndarray, h: np.ndarray,
           grad: np.ndarray, step: np.ndarray, z: np.ndarray, b_try: np.ndarray) -> int:
    """Firth-penalised logistic regression (Jeffreys prior). Newton steps on the modified score
    U*_j = sum_i (y_i - p_i + h_i (1/2 - p_i)) x_ij (h_i: hat-matrix diagonal), capped at 5 per
    coefficient and halved until the penalised likelihood does not drop (as logistf).
    ``h`` receives the Cholesky factor of X'WX at the estimate (Wald standard errors).
    Returns iterations used, -1 (no convergence) or -2 (singular information)."""
    n = xt.shape[1]
    current = _firth_state(xt, kx, y, mask, b, eta, prob, w, bits, h)
    if current == -np.inf:
        return -2
    b_prev_step = np.zeros(kx)
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
        for j in range(kx):
            grad[j] = _dot(xt[j], r, n)
        chol_solve(h, kx, grad, step)
        biggest = 0.0
        decrement = 0.0  # U' I^-1 U: twice the gain a full Newton step would still bring
        for j in range(kx):
            biggest = max(biggest, abs(step[j]))
            decrement += grad[j] * step[j]
        scale = 5.0 / biggest if biggest > 5.0 else 1.0
        # the step ignores the penalty's curvature; where that makes it overshoot (it reverses the
        # previous step) a half step turns the oscillation into fast convergence
        reverse = 0.0
        for j in range(kx):
            reverse += step[j] * b_prev_step[j]
        if reverse < 0.0:
            scale *= 0.5
        big = _relative_step(step, scale, b, kx)
        if big < tol or decrement < FIRTH_DECREMENT_TOL:
            return it  # h still holds the factor at b
        accepted = False
        trial = current
        for _ in range(30):
            for j in range(kx):
                b_try[j] = b[j] + scale * step[j]
            trial = _firth_state(xt, kx, y, mask, b_try, eta, prob, w, bits, h)
            if trial > current:
                accepted = True
                break
            scale *= 0.5
        if not accepted:
            # no ascent left: at the optimum up to rounding when the remaining Newton step is
            # tiny, in parameter units or in standard-error units (a flat penalised likelihood)
            _firth_state(xt, kx, y, mask, b, eta, prob, w, bits, h)
            return it if (big < 1e-4 or decrement < 1e-8) else -1
        for j in range(kx):
            b_prev_step[j] = b_try[j] - b[j]
            b[j] = b_try[j]
        current = trial
    return -1


@numba.njit(cache=True)
def logistic_null(qt: np.ndarray, y: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Covariate-only logistic fit (start values for the per-variant fits); NaNs if it fails."""
    k, n = qt.shape
    b = np.zeros(k)
    mask = np.ones(n)
    t = SAMPLE_TILE
    it = _newton(qt, k, y, mask, b, max_iter, tol, np.empty(t), np.empty(t), np.empty((k, t)), np.empty(t),
                 np.empty(t, dtype=np.int64), np.zeros((k, k)), np.empty(k), np.empty(k))
    if it < 0:
        b[:] = np.nan
    return b


@numba.njit(cache=True, nogil=True)
def _decode_samples(row: np.ndarray, sample_idx: np.ndarray, out: np.ndarray, mask: np.ndarray) -> None:
    """A1 counts of the analysed samples (``sample_idx`` into the .fam order) from a .bed row,
    0 and mask 0 where the call is missing."""
    for i in range(sample_idx.shape[0]):
        s = sample_idx[i]
        code = (np.int64(row[s >> 2]) >> (2 * (s & 3))) & 3
        out[i] = CODE_VALUE[code]
        mask[i] = 0.0 if code == CODE_MISSING else 1.0


@numba.njit(cache=True, nogil=True)
def _decode_all(row: np.ndarray, n: int, decode: np.ndarray, out: np.ndarray, mask: np.ndarray) -> None:
    """As :func:`_decode_samples` when every .fam sample is analysed (byte-wise table lookup)."""
    for b in range(n // 4):
        o = np.int64(row[b]) * 4
        for s in range(4):
            out[4 * b + s] = decode[o + s]
            mask[4 * b + s] = decode[1024 + o + s]
    for i in range(n // 4 * 4, n):
        code = (np.int64(row[i >> 2]) >> (2 * (i & 3))) & 3
        out[i] = CODE_VALUE[code]
        mask[i] = 0.0 if code == CODE_MISSING else 1.0


def decode_tables() -> np.ndarray:
    """[A1 count | 1 - missing] of sample s in .bed byte ``code`` at [4 code + s | 1024 + 4 code + s]."""
    out = np.zeros(2048)
    for code in range(256):
        for s in range(4):
            c = (code >> (2 * s)) & 3
            out[4 * code + s] = CODE_VALUE[c]
            out[1024 + 4 * code + s] = 0.0 if c == CODE_MISSING else 1.0
    return out


DECODE_TABLE = decode_tables()


def null_quantities(qt: np.ndarray, y: np.ndarray, b_null: np.ndarray):
    """Weights, residuals, information (lower triangle) and score of the covariate-only fit over
    all analysed samples: the first per-variant Newton step starts from them."""
    eta = b_null @ qt
    p = 1.0 / (1.0 + np.exp(-eta))
    w = p * (1.0 - p)
    r = y - p
    info = np.tril((qt * w) @ qt.T)
    score = qt @ r
    return w, r, info, score


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def logistic_tests(raw: np.ndarray, sample_idx: np.ndarray, all_samples: bool, qt: np.ndarray, y: np.ndarray,
                   b_null: np.ndarray, null_w: np.ndarray, null_r: np.ndarray, null_info: np.ndarray,
                   null_score: np.ndarray, decode: np.ndarray, firth: int = FIRTH_FALLBACK, max_iter: int = 25,
                   tol: float = 1e-6, chunk: int = 8):
    """Logistic regression (Wald test) of 0/1 ``y`` on covariates + genotype for each variant.

    raw: uint8 (m x nb) .bed rows. sample_idx: analysed samples (indices into the .fam order);
    ``all_samples``: they are 0..n-1 (faster decoding). qt: (k x n) covariates incl. intercept
    over the analysed samples (rows). b_null: covariate-only estimates; null_*: from
    :func:`null_quantities`; decode: :data:`DECODE_TABLE`. ``firth``: FIRTH_NEVER,
    FIRTH_FALLBACK or FIRTH_ALWAYS. ``tol``: largest relative Newton step at convergence (the
    estimate is then exact to about tol^2, the information to about tol).
    Returns beta, se, z, n, allele sum, errcode and used_firth per variant.
    """
    m = raw.shape[0]
    k, n = qt.shape
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
        u = np.empty(n)
        eta = np.empty(n)
        prob = np.empty(n)
        r = np.empty(n)
        bits = np.empty(n, dtype=np.int64)
        wx = np.empty((kx, SAMPLE_TILE))
        h = np.zeros((kx, kx))
        grad = np.empty(kx)
        step = np.empty(kx)
        b = np.empty(kx)
        g = xt[k]
        for v in range(ch * chunk, min(m, (ch + 1) * chunk)):
            if all_samples:
                _decode_all(raw[v], n, decode, g, mask)
            else:
                _decode_samples(raw[v], sample_idx, g, mask)
            c = 0
            s = 0.0
            cases = 0.0
            # genotype ranges among cases and controls: non-overlapping ranges mean the genotype
            # alone (quasi-)separates them, so the MLE does not exist
            min_case, max_case, min_ctrl, max_ctrl = 3.0, -1.0, 3.0, -1.0
            for i in range(n):
                if mask[i] == 0.0:
                    continue
                gi = g[i]
                c += 1
                s += gi
                if y[i] > 0.5:
                    cases += 1.0
                    min_case = min(min_case, gi)
                    max_case = max(max_case, gi)
                else:
                    min_ctrl = min(min_ctrl, gi)
                    max_ctrl = max(max_ctrl, gi)
            nobs[v] = c
            gsum[v] = s
            if c == 0 or min(min_case, min_ctrl) == max(max_case, max_ctrl):
                err[v] = ERR_MONOMORPHIC
                continue
            if c - kx < 1 or cases == 0.0 or cases == c:
                err[v] = ERR_TOO_FEW
                continue
            separated = max_case <= min_ctrl or max_ctrl <= min_case
            it = -1
            if firth != FIRTH_ALWAYS and not separated:
                b[:k] = b_null
                b[k] = 0.0
                if _null_step(xt, k, mask, null_w, null_r, null_info, null_score, b, h, grad, step, u):
                    it = _newton(xt, kx, y, mask, b, max_iter, tol, eta, prob, wx, r, bits, h, grad, step)
                if it < 0:
                    # plain Newton overshot (typically a handful of carriers): again, step-halved
                    b[:k] = b_null
                    b[k] = 0.0
                    it = _newton_safe(xt, kx, y, mask, b, max_iter * 2, tol, eta, prob, wx, r, bits, h, grad,
                                      step, u, b_try)
                if it > 0 and abs(b[k]) > 15.0 and h[k, k] < 0.1:
                    it = -1  # diverging estimate (SE > 10): treat as separation
            if it < 0 and firth != FIRTH_NEVER:
                b[:k] = b_null
                b[k] = 0.0
                it = _firth(xt, kx, y, mask, b, max_iter * 4, 1e-8, eta, prob, u, r, bits, h, grad, step, z, b_try)
                if it > 0:
                    used_firth[v] = True
            if it < 0 and separated:
                err[v] = ERR_SEPARATION
                continue
            if it < 0:
                # probabilities pinned at 0/1 mean (quasi-)separation; otherwise plain failure
                pinned = it == -2
                for i in range(n):
                    if mask[i] > 0.0:
                        e = 0.0
                        for j in range(kx):
                            e += xt[j, i] * b[j]
                        if abs(e) > 30.0 or e != e:
                            pinned = True
                            break
                err[v] = ERR_SEPARATION if pinned else ERR_NO_CONVERGENCE
                continue
            # inverse information [g, g] = 1 / L[k, k]^2 (genotype is the last predictor)
            sev = 1.0 / h[k, k]
            beta[v] = b[k]
            se[v] = sev
            zstat[v] = b[k] / sev
    return beta, se, zstat, nobs, gsum, err, used_firth
