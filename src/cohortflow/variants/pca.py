"""Ancestry PCA: MAF filter, windowed LD pruning, GRM eigendecomposition (plink2 --pca style)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg

from cohortflow.errors import CohortflowError, InputFormatError
from cohortflow.io.atomic import atomic_open, write_json_atomic
from cohortflow.io.plink import open_bed
from cohortflow.variants.kernels import CLASS_AUTOSOME, ld_prune_greedy, standardize_block
from cohortflow.variants.plots import plot_pcs
from cohortflow.variants.qc import allele_frequencies, chromosome_classes, count_variants


def ld_prune(bed, *, candidates: np.ndarray, a1_freq: np.ndarray, window_kb: float = 500.0,
             r2: float = 0.2, block_size: int = 2048) -> np.ndarray:
    """Greedy windowed LD pruning: walk variants in file order; keep one unless its r^2 with an
    already-kept variant within ``window_kb`` on the same chromosome exceeds ``r2``.

    r is computed on mean-imputed standardized genotypes. Returns a boolean keep mask over all
    variants (False for non-candidates). Memory: O(samples x (block + kept variants in a window)).
    """
    window_bp = int(window_kb * 1000)
    chrom_codes = pd.factorize(bed.bim["chrom"].astype(str))[0].astype(np.int64)
    pos = bed.bim["pos"].to_numpy(dtype=np.int64)
    keep = np.zeros(bed.n_variants, dtype=bool)
    carry_idx = np.zeros(0, dtype=np.int64)
    carry_z = np.zeros((0, bed.n_samples), dtype=np.float32)
    for start, g in bed.iter_blocks(block_size):
        idx = start + np.flatnonzero(candidates[start:start + len(g)])
        if len(idx) == 0:
            continue
        z_new = standardize_block(g[idx - start], a1_freq[idx])
        z = np.concatenate([carry_z, z_new])
        all_idx = np.concatenate([carry_idx, idx])
        keep_local = np.concatenate([np.ones(len(carry_idx), dtype=bool), np.zeros(len(idx), dtype=bool)])
        ld_prune_greedy(z, chrom_codes[all_idx], pos[all_idx], keep_local, len(carry_idx), float(r2), window_bp)
        keep[idx] = keep_local[len(carry_idx):]
        # carry the kept variants still inside the window of the block's last variant
        last = all_idx[-1]
        near = keep_local & (chrom_codes[all_idx] == chrom_codes[last]) & (pos[last] - pos[all_idx] <= window_bp)
        carry_idx = all_idx[near]
        carry_z = z[near]
    return keep


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


def genotype_pca(bfile, *, out_prefix, n_pcs: int = 10, maf: float = 0.05, prune_window_kb: float = 500.0,
                 prune_r2: float = 0.2, seed: int = 0, sample_info=None, block_size: int = 2048) -> dict:
    """Principal components of autosomal genotypes, as ``plink2 --pca`` computes them.

    Steps: autosomal variants (not X/Y/MT) with MAF >= ``maf`` (all founders); greedy windowed
    LD pruning (``ld_prune``); genotypes standardized as (g - 2p) / sqrt(2p(1-p)), missing -> 0;
    GRM = Z'Z / M accumulated block by block; top ``n_pcs`` eigenpairs by Lanczos iteration
    to machine precision (start vector drawn from ``seed``, so results are reproducible). Sign: each PC is flipped so that
    its largest-magnitude entry is positive.

    Writes:

    - ``{out_prefix}.pcs.tsv``: ``#FID IID PC1 .. PCk`` (unit-norm eigenvectors, plink2 .eigenvec);
    - ``{out_prefix}.eigenvalues.tsv``: ``pc eigenvalue variance_explained`` (eigenvalue / trace);
    - ``{out_prefix}.prune.in``: IDs of the variants used, one per line (plink2 --extract format);
    - ``{out_prefix}.pca.png``: PC1 vs PC2 and PC1 vs PC3, coloured by population when known;
    - ``{out_prefix}.pca.json``: ``n_samples, n_variants_candidates, n_variants_used, n_pcs,
      eigenvalues, variance_explained, maf, prune_window_kb, prune_r2`` and, with ``sample_info``
      (TSV with ``IID`` and ``population``), ``separation`` (``silhouette_pc1_pc2``,
      ``nearest_centroid_accuracy_pc1_pc2``, ``n_populations``, ``n_samples_labelled``).

    Returns the pca.json dict.
    """
    bed = open_bed(bfile)
    n = bed.n_samples
    if n_pcs < 1:
        raise CohortflowError(f"n_pcs must be >= 1, not {n_pcs}")
    n_pcs = min(n_pcs, n - 1)
    populations = _read_populations(sample_info, bed.fam["iid"])
    counts = count_variants(bed, sample_mask=np.ones(n, dtype=bool))
    freq = allele_frequencies(counts)
    minor = np.minimum(freq, 1 - freq)
    candidates = (chromosome_classes(bed.bim["chrom"]) == CLASS_AUTOSOME) & np.isfinite(minor) \
        & (minor >= maf) & (minor > 0)
    keep = ld_prune(bed, candidates=candidates, a1_freq=freq, window_kb=prune_window_kb, r2=prune_r2,
                    block_size=block_size)
    n_used = int(keep.sum())
    if n_used < n_pcs:
        raise CohortflowError(f"only {n_used} variants left after MAF filter and LD pruning; "
                              f"cannot compute {n_pcs} PCs", path=f"{bfile}.bed")

    grm = np.zeros((n, n), dtype=np.float64)
    for start, g in bed.iter_blocks(block_size):
        sel = np.flatnonzero(keep[start:start + len(g)])
        if len(sel) == 0:
            continue
        z = standardize_block(g[sel], freq[start + sel])
        # upper triangle of Z'Z only (BLAS syrk: half the flops of a full product)
        grm += scipy.linalg.blas.ssyrk(1.0, z, trans=1, lower=0)
    grm = np.triu(grm) + np.triu(grm, 1).T
    grm /= n_used
    trace = float(np.trace(grm))
    evals, evecs = top_eigenpairs(grm, n_pcs, seed=seed)
    flip = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(n_pcs)])
    evecs = evecs * np.where(flip == 0, 1.0, flip)
    variance_explained = evals / trace

    pc_names = [f"PC{i + 1}" for i in range(n_pcs)]
    pcs_df = pd.DataFrame(evecs, columns=pc_names)
    pcs_df.insert(0, "IID", bed.fam["iid"].values)
    pcs_df.insert(0, "#FID", bed.fam["fid"].values)
    with atomic_open(f"{out_prefix}.pcs.tsv") as fh:
        pcs_df.to_csv(fh, sep="\t", index=False, float_format="%.8g", lineterminator="\n")
    with atomic_open(f"{out_prefix}.eigenvalues.tsv") as fh:
        pd.DataFrame({"pc": pc_names, "eigenvalue": evals, "variance_explained": variance_explained}).to_csv(
            fh, sep="\t", index=False, float_format="%.8g", lineterminator="\n")
    with atomic_open(f"{out_prefix}.prune.in") as fh:
        fh.write("".join(f"{v}\n" for v in bed.bim["id"].to_numpy()[keep]))
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
        "prune_window_kb": prune_window_kb,
        "prune_r2": prune_r2,
    }
    if populations is not None:
        result["separation"] = separation_statistics(evecs, populations)
    write_json_atomic(f"{out_prefix}.pca.json", result)
    return result
