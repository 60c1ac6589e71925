"""Neighbourhood enrichment kernels: cell-type pair counts on a neighbour graph and their permutation null.

Pure numba functions on CSR arrays (``indptr``, ``indices``) and integer labels ``0..n_types-1``.
The count convention is ``squidpy.gr.nhood_enrichment``'s: ``count[a, b]`` = number of stored
entries ``(i, j)`` of the graph with ``label[i] == a`` and ``label[j] == b`` (a directed kNN graph
counts each direction it holds; a symmetric graph counts every edge twice off the diagonal).

The null permutes the labels over cells. Permutation ``p`` is a Fisher-Yates shuffle driven by a
splitmix64 stream seeded by ``(seed, p)``, so every permutation is reproducible on its own and the
result does not depend on the number of threads. (``x % m`` draws carry a bias below
``n / 2**64``: negligible.)
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["pair_counts", "pair_counts_permuted"]



@numba.njit(cache=True)
def _splitmix64(state):
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def pair_counts(indptr, indices, labels, n_types):
    """``(n_types, n_types)`` int64 counts of graph entries by (row label, column label)."""
    out = np.zeros((n_types, n_types), dtype=np.int64)
    for i in range(indptr.shape[0] - 1):
        a = labels[i]
        for e in range(indptr[i], indptr[i + 1]):
            out[a, labels[indices[e]]] += 1
    return out


@numba.njit(cache=True, parallel=True)
def pair_counts_permuted(indptr, indices, labels, n_types, n_perms, seed):
    """Pair counts under ``n_perms`` label permutations: ``(n_perms, n_types, n_types)`` int64."""
    n = labels.shape[0]
    out = np.zeros((n_perms, n_types, n_types), dtype=np.int64)
    for p in numba.prange(n_perms):
        perm = labels.copy()
        state = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(p) + np.uint64(1)
        state, _ = _splitmix64(state)
        for i in range(n - 1, 0, -1):
            state, r = _splitmix64(state)
            j = np.int64(r % np.uint64(i + 1))
            t = perm[i]
            perm[i] = perm[j]
            perm[j] = t
        for i in range(n):
            a = perm[i]
            for e in range(indptr[i], indptr[i + 1]):
                out[p, a, perm[indices[e]]] += 1
    return out
