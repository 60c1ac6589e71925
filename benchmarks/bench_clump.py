"""LD clumping speed: cohortflow ``clump_loci`` vs ``plink1.9 --clump`` on the same inputs, in one run.

    .venv/bin/python benchmarks/bench_clump.py                    # 5000 x 100000 over 30 Mb, 1% missing; 1 and 2 threads
    .venv/bin/python benchmarks/bench_clump.py --threads 2 --repeats 5
    .venv/bin/python benchmarks/bench_clump.py --p1 1e-4 --p2 0.01 --r2 0.5
    .venv/bin/python benchmarks/bench_clump.py --ld-fraction 0.8      # LD from 80% of the samples (plink --keep)

Input: ``plink2 --dummy N M [missing] acgt --seed 1`` genotypes (its neighbouring variants are in
some LD: about half of them end up clumped at r2 0.1), the .bim positions replaced by M distinct
random positions over ``--mb`` Mb of chromosome 1, and uniform random p-values for every variant
(written with 6 significant digits, as both tools then read the same numbers); with
``--ld-fraction`` LD comes from a random part of the samples (plink1.9 ``--keep``, cohortflow
``samples=``, as the C+T training split does). plink1.9 runs
``--clump`` with ``--clump-p1/p2/r2/kb`` (reads the .bed and the p-value file, writes the
.clumped); cohortflow reads the same p-value file (pandas), runs ``clump_loci`` and writes the
index variants as a TSV, in-process with numba kernels compiled beforehand. Each thread count
runs both tools ``--repeats`` times and keeps the fastest wall time; the ratio printed is
plink1.9 time / cohortflow time (> 1: cohortflow faster). The index variants (in order), their
TOTAL and their SP2 counts must be identical.
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

from cohortflow.gwas.clump import clump_loci

from _timing import best_of  # benchmarks/ is on sys.path when run as a script


def make_inputs(d: Path, plink2: str, samples: int, variants: int, missing: float, mb: float,
                seed: int) -> tuple[Path, Path]:
    prefix = d / "dummy"
    extra = [str(missing)] if missing > 0 else []
    subprocess.run([plink2, "--dummy", str(samples), str(variants), *extra, "acgt", "--seed", "1",
                    "--make-bed", "--out", str(prefix)], check=True, capture_output=True)
    rng = np.random.default_rng(seed)
    bim = pd.read_csv(f"{prefix}.bim", sep="\t", header=None, dtype=str)
    span = int(mb * 1e6)
    bim[3] = np.sort(rng.choice(np.arange(1, span + 1), size=variants, replace=False)).astype(str)
    bim.to_csv(f"{prefix}.bim", sep="\t", header=False, index=False)
    assoc = d / "assoc.tsv"
    p = rng.random(variants)
    pd.DataFrame({"SNP": bim[1], "P": [f"{v:.6g}" for v in p]}).to_csv(assoc, sep="\t", index=False)
    return prefix, assoc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=100000)
    ap.add_argument("--missing", type=float, default=0.01, help="missing-call rate of the dummy data")
    ap.add_argument("--mb", type=float, default=30.0, help="Mb of chromosome 1 the variants spread over")
    ap.add_argument("--p1", type=float, default=1.0)
    ap.add_argument("--p2", type=float, default=1.0)
    ap.add_argument("--r2", type=float, default=0.1)
    ap.add_argument("--kb", type=float, default=250)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ld-fraction", type=float, default=1.0, help="LD from this fraction of the samples")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    plink, plink2 = shutil.which("plink1.9"), shutil.which("plink2")
    if plink is None or plink2 is None:
        print("plink1.9 and plink2 must be on PATH", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        prefix, assoc = make_inputs(d, plink2, args.samples, args.variants, args.missing, args.mb, args.seed)
        settings = ["--clump-p1", str(args.p1), "--clump-p2", str(args.p2), "--clump-r2", str(args.r2),
                    "--clump-kb", str(args.kb)]
        ld_samples = None
        if args.ld_fraction < 1:
            fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
            rng = np.random.default_rng(args.seed + 1)
            kept = fam.iloc[np.sort(rng.choice(len(fam), round(args.ld_fraction * len(fam)), replace=False))]
            kept[[0, 1]].to_csv(d / "keep.txt", sep="\t", header=False, index=False)
            settings += ["--keep", str(d / "keep.txt")]
            ld_samples = kept[1].tolist()

        def run_ours(threads: int) -> pd.DataFrame:
            ss = pd.read_csv(assoc, sep="\t").rename(columns={"SNP": "variant_id", "P": "p_value"})
            leads = clump_loci(ss, prefix, p1=args.p1, p2=args.p2, r2=args.r2, kb=args.kb, samples=ld_samples,
                               threads=threads)
            leads.to_csv(d / "ours.tsv", sep="\t", index=False)
            return leads

        for threads in sorted(set(args.threads)):  # compile the kernels outside the timings
            run_ours(threads)
        print(f"input: plink2 --dummy {args.samples} {args.variants} {args.missing} acgt, {args.mb:g} Mb; "
              f"p1 {args.p1:g} p2 {args.p2:g} r2 {args.r2:g} kb {args.kb:g}; LD samples {args.ld_fraction:g}; "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'threads':>7} {'plink1.9 s':>11} {'cohortflow s':>13} {'ratio':>6}  index variants")
        for threads in args.threads:
            def run_plink():
                subprocess.run([plink, "--bfile", str(prefix), "--clump", str(assoc), *settings,
                                "--threads", str(threads), "--out", str(d / "peer")], check=True, capture_output=True)

            t_plink = best_of(args.repeats, run_plink)
            t_ours = best_of(args.repeats, lambda: run_ours(threads))
            peer = pd.read_csv(d / "peer.clumped", sep=r"\s+")
            ours = pd.read_csv(d / "ours.tsv", sep="\t")
            n_p2 = [0 if s == "NONE" else len(s.split(",")) for s in peer["SP2"]]
            same = (ours["variant_id"].tolist() == peer["SNP"].tolist()
                    and ours["n_clumped"].tolist() == peer["TOTAL"].tolist()
                    and ours["n_clumped_p2"].tolist() == n_p2)
            print(f"{threads:>7} {t_plink:>11.2f} {t_ours:>13.2f} {t_plink / t_ours:>6.1f}  "
                  f"{len(ours)} {'identical' if same else 'DIFFER from plink1.9'} (load {os.getloadavg()[0]:.2f})",
                  flush=True)
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
