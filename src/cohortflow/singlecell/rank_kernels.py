"""Numba kernels of the Wilcoxon rank-sum test of each cell group against the rest, on sparse data.

Ranks over all cells are computed from the stored (non-zero) values only: every implicit zero
ties with the others, so the zero block takes one average rank and only the non-zero values of a
gene need sorting (scanpy densifies each block of genes and ranks every cell).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def group_rank_sums(indptr, indices, data, group_of_cell, n_groups):
    """Per gene of a CSC matrix (cells x genes): rank sums, value sums and non-zero counts per group.

    ``group_of_cell``: int64 group code of each row (cell), ``-1`` = in no group (such cells are
    not ranked). Ranks are 1-based over the ranked cells, ties get their average rank (as
    ``scipy.stats.rankdata``); explicit zeros count as zeros. Returns ``rank_sum`` (genes x
    groups, float64: sums of half-integers, exact), ``value_sum`` (genes x groups, float64),
    ``nonzero`` (genes x groups, int64) and ``tie_term`` (per gene, the sum of t^3 - t over tie
    blocks, zeros included, for the tie correction).
    """
    n_genes = indptr.size - 1
    group_size = np.zeros(n_groups, dtype=np.int64)
    for c in range(group_of_cell.size):
        if group_of_cell[c] >= 0:
            group_size[group_of_cell[c]] += 1
    n_ranked = group_size.sum()
    rank_sum = np.zeros((n_genes, n_groups))
    value_sum = np.zeros((n_genes, n_groups))
    nonzero = np.zeros((n_genes, n_groups), dtype=np.int64)
    tie_term = np.zeros(n_genes)
    for j in numba.prange(n_genes):
        lo, hi = indptr[j], indptr[j + 1]
        m = 0
        vals = np.empty(hi - lo, dtype=np.float64)
        grp = np.empty(hi - lo, dtype=np.int64)
        for k in range(lo, hi):
            g = group_of_cell[indices[k]]
            if g >= 0 and data[k] != 0:
                vals[m] = data[k]
                grp[m] = g
                m += 1
        vals = vals[:m]
        grp = grp[:m]
        order = np.argsort(vals, kind="mergesort")
        n_neg = 0
        for k in range(m):
            if vals[k] < 0:
                n_neg += 1
        n_zero = n_ranked - m
        # ranks before the current value; the zero block sits between negatives and positives
        before = 0
        zero_placed = False
        tt = 0.0
        k = 0
        while k < m:
            v = vals[order[k]]
            if v > 0 and not zero_placed:
                before += n_zero
                zero_placed = True
            e = k + 1
            while e < m and vals[order[e]] == v:
                e += 1
            t = e - k
            avg = before + (t + 1) / 2.0
            for q in range(k, e):
                g = grp[order[q]]
                rank_sum[j, g] += avg
                value_sum[j, g] += v
                nonzero[j, g] += 1
            tt += float(t) ** 3 - t
            before += t
            k = e
        zero_rank = n_neg + (n_zero + 1) / 2.0
        for g in range(n_groups):
            rank_sum[j, g] += (group_size[g] - nonzero[j, g]) * zero_rank
        tie_term[j] = tt + float(n_zero) ** 3 - n_zero
    return rank_sum, value_sum, nonzero, tie_term
