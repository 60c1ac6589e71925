"""VCF -> PLINK .bed speed: `cohortflow ingest` vs `plink2 --vcf ... --make-bed`, in one run.

    .venv/bin/python benchmarks/bench_ingest.py                     # 2,000 samples x 200,000 variants
    .venv/bin/python benchmarks/bench_ingest.py --samples 500 --variants 20000

Input: a bgzipped VCF written here with a fixed seed: one chromosome, biallelic SNVs with
allele frequencies from Beta(0.5, 0.5), Hardy-Weinberg genotypes, 1% missing calls (``./.``),
GT only. Both tools run at the same thread count; best of ``--repeats``; the ratio printed is
plink2 time / cohortflow time (above 1: we are faster). "cohortflow" is the whole
``cohortflow ingest`` command line (Python start-up included). The two .bed files are compared
byte for byte.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOKENS = np.array([list(b"0/0\t"), list(b"0/1\t"), list(b"1/1\t"), list(b"./.\t")], dtype=np.uint8)


def write_vcf(path: Path, n: int, m: int, seed: int = 1, chunk: int = 2000) -> None:
    rng = np.random.default_rng(seed)
    header = ("##fileformat=VCFv4.2\n##contig=<ID=1,length=250000000>\n"
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
              + "\t".join(f"S{i}" for i in range(n)) + "\n")
    bases = np.array(list("ACGT"))
    with subprocess.Popen(["bgzip", "-@", "2", "-c"], stdin=subprocess.PIPE, stdout=open(path, "wb")) as bgzip:
        bgzip.stdin.write(header.encode())
        for start in range(0, m, chunk):
            rows = min(chunk, m - start)
            p = np.clip(rng.beta(0.5, 0.5, size=rows), 0.005, 0.995)
            geno = rng.binomial(2, p[:, None], size=(rows, n))
            geno[rng.random((rows, n)) < 0.01] = 3
            text = TOKENS[geno]
            text[:, -1, 3] = ord("\n")
            samples = text.reshape(rows, 4 * n)
            ref = rng.integers(0, 4, size=rows)
            alt = (ref + rng.integers(1, 4, size=rows)) % 4
            for r in range(rows):
                pos = 1000 + 50 * (start + r)
                bgzip.stdin.write(f"1\t{pos}\trs{start + r}\t{bases[ref[r]]}\t{bases[alt[r]]}\t.\tPASS\t.\tGT\t"
                                  .encode())
                bgzip.stdin.write(samples[r].tobytes())
        bgzip.stdin.close()


def best_of(repeats: int, cmd: list[str]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--variants", type=int, default=200000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for tool in ("plink2", "bgzip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install plink2 tabix)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        vcf = d / "cohort.vcf.gz"
        t0 = time.perf_counter()
        write_vcf(vcf, args.samples, args.variants)
        print(f"VCF: {args.samples} samples x {args.variants} variants, GT only, 1% missing; "
              f"{vcf.stat().st_size / 2**20:.0f} MB bgzipped (written in {time.perf_counter() - t0:.0f} s); "
              f"best of {args.repeats}; cpu: {os.cpu_count()} cores")
        # compile / load the numba kernels outside the timings
        subprocess.run([sys.executable, "-m", "cohortflow.cli", "ingest", "--vcf", str(vcf), "--out",
                        str(d / "warm")], check=True, capture_output=True)
        print(f"{'threads':>7s} {'cohortflow':>11s} {'plink2':>8s} {'ratio':>6s}")
        for threads in args.threads:
            ours = best_of(args.repeats, [sys.executable, "-m", "cohortflow.cli", "ingest", "--vcf", str(vcf),
                                          "--threads", str(threads), "--out", str(d / "ours")])
            ref = best_of(args.repeats, ["plink2", "--vcf", str(vcf), "--vcf-half-call", "h", "--make-bed",
                                         "--threads", str(threads), "--out", str(d / "ref")])
            print(f"{threads:7d} {ours:10.2f}s {ref:7.2f}s {ref / ours:5.1f}x", flush=True)
        same = (d / "ours.bed").read_bytes() == (d / "ref.bed").read_bytes()
        print(f".bed identical to plink2's: {same}")


if __name__ == "__main__":
    main()
