"""GWAS speed and memory: cohortflow vs plink2 --glm on the same plink2 --dummy input, in one run.

    .venv/bin/python benchmarks/bench_gwas.py                      # 5000 x 100000, 1 and 2 threads
    .venv/bin/python benchmarks/bench_gwas.py --rss-samples 50000  # + peak RSS at 50,000 samples

Input: ``plink2 --dummy N M [0.01] acgt`` (its binary trait; a quantitative trait and 6 normal
covariates drawn here with a fixed seed), with and without 1% missing calls. Each case runs both
tools ``--repeats`` times at the same thread count and keeps the fastest; plink2 runs
``--glm hide-covar [firth-fallback] --covar-variance-standardize``. cohortflow is timed in-process
(``run_gwas``, numba kernels already compiled) and, once, as the ``cohortflow gwas`` command line
(Python start-up and imports included). The ratio printed is plink2 time / cohortflow time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.gwas.api import run_gwas

from _timing import best_of  # benchmarks/ is on sys.path when run as a script

CASES = (("linear", "no missing calls", "d0", "q"), ("linear", "1% missing calls", "d1", "q"),
         ("logistic", "no missing calls", "d0", "case"), ("logistic", "1% missing calls", "d1", "case"))


def make_inputs(d: Path, n: int, m: int, seed: int = 1) -> None:
    for name, extra in (("d0", []), ("d1", ["0.01"])):
        subprocess.run(["plink2", "--dummy", str(n), str(m), *extra, "acgt", "--seed", str(seed), "--make-bed",
                        "--out", str(d / name)], check=True, capture_output=True)
    fam = pd.read_csv(d / "d0.fam", sep=r"\s+", header=None)
    rng = np.random.default_rng(seed)
    cov = pd.DataFrame({"#FID": fam[0], "IID": fam[1]})
    for k in range(6):
        cov[f"c{k}"] = rng.normal(size=n)
    cov.to_csv(d / "covar.tsv", sep="\t", index=False)
    pd.DataFrame({"#FID": fam[0], "IID": fam[1], "q": cov["c0"] + rng.normal(size=n), "case": fam[5]}).to_csv(
        d / "pheno.tsv", sep="\t", index=False)


def plink2_cmd(d: Path, bfile: str, pheno: str, model: str, threads: int) -> list[str]:
    glm = ["hide-covar"] + (["firth-fallback"] if model == "logistic" else [])
    return ["plink2", "--bfile", str(d / bfile), "--pheno", str(d / "pheno.tsv"), "--pheno-name", pheno,
            "--covar", str(d / "covar.tsv"), "--glm", *glm, "--covar-variance-standardize",
            "--threads", str(threads), "--out", str(d / "ref")]


def cohortflow_cmd(d: Path, bfile: str, pheno: str, threads: int) -> list[str]:
    return [sys.executable, "-m", "cohortflow.cli", "gwas", "--bfile", str(d / bfile), "--pheno",
            str(d / "pheno.tsv"), "--pheno-name", pheno, "--covar", str(d / "covar.tsv"),
            "--covar-variance-standardize", "--threads", str(threads), "--out", str(d / "cli")]


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of a child process (MB), via getrusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=100000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rss-samples", type=int, default=0, help="also measure peak RSS at this many samples")
    args = ap.parse_args()
    if shutil.which("plink2") is None:
        sys.exit("plink2 not found (apt-get install plink2)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_inputs(d, args.samples, args.variants)
        print(f"plink2 --dummy {args.samples} {args.variants} [0.01] acgt, 6 covariates; best of {args.repeats}; "
              f"cpu: {os.cpu_count()} cores")
        for bfile in ("d0", "d1"):  # compile / load the numba kernels outside the timings
            run_gwas(bfile=d / bfile, pheno=d / "pheno.tsv", covar=d / "covar.tsv", out_prefix=d / "warm",
                     block_size=64)
        print(f"{'model':9s} {'input':17s} {'threads':>7s} {'cohortflow':>11s} {'plink2':>8s} {'ratio':>6s} "
              f"{'cohortflow CLI':>15s}")
        for model, label, bfile, pheno in CASES:
            for threads in args.threads:
                ours = best_of(args.repeats, lambda: run_gwas(
                    bfile=d / bfile, pheno=d / "pheno.tsv", pheno_names=[pheno], covar=d / "covar.tsv",
                    out_prefix=d / "ours", threads=threads))
                ref = best_of(args.repeats, lambda: subprocess.run(
                    plink2_cmd(d, bfile, pheno, model, threads), check=True, capture_output=True))
                cli = best_of(1, lambda: subprocess.run(cohortflow_cmd(d, bfile, pheno, threads), check=True,
                                                        capture_output=True))
                print(f"{model:9s} {label:17s} {threads:7d} {ours:10.2f}s {ref:7.2f}s {ref / ours:5.1f}x "
                      f"{cli:14.2f}s", flush=True)
        if args.rss_samples:
            make_inputs(d, args.rss_samples, args.variants, seed=2)
            mb = peak_rss_mb(cohortflow_cmd(d, "d1", "q", 2))
            bed_mb = (d / "d1.bed").stat().st_size / 2**20
            print(f"peak RSS, cohortflow gwas (linear, 1% missing), {args.rss_samples} x {args.variants} "
                  f"(.bed {bed_mb:.0f} MB): {mb:.0f} MB")


if __name__ == "__main__":
    main()
