"""scDRS disease scoring speed and peak memory: cohortflow.singlecell.scdrs vs the scdrs 1.0.2 package.

Usage:
    python benchmarks/bench_disease_score.py                          # 100,000 cells x 20,000 genes
    python benchmarks/bench_disease_score.py --n-cells 20000          # smaller
    python benchmarks/bench_disease_score.py --peer-n-cells 20000     # scdrs on the first 20,000 cells only

Input (generated once, seeded, cached under benchmarks/out/disease_score/): a sparse count matrix,
negative-binomial counts of genes with gamma-distributed means (~7 % non-zero), normalised to 1e4
per cell and log1p-transformed (what ``scdrs compute-score --flag-raw-count True`` does) and stored
as float32 CSR; covariates: a constant and log(genes per cell) (scDRS's recommended covariates);
one gene set of 1,000 genes with weights in [1, 10].

Each tool runs as its own process with --threads threads (NUMBA/OMP/OPENBLAS/MKL), on the same
.h5ad, .cov and .gs files, n_ctrl 1000 (the CLI default), seed 0:
ours = ``scdrs.preprocess`` + ``score_cells``; scdrs = ``scdrs.preprocess(adata, cov)`` +
``scdrs.score_cell(..., weight_opt='vs')`` (the computation of ``scdrs compute-score``). Reading
the .h5ad is timed apart. Peak memory = the process's own peak RSS (VmHWM of /proc/self/status at
the end), reading included. Prints seconds, GiB and the ratios scdrs / ours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "disease_score"
PEER_PYTHON = REPO / ".ci" / "scpeers" / "bin" / "python"


def generate(n_cells: int, n_genes: int, *, seed: int = 0, density: float = 0.07) -> Path:
    """Cached input folder for this size: cells.h5ad (log-normalised float32 CSR), cells.cov, set.gs."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    folder = OUT / f"c{n_cells}_g{n_genes}_s{seed}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # gene detection probabilities (most genes rare, some common) scaled to the target density
    gene_mu = rng.gamma(0.5, 1.0, n_genes)
    p_detect = 1 - np.exp(-gene_mu)
    p_detect *= density / p_detect.mean()
    p_detect = np.clip(p_detect, 1e-4, 0.95)
    depth = rng.lognormal(0, 0.35, n_cells)
    indptr = [0]
    indices, data = [], []
    block = 5000
    for c0 in range(0, n_cells, block):
        c1 = min(n_cells, c0 + block)
        hit = rng.random((c1 - c0, n_genes), dtype=np.float32) < (p_detect[None, :] * np.minimum(depth[c0:c1, None], 2.5)
                                                                  ).astype(np.float32)
        rows, cols = np.nonzero(hit)
        mu = gene_mu[cols] * depth[c0 + rows] + 0.5
        counts = 1 + rng.negative_binomial(2, 2 / (2 + mu))              # a detected gene has >= 1 read
        indices.append(cols.astype(np.int32))
        data.append(counts.astype(np.float32))
        indptr.extend((np.cumsum(np.bincount(rows, minlength=c1 - c0)) + indptr[-1]).tolist())
    X = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.asarray(indptr, dtype=np.int64)),
                      shape=(n_cells, n_genes))
    totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    X.data *= np.repeat((1e4 / totals).astype(np.float32), np.diff(X.indptr))
    np.log1p(X.data, out=X.data)
    obs = pd.DataFrame(index=[f"cell{i:06d}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"GENE{j:05d}" for j in range(n_genes)])
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(folder / "cells.h5ad")
    cov = pd.DataFrame({"const": 1.0, "log_n_genes": np.log(np.diff(X.indptr) + 1.0)}, index=obs.index)
    cov.to_csv(folder / "cells.cov", sep="\t")
    genes = var.index[rng.choice(n_genes, 1000, replace=False)]
    weights = rng.uniform(1, 10, 1000).round(4)
    (folder / "set.gs").write_text("TRAIT\tGENESET\nbench\t" + ",".join(f"{g}:{w}" for g, w in zip(genes, weights))
                                   + "\n")
    (folder / "done").write_text(json.dumps({"nnz": int(X.nnz), "density": X.nnz / (n_cells * n_genes)}))
    return folder


# Both scripts start alike: the clock, and the peak-RSS reader
PRELUDE = """
import json, sys, time
t0 = time.perf_counter()
def peak_rss_gib():
    # VmHWM starts afresh at exec (ru_maxrss would carry the parent's peak over the fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
"""

OURS = PRELUDE + """import anndata as ad
from cohortflow.singlecell import scdrs as S
folder, n_cells, n_ctrl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
adata = ad.read_h5ad(f"{folder}/cells.h5ad")
if n_cells < adata.n_obs:
    adata = adata[:n_cells].copy()
X = S.log_normalize(adata)             # already log-normalised: taken as it is
cov = S.read_covariates(f"{folder}/cells.cov")
gs = S.load_gs(f"{folder}/set.gs")["bench"]
t1 = time.perf_counter()
data = S.preprocess(X, obs_names=adata.obs_names, var_names=adata.var_names, cov=cov)
t2 = time.perf_counter()
scores, _ = S.score_cells(data, gs, n_ctrl=n_ctrl, seed=0)
t3 = time.perf_counter()
scores.to_csv(f"{folder}/ours.{n_cells}.score.tsv.gz", sep="\\t")
print(json.dumps({"load": t1 - t0, "preprocess": t2 - t1, "score": t3 - t2,
                  "peak_rss_gib": peak_rss_gib()}))
"""

PEER = PRELUDE + """import anndata as ad, pandas as pd, scipy.sparse as sp, scdrs
folder, n_cells, n_ctrl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
adata = ad.read_h5ad(f"{folder}/cells.h5ad")
if n_cells < adata.n_obs:
    adata = adata[:n_cells].copy()
cov = pd.read_csv(f"{folder}/cells.cov", sep="\\t", index_col=0)
gs = scdrs.util.load_gs(f"{folder}/set.gs", to_intersect=adata.var_names)
genes, weights = gs["bench"]
t1 = time.perf_counter()
scdrs.preprocess(adata, cov=cov, n_mean_bin=20, n_var_bin=20, copy=False)
t2 = time.perf_counter()
df = scdrs.score_cell(adata, genes, gene_weight=weights, n_ctrl=n_ctrl, weight_opt="vs", random_seed=0)
t3 = time.perf_counter()
df.to_csv(f"{folder}/peer.{n_cells}.score.tsv.gz", sep="\\t")
print(json.dumps({"load": t1 - t0, "preprocess": t2 - t1, "score": t3 - t2,
                  "peak_rss_gib": peak_rss_gib()}))
"""


def run(python: str, script: str, folder: Path, n_cells: int, n_ctrl: int, threads: int) -> dict:
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["TQDM_DISABLE"] = "1"
    proc = subprocess.run([python, "-c", textwrap.dedent(script), str(folder), str(n_cells), str(n_ctrl)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=100_000)
    ap.add_argument("--n-genes", type=int, default=20_000)
    ap.add_argument("--peer-n-cells", type=int, help="run scdrs on the first N cells only (default: all)")
    ap.add_argument("--n-ctrl", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true")
    a = ap.parse_args(argv)
    folder = generate(a.n_cells, a.n_genes)
    info = json.loads((folder / "done").read_text())
    print(f"input: {a.n_cells} cells x {a.n_genes} genes, {info['nnz']:,} non-zeros ({info['density']:.1%}), "
          f"n_ctrl {a.n_ctrl}, {a.threads} threads")
    ours = run(sys.executable, OURS, folder, a.n_cells, a.n_ctrl, a.threads)
    print(f"ours  ({a.n_cells} cells): load {ours['load']:.1f} s, preprocess {ours['preprocess']:.1f} s, "
          f"score {ours['score']:.1f} s, peak RSS {ours['peak_rss_gib']:.2f} GiB")
    if a.skip_peer or not PEER_PYTHON.exists():
        return
    peer_cells = a.peer_n_cells or a.n_cells
    if peer_cells != a.n_cells:
        ours_same = run(sys.executable, OURS, folder, peer_cells, a.n_ctrl, a.threads)
        print(f"ours  ({peer_cells} cells): load {ours_same['load']:.1f} s, preprocess {ours_same['preprocess']:.1f} s, "
              f"score {ours_same['score']:.1f} s, peak RSS {ours_same['peak_rss_gib']:.2f} GiB")
    else:
        ours_same = ours
    peer = run(str(PEER_PYTHON), PEER, folder, peer_cells, a.n_ctrl, a.threads)
    print(f"scdrs ({peer_cells} cells): load {peer['load']:.1f} s, preprocess {peer['preprocess']:.1f} s, "
          f"score {peer['score']:.1f} s, peak RSS {peer['peak_rss_gib']:.2f} GiB")
    ours_t = ours_same["preprocess"] + ours_same["score"]
    peer_t = peer["preprocess"] + peer["score"]
    print(f"ratio scdrs/ours ({peer_cells} cells): preprocess+score {peer_t / ours_t:.1f}x "
          f"(score alone {peer['score'] / ours_same['score']:.1f}x), "
          f"peak memory {peer['peak_rss_gib'] / ours_same['peak_rss_gib']:.2f}x")
    import pandas as pd
    a_df = pd.read_csv(folder / f"ours.{peer_cells}.score.tsv.gz", sep="\t", index_col=0)
    b_df = pd.read_csv(folder / f"peer.{peer_cells}.score.tsv.gz", sep="\t", index_col=0)
    print(f"agreement: max |raw diff| {np.abs(a_df['raw_score'] - b_df['raw_score']).max():.2e}, "
          f"norm_score r {np.corrcoef(a_df['norm_score'], b_df['norm_score'])[0, 1]:.6f}, "
          f"max |pval diff| {np.abs(a_df['pval'] - b_df['pval']).max():.2e}")


if __name__ == "__main__":
    main()
