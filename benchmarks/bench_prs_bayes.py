"""LDpred2-auto (cohortflow.prs.bayes) speed and memory on a realistic size and on the demo cohort.

    .venv/bin/python benchmarks/bench_prs_bayes.py                      # 2000 x 50000, 1 and 2 threads
    .venv/bin/python benchmarks/bench_prs_bayes.py --variants 20000 --threads 2
    .venv/bin/python benchmarks/bench_prs_bayes.py --demo-only          # results/demo/qc/qc + its GWAS

Simulated input: ``--samples`` genotypes over ``--variants`` variants in independent segments of
100 (haplotypes copied from 6 founders per segment, so LD is strong nearby and decays), a trait with
h2 = ``--h2`` over ``--causal-fraction`` of the variants, OLS summary statistics on the same samples,
LD from them (as when the workflow takes LD from the training samples). Each case is measured in a
fresh child process (so its peak memory is the method's, not the simulation's): the LD blocks
(``compute_ld_blocks``) and the sampler (``ldpred_auto`` on the precomputed LD, default chains /
burn-in / iterations) timed separately, numba kernels compiled beforehand. Reported: wall time, time
per chain x sweep (wall x threads used / (chains x sweeps): one sweep of one chain on one core),
and the child's peak resident memory (VmHWM, including Python, numpy and numba themselves).

No peer runs here: LDpred2 needs R and bigsnpr (CRAN is unreachable offline) and PRS-CS its LD
reference download, so there is no ratio to print.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cohortflow.io.plink import open_bed, write_bed
from cohortflow.prs.bayes import DEFAULT_BURN_IN, DEFAULT_N_CHAINS, DEFAULT_N_ITER, ldpred_auto
from cohortflow.prs.base import align_sumstats
from cohortflow.prs.ld import compute_ld_blocks

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """Peak resident memory of this process. VmHWM belongs to the process's own address space;
    ru_maxrss would carry over the parent's peak across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate(n: int, m: int, seed: int = 1) -> np.ndarray:
    """Samples x variants int8 genotypes in independent 100-variant segments (founder copying)."""
    rng = np.random.default_rng(seed)
    seg = 100
    hap = np.empty((2 * n, m), dtype=np.int8)
    for s0 in range(0, m, seg):
        length = min(seg, m - s0)
        founders = (rng.random((6, length)) < rng.uniform(0.05, 0.95, size=length)).astype(np.int8)
        cur = rng.integers(0, 6, size=2 * n)
        for v in range(length):
            cur = np.where(rng.random(2 * n) < 0.08, rng.integers(0, 6, size=2 * n), cur)
            a = founders[cur, v]
            hap[:, s0 + v] = np.where(rng.random(2 * n) < 0.01, 1 - a, a)
    return (hap[:n] + hap[n:]).astype(np.int8)


def write_simulated_case(n: int, m: int, causal_fraction: float, h2: float, tmp: Path) -> Path:
    """Simulate, write the fileset ``tmp/sim`` and the aligned summary statistics ``tmp/sim.aligned.parquet``."""
    geno = simulate(n, m)
    rng = np.random.default_rng(2)
    causal = rng.choice(m, max(1, int(round(m * causal_fraction))), replace=False)
    sd = geno.std(axis=0)
    effect = np.zeros(m)
    effect[causal] = rng.normal(size=len(causal)) / np.where(sd[causal] > 0, sd[causal], 1)
    g = geno @ effect
    y = g * math.sqrt(h2 / g.var()) + rng.normal(scale=math.sqrt(1 - h2), size=n)
    x = geno.astype(np.float32)
    x -= x.mean(axis=0)
    yc = (y - y.mean()).astype(np.float32)
    sxx = (x * x).sum(axis=0).astype(float)
    beta = (x.T @ yc).astype(float) / np.maximum(sxx, 1e-12)
    se = np.sqrt(np.maximum(float(yc @ yc) - beta ** 2 * sxx, 1e-12) / (n - 2) / np.maximum(sxx, 1e-12))
    del x
    bim = pd.DataFrame({"chrom": "1", "id": [f"v{i}" for i in range(m)], "cm": 0.0,
                        "pos": np.arange(m, dtype=np.int64) * 500 + 1, "a1": "A", "a2": "G"})
    fam = pd.DataFrame({"fid": [f"s{i}" for i in range(n)], "iid": [f"s{i}" for i in range(n)], "father": "0",
                        "mother": "0", "sex": 0, "pheno": "-9"})
    write_bed(tmp / "sim", np.ascontiguousarray(geno.T), bim, fam)
    ok = sxx > 0
    pd.DataFrame({"bim_row": np.flatnonzero(ok).astype(np.int64), "beta": beta[ok], "standard_error": se[ok],
                  "n": float(n)}).to_parquet(tmp / "sim.aligned.parquet")
    return tmp / "sim"


def measure(label: str, bfile: str, aligned_path: str, threads_list: list[int], chains: int, burn_in: int,
            n_iter: int) -> None:
    """(In the child process.) Time LD and the sampler; print the figures and the peak memory."""
    bed = open_bed(bfile)
    aligned = pd.read_parquet(aligned_path)
    small = aligned.iloc[:200]
    for threads in sorted(set(threads_list)):  # compile, and warm the thread pool
        ldpred_auto(small, bed, n_chains=2, burn_in=2, n_iter=2, threads=threads)
    rows = aligned["bim_row"].to_numpy()
    t0 = time.perf_counter()
    ld = compute_ld_blocks(bed, rows)
    t_ld = time.perf_counter() - t0
    s = ld.summary()
    print(f"{label}: {bed.n_samples} samples x {len(aligned)} variants; LD {s['n_blocks']} blocks "
          f"(median {s['block_size_median']:.0f}, max {s['block_size_max']}), {ld.corr.nbytes / 2**20:.0f} MiB; "
          f"LD time {t_ld:.2f} s")
    sweeps = burn_in + n_iter
    for threads in threads_list:
        t0 = time.perf_counter()
        res = ldpred_auto(aligned, bed, ld=ld, n_chains=chains, burn_in=burn_in, n_iter=n_iter, threads=threads)
        wall = time.perf_counter() - t0
        per = wall * min(threads, chains) / (chains * sweeps)
        print(f"  sampler, {threads} thread(s): {wall:.2f} s for {chains} chains x {sweeps} sweeps "
              f"= {per * 1e3:.2f} ms per chain-sweep ({per / len(aligned) * 1e9:.0f} ns per variant); "
              f"h2 {res.h2['estimate']:.3f}, p {res.p['estimate']:.4f}, chains kept {res.n_kept}/{chains}")
        if threads == threads_list[0]:
            for c in res.chains:
                if c["diverged"]:
                    print(f"    chain {c['chain']} (p_init {c['p_init']:.3g}) dropped: {c['reason']}")
    print(f"  peak resident memory of this process: {peak_rss_mib():.0f} MiB")


def run_child(label: str, bfile: Path, aligned_path: Path, args) -> None:
    code = ("import sys; sys.path.insert(0, %r); import bench_prs_bayes as b; "
            "b.measure(%r, %r, %r, %r, %d, %d, %d)" % (str(Path(__file__).parent), label, str(bfile),
                                                       str(aligned_path), list(args.threads), args.chains,
                                                       args.burn_in, args.n_iter))
    subprocess.run([sys.executable, "-c", code], check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--variants", type=int, default=50_000)
    ap.add_argument("--causal-fraction", type=float, default=0.002)
    ap.add_argument("--h2", type=float, default=0.4)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chains", type=int, default=DEFAULT_N_CHAINS)
    ap.add_argument("--burn-in", type=int, default=DEFAULT_BURN_IN)
    ap.add_argument("--n-iter", type=int, default=DEFAULT_N_ITER)
    ap.add_argument("--demo-only", action="store_true")
    ap.add_argument("--demo", default=str(REPO / "results" / "demo"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.demo_only:
            t0 = time.perf_counter()
            bfile = write_simulated_case(args.samples, args.variants, args.causal_fraction, args.h2, tmp)
            print(f"(simulated in {time.perf_counter() - t0:.1f} s: h2 {args.h2}, "
                  f"{args.causal_fraction:g} of the variants causal)", flush=True)
            run_child("simulated", bfile, tmp / "sim.aligned.parquet", args)
        demo = Path(args.demo)
        qc, ss = demo / "qc" / "qc", demo / "gwas" / "quant_trait.tsv.gz"
        if Path(f"{qc}.bed").exists() and ss.exists():
            from cohortflow.io.sumstats import read_sumstats

            aligned = align_sumstats(read_sumstats(ss), open_bed(qc).bim, keep_ambiguous=True)
            aligned[["bim_row", "beta", "standard_error", "n"]].to_parquet(tmp / "demo.aligned.parquet")
            run_child("demo quant_trait (whole-cohort GWAS, LD from all samples)", qc, tmp / "demo.aligned.parquet",
                      args)
        else:
            print(f"demo cohort absent ({qc}.bed or {ss}); run `make demo` to time it")
    print("peer: none offline (LDpred2 needs R/bigsnpr from CRAN; PRS-CS needs its LD reference download)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
