"""KING-robust kinship speed: cohortflow vs ``plink2 --make-king-table`` on the same input, in one run.

    .venv/bin/python benchmarks/bench_king.py                        # 2000 x 100000, 1% missing; 1 and 2 threads
    .venv/bin/python benchmarks/bench_king.py --samples 4000 --missing 0
    .venv/bin/python benchmarks/bench_king.py --bfile ../shared/data/hapmap3_founders_957/hapmap3_957

Input: ``plink2 --dummy N M [missing] acgt --seed 1`` (or ``--bfile``). Each thread count runs both
tools ``--repeats`` times and keeps the fastest wall time. plink2 runs ``--make-king-table``
(computes and writes the .kin0); cohortflow runs ``king_counts`` + ``write_king_table`` in-process
(numba kernels compiled beforehand), writing the same .kin0. The ratio printed is plink2 time /
cohortflow time (> 1: cohortflow faster). The two .kin0 files are compared line by line; lines may
differ only where plink2 over-counts NSNP (see tests/test_variants_relatedness.py).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cohortflow.variants.relatedness import king_counts, write_king_table

from _timing import best_of  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--variants", type=int, default=100000)
    ap.add_argument("--missing", type=float, default=0.01, help="missing-call rate of the dummy data")
    ap.add_argument("--bfile", help="use this PLINK fileset instead of plink2 --dummy")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    plink2 = shutil.which("plink2")
    if plink2 is None:
        print("plink2 not on PATH", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.bfile:
            prefix = Path(args.bfile)
            label = prefix.name
        else:
            prefix = d / "dummy"
            extra = [str(args.missing)] if args.missing > 0 else []
            subprocess.run([plink2, "--dummy", str(args.samples), str(args.variants), *extra, "acgt", "--seed", "1",
                            "--make-bed", "--out", str(prefix)], check=True, capture_output=True)
            label = f"plink2 --dummy {args.samples} {args.variants} {args.missing} acgt"
        # compile the kernels outside the timings
        write_king_table(king_counts(prefix, threads=1), d / "warm.kin0")
        print(f"input: {label}")
        print(f"{'threads':>7} {'plink2 s':>9} {'cohortflow s':>13} {'ratio':>6}  identical lines")
        for threads in args.threads:
            def run_plink2():
                subprocess.run([plink2, "--bfile", str(prefix), "--make-king-table", "--threads", str(threads),
                                "--out", str(d / "plink2")], check=True, capture_output=True)

            def run_ours():
                write_king_table(king_counts(prefix, threads=threads), d / "ours.kin0")

            t_plink2 = best_of(args.repeats, run_plink2)
            t_ours = best_of(args.repeats, run_ours)
            theirs = (d / "plink2.kin0").read_text().splitlines()
            ours = (d / "ours.kin0").read_text().splitlines()
            same = sum(a == b for a, b in zip(theirs, ours))
            print(f"{threads:>7} {t_plink2:>9.3f} {t_ours:>13.3f} {t_plink2 / t_ours:>6.2f}  "
                  f"{same}/{len(theirs)}{'' if len(theirs) == len(ours) else ' (row counts differ!)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
