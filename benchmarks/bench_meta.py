"""Meta-analysis speed: cohortflow ``meta_analyse`` vs Debian's ``GWAMA`` on the same inputs, in one run.

    .venv/bin/python benchmarks/bench_meta.py                         # 10 M variants x 3 cohorts
    .venv/bin/python benchmarks/bench_meta.py --variants 1000000 --repeats 3
    .venv/bin/python benchmarks/bench_meta.py --no-gwama              # cohortflow only

Input: ``--variants`` SNPs (non-palindromic, so both tools keep the same rows) over 22 chromosomes
in ``--cohorts`` cohorts, a common effect at 0.01% of them (null elsewhere) plus noise; the second cohort writes 10% of its rows
with swapped alleles (beta negated, 1 - eaf) and 5% on the other strand, the last cohort lacks 5%
of the variants. cohortflow reads GWAS-SSF files (our writer's, gzip); GWAMA reads the same
numbers as its own text format (MARKERNAME EA NEA BETA SE N EAF STRAND; ``-qt``), fixed effects
and then ``-r`` (random effects; it always computes Q and I2).

Timed, best of ``--repeats``: cohortflow's numba/numpy path (allele alignment from the columns in
memory + the fixed/random/heterogeneity kernel), reading the three files
(``read_sumstats`` + the columns alignment uses), and the whole ``meta_analyse`` call (read,
align, compute, write OUT.tsv.gz with fixed and random effects, leads, summary, Manhattan, QQ
and forest plots) as a child process, whose peak RSS is printed too; GWAMA fixed and random as
commands. The ratio printed is GWAMA time / cohortflow time (> 1: cohortflow faster), against the
whole call and against GWAMA's random-effects run (which, like ours, gives both models).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from cohortflow.io.sumstats import SSF_COLUMNS, read_sumstats, write_sumstats
from cohortflow.meta.align import align_cohorts, cohort_table
from cohortflow.meta.kernels import log10_normal_p, meta_statistics

from _timing import best_of  # benchmarks/ is on sys.path when run as a script

PAIRS = [("A", "G"), ("A", "C"), ("G", "T"), ("C", "T"), ("G", "A"), ("C", "A"), ("T", "G"), ("T", "C")]
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def make_inputs(d: Path, variants: int, cohorts: int, seed: int) -> tuple[list[Path], list[Path]]:
    rng = np.random.default_rng(seed)
    per_chrom = np.bincount(rng.integers(0, 22, variants), minlength=22)
    chrom = np.repeat(np.arange(1, 23).astype(str), per_chrom)
    pos = np.concatenate([np.sort(rng.choice(250_000_000, k, replace=False)) + 1 for k in per_chrom])
    pair = rng.integers(0, len(PAIRS), variants)
    ea = np.array([p[0] for p in PAIRS])[pair]
    oa = np.array([p[1] for p in PAIRS])[pair]
    ids = pd.Series(chrom).str.cat([pd.Series(pos.astype(str)), pd.Series(oa), pd.Series(ea)], sep=":").to_numpy()
    freq = rng.uniform(0.01, 0.99, variants)
    # a GWAS-like signal: 0.01% of the variants causal, the rest null
    effect = np.where(rng.random(variants) < 1e-4, rng.normal(0, 0.05, variants), 0.0)
    ssf, gwama = [], []
    for c in range(cohorts):
        n = int(rng.integers(5_000, 50_000))
        se = np.sqrt(1.0 / (2 * n * freq * (1 - freq)))
        beta = effect + rng.normal(0, se)
        eaf = np.clip(freq + rng.normal(0, 0.005, variants), 0.001, 0.999)
        e, o = ea.copy(), oa.copy()
        keep = np.ones(variants, dtype=bool)
        if c == 1:
            swap = rng.random(variants) < 0.10
            e[swap], o[swap] = oa[swap], ea[swap]
            beta = np.where(swap, -beta, beta)
            eaf = np.where(swap, 1 - eaf, eaf)
            flip = ~swap & (rng.random(variants) < 0.05)
            e[flip] = np.char.translate(e[flip], COMPLEMENT)
            o[flip] = np.char.translate(o[flip], COMPLEMENT)
        if c == cohorts - 1:
            keep = rng.random(variants) >= 0.05
        table = pd.DataFrame({"chromosome": chrom, "base_pair_location": pos, "effect_allele": e, "other_allele": o,
                              "beta": beta, "standard_error": se, "effect_allele_frequency": eaf, "n": n,
                              "variant_id": ids, "test_statistic": beta / se, "errcode": ""})[keep]
        path = d / f"cohort{c + 1}.tsv.gz"
        write_sumstats(path, table[[col for col in SSF_COLUMNS if col != "p_value"]],
                       log10_p=log10_normal_p(table["test_statistic"].to_numpy()))
        ssf.append(path)
        # GWAMA's input: the numbers as written (6 significant digits), so both read the same
        back = read_sumstats(path)
        gw = pa.table({"MARKERNAME": back["variant_id"], "EA": back["effect_allele"], "NEA": back["other_allele"],
                       "BETA": back["beta"], "SE": back["standard_error"], "N": back["n"],
                       "EAF": back["effect_allele_frequency"], "STRAND": np.full(len(back), "+")})
        gpath = d / f"cohort{c + 1}.gwama.txt"
        with open(gpath, "wb") as fh:  # Arrow quotes header names whatever the quoting style
            fh.write(("\t".join(gw.column_names) + "\n").encode())
            pacsv.write_csv(gw, fh, pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))
        gwama.append(gpath)
        del back, table
    return ssf, gwama


def child_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", type=int, default=10_000_000)
    ap.add_argument("--cohorts", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="numba threads of cohortflow's kernels")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-gwama", action="store_true")
    ap.add_argument("--keep", help="keep the inputs and outputs in this folder")
    ap.add_argument("--inputs", help="a --keep folder of an earlier run: reuse its inputs (same --variants/--cohorts)")
    args = ap.parse_args()
    gwama = None if args.no_gwama else shutil.which("GWAMA")
    if not args.no_gwama and gwama is None:
        sys.exit("GWAMA not on PATH (apt-get install gwama), or --no-gwama")
    tmp = Path(args.inputs or args.keep) if (args.inputs or args.keep) else Path(tempfile.mkdtemp(prefix="bench_meta."))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        if args.inputs:
            ssf = [tmp / f"cohort{c + 1}.tsv.gz" for c in range(args.cohorts)]
            gw_inputs = [tmp / f"cohort{c + 1}.gwama.txt" for c in range(args.cohorts)]
        else:
            ssf, gw_inputs = make_inputs(tmp, args.variants, args.cohorts, args.seed)
        print(f"inputs: {args.variants:,} variants x {args.cohorts} cohorts "
              f"({sum(p.stat().st_size for p in ssf) / 1e6:.0f} MB GWAS-SSF gzip) in {time.perf_counter() - t0:.1f} s")

        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        tables = []

        def read():
            tables.clear()
            for i, p in enumerate(ssf):
                tables.append(cohort_table(read_sumstats(p), name=f"cohort{i + 1}", source=p))

        t_read = best_of(args.repeats, read)
        result = {}

        def align_and_combine():
            al = align_cohorts(tables)
            result["st"] = meta_statistics(al.beta, al.se, al.eaf, al.n)
            result["al"] = al

        align_and_combine()  # compile (numba caches to disk; the first call of a fresh checkout compiles)
        t_core = best_of(args.repeats, align_and_combine)
        al = result["al"]
        t_kernel = best_of(args.repeats, lambda: meta_statistics(al.beta, al.se, al.eaf, al.n))
        counts = {c["name"]: {k: c[k] for k in ("match", "swapped", "flipped")} for c in al.counts[1:]}
        print(f"aligned: {len(al.position):,} variants; {counts}")
        del tables[:]

        script = ("import sys, logging; from cohortflow.meta.api import meta_analyse; "
                  "logging.basicConfig(level=logging.INFO, format='  %(message)s'); "
                  "meta_analyse(sumstats=sys.argv[3:], out=sys.argv[1], trait='bench', threads=int(sys.argv[2]))")
        cmd = [sys.executable, "-c", script, str(tmp / "meta"), str(args.threads), *map(str, ssf)]
        t_whole = best_of(args.repeats, lambda: subprocess.run(cmd, check=True))
        rss = child_peak_rss_mb()

        print(f"cohortflow numba/numpy path (align + kernels): {t_core:.2f} s (kernels alone {t_kernel:.2f} s)")
        print(f"cohortflow read_sumstats x {args.cohorts}: {t_read:.2f} s")
        print(f"cohortflow whole meta_analyse (child process): {t_whole:.2f} s, peak RSS {rss:.0f} MB")
        if gwama:
            (tmp / "gwama.in").write_text("\n".join(p.name for p in gw_inputs) + "\n")
            times = {}
            for label, extra in (("fixed", []), ("random", ["-r"])):
                times[label] = best_of(args.repeats, lambda: subprocess.run(
                    [gwama, "-i", "gwama.in", "-qt", "-o", f"gwama_{label}", *extra], cwd=tmp, check=True,
                    stdout=subprocess.DEVNULL))
            rss_g = child_peak_rss_mb()
            print(f"GWAMA fixed: {times['fixed']:.2f} s, random: {times['random']:.2f} s "
                  f"(peak RSS of all children so far {rss_g:.0f} MB)")
            print(f"ratio GWAMA random / cohortflow whole: {times['random'] / t_whole:.1f}x; "
                  f"GWAMA random / cohortflow numba path: {times['random'] / t_core:.1f}x")
    finally:
        if not (args.keep or args.inputs):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
