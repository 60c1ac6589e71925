"""numba kernels of the scDRS method (pure functions on numpy arrays, no I/O).

- :func:`corrected_gene_moments`: per-gene mean and variance of the implicitly
  covariate-corrected expression ``X + C @ B + m`` and of its expm1, without building it.
- :func:`score_pass_cellwise`, :func:`score_pass_final`: the two passes of scDRS scoring over
  cell blocks. Raw scores of the disease set and all control sets
  are ``X @ W + C @ (B @ W) + m @ W`` with ``W`` a sparse genes x sets weight matrix (CSR by gene);
  each pass recomputes them for blocks of cells instead of storing cells x sets (recomputing
  keeps memory at the size of X and float64 throughout). Blocks are fixed in size, so every sum
  and hence every output is the same for any thread count.
- :func:`gearys_c_sub`: Geary's C of values on an induced subgraph.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _corrected_row(i: int, g0: int, g1: int, indptr, indices, data, cov, beta, gene_mean, row: np.ndarray) -> None:
    """row[j - g0] = (x_ij + cov_i . beta_j) + m_j for genes g0 <= j < g1 (numpy's order of
    operations for ``X + C @ B + m``, so sums of these values round as scDRS's do)."""
    k = cov.shape[1]
    for j in range(g0, g1):
        cb = 0.0
        for t in range(k):
            cb += cov[i, t] * beta[t, j]
        row[j - g0] = cb
    start = indptr[i]
    stop = indptr[i + 1]
    # the cell's non-zeros inside [g0, g1) (indices sorted)
    lo = start
    hi = stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < g0:
            lo = mid + 1
        else:
            hi = mid
    p = lo
    while p < stop and indices[p] < g1:
        row[indices[p] - g0] = np.float64(data[p]) + row[indices[p] - g0]
        p += 1
    for j in range(g0, g1):
        row[j - g0] = row[j - g0] + gene_mean[j]


@numba.njit(parallel=True, cache=True)
def corrected_gene_moments(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, cov: np.ndarray,
                           beta: np.ndarray, gene_mean: np.ndarray,
                           n_threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-gene mean and variance (ddof 0) over cells of v = x_ij + cov_i . beta_j + m_j and of
    expm1(v): scDRS's gene statistics of the implicitly covariate-corrected data.

    CSR ``indptr/indices/data`` (cells x genes, sorted indices), ``cov`` (cells x k), ``beta``
    (k x genes), ``gene_mean`` (genes). Every cell x gene value is visited (twice) but never
    stored. Parallel over gene blocks; each gene sums its cells in cell order and the variance is
    two-pass (mean, then mean squared deviation), numpy's arithmetic, so that even the rounding
    noise of (nearly) constant genes, which the loess fit sees, is numpy's.
    """
    n_cell = indptr.shape[0] - 1
    n_gene = beta.shape[1]
    n_block = max(1, min(n_threads * 4, n_gene))
    mean = np.zeros(n_gene)
    var = np.zeros(n_gene)
    ct_mean = np.zeros(n_gene)
    ct_var = np.zeros(n_gene)
    for b in numba.prange(n_block):
        g0 = b * n_gene // n_block
        g1 = (b + 1) * n_gene // n_block
        row = np.empty(g1 - g0)
        s1 = np.zeros(g1 - g0)
        e1 = np.zeros(g1 - g0)
        for i in range(n_cell):
            _corrected_row(i, g0, g1, indptr, indices, data, cov, beta, gene_mean, row)
            for j in range(g1 - g0):
                s1[j] += row[j]
                e1[j] += math.expm1(row[j])
        for j in range(g1 - g0):
            s1[j] = s1[j] / n_cell
            e1[j] = e1[j] / n_cell
        s2 = np.zeros(g1 - g0)
        e2 = np.zeros(g1 - g0)
        for i in range(n_cell):
            _corrected_row(i, g0, g1, indptr, indices, data, cov, beta, gene_mean, row)
            for j in range(g1 - g0):
                d = row[j] - s1[j]
                s2[j] += d * d
                d = math.expm1(row[j]) - e1[j]
                e2[j] += d * d
        for j in range(g1 - g0):
            mean[g0 + j] = s1[j]
            var[g0 + j] = s2[j] / n_cell
            ct_mean[g0 + j] = e1[j]
            ct_var[g0 + j] = e2[j] / n_cell
    return mean, var, ct_mean, ct_var


CELL_BLOCK = 128   # cells whose raw scores are computed together (fixed: sums do not depend on threads)



@numba.njit(cache=True)
def _chunk_max_nnz(indptr: np.ndarray, chunk: int, n_chunk: int, n_block: int, n_cell: int) -> int:
    """Most stored entries in one CELL_BLOCK of cells among the blocks of thread chunk ``chunk``
    (the size of the chunk's per-block entry buffers)."""
    max_nnz = 0
    for blk in range(chunk * n_block // n_chunk, (chunk + 1) * n_block // n_chunk):
        c0 = blk * CELL_BLOCK
        c1 = min(n_cell, c0 + CELL_BLOCK)
        max_nnz = max(max_nnz, indptr[c1] - indptr[c0])
    return max_nnz

@numba.njit(cache=True)
def _raw_scores_block(c0: int, c1: int, indptr, indices, data, w_indptr, w_sets, w_vals, cov, cov_proj, const,
                      gene_count, gene_ptr, ent_cell, ent_x, acc) -> None:
    """Raw scores of cells c0..c1-1 for every set: acc[s, i - c0] = sum_j x_ij W_js + cov_i . P_s + const_s.

    The block's non-zeros are regrouped by gene (a small CSC), so that each gene's row of W is
    read once per block rather than once per non-zero (W is too large for the cache).
    ``gene_count``/``gene_ptr`` (n_genes + 1, zero on entry and on return), ``ent_cell``/``ent_x``
    (>= the block's non-zeros) and ``acc`` (n_sets x CELL_BLOCK) are the caller's scratch.
    """
    n_sets = acc.shape[0]
    k = cov.shape[1]
    nb = c1 - c0
    for s in range(n_sets):
        for b in range(nb):
            v = const[s]
            for t in range(k):
                v += cov[c0 + b, t] * cov_proj[t, s]
            acc[s, b] = v
    p0 = indptr[c0]
    p1 = indptr[c1]
    for p in range(p0, p1):
        gene_count[indices[p] + 1] += 1
    # prefix sums only over the genes present would need a sort; the full pass is cheap
    n_gene = gene_count.shape[0] - 1
    for j in range(n_gene):
        gene_count[j + 1] += gene_count[j]
        gene_ptr[j] = gene_count[j]
    for i in range(c0, c1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            q = gene_ptr[j]
            ent_cell[q] = i - c0
            ent_x[q] = data[p]
            gene_ptr[j] = q + 1
    for j in range(n_gene):
        e0 = gene_count[j]
        e1 = gene_count[j + 1]
        if e1 > e0:
            for q in range(w_indptr[j], w_indptr[j + 1]):
                s = w_sets[q]
                w = w_vals[q]
                for e in range(e0, e1):
                    acc[s, ent_cell[e]] += ent_x[e] * w
    for j in range(n_gene + 1):
        gene_count[j] = 0


@numba.njit(parallel=True, cache=True)
def score_pass_cellwise(indptr, indices, data, w_indptr, w_sets, w_vals, cov, cov_proj, const, n_sets: int,
                        n_threads: int, col_mean: np.ndarray,
                        ctrl_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pass 1 (scDRS's first set alignment and cell-wise standardisation).

    ``col_mean``: the raw scores' means over cells (linear in X, computed by the caller).
    Control raw scores are centred by column and divided by sqrt(variance ratio)
    (``ctrl_scale`` = 1/sqrt(ratio), index 0 unused); per cell their mean and sd (ddof 0) give
    the disease set's standardised score ``norm_pre`` and the control sets' standardised scores,
    whose column sums are returned. Returns (raw0 = the disease set's raw score, norm_pre,
    cell_mean, cell_sd, ctrl_colsum).
    """
    n_cell = indptr.shape[0] - 1
    n_gene = w_indptr.shape[0] - 1
    n_ctrl = n_sets - 1
    n_block = (n_cell + CELL_BLOCK - 1) // CELL_BLOCK
    n_chunk = max(1, min(n_threads, n_block))
    block_sum = np.zeros((n_block, n_sets))
    raw0 = np.empty(n_cell)
    norm_pre = np.empty(n_cell)
    cell_mean = np.empty(n_cell)
    cell_sd = np.empty(n_cell)
    for c in numba.prange(n_chunk):
        gene_count = np.zeros(n_gene + 1, dtype=np.int64)
        gene_ptr = np.zeros(n_gene, dtype=np.int64)
        max_nnz = _chunk_max_nnz(indptr, c, n_chunk, n_block, n_cell)
        ent_cell = np.empty(max_nnz, dtype=np.int64)
        ent_x = np.empty(max_nnz)
        acc = np.empty((n_sets, CELL_BLOCK))
        buf = np.empty(n_sets)
        for blk in range(c * n_block // n_chunk, (c + 1) * n_block // n_chunk):
            c0 = blk * CELL_BLOCK
            c1 = min(n_cell, c0 + CELL_BLOCK)
            _raw_scores_block(c0, c1, indptr, indices, data, w_indptr, w_sets, w_vals, cov, cov_proj, const,
                              gene_count, gene_ptr, ent_cell, ent_x, acc)
            for b in range(c1 - c0):
                i = c0 + b
                m = 0.0
                for s in range(1, n_sets):
                    buf[s] = (acc[s, b] - col_mean[s]) * ctrl_scale[s]
                    m += buf[s]
                m /= n_ctrl
                ss = 0.0
                for s in range(1, n_sets):
                    d = buf[s] - m
                    ss += d * d
                sd = math.sqrt(ss / n_ctrl)
                cell_mean[i] = m
                cell_sd[i] = sd
                raw0[i] = acc[0, b]
                norm_pre[i] = (acc[0, b] - col_mean[0] - m) / sd
                for s in range(1, n_sets):
                    acc[s, b] = (buf[s] - m) / sd
            for s in range(1, n_sets):
                t = 0.0
                for b in range(c1 - c0):
                    t += acc[s, b]
                block_sum[blk, s] = t
    colsum = np.zeros(n_sets)
    for blk in range(n_block):
        for s in range(n_sets):
            colsum[s] += block_sum[blk, s]
    return raw0, norm_pre, cell_mean, cell_sd, colsum


@numba.njit(parallel=True, cache=True)
def score_pass_final(indptr, indices, data, w_indptr, w_sets, w_vals, cov, cov_proj, const, n_sets: int,
                     n_threads: int, col_mean: np.ndarray, ctrl_scale: np.ndarray, cell_mean: np.ndarray,
                     cell_sd: np.ndarray, ctrl_col_mean2: np.ndarray, norm: np.ndarray, t_sorted: np.ndarray,
                     keep_ctrl: bool, ctrl_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Pass 2: the control sets' final normalised scores (second alignment), counted, not stored.

    ``norm``: the disease set's final normalised scores; ``t_sorted``: the ascending final
    scores of cells whose disease raw score is not 0 (the only ones needing a pooled count).
    For each control value with a non-zero raw score: its position among ``t_sorted`` goes into
    a histogram (pooled p-values, O(N log n) without storing the N = cells x n_ctrl null), and
    it is compared with the same cell's disease score (per-cell MC p). Returns
    (hist (len(t_sorted)+1: #null values v with #{t <= v} = position), cell_ge (per cell, #
    non-zero-raw control values >= its score), cell_zero (per cell, # zero-raw control values),
    min of all final values (zero-raw entries included, as scDRS), total zero-raw control values).
    With ``keep_ctrl`` the final values are written to ``ctrl_out`` (cells x n_ctrl, float32;
    zero-raw entries as NaN, set by the caller).
    """
    n_cell = indptr.shape[0] - 1
    n_gene = w_indptr.shape[0] - 1
    n_t = t_sorted.shape[0]
    n_block = (n_cell + CELL_BLOCK - 1) // CELL_BLOCK
    n_chunk = max(1, min(n_threads, n_block))
    hist = np.zeros((n_chunk, n_t + 1), dtype=np.int64)
    mins = np.full(n_chunk, np.inf)
    cell_ge = np.zeros(n_cell, dtype=np.int64)
    cell_zero = np.zeros(n_cell, dtype=np.int64)
    for c in numba.prange(n_chunk):
        gene_count = np.zeros(n_gene + 1, dtype=np.int64)
        gene_ptr = np.zeros(n_gene, dtype=np.int64)
        max_nnz = _chunk_max_nnz(indptr, c, n_chunk, n_block, n_cell)
        ent_cell = np.empty(max_nnz, dtype=np.int64)
        ent_x = np.empty(max_nnz)
        acc = np.empty((n_sets, CELL_BLOCK))
        mn = np.inf
        for blk in range(c * n_block // n_chunk, (c + 1) * n_block // n_chunk):
            c0 = blk * CELL_BLOCK
            c1 = min(n_cell, c0 + CELL_BLOCK)
            _raw_scores_block(c0, c1, indptr, indices, data, w_indptr, w_sets, w_vals, cov, cov_proj, const,
                              gene_count, gene_ptr, ent_cell, ent_x, acc)
            for b in range(c1 - c0):
                i = c0 + b
                m = cell_mean[i]
                sd = cell_sd[i]
                t_i = norm[i]
                ge = 0
                nz = 0
                for s in range(1, n_sets):
                    raw = acc[s, b]
                    v = ((raw - col_mean[s]) * ctrl_scale[s] - m) / sd - ctrl_col_mean2[s]
                    if v < mn:
                        mn = v
                    if raw == 0.0:
                        nz += 1
                        if keep_ctrl:
                            ctrl_out[i, s - 1] = np.nan
                        continue
                    if keep_ctrl:
                        ctrl_out[i, s - 1] = v
                    if v >= t_i:
                        ge += 1
                    # position = #{t <= v}
                    lo = 0
                    hi = n_t
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if t_sorted[mid] <= v:
                            lo = mid + 1
                        else:
                            hi = mid
                    hist[c, lo] += 1
                cell_ge[i] = ge
                cell_zero[i] = nz
        mins[c] = mn
    total = np.zeros(n_t + 1, dtype=np.int64)
    for c in range(n_chunk):
        for k in range(n_t + 1):
            total[k] += hist[c, k]
    n_zero = 0
    for i in range(n_cell):
        n_zero += cell_zero[i]
    return total, cell_ge, cell_zero, mins.min(), n_zero


@numba.njit(cache=True)
def gearys_c_sub(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, vals: np.ndarray) -> float:
    """Geary's C = (N - 1) sum_ij w_ij (x_i - x_j)^2 / (2 W sum_i (x_i - mean)^2) on a CSR graph
    whose rows and columns are the N values (an induced subgraph)."""
    n = indptr.shape[0] - 1
    w_total = 0.0
    num = 0.0
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            w = weights[p]
            d = vals[i] - vals[indices[p]]
            w_total += w
            num += w * d * d
    mean = 0.0
    for i in range(n):
        mean += vals[i]
    mean /= n
    den = 0.0
    for i in range(n):
        den += (vals[i] - mean) ** 2
    if w_total == 0.0 or den == 0.0:  # no edges inside the group, or constant values: undefined
        return np.nan
    return (n - 1) * num / (2.0 * w_total * den)


@numba.njit(cache=True)
def col_sums_in_order(indices: np.ndarray, values: np.ndarray, scale, acc: np.ndarray, acc_sq: np.ndarray) -> None:
    """acc[j] += v * scale and acc_sq[j] += (v * v) * scale for the CSR entries in order, in the
    arrays' own precision: scipy's ``X.mean(axis=0)`` / ``X.power(2).mean(axis=0)`` arithmetic
    (entries pre-multiplied by 1/n, then summed cell by cell), which scDRS's gene statistics use
    without covariates. Called on consecutive chunks of the data (the sums carry over)."""
    for p in range(indices.shape[0]):
        v = values[p]
        acc[indices[p]] += v * scale
        acc_sq[indices[p]] += (v * v) * scale


@numba.njit(cache=True)
def legacy_permutation_heads(stream: np.ndarray, pos: int, n: int, k: int, n_perm: int, out: np.ndarray) -> int:
    """The first ``k`` items of ``n_perm`` successive ``RandomState.permutation(n)`` results,
    from that generator's raw 32-bit outputs ``stream`` starting at ``pos`` (numpy's legacy
    Fisher-Yates: for i = n-1..1, j = the first raw & mask <= i, mask = the smallest 2^b - 1 >= i;
    swap items i and j). Writes out[r, :k]; returns the position after the last output used, or
    -1 when ``stream`` ran out (the caller draws more and calls again)."""
    perm = np.empty(n, dtype=np.int64)
    n_stream = stream.shape[0]
    for r in range(n_perm):
        for t in range(n):
            perm[t] = t
        for i in range(n - 1, 0, -1):
            mask = i
            mask |= mask >> 1
            mask |= mask >> 2
            mask |= mask >> 4
            mask |= mask >> 8
            mask |= mask >> 16
            while True:
                if pos >= n_stream:
                    return -1
                j = np.int64(stream[pos]) & mask
                pos += 1
                if j <= i:
                    break
            tmp = perm[i]
            perm[i] = perm[j]
            perm[j] = tmp
        for t in range(k):
            out[r, t] = perm[t]
    return pos


@numba.njit(cache=True)
def xt_dense(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, dense: np.ndarray, n_gene: int) -> np.ndarray:
    """X' @ dense (genes x k) for CSR X (cells x genes), accumulated cell by cell in float64: what
    scipy's ``dense.T @ X`` computes (csc_matvecs on X' after upcasting X to float64), without
    that upcast copy of X."""
    k = dense.shape[1]
    out = np.zeros((n_gene, k))
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            x = np.float64(data[p])
            for t in range(k):
                out[j, t] += x * dense[i, t]
    return out
