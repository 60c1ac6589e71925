"""GWAS speed: cohortflow run_gwas vs plink2 --glm on the same simulated input, in one run.

    .venv/bin/python benchmarks/bench_gwas.py --samples 2000 --variants 40000 --threads 2

Simulates genotypes (2% missing calls), a quantitative and a binary trait pair each, and 12
covariates (sex, age, 10 PCs); times linear (2 traits) and logistic (2 traits) for both tools and
prints the ratios. The first cohortflow call compiles/loads the numba kernels and is not timed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.gwas.api import run_gwas
from cohortflow.io.plink import write_bed


def simulate(d: Path, n: int, m: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.05, 0.5, m)
    geno = (rng.random((m, n)) < freqs[:, None]).astype(np.int8) + (rng.random((m, n)) < freqs[:, None])
    geno = geno.astype(np.int8)
    geno[rng.random((m, n)) < 0.02] = -1
    iids = [f"s{i}" for i in range(n)]
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.arange(1, m + 1) * 100, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": iids, "iid": iids, "father": "0", "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(d / "g", geno, bim, fam)
    cov = pd.DataFrame({"#FID": iids, "IID": iids, "sex": rng.integers(1, 3, n), "age": rng.normal(50, 10, n)})
    for k in range(1, 11):
        cov[f"PC{k}"] = rng.normal(0, 1, n)
    cov.to_csv(d / "covar.tsv", sep="\t", index=False)
    g0 = np.maximum(geno[:20], 0).T.astype(float)
    base = g0 @ rng.normal(0, 0.3, 20) + 0.02 * cov["age"].to_numpy()
    ph = pd.DataFrame({"#FID": iids, "IID": iids})
    for t in (1, 2):
        q = base + rng.normal(0, 1, n)
        ph[f"q{t}"] = q
        ph[f"b{t}"] = np.where(q > np.median(q), 2, 1)
    ph[["#FID", "IID", "q1", "q2"]].to_csv(d / "quant.tsv", sep="\t", index=False)
    ph[["#FID", "IID", "b1", "b2"]].to_csv(d / "binary.tsv", sep="\t", index=False)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--variants", type=int, default=40000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        simulate(d, args.samples, args.variants)
        print(f"{args.samples} samples x {args.variants} variants x 2 traits, 12 covariates, "
              f"2% missing calls, {args.threads} threads")
        # warm-up: numba compilation / cache load
        run_gwas(bfile=d / "g", pheno=d / "quant.tsv", covar=d / "covar.tsv", out_prefix=d / "warm",
                 block_size=256, threads=args.threads)
        run_gwas(bfile=d / "g", pheno=d / "binary.tsv", covar=d / "covar.tsv", out_prefix=d / "warm",
                 block_size=256, threads=args.threads)
        for kind in ("quant", "binary"):
            ours = timed(lambda: run_gwas(bfile=d / "g", pheno=d / f"{kind}.tsv", covar=d / "covar.tsv",
                                          out_prefix=d / "ours", threads=args.threads))
            line = f"{'linear' if kind == 'quant' else 'logistic':9s} cohortflow {ours:7.2f} s"
            if shutil.which("plink2"):
                ref = timed(lambda: subprocess.run(
                    ["plink2", "--bfile", str(d / "g"), "--pheno", str(d / f"{kind}.tsv"), "--covar",
                     str(d / "covar.tsv"), "--glm", "hide-covar", "--covar-variance-standardize",
                     "--threads", str(args.threads), "--out", str(d / "ref")], check=True, capture_output=True))
                line += f"   plink2 {ref:7.2f} s   ratio cohortflow/plink2 {ours / ref:6.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
