"""Alignment QC speed: cohortflow ``alignment_qc`` vs ``samtools stats`` (+ ``flagstat``) on one BAM.

Usage:
    python benchmarks/bench_alignment.py                  # generated sorted paired-end BAM
    python benchmarks/bench_alignment.py --pairs 1000000  # bigger generated BAM
    python benchmarks/bench_alignment.py --bam x.bam [--reference ref.fa]

Prints wall-clock seconds (best of --repeat runs) and the ratio ours / samtools. Our single pass
writes the .stats, .flagstat and metrics files; samtools needs two passes (stats, flagstat), so
both the stats-only and the stats+flagstat ratios are printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate_bam(path: Path, *, n_pairs: int, seed: int = 1, read_len: int = 150) -> None:
    """A coordinate-sorted paired-end BAM with duplicates, mismatches and some unmapped mates."""
    rng = np.random.default_rng(seed)
    contig_len = max(1_000_000, n_pairs * 10)
    starts = np.sort(rng.integers(0, contig_len - 1000, n_pairs))
    inserts = np.clip(rng.normal(400, 60, n_pairs).astype(np.int64), read_len, 900)
    nm = rng.poisson(0.8, (n_pairs, 2))
    mapq = np.where(rng.random((n_pairs, 2)) < 0.05, 0, 60)
    dup = rng.random(n_pairs) < 0.08
    unmapped_mate = rng.random(n_pairs) < 0.01
    seq = "".join(rng.choice(list("ACGT"), read_len))
    qual = "".join(chr(33 + int(q)) for q in rng.integers(10, 41, read_len))
    sam = path.with_suffix(".sam")
    with open(sam, "w") as fh:
        fh.write(f"@HD\tVN:1.6\tSO:unsorted\n@SQ\tSN:chr1\tLN:{contig_len}\n@RG\tID:rg\tSM:BENCH\n")
        for i in range(n_pairs):
            p1 = int(starts[i]) + 1
            p2 = p1 + int(inserts[i]) - read_len
            d = 1024 if dup[i] else 0
            if unmapped_mate[i]:
                fh.write(f"r{i}\t{73 | d}\tchr1\t{p1}\t{mapq[i, 0]}\t{read_len}M\t=\t{p1}\t0\t{seq}\t{qual}\t"
                         f"NM:i:{nm[i, 0]}\tRG:Z:rg\n")
                fh.write(f"r{i}\t{133 | d}\tchr1\t{p1}\t0\t*\t=\t{p1}\t0\t{seq}\t{qual}\tRG:Z:rg\n")
                continue
            tlen = int(inserts[i])
            fh.write(f"r{i}\t{99 | d}\tchr1\t{p1}\t{mapq[i, 0]}\t{read_len}M\t=\t{p2}\t{tlen}\t{seq}\t{qual}\t"
                     f"NM:i:{nm[i, 0]}\tRG:Z:rg\n")
            fh.write(f"r{i}\t{147 | d}\tchr1\t{p2}\t{mapq[i, 1]}\t{read_len // 2}M2D{read_len - read_len // 2}M\t"
                     f"=\t{p1}\t{-tlen}\t{seq}\t{qual}\tNM:i:{nm[i, 1] + 2}\tRG:Z:rg\n")
    subprocess.run(["samtools", "sort", "-o", str(path), str(sam)], check=True)
    sam.unlink()


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bam", type=Path)
    ap.add_argument("--reference", type=Path)
    ap.add_argument("--pairs", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if shutil.which("samtools") is None:
        print("samtools not on PATH", file=sys.stderr)
        return 1
    from cohortflow.alignment.api import alignment_qc

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bam = args.bam
        if bam is None:
            bam = tmp / "bench.bam"
            t0 = time.perf_counter()
            generate_bam(bam, n_pairs=args.pairs)
            print(f"generated {bam.stat().st_size / 1e6:.1f} MB BAM, {2 * args.pairs} reads, "
                  f"in {time.perf_counter() - t0:.1f} s")
        ref = ["--reference", str(args.reference)] if args.reference else []
        fmt_ref = ["--input-fmt-option", f"reference={args.reference}"] if args.reference else []

        alignment_qc(bam, out_prefix=tmp / "warm", reference=args.reference)  # numba compile/cache load
        ours = best_time(lambda: alignment_qc(bam, out_prefix=tmp / "ours", reference=args.reference), args.repeat)
        st = best_time(lambda: subprocess.run(["samtools", "stats", *ref, str(bam)], check=True,
                                              stdout=subprocess.DEVNULL), args.repeat)
        fs = best_time(lambda: subprocess.run(["samtools", "flagstat", *fmt_ref, str(bam)], check=True,
                                              stdout=subprocess.DEVNULL), args.repeat)
        same = (tmp / "ours.flagstat").read_text() == subprocess.run(
            ["samtools", "flagstat", *fmt_ref, str(bam)], check=True, capture_output=True, text=True).stdout
    print(f"input: {bam.name}")
    print(f"cohortflow alignment_qc (stats+flagstat+metrics): {ours:.3f} s")
    print(f"samtools stats:                                   {st:.3f} s")
    print(f"samtools flagstat:                                {fs:.3f} s")
    print(f"ratio ours / samtools stats:             {ours / st:.2f}")
    print(f"ratio ours / (samtools stats + flagstat): {ours / (st + fs):.2f}")
    print(f"flagstat identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
