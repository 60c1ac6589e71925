"""Genotype QC speed: cohortflow vs plink2 on the same plink2 --dummy input, in one run.

    .venv/bin/python benchmarks/bench_qc.py                        # 2000 x 200000, 1 and 2 threads
    .venv/bin/python benchmarks/bench_qc.py --chrx-fraction 0.05   # 5% of the variants on chrX, sexed

Input: ``plink2 --dummy N M 0.01 acgt`` (1% missing calls), optionally with the last fraction of the
variants moved to chrX and the samples given alternating sexes (males' chrX calls redrawn haploid
at the females' allele frequency, 0.1% left het). Two comparisons, each run ``--repeats`` times
at the same thread count, fastest kept:

- statistics: ``qc_statistics`` (what plink2 reports for ``--freq --missing --hardy``, plus the
  plink1.9 ``--het`` and ``--check-sex`` per-sample F, returned as arrays) against
  ``plink2 --freq --missing --hardy`` (which also writes its four reports);
- whole QC: ``genotype_qc`` (filters, the filtered .bed/.bim/.fam and the QC tables) against
  ``plink2 --geno --mind --maf --hwe --make-bed``, and against the same plink2 run also writing
  ``--freq --missing --hardy`` (closer to what genotype_qc writes).

cohortflow is timed in-process (numba kernels compiled beforehand). The ratio is plink2 time /
cohortflow time (above 1: cohortflow is faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.io.plink import open_bed, write_bed
from cohortflow.variants.qc import genotype_qc, qc_statistics

from _timing import best_of  # benchmarks/ is on sys.path when run as a script

THRESHOLDS = {"geno": 0.05, "mind": 0.05, "maf": 0.01, "hwe": 1e-6}


def make_input(d: Path, n: int, m: int, chrx_fraction: float, seed: int = 1) -> Path:
    subprocess.run(["plink2", "--dummy", str(n), str(m), "0.01", "acgt", "--seed", str(seed), "--make-bed",
                    "--out", str(d / "dummy")], check=True, capture_output=True)
    if chrx_fraction <= 0:
        return d / "dummy"
    bed = open_bed(d / "dummy")
    geno, bim, fam = bed.read(), bed.bim.copy(), bed.fam.copy()
    fam["sex"] = np.where(np.arange(n) % 2 == 0, 1, 2)
    n_x = int(round(m * chrx_fraction))
    bim.loc[m - n_x:, "chrom"] = "X"
    rng = np.random.default_rng(seed)
    males = fam["sex"].to_numpy() == 1
    # males haploid at the females' allele frequency (so chrX is in HWE, as in real data), same
    # missing calls as the dummy, and a few het calls as real data have
    female = geno[m - n_x:][:, ~males].astype(np.float64)
    freq = np.nanmean(np.where(female < 0, np.nan, female), axis=1) / 2
    x = geno[m - n_x:][:, males]
    haploid = np.where(x < 0, -1, 2 * (rng.random(x.shape) < freq[:, None])).astype(np.int8)
    haploid[rng.random(haploid.shape) < 0.001] = 1
    geno[m - n_x:, males] = haploid
    write_bed(d / "sexed", geno, bim, fam)
    return d / "sexed"


def plink2(*args: str, threads: int) -> None:
    subprocess.run(["plink2", *args, "--threads", str(threads)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--variants", type=int, default=200000)
    ap.add_argument("--chrx-fraction", type=float, default=0.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("plink2") is None:
        sys.exit("plink2 not found (apt-get install plink2)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bfile = make_input(d, args.samples, args.variants, args.chrx_fraction)
        qc_statistics(bfile, block_size=64)  # compile / load the numba kernels outside the timings
        genotype_qc(bfile, out_prefix=d / "warm", **THRESHOLDS)
        summary = pd.read_json(d / "warm.summary.json", typ="series")
        print(f"plink2 --dummy {args.samples} {args.variants} 0.01 acgt"
              f"{f', {args.chrx_fraction:.0%} on chrX (sexed)' if args.chrx_fraction > 0 else ''}; "
              f"best of {args.repeats}; cpu: {os.cpu_count()} cores; QC kept {summary['n_samples_out']} samples, "
              f"{summary['n_variants_out']} variants")
        print(f"{'comparison':45s} {'threads':>7s} {'cohortflow':>11s} {'plink2':>8s} {'ratio':>6s}")
        for threads in args.threads:
            ours = best_of(args.repeats, lambda: qc_statistics(bfile, threads=threads))
            ref = best_of(args.repeats, lambda: plink2("--bfile", str(bfile), "--freq", "--missing", "--hardy",
                                                       "--out", str(d / "ref"), threads=threads))
            print(f"{'qc_statistics vs --freq --missing --hardy':45s} {threads:7d} {ours:10.3f}s {ref:7.3f}s "
                  f"{ref / ours:5.2f}x", flush=True)
            ours = best_of(args.repeats, lambda: genotype_qc(bfile, out_prefix=d / "ours", threads=threads,
                                                             **THRESHOLDS))
            ref = best_of(args.repeats, lambda: plink2(
                "--bfile", str(bfile), *(x for k, v in THRESHOLDS.items() for x in (f"--{k}", str(v))),
                "--make-bed", "--out", str(d / "ref"), threads=threads))
            print(f"{'genotype_qc vs filters --make-bed':45s} {threads:7d} {ours:10.3f}s "
                  f"{ref:7.3f}s {ref / ours:5.2f}x", flush=True)
            ref = best_of(args.repeats, lambda: plink2(
                "--bfile", str(bfile), *(x for k, v in THRESHOLDS.items() for x in (f"--{k}", str(v))),
                "--make-bed", "--freq", "--missing", "--hardy", "--out", str(d / "ref"), threads=threads))
            print(f"{'genotype_qc vs filters --make-bed + statistics':45s} {threads:7d} {ours:10.3f}s "
                  f"{ref:7.3f}s {ref / ours:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
