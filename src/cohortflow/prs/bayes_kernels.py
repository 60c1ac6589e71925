"""numba Gibbs sampler of the LDpred2-auto model (pure functions on arrays, no I/O).

Model (Privé, Arbel & Vilhjálmsson 2020, "LDpred2: better, faster, stronger"), on the scale of
standardised genotypes and phenotype:

    beta_j ~ (1 - p) delta_0 + p N(0, h2 / (M p))          (spike and slab, M variants)
    beta_hat | beta ~ N(R beta, R / n)                       (marginal effects given LD R)

``beta_hat_j`` is the marginal correlation of variant j with the trait (``beta / sqrt(n se^2 +
beta^2)`` from summary statistics). Given the other effects, ``beta_j`` sees the residual
``res_j = beta_hat_j - sum_{k != j} R_jk beta_k`` with variance ``1 / n_j``, so its conditional
posterior is a two-component mixture with a closed form:

    C1 = n_j h2 / (M p)             (n_j times the slab variance)
    C2 = C1 / (1 + C1)              (posterior shrinkage of res_j in the slab)
    P(beta_j != 0 | .) = 1 / (1 + (1 - p) / p * sqrt(1 + C1) * exp(-n_j C2 res_j^2 / 2))
    beta_j | beta_j != 0, . ~ N(C2 res_j, C2 / n_j)

After each sweep over the variants (the "auto" part): ``p ~ Beta(1 + M_c, 1 + M - M_c)`` with
``M_c`` the variants currently in the slab, clamped to ``[p_min, p_max]``, and
``h2 = beta' R beta`` (the variance the current effects explain), clamped to ``[h2_min, h2_max]``
for the next sweep. The sampled effects carry posterior noise (about ``M_c / n`` of variance), so
a sweep's ``beta' R beta`` can pass 1 now and then in a small GWAS without anything being wrong:
it is clamped, recorded unclamped in ``h2_path``, and the caller judges the chain by its mean
after the burn-in; only a runaway past ``h2_stop`` (or a non-finite value) stops a chain.

The correlation matrix is block diagonal (LD blocks, :mod:`cohortflow.prs.ld`); each block is a
dense row-major float32 matrix in one flat array. ``R`` in the sampler is the shrunk matrix
``s R + (1 - s) I`` (``shrink``; s = 1: no shrinkage), which stays positive semi-definite when R is.
The sampler keeps ``dotprods = R beta`` up to date: when ``beta_j`` changes by d, the block row j
times d is added.

Reproducibility: each chain seeds numba's generator (thread-local) with its own seed on entry and
runs start to finish on one thread, so a chain's draws and results do not depend on the number of
threads or on which thread runs it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# chain status codes (the caller turns them into words)
CHAIN_OK = 0
CHAIN_NON_FINITE = 1
CHAIN_H2_ABOVE_MAX = 2


@numba.njit(cache=True, nogil=True)
def _run_chain(beta_hat, n_eff, block_start, block_offset, corr, p_init, h2_init, seed, burn_in, n_iter,
               shrink, allow_jump_sign, update_hyper, p_min, p_max, h2_min, h2_max, h2_stop,
               avg_beta, avg_postp, avg_sampled, avg_corr, p_path, h2_path):
    """One chain; fills the row views ``avg_*`` (M,) and ``p_path``/``h2_path`` (burn_in + n_iter,).
    Returns (status, sweeps completed)."""
    np.random.seed(seed)
    m = beta_hat.shape[0]
    n_blocks = block_start.shape[0] - 1
    beta = np.zeros(m)
    dotprods = np.zeros(m)  # (s R + (1 - s) I) beta
    p = p_init
    h2 = h2_init
    off_shrink = shrink
    total = burn_in + n_iter
    for sweep in range(total):
        keep = sweep >= burn_in
        h2_per_var = h2 / (m * p)
        log_prior_odds = math.log1p(-p) - math.log(p) if p < 1.0 else -np.inf
        n_causal = 0
        # per-n constants, recomputed only when n changes (usually one n for all variants)
        last_n = -1.0
        c2 = 0.0
        log_slab_penalty = 0.0
        post_sd = 0.0
        for k in range(n_blocks):
            start = block_start[k]
            size = block_start[k + 1] - start
            base = block_offset[k]
            for a in range(size):
                j = start + a
                old = beta[j]
                res = beta_hat[j] - (dotprods[j] - old)
                nj = n_eff[j]
                if nj != last_n:
                    last_n = nj
                    c1 = nj * h2_per_var
                    c2 = c1 / (1.0 + c1)
                    log_slab_penalty = log_prior_odds + 0.5 * math.log1p(c1)
                    post_sd = math.sqrt(c2 / nj)
                mean_slab = c2 * res
                # log of P(null) / P(slab) for this variant
                log_odds = log_slab_penalty - 0.5 * nj * c2 * res * res
                postp = 1.0 / (1.0 + math.exp(log_odds)) if log_odds < 700.0 else 0.0
                if np.random.random() < postp:
                    new = mean_slab + post_sd * np.random.normal()
                    if not allow_jump_sign and new * old < 0.0:
                        new = 0.0  # a sign change has to pass through zero
                else:
                    new = 0.0
                if new != 0.0:
                    n_causal += 1
                if keep:
                    avg_beta[j] += postp * mean_slab
                    avg_postp[j] += postp
                    avg_sampled[j] += new
                diff = new - old
                if diff != 0.0:
                    beta[j] = new
                    row = base + a * size
                    scaled = off_shrink * diff
                    for i in range(size):
                        dotprods[start + i] += scaled * corr[row + i]
                    dotprods[j] += (1.0 - off_shrink) * diff  # the diagonal is 1, unshrunk
        h2_now = 0.0
        for j in range(m):
            h2_now += beta[j] * dotprods[j]
        if not np.isfinite(h2_now):
            return CHAIN_NON_FINITE, sweep
        if h2_now > h2_stop:
            h2_path[sweep] = h2_now
            p_path[sweep] = p
            return CHAIN_H2_ABOVE_MAX, sweep
        if update_hyper:
            p = np.random.beta(1.0 + n_causal, 1.0 + m - n_causal)
            p = min(max(p, p_min), p_max)
            h2 = min(max(h2_now, h2_min), h2_max)
            h2_path[sweep] = h2_now  # the sweep's estimate, unclamped: the caller judges the chain by it
        else:
            h2_path[sweep] = h2
        p_path[sweep] = p
        if keep:
            for j in range(m):
                avg_corr[j] += dotprods[j]
    if n_iter > 0:
        for j in range(m):
            avg_beta[j] /= n_iter
            avg_postp[j] /= n_iter
            avg_sampled[j] /= n_iter
            avg_corr[j] /= n_iter
    return CHAIN_OK, total


@numba.njit(cache=True, parallel=True)
def gibbs_auto(beta_hat: np.ndarray, n_eff: np.ndarray, block_start: np.ndarray, block_offset: np.ndarray,
               corr: np.ndarray, p_init: np.ndarray, h2_init: float, seeds: np.ndarray, burn_in: int,
               n_iter: int, shrink: float, allow_jump_sign: bool, update_hyper: bool, p_min: float,
               p_max: float, h2_min: float, h2_max: float, h2_stop: float):
    """Run one LDpred2-auto chain per entry of ``p_init``/``seeds``, in parallel over chains.

    ``beta_hat``, ``n_eff``: (M,) marginal correlations and sample sizes. Block k covers variants
    ``block_start[k]:block_start[k+1]``; its correlation matrix is ``corr[block_offset[k]:][:size^2]``
    row-major (float32, unit diagonal). ``update_hyper=False`` keeps p and h2 at their initial
    values (LDpred2-grid behaviour; used to check the sampler against closed forms).

    Returns per chain (rows) x variant: ``avg_beta`` (posterior mean, Rao-Blackwellised: the mean
    over kept sweeps of P(slab) x C2 res), ``avg_postp`` (posterior inclusion probability),
    ``avg_sampled`` (mean of the sampled effects), ``avg_corr`` (mean of R beta: the implied
    marginal correlations); per chain x sweep: ``p_path`` (p used in the next sweep), ``h2_path``
    (the sweep's beta' R beta, unclamped; the fixed h2 when hyper-parameters are not updated; 0
    after a stop); per chain: ``status`` (CHAIN_*), ``sweeps`` (completed sweeps; the
    sweep at which a diverging chain stopped).
    """
    n_chains = p_init.shape[0]
    m = beta_hat.shape[0]
    total = burn_in + n_iter
    avg_beta = np.zeros((n_chains, m))
    avg_postp = np.zeros((n_chains, m))
    avg_sampled = np.zeros((n_chains, m))
    avg_corr = np.zeros((n_chains, m))
    p_path = np.zeros((n_chains, total))
    h2_path = np.zeros((n_chains, total))
    status = np.zeros(n_chains, dtype=np.int64)
    sweeps = np.zeros(n_chains, dtype=np.int64)
    for c in numba.prange(n_chains):
        st, done = _run_chain(beta_hat, n_eff, block_start, block_offset, corr, p_init[c], h2_init, seeds[c],
                              burn_in, n_iter, shrink, allow_jump_sign, update_hyper, p_min, p_max, h2_min,
                              h2_max, h2_stop, avg_beta[c], avg_postp[c], avg_sampled[c], avg_corr[c], p_path[c],
                              h2_path[c])
        status[c] = st
        sweeps[c] = done
    return avg_beta, avg_postp, avg_sampled, avg_corr, p_path, h2_path, status, sweeps
