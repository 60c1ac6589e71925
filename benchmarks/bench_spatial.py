"""Spatial statistics on the real 10x Xenium mouse-brain section (36,602 cells x 248 genes): cohortflow vs squidpy 1.8.2.

    .venv/bin/python benchmarks/bench_spatial.py                        # all cells, 2 threads
    .venv/bin/python benchmarks/bench_spatial.py --cells 4000 --genes 40 --perms 20   # quick check

Input: /work/shared/data/spatial_multitech_spatialexperiment/10xXenium (``read_xenium``: control
probes and codewords dropped), optionally the first ``--cells`` cells and ``--genes`` genes.
Untimed preparation: ``normalize_total`` + ``log1p``; cell types for neighbourhood enrichment
from k-means (k = 12, seeded) on 20 PCs. Both sides then run on the same h5ad, with the same
thread count (squidpy ``n_jobs`` and numba threads):

1. ``graph``: 6-NN spatial graph (squidpy ``spatial_neighbors(coord_type="generic", n_neighs=6)``);
2. ``autocorr``: Moran's I and Geary's C of every gene with ``--perms`` permutations
   (squidpy ``spatial_autocorr(mode=..., n_perms=...)``, twice);
3. ``nhood``: neighbourhood enrichment between the 12 types, 1,000 permutations.

The squidpy side runs in its own venv (.ci/scpeers) as a subprocess, timed inside it (imports
excluded). The statistics are compared (Moran's I max relative difference, nhood counts equal) so
the two timed runs are known to compute the same thing. Prints one row per step and the ratio
squidpy / cohortflow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
XENIUM = ROOT.parent / "shared" / "data" / "spatial_multitech_spatialexperiment" / "10xXenium"
PEER_PYTHON = Path(os.environ.get("SCPEERS_PYTHON", ROOT / ".ci" / "scpeers" / "bin" / "python"))

PEER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, anndata as ad, squidpy as sq
src, out, perms, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
adata = ad.read_h5ad(src)
t = {}
t0 = time.perf_counter()
sq.gr.spatial_neighbors(adata, coord_type="generic", n_neighs=6)
t["graph"] = time.perf_counter() - t0
t0 = time.perf_counter()
moran = sq.gr.spatial_autocorr(adata, mode="moran", n_perms=perms, seed=0, n_jobs=threads, copy=True,
                               show_progress_bar=False)
sq.gr.spatial_autocorr(adata, mode="geary", n_perms=perms, seed=0, n_jobs=threads, copy=True,
                       show_progress_bar=False)
t["autocorr"] = time.perf_counter() - t0
t0 = time.perf_counter()
res = sq.gr.nhood_enrichment(adata, cluster_key="cell_type", n_perms=1000, seed=0, n_jobs=threads, copy=True,
                             show_progress_bar=False)
t["nhood"] = time.perf_counter() - t0
moran["I"].to_csv(out + "/moran.csv")
np.save(out + "/count.npy", res.counts)
json.dump(t, open(out + "/times.json", "w"))
'''


def prepare(n_cells: int | None, n_genes: int | None):
    import scanpy as sc
    from sklearn.cluster import KMeans

    from cohortflow.io.spatial_formats import read_xenium

    adata = read_xenium(XENIUM)
    if n_cells:
        adata = adata[:n_cells].copy()
    if n_genes:
        adata = adata[:, :n_genes].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=min(20, adata.n_vars - 1), random_state=0)
    types = KMeans(n_clusters=12, n_init=4, random_state=0).fit_predict(adata.obsm["X_pca"])
    adata.obs["cell_type"] = np.array([f"k{t:02d}" for t in types])
    adata.obs["cell_type"] = adata.obs["cell_type"].astype("category")
    del adata.obsm["X_pca"]
    return adata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=None, help="first N cells (default: all 36,602)")
    ap.add_argument("--genes", type=int, default=None, help="first N genes (default: all 248)")
    ap.add_argument("--perms", type=int, default=100, help="permutations for Moran's I / Geary's C")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numba

    numba.set_num_threads(args.threads)
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    from cohortflow.singlecell.spatial import nhood_enrichment, spatial_autocorrelation, spatial_graph

    adata = prepare(args.cells, args.genes)
    values = adata.X.toarray().astype(np.float64)
    genes = list(adata.var_names)
    # warm-up (numba compilation is not part of either side's steady-state cost)
    small_c, _ = spatial_graph(adata.obsm["spatial"][:200], graph="knn", n_neighbors=6)
    spatial_autocorrelation(values[:200, :2], small_c, genes[:2], n_perms=2)
    nhood_enrichment(adata.obs["cell_type"].to_numpy()[:200], small_c, n_perms=2)

    ours = {}
    t0 = time.perf_counter()
    conn, _ = spatial_graph(adata.obsm["spatial"], graph="knn", n_neighbors=6)
    ours["graph"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    moran, _ = spatial_autocorrelation(values, conn, genes, n_perms=args.perms, seed=0)
    ours["autocorr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nhood = nhood_enrichment(adata.obs["cell_type"].to_numpy(), conn, n_perms=1000, seed=0)
    ours["nhood"] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        adata.write_h5ad(Path(tmp) / "in.h5ad")
        (Path(tmp) / "peer.py").write_text(PEER)
        env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
        proc = subprocess.run([str(PEER_PYTHON), str(Path(tmp) / "peer.py"), str(Path(tmp) / "in.h5ad"), tmp,
                               str(args.perms), str(args.threads)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        peer = json.loads((Path(tmp) / "times.json").read_text())
        import pandas as pd

        peer_i = pd.read_csv(Path(tmp) / "moran.csv", index_col=0)["I"].loc[moran.index]
        peer_count = np.load(Path(tmp) / "count.npy")
    rel = float(np.nanmax(np.abs(moran["I"].to_numpy() - peer_i.to_numpy()) / np.abs(peer_i.to_numpy())))
    same_counts = bool(np.array_equal(nhood["count"], peer_count))

    print(f"Xenium mouse brain: {adata.n_obs} cells x {adata.n_vars} genes, {conn.nnz} graph entries, "
          f"{args.perms} autocorrelation permutations, 1000 nhood permutations, {args.threads} threads")
    print(f"same answers: Moran's I max rel. diff {rel:.1e}; nhood counts identical: {same_counts}")
    print(f"{'step':<10}{'cohortflow s':>14}{'squidpy s':>12}{'ratio':>8}")
    for step in ("graph", "autocorr", "nhood"):
        print(f"{step:<10}{ours[step]:>14.2f}{peer[step]:>12.2f}{peer[step] / ours[step]:>8.1f}")
    tot_o, tot_p = sum(ours.values()), sum(peer.values())
    print(f"{'total':<10}{tot_o:>14.2f}{tot_p:>12.2f}{tot_p / tot_o:>8.1f}")


if __name__ == "__main__":
    main()
