"""The whole ``cohortflow sc`` chain on a seeded simulated counts matrix: wall time per step and total.

    .venv/bin/python benchmarks/bench_sc_chain.py                      # 100,000 cells x 20,000 genes, 2 threads
    .venv/bin/python benchmarks/bench_sc_chain.py --cells 5000 --genes 5000   # quick check of the benchmark

The issue's target: the chain on 100,000 cells within 10 minutes on 2 cores. There is no peer to
divide by other than scanpy itself (the chain is scanpy's), so the step breakdown is printed, plus
the one step where cohortflow replaces scanpy's code (Wilcoxon ``rank_genes_groups``) timed
against ``scanpy.tl.rank_genes_groups(method='wilcoxon')`` on the same clusters (``--scanpy-wilcoxon``).

The matrix (built once per parameter set, cached under ``benchmarks/out/cache/``): ``n_types``
PBMC-like cell types named as in the shipped PBMC marker table, each expressing its table markers
plus 40 private genes at 10-60x the background; a lognormal background profile per type
(type-to-type noise sd 0.25 on the log scale); library sizes lognormal around 2,500 UMIs (real
10x v3 PBMC depth), counts multinomial per cell (drawn as gene indices from the type's cumulative
profile); 13 ``MT-`` genes holding ~4% of UMIs; 2% low-quality cells (500 UMIs, 30-60% mito) and
4% heterotypic doublets (two cells' UMIs summed); donors ``D01..D20`` in ``obs['donor']``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GENERATOR_VERSION = 1  # part of the cache key: bump when the output changes
CACHE_DIR = Path(__file__).resolve().parent / "out" / "cache"
PBMC_TYPES = ("T_CD4", "T_CD8", "NK", "B", "Monocyte_classical", "Monocyte_nonclassical", "DC", "pDC", "Platelet")
SHARES = (0.27, 0.16, 0.10, 0.13, 0.15, 0.05, 0.04, 0.03, 0.07)
MITO = ("MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3", "MT-ND3", "MT-ND4L", "MT-ND4",
        "MT-ND5", "MT-ND6", "MT-CYB")


def simulate_counts(n_cells: int, n_genes: int, *, seed: int = 0, n_donors: int = 20, median_umis: float = 2500.0):
    """Seeded AnnData of raw counts and the planted type per cell (see the module docstring)."""
    import anndata as ad

    from cohortflow.singlecell.pipeline import read_markers, default_markers_path

    rng = np.random.default_rng(seed)
    table = read_markers(default_markers_path())
    types = list(PBMC_TYPES)
    named = sorted({g for t in types for g in table[t]})
    n_background = n_genes - len(named) - len(MITO)
    genes = named + [f"G{i:05d}" for i in range(n_background)] + list(MITO)
    gix = {g: i for i, g in enumerate(genes)}
    n_types = len(types)

    base = rng.lognormal(0.0, 1.3, size=n_genes)
    prof = base[None, :] * rng.lognormal(0.0, 0.25, size=(n_types, n_genes))
    prof[:, [gix[g] for g in named]] = base.mean() * 0.05  # named markers: low outside their types
    private = rng.choice(np.arange(len(named), len(named) + n_background), size=(n_types, 40), replace=False)
    for t, name in enumerate(types):
        on = [gix[g] for g in table[name]]
        prof[t, on] = base.mean() * rng.uniform(10, 40, size=len(on))
        prof[t, private[t]] *= rng.uniform(10, 60, size=40)
    mito = np.array([gix[g] for g in MITO])
    prof[:, mito] = 0.0
    prof /= prof.sum(axis=1, keepdims=True)
    mito_split = rng.dirichlet(np.full(len(MITO), 5.0))

    share = np.array(SHARES[:n_types]) / sum(SHARES[:n_types])
    type_a = rng.choice(n_types, size=n_cells, p=share)
    role = rng.random(n_cells)
    low_q = role < 0.02
    doublet = (role >= 0.02) & (role < 0.06)
    type_b = (type_a + rng.integers(1, n_types, size=n_cells)) % n_types
    lib = rng.lognormal(np.log(median_umis), 0.4, size=n_cells)
    lib[low_q] = rng.lognormal(np.log(500.0), 0.3, size=int(low_q.sum()))
    lib_b = np.where(doublet, rng.lognormal(np.log(median_umis), 0.4, size=n_cells), 0.0)
    mito_frac = np.where(low_q, rng.uniform(0.3, 0.6, size=n_cells), rng.uniform(0.02, 0.06, size=n_cells))

    cum = np.cumsum(prof, axis=1)
    cum[:, -1] = 1.0
    mito_cum = np.cumsum(mito_split)
    mito_cum[-1] = 1.0
    blocks = []
    for lo in range(0, n_cells, 5000):
        hi = min(n_cells, lo + 5000)
        n_a = rng.poisson(lib[lo:hi] * (1 - mito_frac[lo:hi]))
        n_b = rng.poisson(lib_b[lo:hi])
        n_m = rng.poisson(lib[lo:hi] * mito_frac[lo:hi])
        cell_parts, gene_parts = [], []
        for counts, which in ((n_a, type_a[lo:hi]), (n_b, type_b[lo:hi])):
            cell = np.repeat(np.arange(hi - lo), counts)
            t_of = np.repeat(which, counts)
            u = rng.random(cell.size)
            g = np.empty(cell.size, dtype=np.int64)
            for t in range(n_types):
                sel = t_of == t
                g[sel] = np.searchsorted(cum[t], u[sel], side="right")
            cell_parts.append(cell)
            gene_parts.append(g)
        cell = np.repeat(np.arange(hi - lo), n_m)
        cell_parts.append(cell)
        gene_parts.append(mito[np.searchsorted(mito_cum, rng.random(cell.size), side="right")])
        code = np.concatenate(cell_parts) * n_genes + np.concatenate(gene_parts)
        code, cnt = np.unique(code, return_counts=True)
        rows, cols = np.divmod(code, n_genes)
        blocks.append(sp.csr_matrix((cnt.astype(np.float32), (rows, cols)), shape=(hi - lo, n_genes)))
    counts = sp.vstack(blocks, format="csr")
    obs = pd.DataFrame({"donor": pd.Categorical([f"D{d + 1:02d}" for d in rng.integers(0, n_donors, size=n_cells)])},
                       index=[f"cell{i:06d}" for i in range(n_cells)])
    adata = ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=genes))
    truth = pd.DataFrame({"barcode": obs.index, "true_cell_type": np.array(types)[type_a],
                          "artefact": np.where(low_q, "low_quality", np.where(doublet, "doublet", "none"))})
    return adata, truth


def cached_counts(n_cells: int, n_genes: int, *, seed: int = 0) -> tuple[Path, Path]:
    """Path of the simulated .h5ad (and truth TSV), built once per (version, size, seed)."""
    key = hashlib.sha256(json.dumps([GENERATOR_VERSION, n_cells, n_genes, seed]).encode()).hexdigest()[:12]
    h5ad = CACHE_DIR / f"sc_{n_cells}x{n_genes}_{key}.h5ad"
    truth = h5ad.with_suffix(".truth.tsv")
    if not (h5ad.exists() and truth.exists()):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        adata, table = simulate_counts(n_cells, n_genes, seed=seed)
        table.to_csv(truth, sep="\t", index=False)
        adata.write_h5ad(h5ad)
        print(f"simulated {n_cells} x {n_genes} counts ({adata.X.nnz / n_cells:.0f} genes per cell) "
              f"in {time.perf_counter() - t0:.1f} s -> {h5ad}", flush=True)
    return h5ad, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scanpy-wilcoxon", action="store_true",
                    help="also time scanpy's own Wilcoxon rank_genes_groups on the chain's clusters")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from cohortflow.singlecell.pipeline import run_singlecell

    h5ad, truth = cached_counts(args.cells, args.genes, seed=args.seed)
    out = CACHE_DIR.parent / "sc_chain"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    summary = run_singlecell(h5ad, out_h5ad=out / "sc.h5ad", out_summary=out / "summary.json", out_dir_figures=out,
                             truth=truth, threads=args.threads, seed=args.seed, timings=timings)
    total = time.perf_counter() - t0
    print(f"\ncohortflow sc chain: {args.cells:,} cells x {args.genes:,} genes, {args.threads} threads")
    for step, sec in timings.items():
        print(f"  {step:<28s} {sec:8.1f} s  {100 * sec / total:5.1f}%")
    print(f"  {'total':<28s} {total:8.1f} s  ({total / 60:.2f} min; target 10 min)")
    print(f"  cells kept {summary['n_cells_out']:,} of {summary['n_cells_in']:,}, doublets called "
          f"{summary['n_doublets_called']:,}, {summary['n_clusters']} clusters, {summary['n_cell_types']} cell types, "
          f"ARI vs planted types {summary['ari']:.3f}")

    if args.scanpy_wilcoxon:
        import anndata as ad
        import scanpy as sc

        res = ad.read_h5ad(out / "sc.h5ad")
        with threadpool_limits(limits=args.threads):
            t1 = time.perf_counter()
            sc.tl.rank_genes_groups(res, groupby="leiden", method="wilcoxon", use_raw=False, key_added="scanpy_rgg")
            peer = time.perf_counter() - t1
        ours = timings["rank_genes_groups"]
        print(f"  rank_genes_groups (Wilcoxon): cohortflow {ours:.1f} s, scanpy {peer:.1f} s, ratio {peer / ours:.1f}x")


if __name__ == "__main__":
    main()
