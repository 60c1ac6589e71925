"""Ancestry PCA as plink2 computes it: LD pruning (``--indep-pairwise``), PCA of the
variance-standardized relationship matrix (``--pca``, exact or randomized as ``--pca approx``),
allele weights, and projection of samples onto existing PCs (``--score ... variance-standardize``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import scipy.linalg

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.plink import Bed, open_bed
from cohortflow.variants.kernels import CLASS_MT, CLASS_X, CLASS_Y
from cohortflow.variants.pca_kernels import (
    SMALL_EPSILON,
    bp_subcontigs,
    bp_windows,
    count_missing,
    count_windows,
    decode_called,
    decode_standardized,
    missing_lists,
    packed_to_planes,
    packed_to_planes_subset,
    plane_aggregates,
    projection_table,
    prune_windows,
    standardize_table,
)
from cohortflow.variants.plots import plot_pcs
from cohortflow.variants.qc import allele_frequencies, chromosome_classes, count_variants, founder_mask

_log = logging.getLogger(__name__)

# bytes of decoded genotypes held per block
_BLOCK_BYTES = 256 * 2**20


def autosome_mask(chrom: pd.Series) -> np.ndarray:
    """Variants on numbered autosomes 1-22 (``chr`` prefix allowed), as plink2 ``--autosome``
    keeps them: not X, Y, XY/PAR, MT, 0 or unplaced contigs."""
    code = chrom.astype(str).str.upper().str.removeprefix("CHR")
    number = pd.to_numeric(code, errors="coerce").to_numpy()
    return np.isfinite(number) & (number >= 1) & (number <= 22)


def _as_bed(bed) -> Bed:
    return bed if isinstance(bed, Bed) else open_bed(bed)


def _packed_matrix(bed: Bed) -> np.ndarray:
    """The .bed rows as a read-only memory map (variants x bytes)."""
    if bed.n_variants == 0:
        return np.zeros((0, bed.bytes_per_variant), dtype=np.uint8)
    return np.memmap(f"{bed.prefix}.bed", dtype=np.uint8, mode="r", offset=3,
                     shape=(bed.n_variants, bed.bytes_per_variant))


def _block_rows(n_samples: int, block_size: int) -> int:
    return int(max(8, min(block_size, _BLOCK_BYTES // (8 * max(n_samples, 1)))))


# --------------------------------------------------------------------------------------------
# LD pruning
# --------------------------------------------------------------------------------------------

class _Groups:
    """The founders of one chromosome class split into plink2's r^2 sample groups."""

    def __init__(self, samples0, haploid0, samples1, n_total):
        self.samples = (np.asarray(samples0, dtype=np.int64), np.asarray(samples1, dtype=np.int64))
        self.haploid = (bool(haploid0), False)
        self.n = np.array([len(self.samples[0]), len(self.samples[1])], dtype=np.int64)
        self.words = (max(1, (int(self.n[0]) + 63) // 64), max(1, (int(self.n[1]) + 63) // 64))
        self.all0 = len(self.samples[0]) == n_total and np.array_equal(self.samples[0], np.arange(n_total))

    def planes(self, raw, g, hom, hi):
        if g == 0 and self.all0:
            padded = np.zeros((raw.shape[0], 16 * self.words[0]), dtype=np.uint8)
            padded[:, :raw.shape[1]] = raw
            packed_to_planes(padded.view(np.uint64), int(self.n[0]), self.haploid[0], hom, hi)
        else:
            packed_to_planes_subset(raw, self.samples[g], self.haploid[g], hom, hi)


def _chrom_groups(cls: int, founders: np.ndarray, male: np.ndarray, n: int) -> _Groups:
    f = np.flatnonzero(founders)
    fm = np.flatnonzero(founders & male)
    fnm = np.flatnonzero(founders & ~male)
    if cls == CLASS_X:
        return _Groups(fm, True, fnm, n)
    if cls == CLASS_Y:
        return _Groups(fm, True, [], n)
    if cls == CLASS_MT:
        return _Groups(f, True, [], n)
    return _Groups(f, False, [], n)


def _prune_subcontig(packed, rows, bp, groups: _Groups, *, window, step, window_bp, threshold,
                     chunk_bytes=64 * 2**20):
    """plink2 --indep-pairwise over one subcontig (.bed rows ``rows``); returns removed flags."""
    length = len(rows)
    if window_bp is not None:
        win_start, win_end = bp_windows(bp, window_bp)
    else:
        win_start, win_end = count_windows(length, window, step)
    prev_end = np.concatenate([[0], win_end[:-1]])
    span = int(np.max(win_end - np.minimum(win_start, prev_end)))
    bytes_per_variant = 16 * (groups.words[0] + groups.words[1])
    chunk = int(max(64, min(4096, chunk_bytes // bytes_per_variant)))
    capacity = span + chunk
    hom0 = np.zeros((capacity, groups.words[0]), dtype=np.uint64)
    hi0 = np.zeros_like(hom0)
    hom1 = np.zeros((capacity, groups.words[1]), dtype=np.uint64)
    hi1 = np.zeros_like(hom1)
    agg = np.zeros((length, 2, 4), dtype=np.int64)
    maj_freq = np.zeros(length, dtype=np.float64)
    removed = np.zeros(length, dtype=np.bool_)
    first_unchecked = np.zeros(length, dtype=np.int64)
    winpos = np.zeros(capacity, dtype=np.int64)
    # missing-call lists, used while a pair has at most one missing call per 4 words (beyond that
    # the masked popcounts are cheaper)
    miss0 = np.zeros((capacity, max(1, groups.words[0] // 4)), dtype=np.int64)
    miss1 = np.zeros((capacity, max(1, groups.words[1] // 4)), dtype=np.int64)
    miss_count = np.zeros((capacity, 2), dtype=np.int64)
    state = np.zeros(3, dtype=np.int64)
    loaded = 0
    while state[0] < len(win_start):
        j = int(state[0])
        low = min(int(win_start[j]), int(state[2])) if j else 0
        target = min(length, low + capacity)
        while loaded < target:
            # load up to the ring's wrap point at a time
            slot = loaded % capacity
            stop = min(target, loaded + min(chunk, capacity - slot))
            raw = np.ascontiguousarray(packed[rows[loaded:stop]])
            sl = slice(slot, slot + (stop - loaded))
            groups.planes(raw, 0, hom0[sl], hi0[sl])
            plane_aggregates(hom0[sl], hi0[sl], agg[loaded:stop, 0])
            missing_lists(hom0[sl], hi0[sl], int(groups.n[0]), miss0[sl], miss_count[sl, 0])
            if groups.n[1]:
                groups.planes(raw, 1, hom1[sl], hi1[sl])
                plane_aggregates(hom1[sl], hi1[sl], agg[loaded:stop, 1])
                missing_lists(hom1[sl], hi1[sl], int(groups.n[1]), miss1[sl], miss_count[sl, 1])
            a = agg[loaded:stop]
            # weighted counts: group 1 (diploid non-males on chrX) counts twice
            called = a[:, 0, 0] + 2 * a[:, 1, 0]
            plus = a[:, 0, 3] + 2 * a[:, 1, 3]
            minus = (a[:, 0, 2] - a[:, 0, 3]) + 2 * (a[:, 1, 2] - a[:, 1, 3])
            removed[loaded:stop] = ((plus == 0) & (minus == 0)) | (plus == called) | (minus == called)
            # major-allele frequency over the same founders (haploid calls count one allele)
            het0 = a[:, 0, 0] - a[:, 0, 2]
            het1 = a[:, 1, 0] - a[:, 1, 2]
            if groups.haploid[0]:
                a2 = a[:, 0, 3].astype(np.float64)
                obs = a[:, 0, 0].astype(np.float64)
            else:
                a2 = (2 * a[:, 0, 3] + het0).astype(np.float64)
                obs = 2.0 * a[:, 0, 0]
            a2 = a2 + 2 * a[:, 1, 3] + het1
            obs = obs + 2.0 * a[:, 1, 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                p = np.where(obs > 0, a2 / obs, 0.5)
            maj_freq[loaded:stop] = np.maximum(p, 1.0 - p)
            loaded = stop
        prune_windows(win_start, win_end, state, loaded, capacity, hom0, hi0, hom1, hi1, agg,
                      groups.n, miss0, miss1, miss_count, maj_freq, threshold, removed, first_unchecked,
                      winpos)
    return removed


def indep_pairwise(bed, *, window: float, r2: float, step: int = 1, window_unit: str = "variants",
                   candidates: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """LD pruning exactly as ``plink2 --indep-pairwise W S R2`` (``W kb 1 R2`` with
    ``window_unit="kb"``), PLINK 1.x pruning order as in plink2 2.00a3.

    ``bed``: a ``Bed`` or a fileset prefix. ``candidates``: boolean mask over the .bim rows (the
    variants left after the other filters, e.g. ``--autosome --maf``); default all.

    Within each window (``window`` variants, stepping ``step``; or all variants within
    ``window`` kb of the window's first, stepping one variant) every pair of remaining variants
    whose unphased r^2 exceeds ``r2`` loses its lower-MAF member (the later one on a tie), greedily,
    until no such pair remains. r^2 is the Pearson correlation of allele counts over the founders
    called at both variants (chrX: males haploid with weight 1, others weight 2; chrY/MT haploid,
    heterozygous haploid calls missing). Variants monomorphic in the founders are removed.
    Windows never cross chromosomes; chromosome ``0`` variants are ignored (neither kept nor
    removed), and a chromosome (or, in kb mode, a stretch between gaps wider than the window) with
    one candidate keeps it.

    ``threads``: subcontigs pruned in parallel (default numba's thread count); the result does
    not depend on it.

    Returns a boolean keep mask over the .bim rows (plink2's ``.prune.in``).
    """
    bed = _as_bed(bed)
    if window_unit not in ("variants", "kb"):
        raise CohortflowError(f"window_unit must be 'variants' or 'kb', not {window_unit!r}")
    if window_unit == "kb":
        if step != 1:
            raise CohortflowError("a window in kb needs step 1 (as plink2 --indep-pairwise)")
        window_bp = int(round(window * 1000))
        if window_bp < 1:
            raise CohortflowError(f"window must be positive, not {window}kb")
    else:
        window_bp = None
        if int(window) != window or window < 2:
            raise CohortflowError(f"window must be a whole number of variants >= 2, not {window}")
        if step < 1:
            raise CohortflowError(f"step must be >= 1, not {step}")
        window = int(window)
    if not 0.0 <= r2 < 1.0:
        raise CohortflowError(f"r2 threshold must be in [0, 1), not {r2}")
    m, n = bed.n_variants, bed.n_samples
    candidates = np.ones(m, dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    if candidates.shape != (m,):
        raise CohortflowError(f"candidates has {candidates.shape[0]} entries for {m} variants")
    chrom = bed.bim["chrom"].astype(str)
    candidates = candidates & (chrom != "0").to_numpy()
    founders = founder_mask(bed.fam)
    if founders.sum() < 2:
        raise CohortflowError("LD pruning needs at least two founders", path=f"{bed.prefix}.fam")
    male = bed.fam["sex"].to_numpy() == 1
    cls = chromosome_classes(chrom)
    pos = bed.bim["pos"].to_numpy(dtype=np.int64)
    codes = chrom.to_numpy()
    keep = candidates.copy()
    packed = _packed_matrix(bed)
    threshold = r2 * (1.0 + SMALL_EPSILON)
    # contiguous runs of one chromosome code
    run_starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if m else np.zeros(0, dtype=np.int64)
    run_ends = np.r_[run_starts[1:], m]
    groups_by_class: dict[int, _Groups] = {}
    jobs = []
    for lo, hi in zip(run_starts, run_ends):
        rows = lo + np.flatnonzero(candidates[lo:hi])
        if len(rows) < 2:
            continue
        c = int(cls[lo])
        if c not in groups_by_class:
            groups_by_class[c] = _chrom_groups(c, founders, male, n)
        groups = groups_by_class[c]
        if groups.n[0] + groups.n[1] < 2:
            continue
        bp = pos[rows]
        if window_bp is not None:
            if np.any(np.diff(bp) < 0):
                raise InputFormatError(f"positions not sorted on chromosome {codes[lo]}; sort the "
                                       "fileset (plink2 --sort-vars) before kb-window pruning",
                                       path=f"{bed.prefix}.bim")
            firsts, lengths = bp_subcontigs(bp, window_bp)
        else:
            firsts, lengths = np.array([0]), np.array([len(rows)])
        for first, length in zip(firsts, lengths):
            if length >= 2:
                jobs.append((rows[first:first + length], bp[first:first + length], groups))

    def run(job):
        sub, sub_bp, groups = job
        return _prune_subcontig(packed, sub, sub_bp, groups, window=window, step=step,
                                window_bp=window_bp, threshold=threshold)

    workers = max(1, min(numba.get_num_threads() if threads is None else threads, len(jobs)))
    if workers > 1:
        # subcontigs are independent; the kernels release the GIL (largest first balances load)
        order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][0]))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = dict(zip(order, pool.map(lambda i: run(jobs[i]), order)))
    else:
        results = {i: run(job) for i, job in enumerate(jobs)}
    for i, (sub, _, _) in enumerate(jobs):
        keep[sub[results[i]]] = False
    return keep


# --------------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------------

def _standardized_blocks(packed, rows, a1_freq, n, block, dtype=np.float64, table_fn=None):
    """Yield (block index slice, standardized genotypes block, packed rows) over ``rows``."""
    buf = np.empty((block, n), dtype=dtype)
    table = np.empty((block, 4), dtype=np.float64)
    for start in range(0, len(rows), block):
        stop = min(start + block, len(rows))
        b = stop - start
        raw = np.ascontiguousarray(packed[rows[start:stop]])
        if table_fn is None:
            standardize_table(a1_freq[start:stop], table[:b])
        else:
            table_fn(start, stop, table[:b])
        out = buf[:b]
        decode_standardized(raw, n, table[:b].astype(dtype), out)
        yield slice(start, stop), out, raw


def top_eigenpairs(matrix: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``k`` eigenpairs of a symmetric matrix, descending; dense LAPACK for small
    matrices, ARPACK Lanczos (deterministic start vector) otherwise."""
    n = matrix.shape[0]
    if n <= 3 * k + 10:
        evals, evecs = scipy.linalg.eigh(matrix)
        evals, evecs = evals[n - k:], evecs[:, n - k:]
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(seed).standard_normal(n)
        evals, evecs = eigsh(matrix, k=k, which="LA", v0=v0, tol=0.0)
    order = np.argsort(evals)[::-1]
    return evals[order], evecs[:, order]


def _exact_pca(packed, rows, a1_freq, n, k, *, seed, block_size):
    """plink2 --pca: GRM entry (i, j) = sum over variants of z_i z_j / (variants called in both),
    missing z = 0; top eigenpairs by Lanczos."""
    block = _block_rows(n, block_size) * 2
    grm = np.zeros((n, n), dtype=np.float64)
    called = None  # pairs' joint call counts, once a missing call is seen
    done = 0
    tmp = np.zeros((n, n), dtype=np.float32, order="F")
    for _, z, raw in _standardized_blocks(packed, rows, a1_freq, n, block, dtype=np.float32):
        # upper triangle of Z'Z (BLAS syrk: half the flops of a full product)
        grm += scipy.linalg.blas.ssyrk(1.0, z.T, beta=0.0, c=tmp, trans=0, lower=0, overwrite_c=1)
        has_missing = count_missing(raw, n) > 0
        if has_missing and called is None:
            called = np.full((n, n), float(done))
        if called is not None:
            if has_missing:
                c = np.empty_like(z)
                decode_called(raw, n, c)
                called += scipy.linalg.blas.ssyrk(1.0, c.T, beta=0.0, c=tmp, trans=0, lower=0,
                                                  overwrite_c=1)
            else:
                called += z.shape[0]
        done += z.shape[0]
    grm = np.triu(grm) + np.triu(grm, 1).T
    if called is None:
        grm /= len(rows)
    else:
        grm /= np.triu(called) + np.triu(called, 1).T
    trace = float(np.trace(grm))
    evals, evecs = top_eigenpairs(grm, k, seed=seed)
    return evals, evecs, trace, {"method": "exact"}


# Krylov basis held in memory, in blocks of the randomized block width (thick restart beyond)
_KRYLOV_BLOCKS = 10


def _orthonormal(x: np.ndarray, basis: np.ndarray, limit: int) -> np.ndarray:
    """Orthonormal columns spanning ``x`` less its part in span(``basis``) (orthonormal), at most
    ``limit`` of them; directions already (numerically) in the basis are dropped."""
    norms = np.linalg.norm(x, axis=0)
    x = x / np.where(norms > 0, norms, 1.0)
    for _ in range(2):  # twice is enough (Gram-Schmidt "twice is enough", Giraud et al. 2005)
        x = x - basis @ (basis.T @ x)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    u = u[:, :min(limit, int(np.sum(sv > 1e-6)))]
    u = u - basis @ (basis.T @ u)
    return np.linalg.qr(u)[0]


def _randomized_pca(packed, rows, a1_freq, n, k, *, seed, block_size, oversampling, max_iter, tol):
    """Randomized block Krylov iteration (Musco & Musco 2015) on A = Z'Z (samples x samples,
    never formed), Z the mean-imputed standardized genotypes (plink2 --pca approx).

    Each pass streams Z block by block and applies A to one block of ``k + oversampling``
    vectors: first a random start block, then the residuals A u - theta u of the leading Ritz
    pairs not yet converged (the next Krylov block, orthogonalized against the basis). The basis
    and its image under A are kept, so Rayleigh-Ritz on the whole Krylov space (not only the
    last block, as in subspace iteration) costs no further pass, and the Ritz pairs converge at
    a rate set roughly by the square root of the relative eigengaps instead of the gaps. Once the
    basis holds ``_KRYLOV_BLOCKS`` blocks it restarts from its leading Ritz vectors (thick
    restart: their images are known, no pass needed). Stops when the residuals
    ||A u_j - theta_j u_j|| / theta_1 of the requested k pairs (not the oversampled ones) are
    all below ``tol``, after ``max_iter`` passes, or when the basis spans all samples (exact).
    Memory O(n x _KRYLOV_BLOCKS (k + oversampling)); deterministic from ``seed``."""
    m = len(rows)
    width = min(n, k + oversampling)
    max_basis = min(n, max(_KRYLOV_BLOCKS * width, k + 2 * width))
    block = _block_rows(n, block_size)
    sum_sq = 0.0
    passes = 0

    def apply(x):
        nonlocal sum_sq, passes
        y = np.zeros(x.shape, dtype=np.float64)
        x32 = x.astype(np.float32)
        # single-precision products (half the time of double), summed over blocks in double
        for _, z, _ in _standardized_blocks(packed, rows, a1_freq, n, block, dtype=np.float32):
            y += z.T @ (z @ x32)
            if passes == 0:
                sum_sq += float(np.einsum("ij,ij->", z, z, dtype=np.float64))
        passes += 1
        return y

    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((n, width)))[0]
    image = apply(basis)  # A basis
    proj = basis.T @ image  # basis' A basis
    while True:
        theta, v = np.linalg.eigh((proj + proj.T) / 2)
        theta, v = theta[::-1], v[:, ::-1]
        scale = max(float(theta[0]), 1e-300)
        top = np.arange(min(k, len(theta)))
        resid_k = image @ v[:, top] - (basis @ v[:, top]) * theta[top]
        norms = np.linalg.norm(resid_k, axis=0) / scale
        residual = float(np.max(norms))
        if residual < tol or passes >= max_iter or basis.shape[1] >= n:
            break
        # next block: residuals of the leading Ritz pairs, converged ones among the k left out
        extra = np.arange(k, min(len(theta), k + width - int(np.sum(norms >= tol))))
        new = np.hstack([resid_k[:, norms >= tol],
                         image @ v[:, extra] - (basis @ v[:, extra]) * theta[extra]])
        new = _orthonormal(new, basis, n - basis.shape[1])
        if new.shape[1] == 0:
            break
        if max_basis < n and basis.shape[1] + new.shape[1] > max_basis:
            # thick restart: keep the leading Ritz vectors (and their images)
            keep = max_basis - new.shape[1]
            basis, image = basis @ v[:, :keep], image @ v[:, :keep]
            proj = np.diag(theta[:keep])
        new_image = apply(new)
        cross = basis.T @ new_image
        proj = np.block([[proj, cross], [cross.T, new.T @ new_image]])
        basis, image = np.hstack([basis, new]), np.hstack([image, new_image])
    vecs = basis @ v[:, :k]
    return (theta[:k] / m, vecs, sum_sq / m,
            {"method": "randomized", "iterations": passes, "residual": residual, "subspace": width})


def _allele_weights(packed, rows, a1_freq, evecs, evals, n, block_size):
    """Per variant weights w = Z'u / (M lambda): sum over variants of w z gives back u (the
    .eigenvec PC) for a sample, missing z = 0."""
    m = len(rows)
    weights = np.zeros((m, evecs.shape[1]), dtype=np.float64)
    for sl, z, _ in _standardized_blocks(packed, rows, a1_freq, n, _block_rows(n, block_size)):
        weights[sl] = z @ evecs
    return weights / (m * evals)


def pca(bed, *, variants, n_pcs: int = 10, a1_freq: np.ndarray | None = None, method: str = "auto",
        exact_max_samples: int = 5000, oversampling: int = 10, max_iter: int = 40, tol: float = 1e-4,
        seed: int = 0, block_size: int = 2048) -> dict:
    """Top ``n_pcs`` principal components of the standardized genotypes of ``variants`` (boolean
    mask or ascending .bim row indices), as ``plink2 --extract ... --pca`` (see ``genotype_pca``
    for the methods). ``a1_freq``: A1 frequency of those variants (default: over the founders).

    Returns a dict: ``pcs`` (samples x n_pcs, unit-norm, largest-magnitude entry positive),
    ``eigenvalues`` (plink2 .eigenval), ``variance_explained`` (eigenvalue / trace), ``weights``
    (variants x n_pcs, see ``genotype_pca``'s loadings), ``rows`` (.bim rows used), ``a1_freq``,
    ``info`` (``method``; ``iterations`` (passes), ``residual``, ``subspace`` (block width) for
    randomized).
    """
    bed = _as_bed(bed)
    n = bed.n_samples
    variants = np.asarray(variants)
    rows = np.flatnonzero(variants) if variants.dtype == bool else variants.astype(np.int64)
    if method not in ("auto", "exact", "randomized"):
        raise CohortflowError(f"method must be auto, exact or randomized, not {method!r}")
    if n_pcs < 1 or n_pcs >= n:
        raise CohortflowError(f"n_pcs must be between 1 and samples - 1 ({n - 1}), not {n_pcs}")
    if len(rows) < n_pcs:
        raise CohortflowError(f"only {len(rows)} variants; cannot compute {n_pcs} PCs",
                              path=f"{bed.prefix}.bed")
    if method == "auto":
        method = "exact" if n <= exact_max_samples else "randomized"
    packed = _packed_matrix(bed)
    if a1_freq is None:
        a1_freq = _founder_a1_freq(bed, rows, block_size)
    a1_freq = np.asarray(a1_freq, dtype=np.float64)
    if not np.all((a1_freq > 0) & (a1_freq < 1)):
        raise CohortflowError("PCA variants must be polymorphic (A1 frequency strictly between 0 and 1)",
                              path=f"{bed.prefix}.bed")
    if method == "exact":
        evals, evecs, trace, info = _exact_pca(packed, rows, a1_freq, n, n_pcs, seed=seed,
                                               block_size=block_size)
    else:
        evals, evecs, trace, info = _randomized_pca(packed, rows, a1_freq, n, n_pcs, seed=seed,
                                                    block_size=block_size, oversampling=oversampling,
                                                    max_iter=max_iter, tol=tol)
    flip = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(n_pcs)])
    evecs = evecs * np.where(flip == 0, 1.0, flip)
    weights = _allele_weights(packed, rows, a1_freq, evecs, evals, n, block_size)
    return {"pcs": evecs, "eigenvalues": evals, "variance_explained": evals / trace, "weights": weights,
            "rows": rows, "a1_freq": a1_freq, "info": info}


def _founder_a1_freq(bed: Bed, rows, block_size):
    """A1 frequency of .bim rows ``rows`` over the founders' called genotypes."""
    founders = founder_mask(bed.fam)
    freq = np.empty(len(rows))
    block = _block_rows(bed.n_samples, block_size)
    for start in range(0, len(rows), block):
        g = bed.read_rows(rows[start:start + block])[:, founders]
        called = g >= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            freq[start:start + len(g)] = np.where(called, g, 0).sum(1) / (2.0 * called.sum(1))
    return freq


def _read_populations(sample_info, iids: pd.Series) -> np.ndarray | None:
    if sample_info is None:
        return None
    path = Path(sample_info)
    try:
        info = pd.read_csv(path, sep="\t", dtype=str)
    except (OSError, pd.errors.ParserError, ValueError) as exc:
        raise InputFormatError(f"cannot read sample info ({exc})", path=path) from None
    info.columns = [c.lstrip("#") for c in info.columns]
    if "IID" not in info.columns or "population" not in info.columns:
        raise InputFormatError("needs columns IID and population", path=path)
    pops = dict(zip(info["IID"], info["population"]))
    return np.array([pops.get(iid) for iid in iids], dtype=object)


def separation_statistics(pcs: np.ndarray, populations: np.ndarray) -> dict:
    """Silhouette score of populations in PC1-PC2 space and in-sample nearest-centroid accuracy
    (PC1-PC2), over samples with a known population (populations with >= 2 samples)."""
    from sklearn.metrics import silhouette_score

    known = np.array([p is not None and str(p) not in ("", "nan") for p in populations])
    labels = np.asarray(populations, dtype=object)[known].astype(str)
    xy = pcs[known][:, :2]
    names, counts = np.unique(labels, return_counts=True)
    ok = np.isin(labels, names[counts >= 2])
    labels, xy = labels[ok], xy[ok]
    names = np.unique(labels)
    if len(names) < 2:
        return {"n_populations": int(len(names))}
    centroids = np.stack([xy[labels == k].mean(axis=0) for k in names])
    nearest = names[np.argmin(((xy[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
    return {
        "n_populations": int(len(names)),
        "n_samples_labelled": int(len(labels)),
        "silhouette_pc1_pc2": float(silhouette_score(xy, labels)),
        "nearest_centroid_accuracy_pc1_pc2": float((nearest == labels).mean()),
    }


def _write_pcs(path, fam, evecs, pc_names):
    df = pd.DataFrame(evecs, columns=pc_names)
    df.insert(0, "IID", fam["iid"].values)
    df.insert(0, "#FID", fam["fid"].values)
    with atomic_open(path) as fh:
        df.to_csv(fh, sep="\t", index=False, float_format="%.8g", lineterminator="\n")


def genotype_pca(bfile, *, out_prefix, n_pcs: int = 10, maf: float = 0.05, prune_window_kb: float = 500.0,
                 prune_r2: float = 0.2, prune_window_variants: int | None = None, prune_step: int = 1,
                 method: str = "auto", exact_max_samples: int = 5000, oversampling: int = 10,
                 max_iter: int = 40, tol: float = 1e-4, seed: int = 0, sample_info=None,
                 block_size: int = 2048) -> dict:
    """Principal components of autosomal genotypes, as ``plink2 --pca`` computes them.

    Steps:

    1. candidates: variants on chromosomes 1-22 (``autosome_mask``) with founder MAF >= ``maf``
       (``--autosome --maf``);
    2. LD pruning by ``indep_pairwise`` = ``plink2 --indep-pairwise {prune_window_kb}kb 1 {prune_r2}``,
       or ``--indep-pairwise {prune_window_variants} {prune_step} {prune_r2}`` when
       ``prune_window_variants`` is given;
    3. genotypes standardized as (g - 2p) / sqrt(2p(1-p)) with p the founder A1 frequency;
    4. ``method="exact"`` (default for <= ``exact_max_samples`` samples): the relationship matrix
       of plink2 --pca (entry i, j = sum of z_i z_j over the variants called in both / their
       number; missing z = 0), top ``n_pcs`` eigenpairs by Lanczos iteration to machine precision;
       ``method="randomized"`` (default above that; plink2 ``--pca approx``): randomized block
       Krylov iteration streaming the mean-imputed standardized matrix, one pass over the
       genotypes per block of ``n_pcs + oversampling`` vectors with Rayleigh-Ritz on the whole
       Krylov basis, memory O(samples x 10 (n_pcs + oversampling)), never samples x samples,
       stopping when the relative residuals of the ``n_pcs`` requested PCs are below ``tol`` or
       after ``max_iter`` passes.
       Both are deterministic from ``seed``. Each PC is flipped so its largest-magnitude entry is
       positive.

    Writes:

    - ``{out_prefix}.pcs.tsv``: ``#FID IID PC1 .. PCk`` (unit-norm eigenvectors, plink2 .eigenvec);
    - ``{out_prefix}.eigenvalues.tsv``: ``pc eigenvalue variance_explained`` (plink2 .eigenval;
      variance explained = eigenvalue / trace);
    - ``{out_prefix}.prune.in``: IDs of the variants used, one per line (plink2 .prune.in);
    - ``{out_prefix}.pca.loadings.tsv``: ``#CHROM ID A1 A2 A1_FREQ PC1 .. PCk``, one row per variant
      used: A1 (.bim column 5) founder frequency and per-PC weights w = Z'u / (M lambda), so that
      sum over variants of w (g_A1 - 2 A1_FREQ) / sqrt(2 A1_FREQ (1 - A1_FREQ)) gives a sample's PC
      (``project_pcs``; plink2 ``--score ... no-mean-imputation variance-standardize`` SUM). plink2's
      ``.eigenvec.allele`` A1 weight equals -w * M * sqrt(lambda) / 2;
    - ``{out_prefix}.pca.png``: PC1 vs PC2 and PC1 vs PC3, coloured by population when known;
    - ``{out_prefix}.pca.json``: ``n_samples, n_variants_candidates, n_variants_used, n_pcs,
      eigenvalues, variance_explained, maf, prune_window_kb, prune_window_variants, prune_step,
      prune_r2, method`` (+ ``iterations`` = passes over the genotypes, ``residual``,
      ``subspace`` = block width for randomized) and, with
      ``sample_info`` (TSV with ``IID`` and ``population``), ``separation``
      (``silhouette_pc1_pc2``, ``nearest_centroid_accuracy_pc1_pc2``, ``n_populations``,
      ``n_samples_labelled``).

    Returns the pca.json dict.
    """
    bed = open_bed(bfile)
    n = bed.n_samples
    if n_pcs < 1:
        raise CohortflowError(f"n_pcs must be >= 1, not {n_pcs}")
    n_pcs = min(n_pcs, n - 1)
    populations = _read_populations(sample_info, bed.fam["iid"])
    counts = count_variants(bed, sample_mask=np.ones(n, dtype=bool),
                            block_size=_block_rows(n, block_size))
    freq = allele_frequencies(counts)
    minor = np.minimum(freq, 1 - freq)
    candidates = autosome_mask(bed.bim["chrom"]) & np.isfinite(minor) & (minor >= maf) & (minor > 0)
    started = time.perf_counter()
    if prune_window_variants is None:
        keep = indep_pairwise(bed, window=prune_window_kb, step=1, r2=prune_r2, window_unit="kb",
                              candidates=candidates)
    else:
        keep = indep_pairwise(bed, window=prune_window_variants, step=prune_step, r2=prune_r2,
                              candidates=candidates)
    rows = np.flatnonzero(keep)
    n_used = len(rows)
    # stage times go to the job's log (the scale benchmark splits the job's wall time with them)
    _log.info("LD pruning: %d of %d candidate variants kept in %.1f s", n_used, int(candidates.sum()),
              time.perf_counter() - started)
    started = time.perf_counter()
    if n_used < n_pcs:
        raise CohortflowError(f"only {n_used} variants left after MAF filter and LD pruning; "
                              f"cannot compute {n_pcs} PCs", path=f"{bfile}.bed")
    fit = pca(bed, variants=rows, n_pcs=n_pcs, a1_freq=freq[rows], method=method,
              exact_max_samples=exact_max_samples, oversampling=oversampling, max_iter=max_iter,
              tol=tol, seed=seed, block_size=block_size)
    evals, evecs, weights, a1 = fit["eigenvalues"], fit["pcs"], fit["weights"], fit["a1_freq"]
    variance_explained, info = fit["variance_explained"], fit["info"]
    _log.info("PCA (%s) of %d samples x %d variants in %.1f s", info.get("method"), n, n_used,
              time.perf_counter() - started)

    pc_names = [f"PC{i + 1}" for i in range(n_pcs)]
    _write_pcs(f"{out_prefix}.pcs.tsv", bed.fam, evecs, pc_names)
    with atomic_open(f"{out_prefix}.eigenvalues.tsv") as fh:
        pd.DataFrame({"pc": pc_names, "eigenvalue": evals, "variance_explained": variance_explained}).to_csv(
            fh, sep="\t", index=False, float_format="%.8g", lineterminator="\n")
    bim = bed.bim
    with atomic_open(f"{out_prefix}.prune.in") as fh:
        fh.write("".join(f"{v}\n" for v in bim["id"].to_numpy()[rows]))
    loadings = pd.DataFrame(weights, columns=pc_names)
    loadings.insert(0, "A1_FREQ", a1)
    loadings.insert(0, "A2", bim["a2"].to_numpy()[rows])
    loadings.insert(0, "A1", bim["a1"].to_numpy()[rows])
    loadings.insert(0, "ID", bim["id"].to_numpy()[rows])
    loadings.insert(0, "#CHROM", bim["chrom"].to_numpy()[rows])
    with atomic_open(f"{out_prefix}.pca.loadings.tsv") as fh:
        loadings.to_csv(fh, sep="\t", index=False, float_format="%.10g", lineterminator="\n")
    plot_pcs(evecs, path=f"{out_prefix}.pca.png", populations=populations,
             variance_explained=variance_explained)
    result = {
        "n_samples": n,
        "n_variants_candidates": int(candidates.sum()),
        "n_variants_used": n_used,
        "n_pcs": n_pcs,
        "eigenvalues": [float(x) for x in evals],
        "variance_explained": [float(x) for x in variance_explained],
        "maf": maf,
        "prune_window_kb": prune_window_kb if prune_window_variants is None else None,
        "prune_window_variants": prune_window_variants,
        "prune_step": prune_step if prune_window_variants is not None else 1,
        "prune_r2": prune_r2,
        **info,
    }
    if populations is not None:
        result["separation"] = separation_statistics(evecs, populations)
    write_json_atomic(f"{out_prefix}.pca.json", result)
    return result


# --------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------

def read_loadings(path) -> pd.DataFrame:
    """A ``.pca.loadings.tsv`` (``#CHROM ID A1 A2 A1_FREQ PC1 ..``) as a DataFrame."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype={"#CHROM": str, "ID": str, "A1": str, "A2": str})
    except (OSError, pd.errors.ParserError, ValueError) as exc:
        raise InputFormatError(f"cannot read loadings ({exc})", path=path) from None
    need = ["ID", "A1", "A2", "A1_FREQ"]
    missing = [c for c in need if c not in df.columns]
    pcs = [c for c in df.columns if c.startswith("PC")]
    if missing or not pcs:
        raise InputFormatError(f"loadings need columns ID A1 A2 A1_FREQ PC1..; missing "
                               f"{', '.join(missing) or 'PC columns'}", path=path)
    dup = df["ID"].duplicated()
    if dup.any():
        raise InputFormatError(f"duplicate variant ID {df['ID'][dup].iloc[0]}", path=path,
                               record=f"line {int(np.flatnonzero(dup)[0]) + 2}")
    freq = pd.to_numeric(df["A1_FREQ"], errors="coerce").to_numpy()
    bad = ~((freq > 0) & (freq < 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputFormatError(f"A1_FREQ must be in (0, 1), not {df['A1_FREQ'].iloc[i]}", path=path,
                               record=f"line {i + 2}")
    return df


def project_pcs(bfile, *, loadings, out, block_size: int = 2048) -> dict:
    """Project the samples of ``bfile`` onto existing PCs from a ``.pca.loadings.tsv``.

    Same as plink2's documented projection, ``--read-freq`` (the loadings' A1_FREQ) ``--score
    loadings 2 3 header-read no-mean-imputation variance-standardize cols=+scoresums`` SUM
    columns: for each sample, the sum over the variants found of w * (g - 2p) / sqrt(2p(1-p)),
    g the count of the loadings' A1 allele (2 - g when the fileset has the alleles the other way
    round), a missing call contributing 0 (mean-imputed).
    Variants are matched by ID; ones absent from the fileset or with other alleles are skipped
    (their contribution is 0, as for a missing call). Projecting the PCA's own samples gives back
    their PCs (exactly for mean-imputed PCs).

    Writes ``{out}.pcs.tsv`` (``#FID IID PC1 .. PCk``) and ``{out}.projection.json``
    (``n_samples, n_variants_loadings, n_variants_used, n_variants_swapped,
    n_variants_absent, n_variants_allele_mismatch, pcs``). Returns the json dict.
    """
    bed = open_bed(bfile)
    table = read_loadings(loadings)
    pc_names = [c for c in table.columns if c.startswith("PC")]
    bim = bed.bim
    ids = bim["id"].astype(str)
    first_row = pd.Series(np.arange(len(ids)), index=ids)
    first_row = first_row[~first_row.index.duplicated(keep="first")]
    row = first_row.reindex(table["ID"].astype(str)).to_numpy()
    present = ~np.isnan(row)
    row = np.where(present, row, -1).astype(np.int64)
    a1 = table["A1"].astype(str).str.upper().to_numpy()
    a2 = table["A2"].astype(str).str.upper().to_numpy()
    b1 = np.where(present, bim["a1"].astype(str).str.upper().to_numpy()[row], "")
    b2 = np.where(present, bim["a2"].astype(str).str.upper().to_numpy()[row], "")
    direct = present & (b1 == a1) & (b2 == a2)
    swapped = present & ~direct & (b1 == a2) & (b2 == a1)
    use = direct | swapped
    order = np.argsort(row[use], kind="stable")
    rows = row[use][order]
    if len(np.unique(rows)) != len(rows):
        raise InputFormatError("two loadings rows match the same variant", path=Path(loadings))
    swap = swapped[use][order]
    freq = table["A1_FREQ"].to_numpy(dtype=np.float64)[use][order]
    w = table[pc_names].to_numpy(dtype=np.float64)[use][order]
    n = bed.n_samples
    scores = np.zeros((n, len(pc_names)))
    packed = _packed_matrix(bed)

    def table_fn(start, stop, out):
        projection_table(freq[start:stop], swap[start:stop], out)

    for sl, z, _ in _standardized_blocks(packed, rows, freq, n, _block_rows(n, block_size),
                                         table_fn=table_fn):
        scores += z.T @ w[sl]
    _write_pcs(f"{out}.pcs.tsv", bed.fam, scores, pc_names)
    result = {
        "n_samples": n,
        "n_variants_loadings": int(len(table)),
        "n_variants_used": int(use.sum()),
        "n_variants_swapped": int(swapped.sum()),
        "n_variants_absent": int((~present).sum()),
        "n_variants_allele_mismatch": int((present & ~use).sum()),
        "pcs": pc_names,
    }
    write_json_atomic(f"{out}.projection.json", result)
    return result
